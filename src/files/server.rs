//! `soquete files serve`: binds, accepts (with the shared connection
//! limits), and tells a native client (`\0SQF` + version within the detect
//! window) from the chapter's `cliente.py` (silent until it gets the
//! listing), handing each to its session. With a passphrase every client
//! runs the secure channel first; plain clients of a secure server are
//! told why. Transfers in flight are limited server-wide.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::budget::{BUDGET, Transfers};
use super::datapath::{DataPath, KernelPath};
use super::store::Store;
use crate::cli::FilesServeArgs;
use crate::net::accept::Refusal;
use crate::net::{AcceptLimits, Admission, Shutdown, accept_loop, addr};
use crate::secure::{
    FirstBytes, FrontDoor, Role, ServerSecurity, classify_first_bytes, front_door,
};
use crate::wire::files::{ErrorCode, MAGIC, PREAMBLE, Reply, VERSION};

/// Everything a file server needs besides its listener.
#[derive(Clone)]
pub struct ServeConfig {
    /// The published folder.
    pub store: Store,
    /// Where uploads go (`None`: read-only).
    pub uploads: Option<Store>,
    pub limits: AcceptLimits,
    /// Files sent or received at once, server-wide.
    pub max_transfers: usize,
    /// Silence (or a client not reading) that ends a connection.
    pub idle_timeout: Duration,
    /// Silence after which a new connection counts as the chapter's client.
    pub detect_window: Duration,
    /// Time to finish a started preamble.
    pub handshake_timeout: Duration,
    /// Bytes per second per file sent (`None`: as fast as possible).
    pub limit_rate: Option<u64>,
    /// The secure channel every client must run first.
    pub secure: Option<Arc<ServerSecurity>>,
    /// How plain clients' files move between file and socket.
    pub data_path: DataPath,
}

impl ServeConfig {
    /// Defaults for `store`: read-only, plain, the command line's limits.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            uploads: None,
            limits: AcceptLimits {
                max_clients: 256,
                max_per_ip: 32,
            },
            max_transfers: 16,
            idle_timeout: Duration::from_secs(60),
            detect_window: Duration::from_millis(250),
            handshake_timeout: Duration::from_secs(5),
            limit_rate: None,
            secure: None,
            data_path: DataPath::ReadWrite,
        }
    }
}

/// State shared by every connection of one server.
pub(crate) struct Ctx {
    pub(crate) cfg: ServeConfig,
    /// Files in flight and their buffers.
    pub(crate) transfers: Transfers,
    pub(crate) shutdown: Shutdown,
    /// Hashes of large files already computed.
    pub(crate) hashes: Arc<super::hashcache::HashCache>,
}

/// What a chapter client of an encrypted server reads as its listing.
const ENCRYPTED_CHAPTER: &str =
    "ERROR \"this file server is encrypted; use soquete files get --passphrase-file FILE\"\n";
/// What a native client of an encrypted server is told.
const ENCRYPTED_NATIVE: &str =
    "this file server is encrypted: use --passphrase-file/--passphrase-env/--passphrase";

/// The `files serve` subcommand.
pub async fn run(args: FilesServeArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let store =
        Store::open(&args.dir).with_context(|| format!("cannot publish {}", args.dir.display()))?;
    let mut cfg = ServeConfig::new(store);
    if let Some(dir) = &args.uploads {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the uploads folder {}", dir.display()))?;
        cfg.uploads = Some(
            Store::open(dir)
                .with_context(|| format!("cannot accept uploads into {}", dir.display()))?,
        );
    }
    cfg.limits = AcceptLimits {
        max_clients: args.max_clients as usize,
        max_per_ip: args.max_per_ip as usize,
    };
    cfg.max_transfers = args.max_transfers as usize;
    cfg.idle_timeout = args.idle_timeout.max(Duration::from_millis(100));
    cfg.detect_window = args.detect_window;
    cfg.limit_rate = args.limit_rate;
    cfg.data_path = args.data_path;
    let addr = addr::resolve_one(&args.listen).await?;
    let listener = addr::bind_tcp(addr)?;
    if let Some(opts) = args.secure.resolve(Role::Server)? {
        let sec = opts.server()?;
        tracing::info!("secure file server: fingerprint {}", sec.fingerprint());
        cfg.secure = Some(Arc::new(sec));
    }
    tracing::info!("publishing {}", cfg.store.root().display());
    if let Some(up) = &cfg.uploads {
        tracing::info!("accepting uploads into {}", up.root().display());
    }
    if !addr.ip().is_loopback() && cfg.secure.is_none() {
        tracing::warn!(
            "serving beyond this machine on {addr} without encryption: anyone can read the files in transit"
        );
    }
    serve(listener, cfg, shutdown).await
}

