//! The receiving half of the data path: takes a file's raw bytes from a
//! stream into a file in blocks of up to 1 MiB (see `transfer`), hashing
//! them (BLAKE3) as they pass. Large files on a disk are written with
//! direct I/O (see `direct`) by a blocking thread while the next block
//! arrives; the others go through the page cache, written on the thread
//! that received them (see `write_in_place`), with streaming writeback
//! (see `writeback`). Works over any tokio stream (plain TCP or the secure
//! channel); on a plain socket, `--data-path splice` moves the bytes from
//! socket to file inside the kernel instead (`datapath`).
//!
//! Disk-full testing: in debug builds only, `SOQUETE_TEST_FAIL_WRITES_AFTER=N`
//! makes writes to received files fail as a full disk would after N bytes.

use std::fs::File;
use std::io::{Seek, Write};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use super::direct;
use super::pagebuf::PageBuf;
use super::transfer::{CHUNK, Flow, block_size, buffer_for, joined, stalled};

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

/// What travels to and from the blocking thread with each block.
struct Block {
    file: File,
    buf: PageBuf,
    /// How many bytes from the start to write now: all of them, or under
    /// direct I/O the aligned part (the rest starts the next block).
    write: usize,
    /// Whether `file` is open for direct I/O.
    direct: bool,
}

/// Hashes `fresh`, the bytes that start `written` bytes into the transfer
/// (also what the test hook counts).
fn hash_fresh(hasher: &mut blake3::Hasher, fresh: &[u8], written: u64) -> std::io::Result<()> {
    simulated_full_disk(written, fresh.len())?;
    hasher.update(fresh);
    Ok(())
}

