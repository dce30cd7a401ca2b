//! The write half of a plain TCP client, shared by its writer task and the
//! fan-out's fast path. When the hub has queued frames for a client whose
//! writer is idle, the thread that applied the batch writes them at once
//! with one non-blocking `writev` ([`DirectWriter::try_write_vectored`])
//! instead of waking the writer task to do the same: at 100 recipients that
//! is 100 task wake-ups and polls saved per batch. Whatever the socket does
//! not take stays queued for the writer, which waits for the socket to be
//! writable (the [`AsyncWrite`] impl). Secure clients have no fast path:
//! their bytes must pass through TLS in the writer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

/// A client's write half; clones share it.
#[derive(Debug, Clone)]
pub struct DirectWriter(Arc<OwnedWriteHalf>);

impl DirectWriter {
    pub fn new(half: OwnedWriteHalf) -> Self {
        Self(Arc::new(half))
    }

    fn stream(&self) -> &TcpStream {
        (*self.0).as_ref()
    }

    /// Writes what the socket takes now, without waiting; `WouldBlock` when
    /// it takes nothing.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream().try_write_vectored(bufs)
    }
}

impl AsyncWrite for DirectWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Tokio's readiness pattern: a `WouldBlock` clears the readiness,
        // so the next poll registers the waker instead of spinning.
        loop {
            ready!(self.stream().poll_write_ready(cx))?;
            match self.stream().try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let sock = socket2::SockRef::from(self.stream());
        Poll::Ready(match sock.shutdown(std::net::Shutdown::Write) {
            // Already gone: nothing left to shut.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn both_paths_write_to_the_same_socket_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (server, _) = listener.accept().await.unwrap();
        let mut client = client.await.unwrap();
        let (_rd, wr) = server.into_split();
        let direct = DirectWriter::new(wr);
        let mut writer = direct.clone();
        let n = direct
            .try_write_vectored(&[IoSlice::new(b"fast "), IoSlice::new(b"path ")])
            .unwrap();
        assert_eq!(n, 10);
        writer.write_all(b"then the writer").await.unwrap();
        writer.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut got),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, b"fast path then the writer");
    }
}
