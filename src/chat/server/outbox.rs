//! One client's outgoing side: a bounded queue of encoded frames (shared
//! `Bytes`, one allocation per message for all recipients), a writer task
//! that takes everything queued and writes it with vectored writes, and a
//! close signal with a farewell (a `Bye`, an error line) written before the
//! socket is shut down.
//!
//! The hub never waits on a queue: a client that stops reading fills its own
//! queue and is disconnected; it never delays anyone else. The hub queues
//! with [`Outbox::push_quiet`] and wakes each writer once per batch of
//! messages ([`Outbox::wake`]), so a burst of N messages costs each client
//! one wake-up and one write instead of N: that is where fan-out spends its
//! time.
//!
//! On a plain TCP client the wake-up itself is mostly avoided: when the
//! client's writer is idle, [`Outbox::wake`] writes the queued frames to the
//! socket at once from the waking task ("write-through", one `sendmsg`), and
//! only what the socket does not take is left to the writer. At a steady
//! 1,000 messages a second to 100 clients every delivery would otherwise
//! cost a task wake-up, a trip through the scheduler and an `epoll` round,
//! as much again as the write. The writer and the write-through share the
//! socket ([`SharedTcpWrite`]) and take turns under the queue's lock, so
//! bytes never interleave.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Frames gathered into one vectored write (well under every OS's IOV_MAX).
const MAX_IOVECS: usize = 256;
/// How long the farewell (and, when asked, the queued frames) may take to
/// write before the socket is closed anyway.
const FAREWELL_DEADLINE: Duration = Duration::from_millis(500);

/// Why the queue refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client is not reading fast enough.
    Full,
    /// The client is already closing.
    Closed,
}

/// Last words to a closing client.
#[derive(Debug, Clone)]
pub struct Farewell {
    /// Written after the queue (or instead of it, see `drain`).
    pub bytes: Bytes,
    /// Whether frames already queued are written first. Not for a client
    /// being dropped for not reading: its queue is exactly what it cannot take.
    pub drain: bool,
}

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    /// Set with the close token, under the lock the hub takes anyway, so a
    /// push need not also read the token.
    closed: bool,
    /// The writer holds frames it has not finished writing: a write-through
    /// now would put bytes in the middle of them.
    writing: bool,
}

#[derive(Debug)]
struct Shared {
    /// Frames waiting for the writer; never longer than `capacity`.
    queue: Mutex<Queue>,
    /// Most frames queued at once. Each costs 32 bytes plus its share of a
    /// message that all recipients share.
    capacity: usize,
    /// Wakes the writer: frames were queued.
    work: Notify,
    /// Wakes a session waiting for room: the writer took frames.
    room: Notify,
    /// Cancelled when the client must be closed.
    close: CancellationToken,
    /// What to write before closing; the first close reason wins.
    farewell: Mutex<Option<Farewell>>,
    /// The socket, for write-through (plain TCP only; `None` under TLS,
    /// whose writes need the stream's exclusive state).
    direct: Option<Arc<OwnedWriteHalf>>,
}

