//! `soquete chat join`: the plain line mode. Each stdin line is a message for
//! the current room or a `/command`; each chat message received is one
//! stdout line (`[room] name: text`, `[room] * name text`,
//! `[pm] from -> to: text`), flushed at once so scripts read it live;
//! everything else (events, notices, errors, connection state) goes to
//! stderr. At stdin EOF the client quits and waits for the server to close,
//! so every typed line was delivered. `--raw` talks to the chapter's raw
//! chat server instead (`join_raw`). With a passphrase option the
//! connection runs the secure channel first (see `crate::secure`);
//! `--show-fingerprint` then only prints the server's identity.
//!
//! Used whenever stdin or stdout is not a terminal, or with `--plain`;
//! otherwise `run` hands over to the full-screen chat (`crate::chat::tui`),
//! `--raw` included. `--log FILE` appends what is shown to a transcript.

pub(crate) mod input;
pub(crate) mod raw;
mod view;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::chat::client::{self, BackoffPolicy, ClientConfig, Request, Secure};
use crate::chat::command::{self, Command};
use crate::chat::tui::transcript::Transcript;
use crate::cli::ChatJoinArgs;
use crate::net::Shutdown;
use crate::secure::{ClientSecurity, Role};
use view::{LineView, Shown};

/// Longest stdin line taken as one message; longer lines come in pieces.
pub const MAX_LINE: usize = 64 * 1024;

/// Runs `chat join` (line mode, or `--raw`).
pub async fn run(args: ChatJoinArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    if args.fernet {
        return crate::secure::fernet_client::run(args, shutdown).await;
    }
    let screen = crate::chat::tui::wanted(&args);
    if args.raw && screen {
        return crate::chat::tui::run_raw(&args, shutdown).await;
    }
    if args.raw {
        return raw::run(&args, shutdown).await;
    }
    let secure = args.secure.resolve(Role::Client)?;
    if args.secure.show_fingerprint && secure.is_none() {
        anyhow::bail!(
            "--show-fingerprint needs a passphrase option (--passphrase, --passphrase-file or --passphrase-env)"
        );
    }
    let security = secure.as_ref().map(|s| Arc::new(s.client()));
    if let Some(sec) = &security
        && args.secure.show_fingerprint
    {
        return show_fingerprint(&args.addr, sec).await;
    }
    let mut config = ClientConfig::new(&args.addr);
    config.secure = security.map(Secure);
    config.name = args.name.clone();
    config.room = args.room.clone();
    config.reconnect = (!args.no_reconnect).then(BackoffPolicy::default);
    if screen {
        return crate::chat::tui::run_native(config, &args, shutdown).await;
    }
    let mut transcript = args.log.as_deref().map(Transcript::open).transpose()?;

    let (req_tx, req_rx) = mpsc::channel(64);
    let (ev_tx, mut ev_rx) = mpsc::channel(256);
    let client = tokio::spawn(client::run(config, req_rx, ev_tx, shutdown));
    tokio::spawn(forward_input(input::stdin_lines(MAX_LINE), req_tx));
    if std::io::stdin().is_terminal() {
        eprintln!("* type a message, or /help for commands");
    }

    let mut view = LineView::new(!args.no_reconnect);
    while let Some(event) = ev_rx.recv().await {
        let line = view.render(&event);
        if let (Some(t), Some(Shown::Stdout(s) | Shown::Stderr(s))) = (transcript.as_mut(), &line) {
            t.write([s]).context("cannot write the log")?;
        }
        show(line).context("cannot write to stdout")?;
    }
    // The event channel closes when the client is done.
    client.await.context("client task failed")??;
    Ok(())
}

/// `--show-fingerprint`: the secure channel only (no chat handshake), then
/// the server's fingerprint on stdout.
async fn show_fingerprint(addr: &str, security: &ClientSecurity) -> anyhow::Result<()> {
    let limit = ClientConfig::new(addr).timeouts.connect;
    let tcp = client::conn::connect_tcp(addr, limit).await?;
    let (_tls, connected) = client::conn::connect_secure(tcp, addr, security).await?;
    client::conn::report_pinning(addr, &connected);
    print_stdout(&connected.fingerprint.to_string()).context("cannot write to stdout")
}

/// Prints one rendered event: chat lines on stdout (flushed), the rest on
/// stderr.
fn show(line: Option<Shown>) -> std::io::Result<()> {
    match line {
        Some(Shown::Stdout(s)) => print_stdout(&s),
        Some(Shown::Stderr(s)) => {
            eprintln!("{s}");
            Ok(())
        }
        None => Ok(()),
    }
}

/// Writes one line to stdout and flushes it, for scripts reading live.
pub(crate) fn print_stdout(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Parses typed lines and passes commands on; `/help` and bad commands are
/// answered here on stderr and never sent. Ends (closing the channel, which
/// the client takes as quit) at EOF or after `/quit`.
async fn forward_input(mut lines: mpsc::Receiver<String>, requests: mpsc::Sender<Request>) {
    while let Some(line) = lines.recv().await {
        let cmd = match command::parse(&line) {
            None => continue,
            Some(Err(e)) => {
                eprintln!("error: {e}");
                continue;
            }
            Some(Ok(Command::Help)) => {
                eprintln!("{}", command::help_text());
                continue;
            }
            Some(Ok(cmd)) => cmd,
        };
        let quit = matches!(cmd, Command::Quit(_));
        if requests.send(Request::Command(cmd)).await.is_err() || quit {
            return;
        }
    }
}
