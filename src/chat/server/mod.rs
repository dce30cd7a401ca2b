//! `soquete chat serve`: binds, accepts, tells native clients from raw ones
//! by their first bytes, and runs a session task per connection around the
//! shared [`Hub`]. On shutdown every client is told the server is closing
//! and the server returns within a second. With a passphrase every
//! connection first runs the secure channel (`crate::secure`); plain clients
//! of a secure server, and secure clients of a plain one, are told why in
//! their own protocol and closed.

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::cli::{ChatServeArgs, RawRelay};
use crate::net::accept::Refusal;
use crate::net::{AcceptLimits, Admission, Shutdown, accept_loop, addr};
use crate::secure::identity::ServerIdentity;
use crate::secure::{
    FirstBytes, FrontDoor, PassphraseArgs, Role, ServerSecurity, classify_first_bytes, front_door,
};
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
    /// The secure channel every client must run first (`None`: plain chat).
    pub secure: Option<Security>,
}

/// A secure server's settings, shared by all its connections.
#[derive(Clone)]
pub struct Security(pub Arc<ServerSecurity>);

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Security({})", self.0.fingerprint())
    }
}

/// What a native client of an encrypted server is told.
const ENCRYPTED_NATIVE: &str =
    "this server is encrypted: join with --passphrase-file/--passphrase-env/--passphrase";
/// What a raw client of an encrypted server is told.
const ENCRYPTED_RAW: &str =
    "* error: this chat is encrypted; use soquete chat join --passphrase-file FILE";
/// What a raw client inside the secure channel is told.
const RAW_IN_TLS: &str = "* error: only soquete chat join speaks inside the secure channel";
/// What a secure client of a plain server is told.
const NOT_ENCRYPTED: &str = "* error: this server is not encrypted (no passphrase)";

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
            secure: None,
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
            secure: None,
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
    /// Writers that got frames are woken afterwards (or written through),
    /// once each, so a batch of messages applied in one call costs each
    /// recipient one wake-up or one write.
    pub(crate) fn hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        thread_local! {
            // The list of writers to wake is swapped in and out of the hub,
            // so neither side allocates one per call once both have grown.
            static SPARE_WAKES: std::cell::Cell<Vec<outbox::Outbox>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut wakes = SPARE_WAKES.take();
        let result = {
            let mut hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
            let result = f(&mut hub);
            hub.swap_wakes(&mut wakes);
            result
        };
        for w in wakes.drain(..) {
            w.wake();
        }
        SPARE_WAKES.set(wakes);
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
    if args.secure.show_fingerprint {
        return show_fingerprint(&args.secure);
    }
    let mut cfg = ServeConfig::from_args(&args);
    let addr = addr::resolve_one(&args.listen).await?;
    // Bind first: `listening on` must be the first line on stderr, before
    // anything reading the passphrase or the key may have to say.
    let listener = addr::bind_tcp(addr)?;
    if let Some(opts) = args.secure.resolve(Role::Server)? {
        cfg.secure = Some(Security(Arc::new(opts.server()?)));
    }
    if let Some(Security(sec)) = &cfg.secure {
        tracing::info!(
            "secure chat: this server's fingerprint is {}",
            sec.fingerprint()
        );
        if sec.created() {
            tracing::info!("made a new server key (first start)");
        }
    }
    if cfg.hub.verbatim {
        tracing::warn!(
            "raw relay is verbatim: raw clients' bytes go unchanged to everyone, as the chapter's server does"
        );
    }
    if !addr.ip().is_loopback() && cfg.secure.is_none() {
        tracing::warn!("serving beyond this machine on {addr}: chat traffic is not encrypted");
    }
    serve(listener, cfg, shutdown).await
}

