//! `chat join --raw`: talk to a raw chat server (the chapter's `Servidor.py`,
//! `ncat --chat` with `--newline`). Each stdin line's text is sent without
//! framing and, unless `--newline`, without a newline — exactly the bytes
//! of the chapter's `Cliente.py` (`input().encode('utf-8')`; an empty line
//! sends nothing). What arrives is split into messages by
//! [`RawSplitter`] (coalesced and split reads, split UTF-8, invalid bytes
//! replaced) and printed one sanitized stdout line each (with `--log FILE`,
//! appended to a transcript too).
//!
//! Without newlines a raw server cannot tell two quick messages apart, so
//! consecutive sends are spaced by [`SEND_GAP`] (a person never types that
//! fast; a pipe would otherwise glue lines together). At stdin EOF the
//! write side is shut, and the client waits for the echoes until the
//! server closes or [`QUIET`] passes without data ([`LINGER`] at most).
//! A server that closes first ends the client with an error: raw servers
//! keep no state worth reconnecting for.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::{Instant, sleep_until};

use super::{MAX_LINE, input, print_stdout};
use crate::chat::client::conn::connect_tcp;
use crate::chat::tui::transcript::Transcript;
use crate::cli::ChatJoinArgs;
use crate::net::Shutdown;
use crate::sanitize::for_terminal;
use crate::wire::raw::RawSplitter;

/// Least time between two unterminated sends.
pub const SEND_GAP: Duration = Duration::from_millis(50);
/// After stdin EOF, this long without data ends the client.
pub const QUIET: Duration = Duration::from_millis(500);
/// After stdin EOF, the longest wait for echoes.
pub const LINGER: Duration = Duration::from_secs(3);
/// TCP connect timeout.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest message printed as one line; longer ones are cut, not lost.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// Runs the raw client until stdin EOF (plus echoes), Ctrl-C, or the
/// server closing.
pub async fn run(args: &ChatJoinArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    if args.name.is_some() || args.room.is_some() {
        // A raw server has no names or rooms (soquete's raw side takes
        // `/nick NAME` and `/join ROOM` typed as lines).
        eprintln!(
            "* --name and --room do nothing with --raw; type /nick or /join if the server takes commands"
        );
    }
    let mut log = args.log.as_deref().map(Transcript::open).transpose()?;
    let stream = tokio::select! {
        s = connect_tcp(&args.addr, CONNECT_TIMEOUT) => s?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    if let Ok(peer) = stream.peer_addr() {
        let ending = if args.newline { "with" } else { "without" };
        eprintln!(
            "* connected to {peer} (raw chat: each line is sent as typed, {ending} a newline)"
        );
    }
    let (mut rd, mut wr) = stream.into_split();
    let mut lines = input::stdin_lines(MAX_LINE);
    let mut sender = Sender::new(args.newline);
    let mut splitter = RawSplitter::new(MAX_MESSAGE);
    let mut chunk = vec![0u8; 16 * 1024];
    // Set at stdin EOF: (when input ended, when data last arrived).
    let mut ended: Option<(Instant, Instant)> = None;
    loop {
        let deadline = ended.map(|(eof, quiet)| (quiet + QUIET).min(eof + LINGER));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            line = lines.recv(), if ended.is_none() => match line {
                Some(text) => sender.send(&mut wr, &text).await?,
                None => {
                    let now = Instant::now();
                    ended = Some((now, now));
                    let _ = wr.shutdown().await;
                }
            },
            r = rd.read(&mut chunk) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) if ended.is_some() => {
                        tracing::debug!("read after EOF: {e}");
                        0
                    }
                    Err(e) => anyhow::bail!("connection lost: {e}"),
                };
                if n == 0 {
                    print_all(splitter.flush(), &mut log)?;
                    if ended.is_some() {
                        return Ok(());
                    }
                    anyhow::bail!("server closed the connection");
                }
                print_all(splitter.push(&chunk[..n]), &mut log)?;
                if let Some((_, quiet)) = ended.as_mut() {
                    *quiet = Instant::now();
                }
            }
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                print_all(splitter.flush(), &mut log)?;
                return Ok(());
            }
        }
    }
}

/// Writes typed lines the way the chapter's client does (the terminal chat
/// sends with it too).
pub(crate) struct Sender {
    /// End each line with `\n` (`ncat --chat`).
    newline: bool,
    /// When the previous line went out.
    last: Option<Instant>,
}

impl Sender {
    pub(crate) fn new(newline: bool) -> Self {
        Self {
            newline,
            last: None,
        }
    }

    pub(crate) async fn send(&mut self, wr: &mut OwnedWriteHalf, text: &str) -> anyhow::Result<()> {
        if text.is_empty() {
            return Ok(()); // `send(b'')` sends nothing
        }
        if let (false, Some(last)) = (self.newline, self.last) {
            sleep_until(last + SEND_GAP).await;
        }
        let mut bytes = text.as_bytes().to_vec();
        if self.newline {
            bytes.push(b'\n');
        }
        wr.write_all(&bytes)
            .await
            .map_err(|e| anyhow::anyhow!("connection lost: {e}"))?;
        self.last = Some(Instant::now());
        Ok(())
    }
}

/// Prints each message (and appends it to the `--log` transcript).
fn print_all(
    messages: impl IntoIterator<Item = String>,
    log: &mut Option<Transcript>,
) -> std::io::Result<()> {
    for m in messages {
        let line = for_terminal(&m);
        if let Some(t) = log.as_mut() {
            t.write([&line])?;
        }
        print_stdout(&line)?;
    }
    Ok(())
}
