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

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Bytes the writer gathers into one write before it flushes.
const BATCH_BYTES: usize = 64 * 1024;
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
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut sink: W,
    mut q: OutboxReceiver,
) -> std::io::Result<()> {
    let mut batch = BytesMut::with_capacity(BATCH_BYTES);
    let result = loop {
        let first = tokio::select! {
            biased;
            _ = q.close.cancelled() => break Ok(()),
            f = q.rx.recv() => match f {
                Some(f) => f,
                None => break Ok(()),
            },
        };
        let written = write_batch(&mut sink, &mut q.rx, first, &mut batch);
        let r = tokio::select! {
            biased;
            // A close while blocked on a client that does not read.
            _ = q.close.cancelled() => break Ok(()),
            r = written => r,
        };
        if let Err(e) = r {
            q.close.cancel();
            break Err(e);
        }
    };
    if result.is_ok() {
        let farewell = q.farewell.lock().unwrap_or_else(|e| e.into_inner()).take();
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
    }
    result
}

/// Writes `first` and whatever else is already queued, in as few writes as
/// possible: small frames are gathered, a large one goes out on its own.
async fn write_batch<W: AsyncWrite + Unpin>(
    sink: &mut W,
    rx: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
    batch: &mut BytesMut,
) -> std::io::Result<()> {
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        if batch.is_empty() && frame.len() >= BATCH_BYTES {
            sink.write_all(&frame).await?;
        } else {
            batch.extend_from_slice(&frame);
        }
        if batch.len() >= BATCH_BYTES {
            sink.write_all(batch).await?;
            batch.clear();
        }
        next = rx.try_recv().ok();
    }
    if !batch.is_empty() {
        sink.write_all(batch).await?;
        batch.clear();
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
