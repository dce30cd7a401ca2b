//! `soquete chat serve --fernet`: the chapter's encrypted chat server
//! (Exemplo 2, `Servidor_seguro.py`), the same bytes on the wire so the
//! unmodified `Cliente_seguro.py` works. At connect the client gets the
//! process's one Fernet key in clear (44 bytes); it answers with a token of
//! `OK`; from then on every token it sends is relayed unchanged (never
//! decrypted) to every synced client, the sender included.
//!
//! Where the script is fragile this server is not: tokens glued together or
//! split across reads are cut apart by [`TokenSplitter`] (HMAC-checked with
//! the key) and each is relayed as its own write; a bad token, or a sync
//! token that is not `OK`, closes that one connection; the sync token has a
//! deadline; each client has a bounded queue, and one that stops reading is
//! dropped instead of stalling the others; the connection limits and rate
//! limit of `chat serve` apply. The key still crosses the network in clear,
//! which is why the server warns when it starts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use fernet::Fernet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fernet_wire::{SYNC_TEXT, TokenSplitter, open_token, parse_key};
use crate::chat::server::pacer::{MAX_DELAY, Paced, Pacer};
use crate::cli::ChatServeArgs;
use crate::net::{AcceptLimits, Admission, Shutdown, accept_loop, addr};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;
/// How long queued tokens may take to reach a leaving client.
const FLUSH_DEADLINE: Duration = Duration::from_millis(500);

/// Everything the Fernet server needs besides its listener.
#[derive(Debug, Clone)]
pub struct FernetConfig {
    pub limits: AcceptLimits,
    /// Tokens queued per client before it is dropped as not reading.
    pub queue: usize,
    /// Longest text a token may hold, in bytes (longer is a bad token).
    pub max_text: usize,
    /// Sustained tokens per second per client (0 = unlimited).
    pub rate: f64,
    /// Burst above the sustained rate.
    pub burst: u32,
    /// Time a client has to send its sync token.
    pub sync_timeout: Duration,
}

impl FernetConfig {
    /// The chat server's own reading of the shared flags.
    pub fn from_args(a: &ChatServeArgs) -> Self {
        let chat = crate::chat::server::ServeConfig::from_args(a);
        Self {
            limits: chat.limits,
            queue: chat.queue,
            max_text: chat.hub.max_text,
            rate: chat.rate,
            burst: chat.burst,
            sync_timeout: chat.handshake_timeout,
        }
    }
}

/// A synced client, as the relay sees it.
struct Member {
    peer: SocketAddr,
    /// Its queue of tokens to write.
    tx: mpsc::Sender<Bytes>,
    /// Cancelled to drop it without writing what is queued.
    abort: CancellationToken,
}

/// State shared by all connections of one server.
struct Ctx {
    /// The key as sent to every client.
    key_text: Bytes,
    /// The key's bytes, for the splitter's HMAC check.
    key: [u8; 32],
    /// Decrypts sync tokens (and nothing else).
    fernet: Fernet,
    cfg: FernetConfig,
    /// Synced clients by connection number.
    members: Mutex<HashMap<u64, Member>>,
    shutdown: Shutdown,
}

impl Ctx {
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Member>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `token` for every synced client, the sender included. A
    /// client whose queue is full is dropped; nobody waits for it.
    fn relay(&self, token: &Bytes) {
        for m in self.members().values() {
            if let Err(mpsc::error::TrySendError::Full(_)) = m.tx.try_send(token.clone()) {
                if !m.abort.is_cancelled() {
                    tracing::warn!("{} is not reading: dropping it", m.peer);
                }
                m.abort.cancel();
            }
        }
    }
}

/// The `chat serve --fernet` subcommand.
pub async fn run(args: ChatServeArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let addr = addr::resolve_one(&args.listen).await?;
    let listener = addr::bind_tcp(addr)?;
    tracing::warn!(
        "fernet mode (the chapter's Exemplo 2) sends its key in clear: anyone on the network can read this chat"
    );
    serve(listener, FernetConfig::from_args(&args), shutdown).await
}

