//! One native client of the file server: reads requests in order and
//! answers each in order (so a client may send many before reading, and
//! thousands of small files cost no round trip each). Listings come from
//! the live folder; files are sent as one `Data` frame, the raw bytes and
//! an `End` frame with their BLAKE3; uploads are offered (`Put`), told what
//! the server already has (`PutReady`), received into a temporary file,
//! verified, fsynced and renamed. Every wait is bounded by the idle
//! timeout; a client that stops reading holds at most its buffers.

#[path = "session_upload.rs"]
mod upload;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::batch::{Batch, SMALL_FILE};
use super::datapath::KernelPath;
use super::hashcache::{FileKey, HashCache};
use super::resume::{PartFile, hash_file, hash_prefix, partial_len};
use super::server::Ctx;
use super::store::{StoreError, part_path};
use super::transfer::{Flow, RateLimit, Received, recv_file, send_file};
use crate::wire::files::{
    ErrorCode, FLAG_UPLOADS, GetMode, Hash, MAX_FRAME, PutState, Reply, Request, entries_frames,
    zero_hash,
};
use crate::wire::frame::{Frame, FrameCodec};

/// Upload offers a connection may have open (each costs a path and a hasher).
const MAX_OFFERS: usize = 100_000;
/// Control bytes queued before they are written out.
const OUT_FLUSH: usize = 256 * 1024;

/// A connection-ending failure (already logged by the caller).
type SessionResult = Result<(), String>;

/// An upload offered and answered, waiting for its data.
struct Offer {
    /// The name the client gave.
    name: String,
    /// Where it goes.
    target: std::path::PathBuf,
    size: u64,
    overwrite: bool,
    /// A partial upload already there: its length and hash state.
    partial: Option<(u64, blake3::Hasher)>,
}

/// What `get` decided to send.
enum SendPlan {
    Same,
    Differs(u64),
    /// A small rest, already read and hashed: queued with the replies, so
    /// many small files leave in large writes.
    Inline {
        offset: u64,
        bytes: Vec<u8>,
        hash: Hash,
    },
    Send {
        file: std::fs::File,
        offset: u64,
        hashing: Hashing,
    },
}

/// How the hash sent after a file's bytes is had.
enum Hashing {
    /// Computed as the bytes are read, continuing this state (the bytes
    /// before the offset). From offset 0, the file's key when it was
    /// opened and when, so the hash can be remembered afterwards.
    Along(Box<blake3::Hasher>, Option<(FileKey, SystemTime)>),
    /// Already known (`hashcache`): the bytes are only read.
    Known(Hash),
}

/// A `Get` read from the client, not answered yet.
struct GetRequest {
    id: u32,
    path: String,
    mode: GetMode,
    have: u64,
    have_hash: Hash,
}

impl GetRequest {
    /// The `Get` in `req`, or `None` for any other request.
    fn from_request(req: Request) -> Option<Self> {
        match req {
            Request::Get {
                id,
                path,
                mode,
                have,
                have_hash,
            } => Some(Self {
                id,
                path,
                mode,
                have,
                have_hash,
            }),
            _ => None,
        }
    }
}

/// What a blocking thread found for a `Get`: the file's size and mtime
/// and what to send, or why it cannot be sent.
type Prepared = Result<(u64, u64, std::io::Result<SendPlan>), StoreError>;

/// `Get`s prepared in one trip to a blocking thread. A pipelining client
/// asks for thousands of small files at once, and a trip per file (a
/// thread hand-off and a park of this task each) was most of what they
/// cost.
const MAX_GET_BATCH: usize = 256;

/// Silence from the client after which waiting small uploads are flushed.
const BATCH_QUIET: std::time::Duration = std::time::Duration::from_millis(20);

struct Session<S> {
    ctx: Arc<Ctx>,
    stream: S,
    buf: BytesMut,
    out: BytesMut,
    peer: SocketAddr,
    offers: HashMap<u32, Offer>,
    codec: FrameCodec,
    /// Small verified uploads waiting for one durable flush (`batch`),
    /// and their ids and names: their `Stored` goes out after it.
    stored: Batch,
    stored_ids: Vec<(u32, String)>,
    /// `Get`s read ahead (all before `ahead` and `buf`), answered in order.
    gets: VecDeque<GetRequest>,
    /// A frame read while gathering `Get`s that was not one.
    ahead: Option<Frame>,
    /// The kernel data path on a plain client's socket (`--data-path`).
    pub(super) kernel: Option<KernelPath>,
}