/// Serves files on `listener` until `shutdown`, then returns within about
/// a second (interrupted transfers resume on the next `get`/`put`).
pub async fn serve(
    listener: TcpListener,
    cfg: ServeConfig,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    listener.local_addr().context("listener has no address")?;
    let ctx = Arc::new(Ctx {
        transfers: Transfers::new(cfg.max_transfers, BUDGET),
        cfg: cfg.clone(),
        shutdown: shutdown.clone(),
        hashes: Arc::default(),
    });
    let tracker = TaskTracker::new();
    let conn_ctx = ctx.clone();
    accept_loop(
        listener,
        cfg.limits,
        shutdown.token.clone(),
        tracker.clone(),
        move |stream, peer, admission| handle(conn_ctx.clone(), stream, peer, admission),
    )
    .await;
    tracker.close();
    tracing::info!("shutting down");
    if tokio::time::timeout(Duration::from_millis(900), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; exiting anyway");
    }
    Ok(())
}

/// What a new connection turned out to be.
#[derive(Debug)]
enum Kind {
    /// The native preamble; bytes read past it.
    Native(BytesMut),
    /// Silence, or bytes that are not the preamble: the chapter's client.
    Chapter(BytesMut),
    /// A TLS ClientHello.
    Tls,
    /// Closed before saying anything.
    Closed,
}

