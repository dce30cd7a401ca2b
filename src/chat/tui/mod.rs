//! The full-screen terminal chat: what `soquete chat join` is when stdin
//! and stdout are terminals (`--plain` keeps the line mode). Window tabs
//! with unread counters, scrollback with timestamps and coloured names,
//! a member list, a status bar (server, room, connection, and in secure
//! mode a lock with the server's fingerprint), and an input line with
//! Emacs keys, history, Tab completion and bracketed paste.
//!
//! It runs on the same client core as the line mode
//! (`crate::chat::client`), or with `--raw` on a raw TCP connection to the
//! chapter's server, with the same screen. Parts:
//! - `app` (+ `app_events`): the model, pure; `window`: one window's
//!   scrollback and scrolling; `editor`: the input line; `complete`: Tab
//!   completion; `keys`: what each key does; `text`: sanitizing and
//!   wrapping by display width; `render`: drawing with ratatui;
//! - `screen`: the terminal's setup and restore (panic hook), `capture`:
//!   stderr while the screen is up, `event_loop`: the `select!` over
//!   terminal events, client events and timers; `raw`: the `--raw` link;
//!   `transcript`: `--log FILE`.

mod app;
mod capture;
mod complete;
mod editor;
mod event_loop;
mod keys;
mod raw;
mod render;
mod screen;
mod text;
pub mod transcript;
mod window;

use std::io::IsTerminal;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::chat::client::{self, ClientConfig};
use crate::cli::ChatJoinArgs;
use crate::net::Shutdown;
use app::{App, Mode};
use event_loop::{Incoming, Sink};
use transcript::Transcript;

/// Whether `chat join` should take the full screen: stdin and stdout are
/// terminals and `--plain` was not given.
pub fn wanted(args: &ChatJoinArgs) -> bool {
    !args.plain && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Runs the chat on the client core with `config` until `/quit`, Ctrl-C,
/// or the client gives up (its error is returned once the terminal is
/// restored).
pub async fn run_native(
    config: ClientConfig,
    args: &ChatJoinArgs,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let transcript = args.log.as_deref().map(Transcript::open).transpose()?;
    let (req_tx, req_rx) = mpsc::channel(64);
    let (ev_tx, mut ev_rx) = mpsc::channel(256);
    let (in_tx, in_rx) = mpsc::channel(256);
    // The client stops on Ctrl-C (the signal) or when the screen goes.
    let mut client_stop = Shutdown::new();
    client_stop.token = shutdown.token.child_token();
    let mut app = App::new(Mode::Native, &config.addr);
    let client = tokio::spawn(client::run(config, req_rx, ev_tx, client_stop.clone()));
    tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            if in_tx.send(Incoming::Client(ev)).await.is_err() {
                return;
            }
        }
    });
    let ended = event_loop::run(&mut app, in_rx, Sink::Client(req_tx), transcript, &shutdown).await;
    // The screen is restored here; stop the client if it is still running.
    client_stop.token.cancel();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), client).await;
    ended?;
    match outcome {
        Ok(joined) => joined.context("client task failed")?.map_err(Into::into),
        Err(_) => Ok(()),
    }
}

/// `--raw` on a terminal: the same screen over a raw TCP connection.
pub async fn run_raw(args: &ChatJoinArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let transcript = args.log.as_deref().map(Transcript::open).transpose()?;
    let (line_tx, line_rx) = mpsc::channel(64);
    let (in_tx, in_rx) = mpsc::channel(256);
    let link = raw::Link {
        addr: args.addr.clone(),
        newline: args.newline,
    };
    let task = tokio::spawn(raw::run(link, line_rx, in_tx, shutdown.clone()));
    let mut app = App::new(Mode::Raw, &args.addr);
    let ended = event_loop::run(&mut app, in_rx, Sink::Raw(line_tx), transcript, &shutdown).await;
    task.abort();
    ended
}
