//! `soquete chat serve`: binds, accepts, tells native clients from raw ones
//! by their first bytes, and runs a session task per connection around the
//! shared [`Hub`]. On shutdown every client is told the server is closing
//! and the server returns within a second.

pub mod batch;
pub mod hub;
pub mod outbox;
pub mod pacer;
pub mod ratelimit;
pub mod render;
mod session_native;
mod session_raw;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::cli::{ChatServeArgs, RawRelay};
use crate::net::accept::Refusal;
use crate::net::{AcceptLimits, Admission, Shutdown, accept_loop, addr};
use crate::wire::chat::{ErrorCode, MAGIC, ServerMsg};
use hub::{Hub, HubConfig};
use render::raw_line;

/// Everything a chat server needs besides its listener.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub hub: HubConfig,
    pub limits: AcceptLimits,
    /// Frames queued per client before it is dropped as not reading.
    pub queue: usize,
    /// Sustained messages per second per client (0 = unlimited).
    pub rate: f64,
    /// Burst above the sustained rate.
    pub burst: u32,
    /// Time for a native client's hello.
    pub handshake_timeout: Duration,
    /// Silence after which a new connection counts as raw.
    pub detect_window: Duration,
    /// Idle time before a ping; twice this without answer disconnects.
    pub idle_timeout: Duration,
    /// Turn Nagle's algorithm off (TCP_NODELAY) on client sockets.
    pub nodelay: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            hub: HubConfig::default(),
            limits: AcceptLimits {
                max_clients: 10_000,
                max_per_ip: 100,
            },
            queue: 4096,
            rate: 20.0,
            burst: 40,
            handshake_timeout: Duration::from_secs(5),
            detect_window: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(30),
            nodelay: false,
        }
    }
}

impl ServeConfig {
    pub fn from_args(a: &ChatServeArgs) -> Self {
        Self {
            hub: HubConfig {
                history: a.history as usize,
                max_text: a.max_message as usize,
                verbatim: a.raw_relay == RawRelay::Verbatim,
                log_messages: a.log_messages,
                announce_limit: a.announce_limit as usize,
                ..HubConfig::default()
            },
            limits: AcceptLimits {
                max_clients: a.max_clients as usize,
                max_per_ip: a.max_per_ip as usize,
            },
            queue: a.queue as usize,
            rate: a.rate_limit,
            burst: a.rate_burst.max(1),
            handshake_timeout: a.handshake_timeout,
            detect_window: a.detect_window,
            idle_timeout: a.idle_timeout.max(Duration::from_millis(100)),
            nodelay: a.nodelay,
        }
    }

    /// Largest frame a client may send: the text plus room for the other
    /// fields of a `Say`.
    pub fn max_frame(&self) -> usize {
        self.hub.max_text + 512
    }
}

/// State shared by all sessions of one server.
pub(crate) struct ServerCtx {
    pub(crate) hub: Mutex<Hub>,
    pub(crate) cfg: ServeConfig,
    pub(crate) shutdown: Shutdown,
}

impl ServerCtx {
    /// Runs `f` on the hub. The lock is never held across an `await`.
    /// Writers that got frames are woken afterwards, once each, so a batch
    /// of messages applied in one call costs each recipient one wake-up.
    pub(crate) fn hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        let (result, wakes) = {
            let mut hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
            let result = f(&mut hub);
            (result, hub.take_wakes())
        };
        for w in wakes {
            w.wake();
        }
        result
    }
}

/// Milliseconds since the Unix epoch, for server timestamps.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The `chat serve` subcommand.
pub async fn run(args: ChatServeArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    if args.fernet {
        return crate::secure::fernet_server::run(args, shutdown).await;
    }
    let cfg = ServeConfig::from_args(&args);
    let addr = addr::resolve_one(&args.listen).await?;
    let listener = addr::bind_tcp(addr)?;
    if cfg.hub.verbatim {
        tracing::warn!(
            "raw relay is verbatim: raw clients' bytes go unchanged to everyone, as the chapter's server does"
        );
    }
    if !addr.ip().is_loopback() {
        tracing::warn!("serving beyond this machine on {addr}: chat traffic is not encrypted");
    }
    serve(listener, cfg, shutdown).await
}

