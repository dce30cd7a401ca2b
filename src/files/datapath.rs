//! How a streamed file's bytes move between the file and a plain TCP socket
//! (`--data-path`). `read-write`, the default, moves them through a block in
//! user space (`transfer`, `receive`): read or receive 1 MiB, hash it, send
//! or write it. The kernel paths never copy the bytes out to us: `splice`
//! moves them through a pipe (file -> pipe -> socket when sending, socket
//! -> pipe -> file when receiving) and `sendfile` (sending only) from the
//! file straight into the socket. Every byte is still hashed: a receiver,
//! and a sender that does not know the file's hash yet, read each block
//! back from the page cache it is in (`pread`) to hash it.
//!
//! Why read-write is the default: on loopback here the kernel paths cost
//! the *receiver* more than they save the sender, because a segment built
//! from page-cache pages reaches it as many 4 KiB fragments rather than one
//! linear buffer. A 1 GiB file from tmpfs to a receiver writing to tmpfs
//! (three rounds, taking turns, memory warmed): sender `read`/`write`
//! 0.33-0.48 s of CPU and 0.64-0.73 s in all, `sendfile` 0.16-0.23 s and
//! 0.93-1.18 s, `splice` 0.16-0.27 s and 0.88-1.10 s; a receiver splicing
//! into the file and hashing what it wrote took as long as one that
//! received into a buffer (0.89-0.99 s against 0.74-0.93 s). Across a real
//! link, where the network is the limit and the sender's CPU may be a small
//! board's, `sendfile` can be the better choice: hence the switch, and
//! `scripts/bench-files.py`, which measures every path.
//!
//! The secure channel encrypts in user space, so its transfers always take
//! read-write. Linux only; elsewhere every path is read-write.

#[cfg(target_os = "linux")]
use std::time::Duration;

/// How a streamed file's bytes move between file and socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DataPath {
    /// Through a 1 MiB buffer in user space, hashed as it passes.
    #[default]
    ReadWrite,
    /// Through a pipe, inside the kernel (send and receive).
    Splice,
    /// From the file straight into the socket (send only; receiving takes
    /// read-write).
    Sendfile,
}

impl DataPath {
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadWrite => "read-write",
            Self::Splice => "splice",
            Self::Sendfile => "sendfile",
        }
    }
}

/// A plain TCP socket the kernel may move file bytes to or from, and how.
/// Holds its own descriptor of the socket (a duplicate), so a blocking
/// thread still moving a block when its transfer is dropped never touches
/// a descriptor number that has since been reused.
#[derive(Debug, Clone)]
pub struct KernelPath {
    #[cfg(target_os = "linux")]
    socket: std::sync::Arc<std::os::fd::OwnedFd>,
    path: DataPath,
}

impl KernelPath {
    /// The kernel path `path` names on `socket`; `None` for read-write,
    /// on systems other than Linux, and if the descriptor cannot be
    /// duplicated (then read-write, with a warning).
    #[cfg(target_os = "linux")]
    pub fn new(socket: &impl std::os::fd::AsFd, path: DataPath) -> Option<Self> {
        if path == DataPath::ReadWrite {
            return None;
        }
        match socket.as_fd().try_clone_to_owned() {
            Ok(fd) => Some(Self {
                socket: std::sync::Arc::new(fd),
                path,
            }),
            Err(e) => {
                tracing::warn!("--data-path {}: {e}; using read-write", path.name());
                None
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new<T>(_socket: &T, path: DataPath) -> Option<Self> {
        if path != DataPath::ReadWrite {
            tracing::warn!(
                "--data-path {} works on Linux only: using read-write",
                path.name()
            );
        }
        None
    }

    /// Whether received bytes take this path (`sendfile` only sends).
    pub fn receives(&self) -> bool {
        self.path == DataPath::Splice
    }

    pub fn path(&self) -> DataPath {
        self.path
    }
}

/// Longest a received block waits to fill once it has some bytes (as the
/// read-write path's `FILL_WAIT`: on a slow link the partial file keeps up).
#[cfg(target_os = "linux")]
const FILL_WAIT: Duration = Duration::from_millis(50);

/// How often a blocking thread waiting on the socket looks whether its
/// transfer was dropped (Ctrl-C, a session closed): a dropped transfer
/// frees its thread within this.
#[cfg(target_os = "linux")]
const CANCEL_CHECK: Duration = Duration::from_millis(100);

#[cfg(target_os = "linux")]
pub(super) use linux::{Link, Pipe, recv_block, send_block};

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use rustix::event::{PollFd, PollFlags};
    use rustix::pipe::SpliceFlags;

    use super::super::pagebuf::PageBuf;
    use super::super::transfer::CHUNK;
    use super::{CANCEL_CHECK, DataPath, FILL_WAIT, KernelPath};

    /// One transfer's use of a kernel path, shared with the blocking
    /// threads that move its blocks; dropping the transfer's [`Link`]
    /// (the one made by `new`) tells them to stop.
    pub struct Link {
        socket: Arc<OwnedFd>,
        path: DataPath,
        /// Longest the socket may make no progress.
        stall: Duration,
        dropped: Arc<AtomicBool>,
        owner: bool,
    }

    impl Link {
        pub fn new(k: &KernelPath, stall: Duration) -> Self {
            Self {
                socket: k.socket.clone(),
                path: k.path,
                stall,
                dropped: Arc::new(AtomicBool::new(false)),
                owner: true,
            }
        }

        /// A copy for a blocking thread (dropping it stops nothing).
        pub fn worker(&self) -> Self {
            Self {
                socket: self.socket.clone(),
                path: self.path,
                stall: self.stall,
                dropped: self.dropped.clone(),
                owner: false,
            }
        }

        fn socket(&self) -> BorrowedFd<'_> {
            self.socket.as_fd()
        }

        /// Waits until the socket is ready for `events`, at most `limit`:
        /// whether it is. An error if the transfer was dropped meanwhile.
        fn wait(&self, events: PollFlags, limit: Duration) -> io::Result<bool> {
            let until = Instant::now() + limit;
            loop {
                if self.dropped.load(Ordering::Relaxed) {
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "the transfer was stopped",
                    ));
                }
                let now = Instant::now();
                if now >= until {
                    // One last look without waiting.
                    return poll_once(self.socket(), events, Duration::ZERO);
                }
                if poll_once(self.socket(), events, (until - now).min(CANCEL_CHECK))? {
                    return Ok(true);
                }
            }
        }