/// Serves the Fernet chat on `listener` until `shutdown`, then flushes and
/// closes every client and returns within about a second.
pub async fn serve(
    listener: TcpListener,
    cfg: FernetConfig,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let key_text = Fernet::generate_key();
    let fernet = Fernet::new(&key_text).context("the fernet crate made a bad key")?;
    let key = parse_key(key_text.as_bytes())
        .ok()
        .flatten()
        .context("the fernet crate made a key of an unexpected shape")?;
    let ctx = Arc::new(Ctx {
        key_text: Bytes::from(key_text),
        key,
        fernet,
        cfg: cfg.clone(),
        members: Mutex::new(HashMap::new()),
        shutdown: shutdown.clone(),
    });
    let tracker = TaskTracker::new();
    let conn_ctx = ctx.clone();
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(1));
    accept_loop(
        listener,
        cfg.limits,
        shutdown.token.clone(),
        tracker.clone(),
        move |stream, peer, admission| {
            let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            handle(conn_ctx.clone(), id, stream, peer, admission)
        },
    )
    .await;
    tracker.close();
    let synced = ctx.members().len();
    tracing::info!("shutting down: closing {synced} clients");
    if timeout(Duration::from_millis(900), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time; exiting anyway");
    }
    Ok(())
}

async fn handle(ctx: Arc<Ctx>, id: u64, stream: TcpStream, peer: SocketAddr, admission: Admission) {
    let _slot = match admission {
        Admission::Admitted(slot) => slot,
        Admission::Rejected(refusal, _slot) => {
            // The chapter's protocol has no way to say why: just close.
            return tracing::info!("{peer} refused ({refusal:?}): closing");
        }
    };
    tracing::info!("{peer} connected");
    let (mut rd, wr) = stream.into_split();
    let mut splitter = TokenSplitter::new(&ctx.key, ctx.cfg.max_text);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let synced = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = timeout(ctx.cfg.sync_timeout, sync(&ctx, wr, &mut rd, &mut splitter, &mut buf)) => r,
    };
    let wr = match synced {
        Ok(Ok(wr)) => wr,
        Ok(Err(SyncFailed::Left(why))) => return tracing::info!("{peer} {why}"),
        Ok(Err(SyncFailed::Bad(why))) => return tracing::warn!("{peer} {why}: closing"),
        Err(_) => {
            let secs = ctx.cfg.sync_timeout.as_secs_f64();
            return tracing::warn!("{peer} sent no sync token within {secs} s: closing");
        }
    };
    let (tx, rx) = mpsc::channel(ctx.cfg.queue);
    let abort = CancellationToken::new();
    let writer = tokio::spawn(write_tokens(wr, rx, abort.clone()));
    let member = Member {
        peer,
        tx: tx.clone(),
        abort: abort.clone(),
    };
    ctx.members().insert(id, member);
    // Logged once it gets messages: tests wait for this line.
    tracing::info!("{peer} synced");
    let session = Session {
        ctx: &ctx,
        peer,
        own: tx,
        abort: abort.clone(),
    };
    let reason = session.relay_loop(rd, splitter, buf).await;
    ctx.members().remove(&id);
    drop(session);
    tracing::info!("{peer} left ({reason})");
    // The queue ends once every sender is gone: the writer flushes it.
    if timeout(FLUSH_DEADLINE, writer).await.is_err() {
        abort.cancel();
    }
}

/// Why a client did not get synced.
enum SyncFailed {
    /// It went away (or could not be written to): nothing wrong on its side.
    Left(String),
    /// It sent something other than a token of `OK`.
    Bad(String),
}

