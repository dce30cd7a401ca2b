//! The data path: moves a file's raw bytes between a file and a stream in
//! blocks of up to 1 MiB (smaller when the server's shared budget says so,
//! see `budget`), hashing them (BLAKE3) as they pass. Sending reads the
//! next block on a blocking thread while the network takes this one;
//! receiving writes each block on the thread that received it (see
//! `write_in_place`) and asks the kernel to write it back to disk at
//! once (see `writeback`). Also the `--limit-rate` throttle. Works over
//! any tokio stream (plain TCP or the secure channel).
//!
//! Disk-full testing: in debug builds only, `SOQUETE_TEST_FAIL_WRITES_AFTER=N`
//! makes writes to received files fail as a full disk would after N bytes.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::budget::Transfers;
use super::pagebuf::PageBuf;

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
}

impl<'a> Flow<'a> {
    /// No throttle, no progress, `stall` as the limit.
    pub fn plain(tally: &'a mut dyn Tally, stall: Duration) -> Self {
        Self {
            rate: None,
            tally,
            stall,
            budget: None,
        }
    }
}

/// What travels to and from the blocking thread with each block.
struct Block {
    file: File,
    buf: PageBuf,
    hasher: blake3::Hasher,
}

fn joined(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(format!("file thread failed: {e}"))
}

/// What travels to and from the blocking thread with each block sent.
struct Outgoing {
    file: File,
    buf: PageBuf,
    /// `None` when the hash is already known (or not wanted).
    hasher: Option<blake3::Hasher>,
}

/// Reads `n` bytes of `b.file` into `b.buf` and hashes them.
async fn read_block(mut b: Outgoing, n: usize) -> std::io::Result<Outgoing> {
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
    .await
    .map_err(joined)?
}

/// A buffer for the next `n` bytes of blocks of `block` bytes: `spare`
/// if it holds `n` and is not more than twice too big (the budget shrank),
/// else a new one.
fn buffer_for(spare: PageBuf, n: usize, block: usize) -> PageBuf {
    if spare.capacity() >= n && spare.capacity() <= 2 * block.max(n) {
        spare
    } else {
        PageBuf::with_capacity(n)
    }
}

/// Block size now: the throttle's and the shared budget's, whichever is smaller.
fn block_size(rate: Option<&RateLimit>, budget: Option<&Transfers>) -> usize {
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
    flow: Flow<'_>,
) -> std::io::Result<Option<blake3::Hasher>> {
    let Flow {
        mut rate,
        tally,
        stall,
        budget,
    } = flow;
    let mut left = len;
    let first = block_size(rate.as_deref(), budget).min(left as usize);
    let mut pending = Some(tokio::spawn(read_block(
        Outgoing {
            file,
            buf: PageBuf::with_capacity(first),
            hasher,
        },
        first,
    )));
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
            let next = Outgoing {
                file,
                buf: buffer_for(std::mem::take(&mut spare), n, block),
                hasher,
            };
            pending = Some(tokio::spawn(read_block(next, n)));
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

/// Runs one network step, failing it if it makes no progress for `stall`.
async fn stalled<T>(
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

/// Simulated full disk for tests (debug builds only).
fn fail_after() -> Option<u64> {
    if cfg!(debug_assertions) {
        std::env::var("SOQUETE_TEST_FAIL_WRITES_AFTER")
            .ok()?
            .parse()
            .ok()
    } else {
        None
    }
}

/// The test hook: fails as a full disk would when writing `n` more bytes
/// after `written` would pass `SOQUETE_TEST_FAIL_WRITES_AFTER` (debug
/// builds only; always `Ok` in release builds).
pub fn simulated_full_disk(written: u64, n: usize) -> std::io::Result<()> {
    match fail_after() {
        Some(limit) if written + n as u64 > limit => Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "no space left on device (simulated: SOQUETE_TEST_FAIL_WRITES_AFTER)",
        )),
        _ => Ok(()),
    }
}

/// Bytes per `write` of a received block into its file. The page cache
/// gives a write a folio as large as the write (ext4 has large folios
/// since Linux 6.16), and on this VM (Firecracker, free page reporting)
/// large folios come from memory the host has taken back, so every page
/// of them costs a fault in the host: 1 GiB written in 1 MiB writes took
/// 1.95-2.90 s of kernel time, in 64 KiB writes 0.72-1.07 s (32 KiB:
/// 0.74-1.00; 128 KiB: 0.66-1.76; 256 KiB: 1.30-1.74), same runs,
/// alternating. Elsewhere it costs 15 more system calls per MiB.
const WRITE_PIECE: usize = 64 * 1024;