/// The sending handle the hub holds for a client. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Outbox {
    /// Queues one frame and wakes the writer.
    pub fn push(&self, frame: Bytes) -> Result<(), Refused> {
        self.push_quiet(frame)?;
        self.wake();
        Ok(())
    }

    /// Queues one frame without waking the writer; returns whether the queue
    /// was empty, i.e. whether the caller must [`wake`](Self::wake) it once
    /// its batch is queued.
    pub fn push_quiet(&self, frame: Bytes) -> Result<bool, Refused> {
        let mut q = lock(&self.shared.queue);
        if q.closed {
            return Err(Refused::Closed);
        }
        if q.frames.len() >= self.shared.capacity {
            return Err(Refused::Full);
        }
        let was_empty = q.frames.is_empty();
        q.frames.push_back(frame);
        Ok(was_empty)
    }

    /// Sends what is queued: written through to the socket when the writer
    /// is idle and the socket takes it all; otherwise the writer is woken
    /// for the rest.
    pub fn wake(&self) {
        if !self.write_through() {
            self.shared.work.notify_one();
        }
    }

    /// Writes the queue to the socket from the caller's task if the writer
    /// is idle. Returns whether nothing is left for the writer to do.
    fn write_through(&self) -> bool {
        let Some(sock) = &self.shared.direct else {
            return false;
        };
        let mut q = lock(&self.shared.queue);
        if q.closed || q.writing {
            return false;
        }
        if q.frames.is_empty() {
            return true;
        }
        // The lock is held across the (non-blocking) write: the writer and
        // other write-throughs wait for it, so frames stay in order.
        // Mostly one frame (a batch is one buffer): a plain write then,
        // without building a vector of slices for it; tokio sends it with
        // send(2), which costs the kernel less than writev(2) (server CPU
        // per delivery at 100 clients x 100,000 messages: 0.023 s/M
        // against 0.027).
        let written = if let [frame] = q.frames.as_slices().0
            && q.frames.len() == 1
        {
            sock.try_write(frame)
        } else {
            let slices: Vec<IoSlice<'_>> = q
                .frames
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            sock.try_write_vectored(&slices)
        };
        let Ok(mut n) = written else {
            // WouldBlock: the writer waits for room. Any other error: the
            // writer meets it again and closes the client.
            return false;
        };
        while n > 0 {
            let head = q
                .frames
                .front_mut()
                .expect("the socket took no more than was queued");
            let take = n.min(head.len());
            head.advance(take);
            n -= take;
            if head.is_empty() {
                q.frames.pop_front();
            }
        }
        let done = q.frames.is_empty();
        drop(q);
        if !done {
            // The socket is full: the writer should wait for room, not
            // find out with another write.
            forget_writable((**sock).as_ref());
        }
        self.shared.room.notify_waiters();
        done
    }

    /// Whether two handles are the same client's.
    pub fn same(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether less than a quarter of the queue is free.
    pub fn is_low(&self) -> bool {
        self.free() < self.shared.capacity / 4
    }

    fn free(&self) -> usize {
        self.shared.capacity - lock(&self.shared.queue).frames.len()
    }

    /// Waits until at least `free` frames fit in the queue (capped at half
    /// its size). A session calls this before reading more from its client,
    /// so a client that sends faster than it reads its own copies is slowed
    /// down by TCP instead of overflowing its queue.
    pub async fn wait_for_room(&self, free: usize) {
        let free = free.clamp(1, (self.shared.capacity / 2).max(1));
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.free() >= free || self.shared.close.is_cancelled() {
                return;
            }
            room.await;
        }
    }

    /// Asks the writer to write `farewell` and close. Only the first call counts.
    pub fn close(&self, farewell: Option<Farewell>) {
        {
            let mut slot = lock(&self.shared.farewell);
            if self.shared.close.is_cancelled() {
                return;
            }
            *slot = farewell;
        }
        lock(&self.shared.queue).closed = true;
        self.shared.close.cancel();
        // A session waiting for room must not wait for a writer that stopped.
        self.shared.room.notify_waiters();
    }

    /// Whether a close was asked for.
    pub fn is_closing(&self) -> bool {
        self.shared.close.is_cancelled()
    }

    /// Resolves when a close was asked for.
    pub async fn closing(&self) {
        self.shared.close.cancelled().await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer's end, consumed by [`run_writer`].
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

impl OutboxReceiver {
    /// Takes everything queued now; the writer is busy until it comes back
    /// for more and finds nothing.
    fn take_all(&self) -> Vec<Bytes> {
        let frames: Vec<Bytes> = {
            let mut q = lock(&self.shared.queue);
            let frames: Vec<Bytes> = q.frames.drain(..).collect();
            q.writing = !frames.is_empty();
            frames
        };
        if !frames.is_empty() {
            self.shared.room.notify_waiters();
        }
        frames
    }

    /// Everything queued right now (for tests of what the hub sent).
    #[cfg(test)]
    pub fn drain_now(&mut self) -> Vec<Bytes> {
        self.take_all()
    }
}

/// A queue of `capacity` frames, for a writer of any kind (TLS, tests).
pub fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    outbox_with(capacity, None)
}

