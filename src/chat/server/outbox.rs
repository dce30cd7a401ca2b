//! One client's outgoing side: a bounded queue of encoded frames (shared
//! `Bytes`, one allocation per message for all recipients), a writer task
//! that drains whatever is queued and writes it with one syscall, and a close
//! signal with a farewell (a `Bye`, an error line) written before the socket
//! is shut down.
//!
//! The hub only ever `try_send`s into the queue, so a client that stops
//! reading fills its own queue and is disconnected; it never delays anyone
//! else.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
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

/// The sending handle the hub holds for a client. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Encoded frames (or raw text lines) waiting for the writer.
    tx: mpsc::Sender<Bytes>,
    /// Cancelled when the client must be closed.
    close: CancellationToken,
    /// What to write before closing; the first close reason wins.
    farewell: Arc<Mutex<Option<Farewell>>>,
}

impl Outbox {
    /// Queues one frame without waiting.
    pub fn push(&self, frame: Bytes) -> Result<(), Refused> {
        if self.close.is_cancelled() {
            return Err(Refused::Closed);
        }
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })
    }

    /// Whether less than a quarter of the queue is free.
    pub fn is_low(&self) -> bool {
        self.tx.capacity() < self.tx.max_capacity() / 4
    }

    /// Waits until at least `free` frames fit in the queue (capped at half
    /// its size). A session calls this before reading more from its client,
    /// so a client that sends faster than it reads its own copies is slowed
    /// down by TCP instead of overflowing its queue.
    pub async fn wait_for_room(&self, free: usize) {
        let free = free.clamp(1, (self.tx.max_capacity() / 2).max(1));
        if self.tx.capacity() >= free {
            return;
        }
        // Permits are returned at once; only the waiting matters.
        let _ = self.tx.reserve_many(free).await;
    }

    /// Asks the writer to write `farewell` and close. Only the first call counts.
    pub fn close(&self, farewell: Option<Farewell>) {
        {
            let mut slot = self.farewell.lock().unwrap_or_else(|e| e.into_inner());
            if self.close.is_cancelled() {
                return;
            }
            *slot = farewell;
        }
        self.close.cancel();
    }

    /// Whether a close was asked for.
    pub fn is_closing(&self) -> bool {
        self.close.is_cancelled()
    }

    /// Resolves when a close was asked for.
    pub async fn closing(&self) {
        self.close.cancelled().await
    }
}

/// The receiving end, consumed by [`run_writer`].
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Bytes>,
    close: CancellationToken,
    farewell: Arc<Mutex<Option<Farewell>>>,
}

impl OutboxReceiver {
    /// Everything queued right now (for tests of what the hub sent).
    #[cfg(test)]
    pub fn drain_now(&mut self) -> Vec<Bytes> {
        std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
    }
}

/// A queue of `capacity` frames.
pub fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    let close = CancellationToken::new();
    let farewell = Arc::new(Mutex::new(None));
    (
        Outbox {
            tx,
            close: close.clone(),
            farewell: farewell.clone(),
        },
        OutboxReceiver {
            rx,
            close,
            farewell,
        },
    )
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
    mut q: OutboxReceiver,
) -> std::io::Result<()> {
    let at_boundary = loop {
        let first = tokio::select! {
            biased;
            _ = q.close.cancelled() => break true,
            f = q.rx.recv() => match f {
                Some(f) => f,
                None => break true,
            },
        };
        let batch = write_batch(&mut sink, &mut q.rx, first);
        tokio::pin!(batch);
        let outcome = tokio::select! {
            biased;
            r = &mut batch => Some(r),
            _ = q.close.cancelled() => None,
        };
        match outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                q.close.cancel();
                return Err(e);
            }
            None if wants_drain(&q.farewell) => {
                let finished = tokio::time::timeout(FAREWELL_DEADLINE, batch).await;
                break matches!(finished, Ok(Ok(())));
            }
            None => break false,
        }
    };
    let farewell = q
        .farewell
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .filter(|_| at_boundary);
    let _ = tokio::time::timeout(FAREWELL_DEADLINE, async {
        if let Some(f) = farewell {
            if f.drain {
                while let Ok(frame) = q.rx.try_recv() {
                    sink.write_all(&frame).await?;
                }
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
    farewell
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|f| f.drain)
}

/// Writes `first` and whatever else is already queued with vectored writes:
/// no copy, and no buffer kept between batches (an idle client costs no
/// write buffer at all, which matters at 10,000 clients).
async fn write_batch<W: AsyncWrite + Unpin>(
    sink: &mut W,
    rx: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
) -> std::io::Result<()> {
    let mut pending: Vec<Bytes> = vec![first];
    // Index of the first frame not yet fully written.
    let mut done = 0;
    loop {
        while pending.len() - done < MAX_IOVECS {
            match rx.try_recv() {
                Ok(f) => pending.push(f),
                Err(_) => break,
            }
        }
        if done == pending.len() {
            break;
        }
        let slices: Vec<IoSlice<'_>> = pending[done..]
            .iter()
            .take(MAX_IOVECS)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = sink.write_vectored(&slices).await?;
        drop(slices);
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let head = &mut pending[done];
            let take = n.min(head.len());
            head.advance(take);
            n -= take;
            if head.is_empty() {
                done += 1;
            }
        }
        if done == pending.len() {
            pending.clear();
            done = 0;
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