/// Hashes and writes a block that starts `written` bytes into the
/// transfer (also what the test hook counts), then starts its writeback.
fn write_now(b: &mut Block, written: u64) -> std::io::Result<()> {
    simulated_full_disk(written, b.buf.len())?;
    let at = b.file.stream_position()?;
    b.hasher.update(b.buf.filled());
    for piece in b.buf.filled().chunks(WRITE_PIECE) {
        b.file.write_all(piece)?;
    }
    writeback::start(&b.file, at, b.buf.len() as u64);
    Ok(())
}

/// [`write_now`] on a blocking thread.
async fn write_block(mut b: Block, written: u64) -> std::io::Result<Block> {
    tokio::task::spawn_blocking(move || write_now(&mut b, written).map(|()| b))
        .await
        .map_err(joined)?
}

/// Whether received blocks are written on the thread that received them
/// (`block_in_place`, multi-thread runtimes only) rather than handed to a
/// blocking thread. Measured here on 1 GiB into tmpfs, three pairs taking
/// turns: 1.31/1.50/1.06 s written in place against 3.61/1.71/1.60 s
/// handed over, and 2.82/2.49/2.52 against 4.01/2.54/2.91 s to disk. The
/// block is still in this core's cache when it is hashed and copied into
/// the page cache, as in `socat`'s read-then-write loop.
fn write_in_place() -> bool {
    matches!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread
    )
}

/// Streaming writeback of received files. The file must be durable before
/// it gets its final name, and left to itself the kernel writes nothing
/// until that final fsync: the network then runs at page-cache speed and
/// the disk sits idle, and the fsync writes the whole file while the
/// network sits idle. Asking for the writeback of each block as soon as
/// it is written keeps the two busy at once, so a durable receive takes
/// about as long as the slower of them, and the fsync finds little left.
/// Waiting for the writeback a few blocks behind also keeps the dirty
/// pages of one transfer bounded. Linux only (`sync_file_range`); a no-op
/// elsewhere and on file systems without writeback (tmpfs).
mod writeback {
    use std::fs::File;

    /// Bytes whose writeback may be under way before a block waits for it.
    #[cfg(target_os = "linux")]
    const IN_FLIGHT: u64 = 16 << 20;