/// A queue of `capacity` frames for a plain TCP socket, with write-through;
/// the writer's end of the socket is the returned [`SharedTcpWrite`].
pub fn outbox_tcp(
    capacity: usize,
    socket: OwnedWriteHalf,
) -> (Outbox, OutboxReceiver, SharedTcpWrite) {
    let socket = Arc::new(socket);
    let (out, rx) = outbox_with(capacity, Some(socket.clone()));
    (out, rx, SharedTcpWrite(socket))
}

/// A connection's write side that can become a client's outbox and writer:
/// plain TCP gets write-through, anything else (TLS) a plain writer.
pub trait OutboxSink: AsyncWrite + Unpin + Send + 'static {
    /// What the writer task writes to.
    type Writer: AsyncWrite + Unpin + Send + 'static;
    /// The outbox, its receiver, and the writer's sink.
    fn into_outbox(self, capacity: usize) -> (Outbox, OutboxReceiver, Self::Writer);
}

impl OutboxSink for OwnedWriteHalf {
    type Writer = SharedTcpWrite;
    fn into_outbox(self, capacity: usize) -> (Outbox, OutboxReceiver, SharedTcpWrite) {
        outbox_tcp(capacity, self)
    }
}

impl<T: tokio::io::AsyncRead + AsyncWrite + Send + 'static> OutboxSink for tokio::io::WriteHalf<T> {
    type Writer = Self;
    fn into_outbox(self, capacity: usize) -> (Outbox, OutboxReceiver, Self) {
        let (out, rx) = outbox(capacity);
        (out, rx, self)
    }
}

fn outbox_with(capacity: usize, direct: Option<Arc<OwnedWriteHalf>>) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        capacity: capacity.max(1),
        work: Notify::new(),
        room: Notify::new(),
        close: CancellationToken::new(),
        farewell: Mutex::new(None),
        direct,
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        OutboxReceiver { shared },
    )
}

/// The writer's handle on a socket it shares with write-through: writes by
/// `&TcpStream` (readiness, then a non-blocking write), so the outbox can
/// hold the same socket.
#[derive(Debug)]
pub struct SharedTcpWrite(Arc<OwnedWriteHalf>);

/// Clears tokio's note that `stream` is writable (without a system call),
/// so the next write waits for the kernel to say there is room.
fn forget_writable(stream: &tokio::net::TcpStream) {
    let _ = stream.try_io(tokio::io::Interest::WRITABLE, || {
        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
    });
}

impl AsyncWrite for SharedTcpWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let stream: &tokio::net::TcpStream = (*self.0).as_ref();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Ok(n) if n < buf.len() => {
                    forget_writable(stream);
                    return Poll::Ready(Ok(n));
                }
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let stream: &tokio::net::TcpStream = (*self.0).as_ref();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Ok(n) if n < bufs.iter().map(|b| b.len()).sum() => {
                    // As tokio's own TcpStream does: a short write means a
                    // full socket.
                    forget_writable(stream);
                    return Poll::Ready(Ok(n));
                }
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let stream: &tokio::net::TcpStream = (*self.0).as_ref();
        Poll::Ready(socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write))
    }
}

/// Writes queued frames to `sink` until closed or the socket fails; then the
/// farewell, then shuts the write side down. Returns the write error, if any.
///
/// A close that arrives while a batch is being written lets the batch finish
/// (within the farewell deadline) when it asks for a drain; otherwise the
/// batch is abandoned, and since the stream may then end inside a frame, no
/// farewell follows it.
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut sink: W,
    q: OutboxReceiver,
) -> std::io::Result<()> {
    let shared = q.shared.clone();
    let at_boundary = loop {
        let frames = q.take_all();
        if frames.is_empty() {
            tokio::select! {
                biased;
                _ = shared.close.cancelled() => break true,
                _ = shared.work.notified() => continue,
            }
        }
        let batch = write_frames(&mut sink, frames);
        tokio::pin!(batch);
        let outcome = tokio::select! {
            biased;
            r = &mut batch => Some(r),
            _ = shared.close.cancelled() => None,
        };
        match outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                lock(&shared.queue).closed = true;
                shared.close.cancel();
                shared.room.notify_waiters();
                return Err(e);
            }
            None if wants_drain(&shared.farewell) => {
                let finished = tokio::time::timeout(FAREWELL_DEADLINE, batch).await;
                break matches!(finished, Ok(Ok(())));
            }
            None => break false,
        }
    };
    let farewell = lock(&shared.farewell).take().filter(|_| at_boundary);
    let _ = tokio::time::timeout(FAREWELL_DEADLINE, async {
        if let Some(f) = farewell {
            if f.drain {
                write_frames(&mut sink, q.take_all()).await?;
            }
            sink.write_all(&f.bytes).await?;
        }
        sink.flush().await?;
        sink.shutdown().await
    })
    .await;
    Ok(())
}

