//! One benchmark client of a raw chat server (the chapter's `Servidor.py`,
//! `ncat --chat`, soquete's raw relay): ready as soon as TCP connects, then
//! it splits what arrives into lines and looks for a benchmark message in
//! each, behind whatever prefix the server adds. Asked by the run (a
//! server that silently dropped its handshake never delivers to it), it
//! connects again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, mpsc};

use super::client::{End, Inbox, Joined, Shared, Tally, Writer, connect, report_failure};
use super::lines::{Line, LineSplitter};
use super::payload::{self, Found};
use crate::sanitize::for_terminal;

/// Room for a prefix, or for torn messages glued together, beyond the
/// message size before a line counts as overlong.
const LINE_SLACK: usize = 4096;

/// How long a new connection keeps its connect slot while waiting for the
/// server's first bytes. A connect completes before the server accepts it;
/// a server that greets (`ncat --chat` announces every client) thereby
/// paces the connects to its accept loop instead of overflowing its listen
/// backlog (each overflow costs a one-second SYN retransmission). A silent
/// server (`Servidor.py`) costs this much per connect slot.
const ACCEPT_HOLD: Duration = Duration::from_millis(10);
/// The same, once the server was seen to greet: its greeting is the sign it
/// accepted, worth waiting for while it slows down with every client.
const GREETING_HOLD: Duration = Duration::from_secs(1);

/// Connects client `idx`, then receives until the run stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    idx: u32,
    addr: SocketAddr,
    permits: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Joined>,
) -> Tally {
    let (stream, mut buf) = match connect_paced(&shared, addr, &permits).await {
        Some(Ok(s)) => s,
        Some(Err(why)) => return report_failure(&shared, &ready, why),
        None => return Tally::default(),
    };
    let (mut rd, wr) = stream.into_split();
    // Kept for the whole loop: dropping the write half would send FIN, and
    // the chapter's server drops a client whose recv returns nothing.
    let writer: Writer = Arc::new(tokio::sync::Mutex::new(Box::new(wr)));
    shared.client_ready();
    let _ = ready.send(Joined::Ready {
        idx,
        writer: writer.clone(),
    });

    let mut inbox = Inbox::new(idx, shared.plan.messages);
    let (end, why) = loop {
        match read_loop(&shared, idx, &mut rd, &mut inbox, buf).await {
            Loop::Ended(end, why) => break (end, why),
            // Same writer for everyone holding it, new socket inside.
            Loop::Rejoin => match connect_paced(&shared, addr, &permits).await {
                Some(Ok((s, greeting))) => {
                    let (r, w) = s.into_split();
                    *writer.lock().await = Box::new(w);
                    (rd, buf) = (r, greeting);
                }
                Some(Err(why)) => break (End::Disconnected, Some(why)),
                None => break (End::Stopped, None),
            },
        }
    };
    if let Some(why) = why
        && !shared.stop.is_cancelled()
    {
        shared.note_error(format!("client {idx}: {why}"));
    }
    let mut tally = inbox.finish(&shared);
    tally.end = end;
    shared.client_gone(end != End::Stopped);
    drop(writer);
    tally
}

/// Connects once one of `permits` is free, and keeps the permit until the
/// server's first bytes (returned) or [`ACCEPT_HOLD`]. `None` if the run
/// stopped first.
async fn connect_paced(
    shared: &Shared,
    addr: SocketAddr,
    permits: &Semaphore,
) -> Option<Result<(TcpStream, BytesMut), String>> {
    let _permit = tokio::select! {
        _ = shared.stop.cancelled() => return None,
        p = permits.acquire() => p.expect("semaphore never closed"),
    };
    let mut stream = match connect(addr).await {
        Ok(s) => s,
        Err(why) => return Some(Err(why)),
    };
    let mut greeting = BytesMut::with_capacity(8 * 1024);
    let hold = if shared.greets.load(Ordering::Relaxed) {
        GREETING_HOLD
    } else {
        ACCEPT_HOLD
    };
    // An end of stream or error here shows up again on the next read.
    if let Ok(Ok(n)) = tokio::time::timeout(hold, stream.read_buf(&mut greeting)).await
        && n > 0
    {
        shared.greets.store(true, Ordering::Relaxed);
    }
    Some(Ok((stream, greeting)))
}

/// How one connection's read loop ended.
enum Loop {
    Ended(End, Option<String>),
    /// The run asked this client to connect again.
    Rejoin,
}

/// Receives on one connection, starting with what `buf` already holds.
async fn read_loop(
    shared: &Shared,
    idx: u32,
    rd: &mut OwnedReadHalf,
    inbox: &mut Inbox,
    mut buf: BytesMut,
) -> Loop {
    let mut lines = LineSplitter::new(shared.plan.size + LINE_SLACK);
    loop {
        if !buf.is_empty() {
            take_lines(shared, idx, &mut lines, &mut buf, inbox);
        }
        let read = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return Loop::Ended(End::Stopped, None),
            _ = shared.rejoin[idx as usize].notified() => return Loop::Rejoin,
            r = rd.read_buf(&mut buf) => r,
        };
        match read {
            Ok(0) => {
                return Loop::Ended(
                    End::Disconnected,
                    Some("server closed the connection".into()),
                );
            }
            Err(e) => return Loop::Ended(End::Disconnected, Some(format!("connection lost: {e}"))),
            Ok(_) => {}
        }
    }
}

/// Looks for a message in every complete line of `buf`.
fn take_lines(
    shared: &Shared,
    idx: u32,
    lines: &mut LineSplitter,
    buf: &mut BytesMut,
    inbox: &mut Inbox,
) {
    let size = shared.plan.size;
    let now_us = shared.now_us();
    lines.drain(buf, |line| {
        // An overlong line is server chatter (ncat's list of everyone
        // connected) or a server that stopped sending newlines: either way
        // not a message; the shortfall shows the latter.
        let found = match line {
            Line::Text(t) => payload::find(t, size),
            Line::Overlong => Found::Other,
        };
        if found == Found::Garbled
            && inbox.tally.garbled < 3
            && let Line::Text(t) = line
        {
            let text = for_terminal(&String::from_utf8_lossy(t));
            tracing::debug!("client {idx}: garbled line {text:?}");
        }
        inbox.on_found(shared, found, now_us);
    });
    inbox.flush(shared);
}
