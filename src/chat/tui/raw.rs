//! `chat join --raw` on a terminal: the raw TCP link behind the same
//! screen. Typed lines are sent exactly as the line mode sends them
//! (`join::raw::Sender`: no framing, a newline only with `--newline`,
//! spaced sends); what arrives is split into messages by [`RawSplitter`]
//! and handed to the screen, which sanitizes it. A raw server keeps no
//! state worth reconnecting for, so a closed connection is reported and
//! the screen stays until the user leaves.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::event_loop::Incoming;
use crate::chat::client::conn::connect_tcp;
use crate::chat::join::raw::{CONNECT_TIMEOUT, MAX_MESSAGE, Sender};
use crate::net::Shutdown;
use crate::wire::raw::RawSplitter;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Link {
    pub addr: String,
    /// End each sent line with `\n` (`ncat --chat`).
    pub newline: bool,
}

/// Connects, then relays until the server closes, the screen goes (its
/// channels close) or Ctrl-C.
pub async fn run(
    link: Link,
    mut lines: mpsc::Receiver<String>,
    out: mpsc::Sender<Incoming>,
    shutdown: Shutdown,
) {
    let stream = tokio::select! {
        s = connect_tcp(&link.addr, CONNECT_TIMEOUT) => s,
        _ = shutdown.cancelled() => return,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            let _ = out.send(Incoming::Failed(e.into())).await;
            return;
        }
    };
    let peer = stream
        .peer_addr()
        .map_or_else(|_| link.addr.clone(), |p| p.to_string());
    let _ = out.send(Incoming::RawConnected(peer)).await;
    let (mut rd, mut wr) = stream.into_split();
    let mut sender = Sender::new(link.newline);
    let mut splitter = RawSplitter::new(MAX_MESSAGE);
    let mut chunk = vec![0u8; 16 * 1024];
    let reason = loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            line = lines.recv() => match line {
                Some(text) => {
                    if let Err(e) = sender.send(&mut wr, &text).await {
                        break e.to_string();
                    }
                }
                None => {
                    let _ = wr.shutdown().await;
                    return;
                }
            },
            r = rd.read(&mut chunk) => match r {
                Ok(0) => break "server closed the connection".to_owned(),
                Ok(n) => {
                    for m in splitter.push(&chunk[..n]) {
                        if out.send(Incoming::Raw(m)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => break format!("connection lost: {e}"),
            },
        }
    };
    for m in splitter.flush() {
        let _ = out.send(Incoming::Raw(m)).await;
    }
    let _ = out.send(Incoming::RawClosed(reason)).await;
}