/// Whether the close asked for queued frames to be written first.
fn wants_drain(farewell: &Mutex<Option<Farewell>>) -> bool {
    lock(farewell).as_ref().is_some_and(|f| f.drain)
}

/// Writes `frames` with vectored writes: no copy, and no buffer kept between
/// batches (an idle client costs no write buffer at all, which matters at
/// 10,000 clients).
async fn write_frames<W: AsyncWrite + Unpin>(
    sink: &mut W,
    mut frames: Vec<Bytes>,
) -> std::io::Result<()> {
    // Index of the first frame not yet fully written.
    let mut done = 0;
    while done < frames.len() {
        // One frame left: a plain write (send(2) is cheaper than writev(2)
        // on a socket, and no vector of slices is built for it).
        let mut n = if let [frame] = &frames[done..] {
            sink.write(frame).await?
        } else {
            let slices: Vec<IoSlice<'_>> = frames[done..]
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            sink.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let head = &mut frames[done];
            let take = n.min(head.len());
            head.advance(take);
            n -= take;
            if head.is_empty() {
                done += 1;
            }
        }
    }
    sink.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn queued_frames_then_farewell_are_written_in_order() {
        let (ob, rx) = outbox(8);
        let (a, mut b) = tokio::io::duplex(1024);
        let writer = tokio::spawn(run_writer(a, rx));
        ob.push(Bytes::from_static(b"one ")).unwrap();
        ob.push(Bytes::from_static(b"two ")).unwrap();
        ob.close(Some(Farewell {
            bytes: Bytes::from_static(b"bye"),
            drain: true,
        }));
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, b"one two bye");
    }

    #[tokio::test]
    async fn partial_writes_keep_every_byte_in_order() {
        let (ob, rx) = outbox(512);
        let (a, mut b) = tokio::io::duplex(7); // forces many short writes
        let writer = tokio::spawn(run_writer(a, rx));
        let mut want = Vec::new();
        for i in 0..300u32 {
            let frame: Vec<u8> = (0..(i % 23 + 1)).map(|j| (i + j) as u8).collect();
            want.extend_from_slice(&frame);
            ob.push(Bytes::from(frame)).unwrap();
        }
        ob.close(Some(Farewell {
            bytes: Bytes::from_static(b"!"),
            drain: true,
        }));
        want.push(b'!');
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn draining_close_mid_batch_loses_nothing() {
        let (ob, rx) = outbox(64);
        let (a, mut b) = tokio::io::duplex(8);
        let writer = tokio::spawn(run_writer(a, rx));
        for _ in 0..50 {
            ob.push(Bytes::from_static(b"0123456789")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // writer blocked mid-batch
        ob.close(Some(Farewell {
            bytes: Bytes::from_static(b"BYE"),
            drain: true,
        }));
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        let mut want = b"0123456789".repeat(50);
        want.extend_from_slice(b"BYE");
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn abandoned_batch_gets_no_farewell_glued_to_a_partial_frame() {
        let (ob, rx) = outbox(64);
        let (a, mut b) = tokio::io::duplex(8);
        let writer = tokio::spawn(run_writer(a, rx));
        ob.push(Bytes::from(vec![b'x'; 100])).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        ob.close(Some(Farewell {
            bytes: Bytes::from_static(b"ERR"),
            drain: false,
        }));
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert!(got.iter().all(|&c| c == b'x') && got.len() < 100, "{got:?}");
    }

    /// A connected loopback pair: our write half, the peer's stream.
    async fn tcp_pair() -> (
        OwnedWriteHalf,
        tokio::net::tcp::OwnedReadHalf,
        tokio::net::TcpStream,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (rd, wr) = ours.unwrap().into_split();
        (wr, rd, theirs.unwrap().0)
    }

    #[tokio::test]
    async fn an_idle_writer_is_bypassed_by_write_through() {
        let (wr, _rd, mut peer) = tcp_pair().await;
        // No writer task runs: only write-through can deliver these.
        let (ob, _rx, _sink) = outbox_tcp(8, wr);
        assert!(ob.push_quiet(Bytes::from_static(b"one ")).unwrap());
        assert!(!ob.push_quiet(Bytes::from_static(b"two")).unwrap());
        ob.wake();
        let mut got = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got))
            .await
            .expect("written through without a writer")
            .unwrap();
        assert_eq!(&got, b"one two");
        assert_eq!(ob.free(), 8, "the queue is empty again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_through_and_writer_keep_bytes_in_order_on_a_full_socket() {
        let (wr, _rd, mut peer) = tcp_pair().await;
        let (ob, rx, sink) = outbox_tcp(100_000, wr);
        let writer = tokio::spawn(run_writer(sink, rx));
        // The peer reads all along, so the socket keeps filling and
        // draining: write-throughs are short or refused now and then, and
        // the writer takes over while new frames keep coming.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 7919];
            loop {
                match peer.read(&mut chunk).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&chunk[..n]),
                }
            }
        });
        let mut want = Vec::new();
        for i in 0..20_000u32 {
            let frame: Vec<u8> = (0..(i % 3001 + 1)).map(|j| (i * 7 + j) as u8).collect();
            want.extend_from_slice(&frame);
            ob.push(Bytes::from(frame)).unwrap();
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        ob.close(Some(Farewell {
            bytes: Bytes::from_static(b"END"),
            drain: true,
        }));
        want.extend_from_slice(b"END");
        let got = tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .expect("everything arrives")
            .unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order");
    }

    #[tokio::test]
    async fn no_write_through_while_the_writer_holds_frames() {
        let (wr, _rd, mut peer) = tcp_pair().await;
        let (ob, rx, _sink) = outbox_tcp(8, wr);
        ob.push_quiet(Bytes::from_static(b"A")).unwrap();
        // As the writer does: it now holds A and has not written it yet.
        assert_eq!(rx.take_all().len(), 1);
        ob.push_quiet(Bytes::from_static(b"B")).unwrap();
        ob.wake();
        assert_eq!(ob.free(), 7, "B waits for the writer, behind A");
        // The writer finishes A, takes B, finishes it, and finds nothing.
        assert_eq!(rx.take_all().len(), 1);
        assert!(rx.take_all().is_empty());
        ob.push_quiet(Bytes::from_static(b"C")).unwrap();
        ob.wake();
        assert_eq!(ob.free(), 8, "an idle writer is bypassed again");
        let mut got = [0u8; 1];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"C");
    }

    #[tokio::test]
    async fn full_queue_is_refused_not_waited_for() {
        let (ob, _rx) = outbox(2);
        ob.push(Bytes::from_static(b"a")).unwrap();
        ob.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(ob.push(Bytes::from_static(b"c")), Err(Refused::Full));
        ob.close(None);
        assert_eq!(ob.push(Bytes::from_static(b"d")), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn close_interrupts_a_write_to_a_reader_that_never_reads() {
        let (ob, rx) = outbox(8);
        let (a, _b) = tokio::io::duplex(16); // nobody reads `_b`
        let writer = tokio::spawn(run_writer(a, rx));
        ob.push(Bytes::from(vec![0u8; 1000])).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        ob.close(None);
        tokio::time::timeout(Duration::from_secs(2), writer)
            .await
            .expect("writer stops after close")
            .unwrap()
            .unwrap();
    }
}