/// Sends the key and reads the sync token, which must decrypt to `OK`.
/// Tokens glued after it stay in `buf`.
async fn sync(
    ctx: &Ctx,
    mut wr: OwnedWriteHalf,
    rd: &mut OwnedReadHalf,
    splitter: &mut TokenSplitter,
    buf: &mut BytesMut,
) -> Result<OwnedWriteHalf, SyncFailed> {
    wr.write_all(&ctx.key_text)
        .await
        .map_err(|e| SyncFailed::Left(format!("could not be sent the key: {e}")))?;
    let token = loop {
        match splitter.decode(buf) {
            Ok(Some(token)) => break token,
            Ok(None) => {}
            Err(e) => {
                let why = format!("sent a bad sync token ({})", e.reason);
                return Err(SyncFailed::Bad(why));
            }
        }
        buf.reserve(READ_CHUNK);
        match rd.read_buf(buf).await {
            Ok(0) => return Err(SyncFailed::Left("closed before syncing".into())),
            Ok(_) => {}
            Err(e) => return Err(SyncFailed::Left(format!("read failed before syncing: {e}"))),
        }
    };
    match open_token(&ctx.fernet, &token) {
        Some(text) if text == SYNC_TEXT => Ok(wr),
        _ => Err(SyncFailed::Bad("sent a sync token that is not OK".into())),
    }
}

/// One synced client's reading side.
struct Session<'a> {
    ctx: &'a Ctx,
    peer: SocketAddr,
    /// The client's own queue, to slow its reading while the queue is full.
    own: mpsc::Sender<Bytes>,
    /// Cancelled when the client is dropped.
    abort: CancellationToken,
}

impl Session<'_> {
    /// Relays the client's tokens until it leaves; returns why it left.
    async fn relay_loop(
        &self,
        mut rd: OwnedReadHalf,
        mut splitter: TokenSplitter,
        mut buf: BytesMut,
    ) -> String {
        let mut pacer: Pacer<Bytes> = Pacer::new(self.ctx.cfg.rate, self.ctx.cfg.burst);
        loop {
            loop {
                match splitter.decode(&mut buf) {
                    Ok(Some(token)) => self.offer(&mut pacer, token),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("{} sent a bad token ({}): closing", self.peer, e.reason);
                        return "bad token".into();
                    }
                }
            }
            // A client that sends faster than it reads its own echoes waits
            // here (TCP slows it) rather than overflowing its queue.
            let half = (self.own.max_capacity() / 2).max(1);
            if self.own.capacity() < half {
                tokio::select! {
                    _ = self.ctx.shutdown.cancelled() => return "server shutting down".into(),
                    _ = self.abort.cancelled() => return "not reading".into(),
                    _ = self.own.reserve_many(half) => {}
                }
            }
            buf.reserve(READ_CHUNK);
            let due = pacer.next_due();
            tokio::select! {
                _ = self.ctx.shutdown.cancelled() => return "server shutting down".into(),
                _ = self.abort.cancelled() => return "not reading".into(),
                r = rd.read_buf(&mut buf) => match r {
                    Ok(0) => {
                        // What it sent before leaving still goes out.
                        for token in pacer.due(Instant::now() + MAX_DELAY) {
                            self.ctx.relay(&token);
                        }
                        return match buf.len() {
                            0 => "connection closed".into(),
                            n => format!("connection closed inside a token ({n} bytes)"),
                        };
                    }
                    Ok(_) => {}
                    Err(e) => return format!("read error: {e}"),
                },
                _ = sleep_until_opt(due) => {
                    for token in pacer.due(Instant::now()) {
                        self.ctx.relay(&token);
                    }
                }
            }
        }
    }

    /// Relays `token` now, or later under the rate limit, or drops it.
    fn offer(&self, pacer: &mut Pacer<Bytes>, token: Bytes) {
        match pacer.offer(token, Instant::now()) {
            Paced::Now(token) => self.ctx.relay(&token),
            Paced::Held => {}
            Paced::Dropped { notify } => {
                if notify {
                    tracing::info!("{} is sending too fast: tokens dropped", self.peer);
                }
            }
        }
    }
}

/// Writes each queued token with its own write until the queue ends or
/// `abort`; then closes the connection.
async fn write_tokens(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    abort: CancellationToken,
) {
    loop {
        let token = tokio::select! {
            biased;
            _ = abort.cancelled() => break,
            t = rx.recv() => match t {
                Some(t) => t,
                None => break,
            },
        };
        let written = tokio::select! {
            biased;
            _ = abort.cancelled() => break,
            r = wr.write_all(&token) => r,
        };
        if written.is_err() {
            abort.cancel();
            break;
        }
    }
    let _ = timeout(FLUSH_DEADLINE, wr.shutdown()).await;
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
