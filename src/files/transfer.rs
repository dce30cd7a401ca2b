//! The data path: moves a file's raw bytes between a file and a stream in
//! blocks of up to 1 MiB (smaller when the server's shared budget says so,
//! see `budget`), hashing them (BLAKE3) as they pass. This module sends:
//! it reads the next block on a blocking thread while the network takes
//! this one; `receive` is the other half. Also the `--limit-rate`
//! throttle. Works over any tokio stream (plain TCP or the secure channel);
//! on a plain socket, `--data-path splice|sendfile` hands each block to
//! the kernel instead (`datapath`).

use std::fs::File;
use std::io::Read;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::budget::Transfers;
use super::datapath::KernelPath;
use super::pagebuf::PageBuf;
pub use super::receive::{Received, recv_file, simulated_full_disk};

/// Bytes per block read from or written to a file.
pub const CHUNK: usize = 1 << 20;

/// A bytes-per-second throttle (token bucket allowing one block of debt).
#[derive(Debug)]
pub struct RateLimit {
    /// Allowed bytes per second.
    rate: f64,
    /// When the bytes sent so far may all have been sent.
    next_free: Option<Instant>,
}

impl RateLimit {
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            rate: bytes_per_sec.max(1) as f64,
            next_free: None,
        }
    }

    /// How long to wait after sending `n` more bytes at `now`.
    pub fn delay(&mut self, now: Instant, n: usize) -> Duration {
        let start = self.next_free.filter(|t| *t > now).unwrap_or(now);
        let next = start + Duration::from_secs_f64(n as f64 / self.rate);
        self.next_free = Some(next);
        next.saturating_duration_since(now)
    }

    /// Block size that keeps the throttled stream smooth (about 10 per
    /// second, between 4 KiB and [`CHUNK`]).
    pub fn block(&self) -> usize {
        ((self.rate / 10.0) as usize).clamp(4096, CHUNK)
    }

    pub async fn wait(&mut self, n: usize) {
        let d = self.delay(Instant::now(), n);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

/// Parses `10M`, `512K`, `1.5G`, `100000` (bytes per second; K = 1024).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(format!("unknown unit in '{s}' (use K, M or G)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a rate (e.g. 10M, 512K)"))?;
    let v = n * mult as f64;
    if !v.is_finite() || !(1.0..=1e15).contains(&v) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(v as u64)
}

/// Sends bytes as they move: count for progress bars.
pub trait Tally: Send {
    fn add(&mut self, n: u64);
}

impl Tally for () {
    fn add(&mut self, _: u64) {}
}

/// How bytes move besides where: throttle, progress, and how long the
/// network may make no progress.
pub struct Flow<'a> {
    pub rate: Option<&'a mut RateLimit>,
    pub tally: &'a mut dyn Tally,
    pub stall: Duration,
    /// The server's shared buffer budget, which sets the block size.
    pub budget: Option<&'a Transfers>,
    /// A kernel data path on a plain TCP socket (`--data-path`); `None`:
    /// read-write.
    pub kernel: Option<KernelPath>,
}

impl<'a> Flow<'a> {
    /// No throttle, no progress, `stall` as the limit.
    pub fn plain(tally: &'a mut dyn Tally, stall: Duration) -> Self {
        Self {
            rate: None,
            tally,
            stall,
            budget: None,
            kernel: None,
        }
    }
}

pub(super) fn joined(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(format!("file thread failed: {e}"))
}

/// What travels to and from the blocking thread with each block sent.
struct Outgoing {
    file: File,
    buf: PageBuf,
    /// `None` when the hash is already known (or not wanted).
    hasher: Option<blake3::Hasher>,
}

/// Reads `n` bytes of `b.file` into `b.buf` and hashes them, on a
/// blocking thread, starting now (not when the caller next yields, as a
/// task spawned to do it would).
fn read_block(mut b: Outgoing, n: usize) -> tokio::task::JoinHandle<std::io::Result<Outgoing>> {
    tokio::task::spawn_blocking(move || {
        b.buf.clear();
        b.file.read_exact(b.buf.room(n)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::other("the file shrank while it was being sent")
            } else {
                e
            }
        })?;
        b.buf.advance(n);
        if let Some(h) = &mut b.hasher {
            h.update(b.buf.filled());
        }
        Ok(b)
    })
}

/// A buffer for `n` bytes (what `spare` holds, then more) of blocks of
/// `block` bytes: `spare` if it has room for `n` and is not more than twice
/// too big (the budget shrank), else a new one holding what `spare` held.
pub(super) fn buffer_for(spare: PageBuf, n: usize, block: usize) -> PageBuf {
    if spare.capacity() >= n && spare.capacity() <= 2 * block.max(n) {
        spare
    } else {
        let mut new = PageBuf::with_capacity(n);
        new.extend_from_slice(spare.filled());
        new
    }
}

/// Block size now: the throttle's and the shared budget's, whichever is smaller.
pub(super) fn block_size(rate: Option<&RateLimit>, budget: Option<&Transfers>) -> usize {
    let by_rate = rate.map_or(CHUNK, RateLimit::block);
    budget.map_or(by_rate, |t| by_rate.min(t.block()))
}