    #[cfg(target_os = "linux")]
    pub fn start(file: &File, at: u64, len: u64) {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is a descriptor `file` owns for the whole call;
        // sync_file_range only reads its arguments. A failure (EINVAL on a
        // file system without writeback, say) costs nothing but this
        // optimisation: the fsync before the rename is what makes it
        // durable, and it reports real write errors.
        unsafe {
            libc::sync_file_range(fd, at as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
            if at >= IN_FLIGHT {
                libc::sync_file_range(
                    fd,
                    (at - IN_FLIGHT) as i64,
                    len as i64,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn start(_file: &File, _at: u64, _len: u64) {}
}

/// How receiving ended.
#[derive(Debug)]
pub enum Received {
    /// All bytes written; the file and the hasher.
    Done(File, Box<blake3::Hasher>),
    /// The file could not be written; the remaining bytes were read and
    /// dropped, so the stream is still in step.
    WriteFailed(std::io::Error),
}

/// Receives `len` raw bytes from `r` (those already in `buffered` first)
/// into `file`, hashing them. A network error is an `Err`; a file error
/// drains the rest and is `Received::WriteFailed`.
pub async fn recv_file<R: AsyncRead + Unpin>(
    r: &mut R,
    buffered: &mut BytesMut,
    file: File,
    len: u64,
    hasher: blake3::Hasher,
    flow: Flow<'_>,
) -> std::io::Result<Received> {
    let Flow {
        mut rate,
        tally,
        stall,
        budget,
    } = flow;
    let mut left = len;
    let mut written = 0u64;
    let mut spare = PageBuf::with_capacity(block_size(rate.as_deref(), budget).min(len as usize));
    let mut pending: Option<tokio::task::JoinHandle<std::io::Result<Block>>> = None;
    let mut parked = Some((file, hasher));
    let in_place = write_in_place();
    while left > 0 {
        let block = block_size(rate.as_deref(), budget);
        let want = block.min(left as usize);
        let mut buf = buffer_for(std::mem::take(&mut spare), want, block);
        buf.clear();
        stalled(stall, fill(r, buffered, &mut buf, want)).await?;
        left -= buf.len() as u64;
        tally.add(buf.len() as u64);
        if let Some(rate) = rate.as_deref_mut() {
            rate.wait(buf.len()).await;
        }
        if let Some(task) = pending.take() {
            match task.await.map_err(joined)? {
                Ok(b) => {
                    spare = b.buf;
                    parked = Some((b.file, b.hasher));
                }
                Err(e) => return stalled(stall, drain(r, buffered, left, e)).await,
            }
        }
        let (file, hasher) = parked.take().expect("file is parked between blocks");
        let n = buf.len() as u64;
        let mut b = Block { file, buf, hasher };
        if in_place {
            if let Err(e) = tokio::task::block_in_place(|| write_now(&mut b, written)) {
                return stalled(stall, drain(r, buffered, left, e)).await;
            }
            spare = b.buf;
            parked = Some((b.file, b.hasher));
        } else {
            pending = Some(tokio::spawn(write_block(b, written)));
        }
        written += n;
    }
    if let Some(task) = pending {
        match task.await.map_err(joined)? {
            Ok(b) => parked = Some((b.file, b.hasher)),
            Err(e) => return Ok(Received::WriteFailed(e)),
        }
    }
    let (file, hasher) = parked.expect("file is back");
    Ok(Received::Done(file, Box::new(hasher)))
}

/// Longest a block waits to fill before what has arrived is written
/// (on a slow link the partial file keeps up with the network).
const FILL_WAIT: Duration = Duration::from_millis(50);

/// Appends up to `want` bytes from `buffered`, then `r`, to `buf`: at
/// least one byte, then whatever arrives within [`FILL_WAIT`].
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buffered: &mut BytesMut,
    buf: &mut PageBuf,
    want: usize,
) -> std::io::Result<()> {
    let take = buffered.len().min(want);
    buf.extend_from_slice(&buffered[..take]);
    buffered.advance(take);
    let deadline = Instant::now() + FILL_WAIT;
    while buf.len() < want {
        let first = buf.is_empty();
        let room = buf.room(want);
        let read = if first {
            r.read(room).await.map(Some)
        } else {
            match tokio::time::timeout_at(deadline, r.read(room)).await {
                Ok(n) => n.map(Some),
                Err(_) => Ok(None),
            }
        };
        match read? {
            Some(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Some(n) => buf.advance(n),
            None => break,
        }
    }
    Ok(())
}

/// Reads and drops `left` bytes so the stream stays in step after a file
/// error, then reports that error.
async fn drain<R: AsyncRead + Unpin>(
    r: &mut R,
    buffered: &mut BytesMut,
    mut left: u64,
    error: std::io::Error,
) -> std::io::Result<Received> {
    let take = (buffered.len() as u64).min(left) as usize;
    buffered.advance(take);
    left -= take as u64;
    let mut sink = vec![0u8; CHUNK.min(left as usize).max(1)];
    while left > 0 {
        let n = sink.len().min(left as usize);
        r.read_exact(&mut sink[..n]).await?;
        left -= n as u64;
    }
    Ok(Received::WriteFailed(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(10);

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

    #[tokio::test]
    async fn a_file_crosses_a_stream_with_its_hash() {
        crosses_a_stream().await;
    }

    /// The other receive path: blocks written in place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_crosses_a_stream_with_its_hash_on_a_multi_thread_runtime() {
        assert!(write_in_place());
        crosses_a_stream().await;
    }

    async fn crosses_a_stream() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        let data: Vec<u8> = (0..(CHUNK * 2 + 777)).map(|i| (i % 253) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let file = File::open(&src).unwrap();
        let len = data.len() as u64;
        let sender = tokio::spawn(async move {
            send_file(
                &mut a,
                file,
                len,
                Some(blake3::Hasher::new()),
                Flow::plain(&mut (), STALL),
            )
            .await
            .unwrap()
            .expect("a hasher was given")
        });
        let dst = File::create(d.path().join("dst")).unwrap();
        let mut buffered = BytesMut::from(&b""[..]);
        let got = recv_file(
            &mut b,
            &mut buffered,
            dst,
            len,
            blake3::Hasher::new(),
            Flow::plain(&mut (), STALL),
        )
        .await
        .unwrap();
        let Received::Done(_, h) = got else {
            panic!("write failed")
        };
        let sent = sender.await.unwrap();
        assert_eq!(h.finalize(), blake3::hash(&data));
        assert_eq!(sent.finalize(), blake3::hash(&data));
        assert_eq!(std::fs::read(d.path().join("dst")).unwrap(), data);
    }
}