/// `--show-fingerprint`: prints this server's identity (making the key on
/// first use) and serves nothing. Needs no passphrase.
fn show_fingerprint(args: &PassphraseArgs) -> anyhow::Result<()> {
    let identity = ServerIdentity::load_or_create(&args.state_dir()?)?;
    if identity.created {
        tracing::info!("made a new server key (first start)");
    }
    println!("{}", identity.fingerprint);
    Ok(())
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
async fn detect<S: AsyncRead + Unpin>(
    stream: &mut S,
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
    if let Some(Security(sec)) = ctx.cfg.secure.clone() {
        return handle_secure(ctx, stream, peer, admission, sec).await;
    }
    let detected = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        d = detect(&mut stream, &ctx.cfg) => d,
    };
    let (kind, buf) = match detected {
        Ok(Some(x)) => x,
        Ok(None) => return tracing::debug!("{peer} closed before saying anything"),
        Err(e) => return tracing::debug!("{peer} read failed: {e}"),
    };
    if kind == Detected::Raw && classify_first_bytes(&buf) == FirstBytes::TlsClientHello {
        tracing::info!("{peer} refused: a secure client, but this server has no passphrase");
        return goodbye(stream, &raw_line(NOT_ENCRYPTED)).await;
    }
    match admission {
        Admission::Rejected(refusal, _slot) => refuse(stream, peer, kind, refusal).await,
        Admission::Admitted(_slot) => match kind {
            Detected::Native => {
                let (rd, wr) = stream.into_split();
                session_native::run(ctx, rd, wr, peer, buf).await
            }
            _ => session_raw::run(ctx, stream, peer, buf).await,
        },
    }
}

/// A connection to a secure server: the secure channel, then the native
/// protocol inside it. Plain clients are told why they cannot join.
async fn handle_secure(
    ctx: Arc<ServerCtx>,
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    sec: Arc<ServerSecurity>,
) {
    let mut tls = match front_door(stream, &sec, peer, ctx.cfg.detect_window, &ctx.shutdown).await {
        FrontDoor::Secure(tls) => *tls,
        FrontDoor::Plain(stream) => return refuse_plain(&ctx, stream, peer).await,
        FrontDoor::Gone => return,
    };
    let detected = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        d = detect(&mut tls, &ctx.cfg) => d,
    };
    let (kind, buf) = match detected {
        Ok(Some(x)) => x,
        Ok(None) => return tracing::debug!("{peer} closed before saying anything"),
        Err(e) => return tracing::debug!("{peer} read failed: {e}"),
    };
    match (admission, kind) {
        (Admission::Rejected(refusal, _slot), _) => refuse(tls, peer, kind, refusal).await,
        (Admission::Admitted(_slot), Detected::Native) => {
            let (rd, wr) = tokio::io::split(tls);
            session_native::run(ctx, rd, wr, peer, buf).await
        }
        (Admission::Admitted(_slot), _) => {
            tracing::info!("{peer} refused: raw text inside the secure channel");
            goodbye(tls, &raw_line(RAW_IN_TLS)).await
        }
    }
}

/// A plain client of a secure server: told, in its own protocol, to join
/// with a passphrase.
async fn refuse_plain(ctx: &ServerCtx, mut stream: TcpStream, peer: SocketAddr) {
    let detected = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        d = detect(&mut stream, &ctx.cfg) => d,
    };
    let Ok(Some((kind, _))) = detected else {
        return tracing::debug!("{peer} closed before saying anything");
    };
    tracing::info!("{peer} refused: a plain client, but this server is encrypted");
    let bytes = match kind {
        Detected::Native => hub::encode(&ServerMsg::Error {
            code: ErrorCode::Protocol as u16,
            text: ENCRYPTED_NATIVE.to_owned(),
        }),
        _ => raw_line(ENCRYPTED_RAW),
    };
    goodbye(stream, &bytes).await
}

/// Tells a client over the limits why, in its own protocol, and closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    kind: Detected,
    refusal: Refusal,
) {
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
    goodbye(stream, &bytes).await
}

/// Most bytes read and dropped after a last word.
const GOODBYE_DRAIN: usize = 64 * 1024;

/// Writes `bytes`, ends the write side, then reads and drops what the
/// client still sends (bounded in bytes and time): closing with unread
/// data would reset the connection and could lose the last word.
async fn goodbye<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        stream.write_all(bytes).await?;
        stream.shutdown().await
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < GOODBYE_DRAIN {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
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