/// Serves one native client (preamble already read) until it is done,
/// fails, or the server shuts down.
pub(crate) async fn run<S>(
    ctx: Arc<Ctx>,
    stream: S,
    peer: SocketAddr,
    buf: BytesMut,
    kernel: Option<KernelPath>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let flags = if ctx.cfg.uploads.is_some() {
        FLAG_UPLOADS
    } else {
        0
    };
    let mut s = Session {
        ctx,
        stream,
        buf,
        out: BytesMut::with_capacity(8192),
        peer,
        offers: HashMap::new(),
        codec: FrameCodec::new(MAX_FRAME),
        stored: Batch::default(),
        stored_ids: Vec::new(),
        gets: VecDeque::new(),
        ahead: None,
        kernel,
    };
    s.reply(&Reply::Welcome {
        software: crate::SOFTWARE.to_owned(),
        flags,
    });
    tracing::debug!("{peer}: native client");
    let shutdown = s.ctx.shutdown.clone();
    let result = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        r = s.serve() => r,
    };
    if let Err(e) = result {
        tracing::info!("{peer}: {e}");
    }
}

fn blocking_failed(e: tokio::task::JoinError) -> String {
    format!("file thread failed: {e}")
}

fn code_of(e: &StoreError) -> ErrorCode {
    match e {
        StoreError::BadPath { .. } | StoreError::Outside(_) => ErrorCode::BadPath,
        StoreError::NotFound(_) => ErrorCode::NotFound,
        StoreError::IsDir(_) | StoreError::Special(_) => ErrorCode::NotAFile,
        StoreError::TooLarge(_) | StoreError::Io { .. } => ErrorCode::Io,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    async fn serve(&mut self) -> SessionResult {
        loop {
            if !self.gets.is_empty() {
                self.get_batch().await?;
                continue;
            }
            let Some(frame) = self.next_frame().await? else {
                return Ok(());
            };
            let req = match Request::decode(&frame) {
                Ok(r) => r,
                Err(e) => return self.fatal(ErrorCode::Protocol, &e.to_string()).await,
            };
            match req {
                Request::List { id, path } => self.list(id, path).await?,
                get @ Request::Get { .. } => {
                    self.gets.extend(GetRequest::from_request(get));
                    self.gather_gets();
                }
                Request::Put {
                    id,
                    path,
                    size,
                    overwrite,
                    ..
                } => self.offer(id, path, size, overwrite).await?,
                Request::Data { id, offset, len } => self.upload(id, offset, len).await?,
                Request::End { .. } => {
                    return self
                        .fatal(ErrorCode::Protocol, "end of an upload that was not sent")
                        .await;
                }
                Request::Done => {
                    self.commit_batch().await?;
                    self.flush().await?;
                    let _ = self.stream.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    /// The next request frame; `None` at a clean EOF. Flushes replies
    /// before waiting, so a pipelining client gets them promptly.
    async fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        if let Some(f) = self.ahead.take() {
            return Ok(Some(f));
        }
        loop {
            match self.codec.decode_frame(&mut self.buf) {
                Ok(Some(f)) => return Ok(Some(f)),
                Ok(None) => {}
                Err(e) => {
                    self.fatal(ErrorCode::Protocol, &e.to_string()).await?;
                    return Ok(None);
                }
            }
            if !self.stored.is_empty() {
                // More uploads may follow at once: give them a moment to
                // join the batch before paying for a filesystem flush.
                let more = tokio::time::timeout(BATCH_QUIET, self.stream.read_buf(&mut self.buf));
                match more.await {
                    Err(_) => self.commit_batch().await?,
                    Ok(Ok(0)) => self.commit_batch().await?,
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return Err(e.to_string()),
                }
            }
            self.flush().await?;
            let idle = self.ctx.cfg.idle_timeout;
            match tokio::time::timeout(idle, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(format!("idle for {idle:?}; closed")),
                Ok(Ok(0)) if self.buf.is_empty() => return Ok(None),
                Ok(Ok(0)) => return Err("closed in the middle of a request".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
            }
        }
    }

    fn reply(&mut self, r: &Reply) {
        if let Err(e) = r.encode(&mut self.out) {
            tracing::warn!("cannot encode a reply: {e}");
        }
    }

    fn error(&mut self, id: u32, code: ErrorCode, text: &str) {
        self.reply(&Reply::Error {
            id,
            code: code as u16,
            text: text.to_owned(),
        });
    }

    async fn fatal(&mut self, code: ErrorCode, text: &str) -> SessionResult {
        self.error(0, code, text);
        let _ = self.flush().await;
        Err(format!("protocol error: {text}"))
    }

    async fn flush(&mut self) -> SessionResult {
        if self.out.is_empty() {
            return Ok(());
        }
        let idle = self.ctx.cfg.idle_timeout;
        let out = self.out.split();
        match tokio::time::timeout(idle, self.stream.write_all(&out)).await {
            Err(_) => Err(format!("not reading for {idle:?}; closed")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn flush_if_full(&mut self) -> SessionResult {
        if self.out.len() >= OUT_FLUSH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn list(&mut self, id: u32, path: String) -> SessionResult {
        let store = self.ctx.cfg.store.clone();
        let listed = tokio::task::spawn_blocking(move || store.list(&path))
            .await
            .map_err(blocking_failed)?;
        match listed {
            Ok(entries) => {
                if let Err(e) = entries_frames(id, &entries, &mut self.out) {
                    self.error(id, ErrorCode::Io, &e.to_string());
                } else {
                    self.reply(&Reply::ListEnd { id });
                }
            }
            Err(e) => self.error(id, code_of(&e), &e.to_string()),
        }
        self.flush_if_full().await
    }

    /// Adds the `Get`s that already arrived behind the last one (up to
    /// [`MAX_GET_BATCH`]), stopping at the first other request.
    fn gather_gets(&mut self) {
        while self.gets.len() < MAX_GET_BATCH {
            let frame = match self.ahead.take() {
                Some(f) => f,
                // An incomplete or bad frame stays in `buf`: `next_frame`
                // meets it again in its turn.
                None => match self.codec.decode_frame(&mut self.buf) {
                    Ok(Some(f)) => f,
                    _ => return,
                },
            };
            match Request::decode(&frame)
                .ok()
                .and_then(GetRequest::from_request)
            {
                Some(get) => self.gets.push_back(get),
                None => {
                    self.ahead = Some(frame);
                    return;
                }
            }
        }
    }

    /// Prepares the waiting `Get`s on one blocking thread, as far as the
    /// first one that streams (a large file: it holds its descriptor) or
    /// [`OUT_FLUSH`] bytes read inline, then answers them in order.
    async fn get_batch(&mut self) -> SessionResult {
        let store = self.ctx.cfg.store.clone();
        let hashes = self.ctx.hashes.clone();
        let inline = self.ctx.cfg.limit_rate.is_none();
        let waiting: Vec<GetRequest> = self.gets.drain(..).collect();
        let (prepared, rest) = tokio::task::spawn_blocking(move || {
            let mut done = Vec::with_capacity(waiting.len());
            let mut bytes = 0usize;
            let mut waiting = waiting.into_iter();
            for g in waiting.by_ref() {
                let p = prepare(&store, &hashes, &g, inline);
                let streams = match &p {
                    Ok((_, _, Ok(SendPlan::Send { .. }))) => true,
                    Ok((_, _, Ok(SendPlan::Inline { bytes: b, .. }))) => {
                        bytes += b.len();
                        false
                    }
                    _ => false,
                };
                done.push((g, p));
                if streams || bytes >= OUT_FLUSH {
                    break;
                }
            }
            (done, waiting.collect::<VecDeque<_>>())
        })
        .await
        .map_err(blocking_failed)?;
        self.gets = rest;
        for (g, p) in prepared {
            self.answer_get(g.id, g.path, p).await?;
        }
        Ok(())
    }

    /// Answers one prepared `Get`: a refusal, `Same`/`Differs`, or the file.
    async fn answer_get(&mut self, id: u32, path: String, prepared: Prepared) -> SessionResult {
        let (size, mtime_ms, plan) = match prepared {
            Err(e) => {
                self.error(id, code_of(&e), &e.to_string());
                return self.flush_if_full().await;
            }
            Ok(p) => p,
        };
        let (file, offset, hashing) = match plan {
            Err(e) => {
                self.error(id, ErrorCode::Io, &format!("{path}: {e}"));
                return self.flush_if_full().await;
            }
            Ok(SendPlan::Same) => {
                self.reply(&Reply::Same { id });
                return self.flush_if_full().await;
            }
            Ok(SendPlan::Differs(size)) => {
                self.reply(&Reply::Differs { id, size });
                return self.flush_if_full().await;
            }
            Ok(SendPlan::Inline {
                offset,
                bytes,
                hash,
            }) => {
                let len = bytes.len() as u64;
                self.reply(&Reply::Data {
                    id,
                    size,
                    mtime_ms,
                    offset,
                    len,
                });
                self.out.extend_from_slice(&bytes);
                self.reply(&Reply::End { id, hash });
                return self.flush_if_full().await;
            }
            Ok(SendPlan::Send {
                file,
                offset,
                hashing,
            }) => (file, offset, hashing),
        };
        let permit = self.ctx.transfers.acquire().await;
        let len = size - offset;
        self.reply(&Reply::Data {
            id,
            size,
            mtime_ms,
            offset,
            len,
        });
        self.flush().await?;
        let mut rate = self.ctx.cfg.limit_rate.map(RateLimit::new);
        let idle = self.ctx.cfg.idle_timeout;
        let (hasher, known, remember) = match hashing {
            Hashing::Along(h, remember) => (Some(*h), None, remember),
            Hashing::Known(hash) => (None, Some(hash), None),
        };
        // To tell afterwards whether the file changed while it was read.
        let after = remember.and_then(|_| file.try_clone().ok());
        let sent = send_file(
            &mut self.stream,
            file,
            len,
            hasher,
            Flow {
                rate: rate.as_mut(),
                tally: &mut (),
                stall: idle,
                budget: Some(&self.ctx.transfers),
                kernel: self.kernel.clone(),
            },
        )
        .await
        .map_err(|e| format!("sending {path}: {e}"))?;
        drop(permit);
        let how = if known.is_some() {
            "hash known"
        } else {
            "hashed"
        };
        tracing::debug!(
            "{}: sent {path} ({len} bytes from {offset}, {how})",
            self.peer
        );
        let hash = match (known, sent) {
            (Some(hash), _) => hash,
            (None, Some(h)) => *h.finalize().as_bytes(),
            (None, None) => unreachable!("send_file returns the hasher it was given"),
        };
        if let (Some((key, at)), Some(f)) = (remember, after) {
            let now = f.metadata().ok().and_then(|m| FileKey::of(&m));
            self.ctx.hashes.put(Some(key), now, hash, at);
        }
        self.reply(&Reply::End { id, hash });
        self.flush_if_full().await
    }
}

/// Largest rest of a file sent inline with the replies.
const INLINE: u64 = 64 * 1024;

/// Opens `path` and plans its `Get` (on a blocking thread); a small rest
/// is read and hashed here too (when `inline`).
fn prepare(
    store: &super::store::Store,
    hashes: &HashCache,
    g: &GetRequest,
    inline: bool,
) -> Prepared {
    use std::io::Read;
    let opened = store.open_file(&g.path)?;
    let (size, mtime_ms) = (opened.size, opened.mtime_ms);
    let plan = plan_send(opened.file, size, opened.key, hashes, g).and_then(|plan| match plan {
        SendPlan::Send {
            mut file,
            offset,
            hashing,
        } if inline && size - offset <= INLINE => {
            let mut bytes = vec![0u8; (size - offset) as usize];
            file.read_exact(&mut bytes)?;
            let hash = match hashing {
                Hashing::Known(hash) => hash,
                Hashing::Along(mut hasher, _) => {
                    hasher.update(&bytes);
                    *hasher.finalize().as_bytes()
                }
            };
            Ok(SendPlan::Inline {
                offset,
                bytes,
                hash,
            })
        }
        other => Ok(other),
    });
    Ok((size, mtime_ms, plan))
}

/// Decides, on a blocking thread, what to send for a `Get` given what the
/// client has; hashes the server's file only as far as needed, and not
/// at all when `hashes` knows it.
fn plan_send(
    mut file: std::fs::File,
    size: u64,
    key: Option<FileKey>,
    hashes: &HashCache,
    g: &GetRequest,
) -> std::io::Result<SendPlan> {
    use std::io::{Seek, SeekFrom};
    let (mode, have) = (g.mode, g.have);
    let whole = matches!(mode, GetMode::Compare | GetMode::Replace);
    let compare = if whole {
        have == size
    } else {
        have > 0 && have <= size
    };
    let known = hashes.get(key);
    // Whether the file was read from (its position is no longer 0).
    let mut read = false;
    if compare {
        if whole && let Some(hash) = known {
            if hash == g.have_hash {
                return Ok(SendPlan::Same);
            }
        } else {
            read = true;
            let started = SystemTime::now();
            let (hasher, seen) = super::resume::hash_open(&file, have)?;
            let hash = *hasher.clone().finalize().as_bytes();
            if seen == size {
                let now = file.metadata().ok().and_then(|m| FileKey::of(&m));
                hashes.put(key, now, hash, started);
            }
            if seen == have && hash == g.have_hash {
                if whole {
                    return Ok(SendPlan::Same);
                }
                return Ok(SendPlan::Send {
                    file,
                    offset: have,
                    hashing: Hashing::Along(Box::new(hasher), None),
                });
            }
        }
    }
    if mode == GetMode::Compare {
        return Ok(SendPlan::Differs(size));
    }
    if read {
        file.seek(SeekFrom::Start(0))?;
    }
    let hashing = match known {
        Some(hash) => Hashing::Known(hash),
        None => Hashing::Along(Box::default(), key.map(|k| (k, SystemTime::now()))),
    };
    Ok(SendPlan::Send {
        file,
        offset: 0,
        hashing,
    })
}