/// Serves chat on `listener` until `shutdown`; then tells every client and
/// returns within about a second.
pub async fn serve(
    listener: TcpListener,
    cfg: ServeConfig,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    listener.local_addr().context("listener has no address")?;
    let ctx = Arc::new(ServerCtx {
        hub: Mutex::new(Hub::new(cfg.hub.clone())),
        cfg: cfg.clone(),
        shutdown: shutdown.clone(),
    });
    let tracker = TaskTracker::new();
    let limits = cfg.limits;
    let conn_ctx = ctx.clone();
    accept_loop(
        listener,
        limits,
        shutdown.token.clone(),
        tracker.clone(),
        move |stream, peer, admission| handle(conn_ctx.clone(), stream, peer, admission),
    )
    .await;
    tracker.close();
    let clients = ctx.hub(|h| h.len());
    tracing::info!("shutting down: telling {clients} clients");
    if tokio::time::timeout(Duration::from_millis(900), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; exiting anyway");
    }
    Ok(())
}

/// What a new connection turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// It sent the native magic and a version byte.
    Native,
    /// It sent something else first, or nothing within the window.
    Raw,
    /// Not enough bytes to tell yet.
    NeedMore,
}

/// Tells a native client from a raw one by its first bytes.
pub fn classify(first: &[u8]) -> Detected {
    let n = first.len().min(MAGIC.len());
    if n == 0 {
        Detected::NeedMore
    } else if first[..n] != MAGIC[..n] {
        Detected::Raw
    } else if first.len() > MAGIC.len() {
        Detected::Native
    } else {
        Detected::NeedMore
    }
}

/// Reads until the connection's kind is known. `None` if it closed first.
async fn detect(
    stream: &mut TcpStream,
    cfg: &ServeConfig,
) -> std::io::Result<Option<(Detected, BytesMut)>> {
    let start = tokio::time::Instant::now();
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match classify(&buf) {
            Detected::NeedMore => {}
            kind => return Ok(Some((kind, buf))),
        }
        // Silence means a person at nc or the chapter's script, waiting for
        // us; a partial magic gets the whole handshake time.
        let wait = if buf.is_empty() {
            cfg.detect_window
        } else {
            cfg.handshake_timeout
        };
        match tokio::time::timeout_at(start + wait, stream.read_buf(&mut buf)).await {
            Err(_) => return Ok(Some((Detected::Raw, buf))),
            Ok(Ok(0)) => return Ok(None),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

async fn handle(
    ctx: Arc<ServerCtx>,
    mut stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
) {
    let _ = stream.set_nodelay(ctx.cfg.nodelay);
    let detected = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        d = detect(&mut stream, &ctx.cfg) => d,
    };
    let (kind, buf) = match detected {
        Ok(Some(x)) => x,
        Ok(None) => return tracing::debug!("{peer} closed before saying anything"),
        Err(e) => return tracing::debug!("{peer} read failed: {e}"),
    };
    match admission {
        Admission::Rejected(refusal, _slot) => refuse(stream, peer, kind, refusal).await,
        Admission::Admitted(_slot) => match kind {
            Detected::Native => session_native::run(ctx, stream, peer, buf).await,
            _ => session_raw::run(ctx, stream, peer, buf).await,
        },
    }
}

/// Tells a client over the limits why, in its own protocol, and closes.
async fn refuse(mut stream: TcpStream, peer: SocketAddr, kind: Detected, refusal: Refusal) {
    let (code, text) = match refusal {
        Refusal::ServerFull => (ErrorCode::ServerFull, "server full"),
        Refusal::TooManyFromAddress => (
            ErrorCode::TooManyFromAddress,
            "too many connections from your address",
        ),
    };
    tracing::info!("{peer} refused: {text}");
    let bytes = match kind {
        Detected::Native => hub::encode(&ServerMsg::Error {
            code: code as u16,
            text: text.to_owned(),
        }),
        _ => raw_line(&format!("* error: {text}")),
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_first_bytes() {
        assert_eq!(classify(b""), Detected::NeedMore);
        assert_eq!(classify(b"\0S"), Detected::NeedMore);
        assert_eq!(classify(b"\0SQC"), Detected::NeedMore);
        assert_eq!(classify(b"\0SQC\x01"), Detected::Native);
        assert_eq!(classify(b"\0SQC\x09rest"), Detected::Native);
        assert_eq!(classify("Olá".as_bytes()), Detected::Raw);
        assert_eq!(classify(b"\0SX"), Detected::Raw);
        assert_eq!(classify(b"GET / HTTP/1.1"), Detected::Raw);
    }
}