/// Writes a block's first `write` bytes: directly, or through the page
/// cache in pieces, starting their writeback.
fn write_out(b: &mut Block) -> std::io::Result<()> {
    let bytes = &b.buf.filled()[..b.write];
    let at = b.file.stream_position()?;
    let mut done = 0;
    while done < bytes.len() {
        let piece = if b.direct { bytes.len() } else { WRITE_PIECE };
        let end = bytes.len().min(done + piece);
        match b.file.write(&bytes[done..end]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if b.direct && direct::refused(&e) => {
                direct::disable(&b.file)?;
                b.direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    if !b.direct {
        writeback::start(&b.file, at, bytes.len() as u64);
    }
    Ok(())
}

/// Runs `f` on this thread, telling a multi-thread runtime first that it
/// blocks (see [`write_in_place`]).
fn blocking<T>(in_place: bool, f: impl FnOnce() -> T) -> T {
    if in_place {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// `spare`, emptied, holding `tail` (a new buffer if it has no room).
fn carried(mut spare: PageBuf, tail: &[u8], block: usize) -> PageBuf {
    spare.clear();
    if spare.capacity() < tail.len() {
        spare = PageBuf::with_capacity(block.max(tail.len()));
    }
    spare.extend_from_slice(tail);
    spare
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

/// Starts the writeback of `len` bytes of `file` from `at` (see `writeback`).
pub(super) fn start_writeback(file: &File, at: u64, len: u64) {
    writeback::start(file, at, len);
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
    recv_file_with(r, buffered, file, len, hasher, flow, direct::MIN_LEN).await
}

/// [`recv_file`], trying direct I/O for files of `direct_from` bytes or more.
async fn recv_file_with<R: AsyncRead + Unpin>(
    r: &mut R,
    buffered: &mut BytesMut,
    file: File,
    len: u64,
    hasher: blake3::Hasher,
    mut flow: Flow<'_>,
    direct_from: u64,
) -> std::io::Result<Received> {
    #[cfg(target_os = "linux")]
    if let Some(k) = flow.kernel.take_if(|k| k.receives()) {
        return recv_kernel(r, buffered, file, len, hasher, &k, flow).await;
    }
    let Flow {
        mut rate,
        tally,
        stall,
        budget,
        ..
    } = flow;
    let direct = len >= direct_from && direct::enable(&file);
    if direct {
        tracing::debug!("receiving {len} bytes with direct I/O");
    }
    // Each block is hashed on this thread as soon as it has arrived, while
    // it is still in this core's cache. Through the page cache, it is then
    // written here too (see `write_in_place`). A direct write waits for the
    // device instead, so a blocking thread makes it while this one receives
    // and hashes the next block; the next write is handed over the moment
    // the last one is done (1 GiB to disk: the device idled while a block
    // was hashed, 1.16-1.27 s in all, when blocks were hashed after that).
    let multi_thread = write_in_place();
    let first = block_size(rate.as_deref(), budget).min(len as usize);
    let mut out = Writer::new(file, direct, !direct && multi_thread, first);
    let mut hasher = hasher;
    let mut left = len;
    let mut written = 0u64;
    while left > 0 {
        let block = block_size(rate.as_deref(), budget);
        // A carried tail is shorter than the smallest block (4 KiB).
        let want = block.saturating_sub(out.carry).max(1).min(left as usize);
        let mut buf = out.next_buffer(want, block);
        if let Err(e) = stalled(stall, fill(r, buffered, &mut buf, out.carry + want)).await {
            out.abandon().await;
            return Err(e);
        }
        let got = buf.len() - out.carry;
        left -= got as u64;
        tally.add(got as u64);
        if let Some(rate) = rate.as_deref_mut() {
            rate.wait(got).await;
        }
        let put = out.put(buf, block, &mut hasher, written, multi_thread);
        if let Err(e) = put.await? {
            return stalled(stall, drain(r, buffered, left, e)).await;
        }
        written += got as u64;
    }
    match out.finish().await? {
        Ok(file) => Ok(Received::Done(file, Box::new(hasher))),
        Err(e) => Ok(Received::WriteFailed(e)),
    }
}

/// [`recv_file`] on the splice path (`datapath`): the bytes already
/// buffered are written first, then each block moves from the socket into
/// the file through a pipe on a blocking thread, and is read back from the
/// page cache to be hashed. No direct I/O: a durable file is written back
/// as it grows, as on the read-write path.
#[cfg(target_os = "linux")]
async fn recv_kernel<R: AsyncRead + Unpin>(
    r: &mut R,
    buffered: &mut BytesMut,
    mut file: File,
    len: u64,
    mut hasher: blake3::Hasher,
    k: &super::datapath::KernelPath,
    flow: Flow<'_>,
) -> std::io::Result<Received> {
    use super::datapath::{Link, Pipe, recv_block};
    let Flow {
        mut rate,
        tally,
        stall,
        budget,
        ..
    } = flow;
    let mut left = len;
    let take = buffered.len().min(len as usize);
    if take > 0 {
        let head = buffered.split_to(take);
        let wrote = blocking(write_in_place(), || {
            hash_fresh(&mut hasher, &head, 0)?;
            file.write_all(&head)
        });
        left -= take as u64;
        tally.add(take as u64);
        if let Err(e) = wrote {
            return stalled(stall, drain(r, buffered, left, e)).await;
        }
    }
    struct Moving {
        file: File,
        buf: PageBuf,
        pipe: Pipe,
        hasher: blake3::Hasher,
    }
    tracing::debug!("receiving {len} bytes by splice");
    let link = Link::new(k, stall);
    let mut m = Moving {
        file,
        buf: PageBuf::default(),
        pipe: Pipe::new()?,
        hasher,
    };
    let mut written = take as u64;
    while left > 0 {
        let want = block_size(rate.as_deref(), budget).min(left as usize);
        let worker = link.worker();
        let (back, moved) = tokio::task::spawn_blocking(move || {
            let Moving {
                file,
                buf,
                pipe,
                hasher,
            } = &mut m;
            let moved = recv_block(&worker, file, want, buf, pipe, hasher, written);
            (m, moved)
        })
        .await
        .map_err(joined)?;
        m = back;
        let moved = moved?;
        left -= moved.got as u64;
        tally.add(moved.got as u64);
        if let Some(rate) = rate.as_deref_mut() {
            rate.wait(moved.got).await;
        }
        if let Err(e) = moved.write {
            return stalled(stall, drain(r, buffered, left, e)).await;
        }
        written += moved.got as u64;
    }
    Ok(Received::Done(m.file, Box::new(m.hasher)))
}

/// Where received blocks go. Results are nested: the outer error ends the
/// transfer, the inner one means the file could not be written (the
/// caller then drains the stream).
struct Writer {
    /// The file, and whether it is open for direct I/O, while no write has it.
    parked: Option<(File, bool)>,
    /// The block a blocking thread is writing.
    pending: Option<tokio::task::JoinHandle<std::io::Result<Block>>>,
    /// The next block's buffer, starting with `carry` bytes carried over
    /// from the last block (hashed with it, not written yet).
    spare: PageBuf,
    carry: usize,
    /// Blocks are written on this thread, not handed to a blocking one.
    in_place: bool,
}

impl Writer {
    fn new(file: File, direct: bool, in_place: bool, first: usize) -> Self {
        Self {
            parked: Some((file, direct)),
            pending: None,
            spare: PageBuf::with_capacity(first),
            carry: 0,
            in_place,
        }
    }

    /// The buffer to receive the next block into: the carried bytes, and
    /// room for `want` more.
    fn next_buffer(&mut self, want: usize, block: usize) -> PageBuf {
        let mut buf = std::mem::take(&mut self.spare);
        if self.carry == 0 {
            buf.clear();
        }
        buffer_for(buf, self.carry + want, block)
    }

    /// Hashes `buf`'s new bytes (after the carried ones), which start
    /// `written` bytes into the transfer, then writes it here or hands it
    /// to a blocking thread once the last block is written.
    async fn put(
        &mut self,
        buf: PageBuf,
        block: usize,
        hasher: &mut blake3::Hasher,
        written: u64,
        multi_thread: bool,
    ) -> std::io::Result<std::io::Result<()>> {
        let fresh = self.carry;
        if self.in_place {
            let (file, direct) = self.parked.take().expect("file is parked between blocks");
            let write = buf.len();
            let mut b = Block {
                file,
                buf,
                write,
                direct,
            };
            let done = blocking(true, || {
                hash_fresh(hasher, &b.buf.filled()[fresh..], written)?;
                write_out(&mut b)
            });
            self.spare = b.buf;
            self.parked = Some((b.file, b.direct));
            return Ok(done);
        }
        let hashed = blocking(multi_thread, || {
            hash_fresh(hasher, &buf.filled()[fresh..], written)
        });
        if let Err(e) = hashed {
            return Ok(Err(e));
        }
        match self.settle().await? {
            Err(e) => return Ok(Err(e)),
            Ok(Some(free)) => self.spare = free,
            Ok(None) => {}
        }
        let (file, direct) = self.parked.take().expect("file is back");
        let write = if direct {
            buf.len() / direct::ALIGN * direct::ALIGN
        } else {
            buf.len()
        };
        self.carry = buf.len() - write;
        let mut b = Block {
            file,
            buf,
            write,
            direct,
        };
        self.spare = carried(
            std::mem::take(&mut self.spare),
            &b.buf.filled()[write..],
            block,
        );
        self.pending = Some(tokio::task::spawn_blocking(move || {
            write_out(&mut b).map(|()| b)
        }));
        Ok(Ok(()))
    }

    /// Waits for the block a blocking thread is writing, if any; gives
    /// back its buffer, free again.
    async fn settle(&mut self) -> std::io::Result<std::io::Result<Option<PageBuf>>> {
        let Some(task) = self.pending.take() else {
            return Ok(Ok(None));
        };
        Ok(task.await.map_err(joined)?.map(|b| {
            self.parked = Some((b.file, b.direct));
            Some(b.buf)
        }))
    }

    /// The file, once everything received is written.
    async fn finish(mut self) -> std::io::Result<std::io::Result<File>> {
        // `spare` holds the carried tail: the last block's buffer is not needed.
        if let Err(e) = self.settle().await? {
            return Ok(Err(e));
        }
        let (file, direct) = self.parked.take().expect("file is back");
        Ok(finish(&file, direct, &self.spare.filled()[..self.carry]).map(|()| file))
    }

    /// Gives up (the network failed): waits for the block still being
    /// written, so the partial file left for a resume is not still changing.
    async fn abandon(mut self) {
        if let Some(task) = self.pending.take() {
            let _ = task.await;
        }
    }
}

/// Ends direct I/O on `file` and writes the file's last bytes, `tail`
/// (already hashed), through the page cache.
fn finish(mut file: &File, direct: bool, tail: &[u8]) -> std::io::Result<()> {
    if direct {
        direct::disable(file)?;
    }
    file.write_all(tail)
}

/// Longest a block waits to fill before what has arrived is written
/// (on a slow link the partial file keeps up with the network).
const FILL_WAIT: Duration = Duration::from_millis(50);

/// Appends bytes from `buffered`, then `r`, to `buf` until it holds `end`
/// bytes: at least one more byte, then whatever arrives within
/// [`FILL_WAIT`].
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buffered: &mut BytesMut,
    buf: &mut PageBuf,
    end: usize,
) -> std::io::Result<()> {
    let start = buf.len();
    let take = buffered.len().min(end.saturating_sub(start));
    buf.extend_from_slice(&buffered[..take]);
    buffered.advance(take);
    let deadline = Instant::now() + FILL_WAIT;
    while buf.len() < end {
        let first = buf.len() == start;
        let room = buf.room(end);
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
    use crate::files::transfer::send_file;

    const STALL: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_file_crosses_a_stream_with_its_hash() {
        crosses_a_stream(CHUNK * 2 + 777, direct::MIN_LEN).await;
    }

    /// The other receive path: blocks written in place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_crosses_a_stream_with_its_hash_on_a_multi_thread_runtime() {
        assert!(write_in_place());
        crosses_a_stream(CHUNK * 2 + 777, direct::MIN_LEN).await;
    }

    async fn crosses_a_stream(size: usize, direct_from: u64) {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
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
        let got = recv_file_with(
            &mut b,
            &mut buffered,
            dst,
            len,
            blake3::Hasher::new(),
            Flow::plain(&mut (), STALL),
            direct_from,
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

    /// Large enough for direct I/O (where the file system takes it), with
    /// a tail that is not a multiple of its alignment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_crosses_a_stream_with_its_hash_under_direct_io() {
        crosses_a_stream(CHUNK * 3 + 4097, 0).await;
    }

    #[tokio::test]
    async fn blocks_that_arrive_in_odd_pieces_are_carried_to_alignment() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_001).map(|i| (i % 241) as u8).collect();
        let (mut a, mut b) = tokio::io::duplex(7_001);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in sent.chunks(7_001) {
                a.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let dst = File::create(d.path().join("dst")).unwrap();
        let got = recv_file_with(
            &mut b,
            &mut BytesMut::new(),
            dst,
            data.len() as u64,
            blake3::Hasher::new(),
            Flow::plain(&mut (), STALL),
            0,
        )
        .await
        .unwrap();
        writer.await.unwrap();
        let Received::Done(_, h) = got else {
            panic!("write failed")
        };
        assert_eq!(h.finalize(), blake3::hash(&data));
        assert_eq!(std::fs::read(d.path().join("dst")).unwrap(), data);
    }
}