/// Reads until the kind of client is known.
async fn detect<S: AsyncRead + Unpin>(stream: &mut S, cfg: &ServeConfig) -> std::io::Result<Kind> {
    let start = tokio::time::Instant::now();
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let n = buf.len().min(MAGIC.len());
        if n > 0 && buf[..n] != MAGIC[..n] {
            if classify_first_bytes(&buf) == FirstBytes::TlsClientHello {
                return Ok(Kind::Tls);
            }
            if classify_first_bytes(&buf) == FirstBytes::NotTls {
                return Ok(Kind::Chapter(buf));
            }
        } else if buf.len() >= PREAMBLE.len() {
            return Ok(Kind::Native(buf));
        }
        let wait = if buf.is_empty() {
            cfg.detect_window
        } else {
            cfg.handshake_timeout
        };
        match tokio::time::timeout_at(start + wait, stream.read_buf(&mut buf)).await {
            Err(_) if buf.is_empty() => return Ok(Kind::Chapter(buf)),
            Err(_) => return Ok(Kind::Chapter(buf)),
            Ok(Ok(0)) if buf.is_empty() => return Ok(Kind::Closed),
            Ok(Ok(0)) => return Ok(Kind::Chapter(buf)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

async fn handle(ctx: Arc<Ctx>, mut stream: TcpStream, peer: SocketAddr, admission: Admission) {
    if let Some(sec) = ctx.cfg.secure.clone() {
        return handle_secure(ctx, stream, peer, admission, sec).await;
    }
    let kind = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        k = detect(&mut stream, &ctx.cfg) => k,
    };
    let kind = match kind {
        Ok(k) => k,
        Err(e) => return tracing::debug!("{peer}: {e}"),
    };
    if let Admission::Rejected(refusal, _slot) = admission {
        return refuse(stream, peer, &kind, refusal).await;
    }
    match kind {
        Kind::Native(buf) => native(ctx, stream, peer, buf).await,
        Kind::Chapter(buf) => super::chapter::run(ctx, stream, peer, buf).await,
        Kind::Tls => {
            tracing::info!("{peer} refused: a secure client, but this server has no passphrase");
        }
        Kind::Closed => tracing::debug!("{peer} closed before saying anything"),
    }
}

/// Runs a native session; `buf` starts with the preamble.
pub(crate) async fn native(ctx: Arc<Ctx>, stream: TcpStream, peer: SocketAddr, mut buf: BytesMut) {
    if let Some(bytes) = version_refusal(&mut buf) {
        return goodbye(stream, &bytes).await;
    }
    let _ = stream.set_nodelay(true);
    let kernel = KernelPath::new(&stream, ctx.cfg.data_path);
    super::session::run(ctx, stream, peer, buf, kernel).await
}

/// Takes the preamble off `buf`; the bytes to send back if its version is
/// not ours.
fn version_refusal(buf: &mut BytesMut) -> Option<Vec<u8>> {
    let got = buf[MAGIC.len()];
    let _ = buf.split_to(PREAMBLE.len());
    (got != VERSION).then(|| {
        error_bytes(
            ErrorCode::Protocol,
            &format!("this server speaks files protocol version {VERSION}, not {got}"),
        )
    })
}

/// A connection-level `Error` frame.
pub(crate) fn error_bytes(code: ErrorCode, text: &str) -> Vec<u8> {
    Reply::Error {
        id: 0,
        code: code as u16,
        text: text.to_owned(),
    }
    .to_bytes()
    .map(|b| b.to_vec())
    .unwrap_or_default()
}

async fn handle_secure(
    ctx: Arc<Ctx>,
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    sec: Arc<ServerSecurity>,
) {
    let mut tls = match front_door(stream, &sec, peer, ctx.cfg.detect_window, &ctx.shutdown).await {
        FrontDoor::Secure(tls) => *tls,
        FrontDoor::Plain(mut stream) => {
            let kind = detect(&mut stream, &ctx.cfg).await;
            tracing::info!("{peer} refused: a plain client, but this server is encrypted");
            let bytes = match kind {
                Ok(Kind::Native(_)) => error_bytes(ErrorCode::Encrypted, ENCRYPTED_NATIVE),
                _ => ENCRYPTED_CHAPTER.as_bytes().to_vec(),
            };
            return goodbye(stream, &bytes).await;
        }
        FrontDoor::Gone => return,
    };
    let kind = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        k = detect(&mut tls, &ctx.cfg) => k,
    };
    match (admission, kind) {
        (Admission::Rejected(refusal, _slot), Ok(kind)) => refuse(tls, peer, &kind, refusal).await,
        (Admission::Admitted(_slot), Ok(Kind::Native(mut buf))) => {
            if let Some(bytes) = version_refusal(&mut buf) {
                return goodbye(tls, &bytes).await;
            }
            super::session::run(ctx, tls, peer, buf, None).await
        }
        (_, Ok(_)) => {
            tracing::info!("{peer} refused: not the files protocol inside the secure channel");
        }
        (_, Err(e)) => tracing::debug!("{peer}: {e}"),
    }
}

/// Tells a client over the limits why, in its own protocol, and closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    kind: &Kind,
    refusal: Refusal,
) {
    let text = match refusal {
        Refusal::ServerFull => "server full; try again later",
        Refusal::TooManyFromAddress => "too many connections from your address",
    };
    tracing::info!("{peer} refused: {text}");
    let bytes = match kind {
        Kind::Native(_) => error_bytes(ErrorCode::ServerFull, text),
        _ => format!("ERROR \"{text}\"\n").into_bytes(),
    };
    goodbye(stream, &bytes).await
}

/// Writes a last word, ends the write side, and drains briefly so the
/// close does not reset the connection before the word is read.
pub(crate) async fn goodbye<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        stream.write_all(bytes).await?;
        stream.shutdown().await
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}
