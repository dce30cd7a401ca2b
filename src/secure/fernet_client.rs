//! `soquete chat join ADDR --fernet`: a client for the chapter's encrypted
//! chat (Exemplo 2): the unmodified `Servidor_seguro.py`, or
//! `soquete chat serve --fernet`. It reads the 44-byte key the server sends
//! in clear, answers with a token of `OK`, then sends each stdin line as one
//! Fernet token (an empty line sends nothing; a line over [`MAX_TEXT`]
//! bytes goes as several tokens, cut at character boundaries) and prints
//! each token received, decrypted and sanitized, as one stdout line.
//!
//! Unlike `Cliente_seguro.py` it does not assume one `recv` is one token:
//! tokens split or glued by TCP or by the server's `recv(1024)` are cut
//! apart by [`TokenSplitter`]; a token that does not verify is one line on
//! stderr and the client goes on. Sends are spaced by [`SEND_GAP`] so the
//! chapter's server, which relays whatever one `recv` returns, does not glue
//! two of them for the chapter's clients. At stdin EOF it waits for the
//! echoes until [`QUIET`] passes without data ([`LINGER`] at most).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use fernet::Fernet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::{Instant, sleep_until};

use super::fernet_wire::{KEY_LEN, SYNC_TEXT, TokenSplitter, open_token, parse_key};
use crate::chat::client::conn::connect_tcp;
use crate::chat::join::print_stdout;
use crate::cli::ChatJoinArgs;
use crate::net::Shutdown;
use crate::sanitize::for_terminal;

/// Longest text sent in one token: `chat serve --fernet`'s default
/// `--max-message`.
pub const MAX_TEXT: usize = 4096;
/// Longest text accepted in a token received (the chapter's clients send
/// lines of any length).
const MAX_INCOMING_TEXT: usize = 64 * 1024;
/// Least time between two sends.
pub const SEND_GAP: Duration = Duration::from_millis(50);
/// After stdin EOF, this long without data ends the client.
pub const QUIET: Duration = Duration::from_millis(500);
/// After stdin EOF, the longest wait for echoes.
pub const LINGER: Duration = Duration::from_secs(3);
/// TCP connect timeout, and the time the server has to send its key.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the client until stdin EOF (plus echoes), Ctrl-C, or the server
/// closing.
pub async fn run(args: ChatJoinArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    eprintln!(
        "* warning: the chapter's encrypted chat sends its key in clear: anyone on the network can read it"
    );
    let mut stream = tokio::select! {
        s = connect_tcp(&args.addr, CONNECT_TIMEOUT) => s?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let peer = stream
        .peer_addr()
        .context("connection has no peer address")?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let key = tokio::select! {
        k = read_key(&mut stream, &mut buf, peer) => k?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let fernet = Fernet::new(&key).context("the server's key is not a Fernet key")?;
    let key_bytes = parse_key(key.as_bytes())?.context("the server's key is incomplete")?;
    let (mut rd, mut wr) = stream.into_split();
    let mut sender = Sender { last: None };
    sender
        .send(&mut wr, &fernet.encrypt(SYNC_TEXT))
        .await
        .context("cannot send the sync token")?;
    eprintln!("* connected to {peer} (Fernet chat: each line is sent as one token)");

    let mut lines = crate::chat::join::input::stdin_lines(MAX_TEXT);
    let mut splitter = TokenSplitter::new(&key_bytes, MAX_INCOMING_TEXT);
    // Set at stdin EOF: (when input ended, when data last arrived).
    let mut ended: Option<(Instant, Instant)> = None;
    loop {
        show_tokens(&mut splitter, &mut buf, &fernet)?;
        let deadline = ended.map(|(eof, quiet)| (quiet + QUIET).min(eof + LINGER));
        buf.reserve(16 * 1024);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            line = lines.recv(), if ended.is_none() => match line {
                Some(text) if text.is_empty() => {} // nothing to send, as `input()` of nothing
                Some(text) => {
                    let token = fernet.encrypt(text.as_bytes());
                    sender.send(&mut wr, &token).await?;
                }
                None => {
                    let now = Instant::now();
                    ended = Some((now, now));
                    let _ = wr.shutdown().await;
                }
            },
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) if ended.is_some() => return Ok(()),
                Ok(0) => bail!("server closed the connection"),
                Ok(_) => {
                    if let Some((_, quiet)) = ended.as_mut() {
                        *quiet = Instant::now();
                    }
                }
                Err(e) if ended.is_some() => {
                    tracing::debug!("read after EOF: {e}");
                    return Ok(());
                }
                Err(e) => bail!("connection lost: {e}"),
            },
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return Ok(());
            }
        }
    }
}

/// Reads the server's key, in as many reads as it takes. Bytes after it
/// stay in `buf`.
async fn read_key(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> anyhow::Result<String> {
    let not_fernet = |why: String| anyhow::anyhow!("{peer} is not a Fernet chat server: {why}");
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match parse_key(buf) {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(e) => return Err(not_fernet(e.to_string())),
        }
        match timeout_at_read(stream, buf, deadline).await {
            Some(Ok(0)) => return Err(not_fernet("it closed before sending a key".into())),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(anyhow::anyhow!("connection to {peer} lost: {e}")),
            None => {
                let secs = CONNECT_TIMEOUT.as_secs();
                return Err(not_fernet(format!("it sent no key within {secs} s")));
            }
        }
    }
    let key = buf.split_to(KEY_LEN);
    Ok(String::from_utf8_lossy(&key).into_owned())
}

async fn timeout_at_read(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Option<std::io::Result<usize>> {
    buf.reserve(1024);
    tokio::time::timeout_at(deadline, stream.read_buf(buf))
        .await
        .ok()
}

/// Prints every whole token in `buf`; bad ones are one stderr line each.
fn show_tokens(
    splitter: &mut TokenSplitter,
    buf: &mut BytesMut,
    fernet: &Fernet,
) -> std::io::Result<()> {
    loop {
        match splitter.decode(buf) {
            Ok(Some(token)) => match open_token(fernet, &token) {
                Some(text) => print_stdout(&for_terminal(&String::from_utf8_lossy(&text)))?,
                None => eprintln!("error: a token verified but did not decrypt; skipped"),
            },
            Ok(None) => return Ok(()),
            Err(e) => eprintln!("error: received a {e}"),
        }
    }
}

/// Writes tokens, each with one write, spaced by [`SEND_GAP`].
struct Sender {
    /// When the previous token went out.
    last: Option<Instant>,
}

impl Sender {
    async fn send(&mut self, wr: &mut OwnedWriteHalf, token: &str) -> anyhow::Result<()> {
        if let Some(last) = self.last {
            sleep_until(last + SEND_GAP).await;
        }
        wr.write_all(token.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("connection lost: {e}"))?;
        self.last = Some(Instant::now());
        Ok(())
    }
}