        /// Runs `op` until it does not fail with "would block" or
        /// "interrupted", waiting (at most `stall`) for the socket to be
        /// ready for `events` before each retry.
        fn on_ready<T>(
            &self,
            events: PollFlags,
            mut op: impl FnMut() -> rustix::io::Result<T>,
        ) -> io::Result<T> {
            loop {
                match op() {
                    Ok(v) => return Ok(v),
                    Err(rustix::io::Errno::AGAIN) => {
                        if !self.wait(events, self.stall)? {
                            return Err(no_progress(self.stall));
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    impl Drop for Link {
        fn drop(&mut self) {
            if self.owner {
                self.dropped.store(true, Ordering::Relaxed);
            }
        }
    }

    fn poll_once(socket: BorrowedFd<'_>, events: PollFlags, limit: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::from_borrowed_fd(socket, events)];
        let t = rustix::event::Timespec::try_from(limit).expect("a short wait fits a timespec");
        loop {
            match rustix::event::poll(&mut fds, Some(&t)) {
                Ok(n) => return Ok(n > 0),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The pipe a splice goes through, as large as a block when the system
    /// allows it (fewer, larger splices), and what it holds now.
    pub struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
        capacity: usize,
        held: usize,
    }

    impl Pipe {
        pub fn new() -> io::Result<Self> {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            // Over the user's pipe allowance this fails; the default
            // (64 KiB) still works, in more splices.
            let _ = rustix::pipe::fcntl_setpipe_size(&write, CHUNK);
            let capacity = rustix::pipe::fcntl_getpipe_size(&write)?;
            Ok(Self {
                read,
                write,
                capacity,
                held: 0,
            })
        }
    }

    fn no_progress(stall: Duration) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no progress for {}s", stall.as_secs()),
        )
    }

    fn shrank() -> io::Error {
        io::Error::other("the file shrank while it was being sent")
    }

    /// Hashes `n` bytes of `file` at `at`, read back into `buf`.
    fn hash_back(
        file: &File,
        at: u64,
        n: usize,
        buf: &mut PageBuf,
        hasher: &mut blake3::Hasher,
    ) -> io::Result<()> {
        if buf.capacity() < n {
            *buf = PageBuf::with_capacity(n);
        }
        buf.clear();
        file.read_exact_at(buf.room(n), at).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                shrank()
            } else {
                e
            }
        })?;
        buf.advance(n);
        hasher.update(buf.filled());
        Ok(())
    }

    /// Sends `n` bytes of `file` from `at` on the kernel path, hashing
    /// them first (read back into `buf`) when there is a hasher. Blocks:
    /// runs on a blocking thread.
    pub fn send_block(
        link: &Link,
        file: &File,
        at: u64,
        n: usize,
        hasher: Option<&mut blake3::Hasher>,
        buf: &mut PageBuf,
        pipe: &mut Option<Pipe>,
    ) -> io::Result<()> {
        if let Some(h) = hasher {
            hash_back(file, at, n, buf, h)?;
        }
        let end = at + n as u64;
        match link.path {
            DataPath::Splice => {
                let p = match pipe {
                    Some(p) => p,
                    None => pipe.insert(Pipe::new()?),
                };
                splice_out(link, file, at, end, p)
            }
            DataPath::Sendfile | DataPath::ReadWrite => sendfile_out(link, file, at, end),
        }
    }

    fn sendfile_out(link: &Link, file: &File, mut off: u64, end: u64) -> io::Result<()> {
        let socket = link.socket();
        while off < end {
            let left = (end - off) as usize;
            let sent = link.on_ready(PollFlags::OUT, || {
                rustix::fs::sendfile(socket, file, Some(&mut off), left)
            })?;
            if sent == 0 {
                return Err(shrank());
            }
        }
        Ok(())
    }

    fn splice_out(
        link: &Link,
        file: &File,
        mut off: u64,
        end: u64,
        pipe: &mut Pipe,
    ) -> io::Result<()> {
        let socket = link.socket();
        while off < end || pipe.held > 0 {
            if pipe.held == 0 {
                let want = ((end - off) as usize).min(pipe.capacity);
                let moved = link.on_ready(PollFlags::OUT, || {
                    rustix::pipe::splice(
                        file,
                        Some(&mut off),
                        &pipe.write,
                        None,
                        want,
                        SpliceFlags::MOVE,
                    )
                })?;
                if moved == 0 {
                    return Err(shrank());
                }
                pipe.held = moved;
            }
            let held = pipe.held;
            let sent = link.on_ready(PollFlags::OUT, || {
                rustix::pipe::splice(
                    &pipe.read,
                    None,
                    socket,
                    None,
                    held,
                    SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
                )
            })?;
            pipe.held -= sent;
        }
        Ok(())
    }

    /// What one received block did.
    pub struct Moved {
        /// Bytes taken from the socket (all of them written, unless `write`
        /// failed: then they are lost, as the read-write path's are).
        pub got: usize,
        /// Whether writing them into the file (and hashing them) worked.
        pub write: io::Result<()>,
    }

    /// Moves up to `want` bytes from the socket into `file` (at its
    /// position) through `pipe`: at least one, then whatever arrives
    /// within `FILL_WAIT`. Hashes them, read back into `buf`. `written`
    /// counts the bytes before them (for the full-disk test hook). A
    /// network failure is an `Err`. Blocks: runs on a blocking thread.
    pub fn recv_block(
        link: &Link,
        file: &File,
        want: usize,
        buf: &mut PageBuf,
        pipe: &mut Pipe,
        hasher: &mut blake3::Hasher,
        written: u64,
    ) -> io::Result<Moved> {
        let socket = link.socket();
        let want = want.min(pipe.capacity);
        let mut deadline = None;
        while pipe.held < want {
            match rustix::pipe::splice(
                socket,
                None,
                &pipe.write,
                None,
                want - pipe.held,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            ) {
                Ok(0) => {
                    if pipe.held == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    break;
                }
                Ok(n) => pipe.held += n,
                Err(rustix::io::Errno::AGAIN) => {
                    if pipe.held == 0 {
                        if !link.wait(PollFlags::IN, link.stall)? {
                            return Err(no_progress(link.stall));
                        }
                        continue;
                    }
                    // A pipe holds a fixed number of pieces, not bytes: a
                    // segment that arrived in small fragments fills it
                    // before `capacity`. Then the socket is still readable
                    // and the splice still would block: write what it has.
                    if poll_once(socket, PollFlags::IN, Duration::ZERO)? {
                        break;
                    }
                    let d = *deadline.get_or_insert_with(|| Instant::now() + FILL_WAIT);
                    let limit = d.saturating_duration_since(Instant::now());
                    if limit.is_zero() || !link.wait(PollFlags::IN, limit)? {
                        break;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let got = pipe.held;
        let write = write_from_pipe(file, pipe, written, buf, hasher);
        // Whatever a failed write left in the pipe is dropped: those bytes
        // are gone from the socket either way.
        if write.is_err() {
            *pipe = Pipe::new()?;
        }
        Ok(Moved { got, write })
    }

    /// Splices all `pipe` holds into `file` at its position, then hashes it.
    fn write_from_pipe(
        mut file: &File,
        pipe: &mut Pipe,
        written: u64,
        buf: &mut PageBuf,
        hasher: &mut blake3::Hasher,
    ) -> io::Result<()> {
        use std::io::Seek;
        let n = pipe.held;
        super::super::receive::simulated_full_disk(written, n)?;
        let at = file.stream_position()?;
        let mut off = at;
        while pipe.held > 0 {
            match rustix::pipe::splice(
                &pipe.read,
                None,
                file.as_fd(),
                Some(&mut off),
                pipe.held,
                SpliceFlags::MOVE,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => pipe.held -= k,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        file.seek(io::SeekFrom::Start(off))?;
        super::super::receive::start_writeback(file, at, n as u64);
        hash_back(file, at, n, buf, hasher)
    }
}

#[cfg(all(test, target_os = "linux"))]
#[path = "datapath_tests.rs"]
mod tests;