/// Sends `len` bytes of `file` (from its current position) to `w`, hashing
/// them into `hasher` (if any: a sender that knows the hash already, or
/// needs none, saves the hashing). Returns the hasher.
pub async fn send_file<W: AsyncWrite + Unpin>(
    w: &mut W,
    file: File,
    len: u64,
    hasher: Option<blake3::Hasher>,
    mut flow: Flow<'_>,
) -> std::io::Result<Option<blake3::Hasher>> {
    #[cfg(target_os = "linux")]
    if let Some(k) = flow.kernel.take() {
        return send_kernel(file, len, hasher, &k, flow).await;
    }
    let Flow {
        mut rate,
        tally,
        stall,
        budget,
        ..
    } = flow;
    let mut left = len;
    let first = block_size(rate.as_deref(), budget).min(left as usize);
    let mut pending = Some(read_block(
        Outgoing {
            file,
            buf: PageBuf::with_capacity(first),
            hasher,
        },
        first,
    ));
    // Allocated (and zeroed) only if a second block is needed.
    let mut spare = PageBuf::default();
    let mut hasher_out = None;
    while let Some(task) = pending.take() {
        let b = task.await.map_err(joined)??;
        left -= b.buf.len() as u64;
        let Outgoing { file, buf, hasher } = b;
        if left > 0 {
            let block = block_size(rate.as_deref(), budget);
            let n = block.min(left as usize);
            let mut buf = std::mem::take(&mut spare);
            buf.clear();
            let next = Outgoing {
                file,
                buf: buffer_for(buf, n, block),
                hasher,
            };
            pending = Some(read_block(next, n));
        } else {
            hasher_out = Some(hasher);
        }
        stalled(stall, w.write_all(buf.filled())).await?;
        tally.add(buf.len() as u64);
        if let Some(r) = rate.as_deref_mut() {
            r.wait(buf.len()).await;
        }
        spare = buf;
    }
    Ok(hasher_out.flatten())
}

/// [`send_file`] on a kernel path (`datapath`): each block goes from the
/// file into the socket on a blocking thread, read back to be hashed
/// first if the hash is not known. Everything written to the stream before
/// must have reached the socket (our streams buffer nothing).
#[cfg(target_os = "linux")]
async fn send_kernel(
    mut file: File,
    len: u64,
    hasher: Option<blake3::Hasher>,
    k: &KernelPath,
    flow: Flow<'_>,
) -> std::io::Result<Option<blake3::Hasher>> {
    use std::io::Seek;
    let Flow {
        mut rate,
        tally,
        budget,
        stall,
        ..
    } = flow;
    struct Moving {
        file: File,
        buf: PageBuf,
        pipe: Option<super::datapath::Pipe>,
        hasher: Option<blake3::Hasher>,
    }
    tracing::debug!("sending {len} bytes by {}", k.path().name());
    let link = super::datapath::Link::new(k, stall);
    let mut at = file.stream_position()?;
    let mut m = Moving {
        file,
        buf: PageBuf::default(),
        pipe: None,
        hasher,
    };
    let mut left = len;
    while left > 0 {
        let n = block_size(rate.as_deref(), budget).min(left as usize);
        let worker = link.worker();
        m = tokio::task::spawn_blocking(move || {
            let Moving {
                file,
                buf,
                pipe,
                hasher,
            } = &mut m;
            super::datapath::send_block(&worker, file, at, n, hasher.as_mut(), buf, pipe)
                .map(|()| m)
        })
        .await
        .map_err(joined)??;
        at += n as u64;
        left -= n as u64;
        tally.add(n as u64);
        if let Some(r) = rate.as_deref_mut() {
            r.wait(n).await;
        }
    }
    Ok(m.hasher)
}

/// Runs one network step, failing it if it makes no progress for `stall`.
pub(super) async fn stalled<T>(
    stall: Duration,
    step: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    match tokio::time::timeout(stall, step).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no progress for {stall:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_binary_units() {
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("512k"), Ok(512 << 10));
        assert_eq!(parse_rate("1.5G"), Ok(3 << 29));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("10X").is_err());
    }

    #[test]
    fn throttle_spaces_blocks_by_their_size() {
        let mut r = RateLimit::new(1000);
        let t0 = Instant::now();
        assert_eq!(r.delay(t0, 500), Duration::from_millis(500));
        assert_eq!(r.delay(t0, 500), Duration::from_millis(1000));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(r.delay(later, 100), Duration::from_millis(100));
        assert_eq!(r.block(), 4096);
    }

    #[test]
    fn buffers_are_reused_unless_too_small_or_twice_too_big() {
        let b = buffer_for(PageBuf::with_capacity(CHUNK), CHUNK, CHUNK);
        assert_eq!(b.capacity(), CHUNK);
        // The last, short block of a file keeps the buffer.
        let b = buffer_for(b, 100, CHUNK);
        assert_eq!(b.capacity(), CHUNK);
        // The budget shrank to 64 KiB: a smaller buffer.
        let b = buffer_for(b, 64 << 10, 64 << 10);
        assert_eq!(b.capacity(), 64 << 10);
        // It grew back: a bigger one.
        let b = buffer_for(b, CHUNK, CHUNK);
        assert_eq!(b.capacity(), CHUNK);
        assert_eq!(buffer_for(PageBuf::default(), 10, CHUNK).capacity(), 4096);
    }
}
