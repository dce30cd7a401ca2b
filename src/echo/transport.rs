//! How one probe travels: over a TCP connection (write the probe, read until
//! as many bytes came back, however the stream splits them) or as one UDP
//! datagram (wait for the datagram that answers it, ignore the others).
//!
//! Both report an [`Outcome`] per probe and keep an error only for what ends
//! the run (the server closed the connection, the socket failed).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::EchoError;
use super::probe;
use super::stats::Outcome;

/// Most bytes taken from the TCP stream per read.
const TCP_READ: usize = 64 * 1024;

/// Room for any UDP datagram.
const UDP_READ: usize = 65_536;

/// A probe's fate plus the size of the reply, for the per-probe line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    pub outcome: Outcome,
    /// Bytes of the reply that decided the outcome (0 when none came).
    pub reply_len: usize,
}

impl Answer {
    fn none(outcome: Outcome) -> Self {
        Answer {
            outcome,
            reply_len: 0,
        }
    }
}

/// Probes over one TCP connection.
///
/// A probe that times out may still be answered later; its echo then
/// arrives ahead of the next probe's. `owed` counts those late bytes so they
/// are skipped and the stream stays in step with the probes.
pub struct TcpProber {
    /// The connection to the echo server.
    stream: TcpStream,
    /// The server's address, for error messages.
    peer: SocketAddr,
    /// Echo bytes of timed-out probes still to come and be skipped.
    owed: u64,
    /// Read buffer, reused across probes.
    scratch: Vec<u8>,
}

impl TcpProber {
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        TcpProber {
            stream,
            peer,
            owed: 0,
            scratch: vec![0; TCP_READ],
        }
    }

    /// Sends probe `seq` of `size` bytes and waits (≤ `timeout`) for its echo.
    /// Writing and reading run together, so a probe larger than the socket
    /// buffers cannot deadlock against a server that echoes as it reads.
    pub async fn probe(
        &mut self,
        seq: u32,
        size: usize,
        timeout: Duration,
    ) -> Result<Answer, EchoError> {
        let payload = probe::payload(seq, size);
        let start = Instant::now();
        let deadline = start + timeout;
        let (mut written, mut reply) = (0usize, Vec::with_capacity(size));
        let (mut rd, mut wr) = self.stream.split();
        while reply.len() < size {
            let owed_now = usize::try_from(self.owed).unwrap_or(usize::MAX);
            let want = owed_now
                .saturating_add(size - reply.len())
                .min(self.scratch.len());
            tokio::select! {
                w = wr.write(&payload[written..]), if written < size => match w {
                    Ok(0) => return Err(EchoError::Closed(self.peer)),
                    Ok(n) => written += n,
                    Err(e) => return Err(io_failure(self.peer, e)),
                },
                r = rd.read(&mut self.scratch[..want]) => match r {
                    Ok(0) => return Err(EchoError::Closed(self.peer)),
                    Ok(n) => {
                        let skip = owed_now.min(n);
                        self.owed -= skip as u64;
                        reply.extend_from_slice(&self.scratch[skip..n]);
                    }
                    Err(e) => return Err(io_failure(self.peer, e)),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.owed += (written - reply.len()) as u64;
                    return Ok(Answer::none(Outcome::Lost));
                }
            }
        }
        let outcome = if reply == payload {
            Outcome::Reply(start.elapsed())
        } else {
            Outcome::Differs
        };
        Ok(Answer {
            outcome,
            reply_len: reply.len(),
        })
    }
}

/// Probes as datagrams from one connected UDP socket (so only the server's
/// datagrams reach it).
pub struct UdpProber {
    /// Socket connected to the echo server.
    socket: UdpSocket,
    /// The server's address, for error messages.
    peer: SocketAddr,
    /// Receive buffer, reused across probes.
    buf: Vec<u8>,
}

impl UdpProber {
    /// Binds an ephemeral port of `peer`'s family and connects it to `peer`.
    pub async fn connect(peer: SocketAddr) -> Result<Self, EchoError> {
        let local: SocketAddr = if peer.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal address")
        } else {
            "[::]:0".parse().expect("literal address")
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| io_failure(peer, e))?;
        socket
            .connect(peer)
            .await
            .map_err(|e| io_failure(peer, e))?;
        Ok(UdpProber {
            socket,
            peer,
            buf: vec![0; UDP_READ],
        })
    }

    /// Sends probe `seq` as one datagram and waits (≤ `timeout`) for the
    /// datagram answering it. Replies to earlier probes (late) and datagrams
    /// that are not replies are skipped; a reply that names this probe but
    /// holds other bytes (truncated by the server, say) differs.
    pub async fn probe(
        &mut self,
        seq: u32,
        size: usize,
        timeout: Duration,
    ) -> Result<Answer, EchoError> {
        let payload = probe::payload(seq, size);
        let start = Instant::now();
        let deadline = start + timeout;
        match self.socket.send(&payload).await {
            Ok(_) => {}
            Err(e) if is_unreachable(&e) => return Ok(Answer::none(Outcome::Unreachable)),
            Err(e) => return Err(io_failure(self.peer, e)),
        }
        loop {
            let received = tokio::select! {
                r = self.socket.recv(&mut self.buf) => r,
                _ = tokio::time::sleep_until(deadline) => return Ok(Answer::none(Outcome::Lost)),
            };
            let n = match received {
                Ok(n) => n,
                Err(e) if is_unreachable(&e) => return Ok(Answer::none(Outcome::Unreachable)),
                Err(e) => return Err(io_failure(self.peer, e)),
            };
            let reply = &self.buf[..n];
            if reply == payload.as_slice() {
                return Ok(Answer {
                    outcome: Outcome::Reply(start.elapsed()),
                    reply_len: n,
                });
            }
            match probe::seq_of(reply) {
                Some(s) if s == seq => {
                    return Ok(Answer {
                        outcome: Outcome::Differs,
                        reply_len: n,
                    });
                }
                Some(s) if s < seq => tracing::debug!("late reply to seq={s} ignored"),
                _ => tracing::debug!("stray {n}-byte datagram ignored"),
            }
        }
    }
}

/// ICMP port unreachable, as a connected UDP socket reports it.
fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

fn io_failure(peer: SocketAddr, error: io::Error) -> EchoError {
    if error.kind() == io::ErrorKind::BrokenPipe || error.kind() == io::ErrorKind::ConnectionReset {
        return EchoError::Closed(peer);
    }
    EchoError::Io { peer, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A TCP peer on loopback running `serve` on its one connection.
    async fn tcp_peer<F, Fut>(serve: F) -> (TcpProber, tokio::task::JoinHandle<()>)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            serve(s).await;
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        (TcpProber::new(stream, addr), task)
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn echo_split_into_single_bytes_is_one_reply() {
        let (mut prober, _t) = tcp_peer(|mut s| async move {
            let mut b = [0u8; 1];
            while s.read_exact(&mut b).await.is_ok() {
                if s.write_all(&b).await.is_err() {
                    break;
                }
            }
        })
        .await;
        for seq in 1..=3 {
            let a = prober.probe(seq, 40, WAIT).await.unwrap();
            assert!(matches!(a.outcome, Outcome::Reply(_)), "{a:?}");
            assert_eq!(a.reply_len, 40);
        }
    }

    #[tokio::test]
    async fn late_echo_of_a_lost_probe_is_skipped() {
        let (mut prober, _t) = tcp_peer(|mut s| async move {
            let mut first = [0u8; 20];
            s.read_exact(&mut first).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.write_all(&first).await.unwrap();
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                s.write_all(&buf[..n]).await.unwrap();
            }
        })
        .await;
        let lost = prober
            .probe(1, 20, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(lost.outcome, Outcome::Lost);
        let next = prober.probe(2, 20, WAIT).await.unwrap();
        assert!(matches!(next.outcome, Outcome::Reply(_)), "{next:?}");
        let after = prober.probe(3, 20, WAIT).await.unwrap();
        assert!(matches!(after.outcome, Outcome::Reply(_)), "{after:?}");
    }

    #[tokio::test]
    async fn other_bytes_of_the_right_length_differ() {
        let (mut prober, _t) = tcp_peer(|mut s| async move {
            let mut buf = [0u8; 30];
            s.read_exact(&mut buf).await.unwrap();
            buf.make_ascii_uppercase();
            s.write_all(&buf).await.unwrap();
            tokio::time::sleep(WAIT).await;
        })
        .await;
        let a = prober.probe(1, 30, WAIT).await.unwrap();
        assert_eq!(a.outcome, Outcome::Differs);
    }

    #[tokio::test]
    async fn server_closing_ends_the_run() {
        let (mut prober, _t) = tcp_peer(|s| async move { drop(s) }).await;
        let e = prober.probe(1, 10, WAIT).await.unwrap_err();
        assert!(matches!(e, EchoError::Closed(_)), "{e:?}");
    }

    #[tokio::test]
    async fn udp_skips_late_and_stray_datagrams() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let mut prober = UdpProber::connect(addr).await.unwrap();
        let peer = tokio::spawn(async move {
            let mut buf = [0u8; 100];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&probe::payload(0, n), from).await.unwrap(); // late
            server.send_to(b"noise", from).await.unwrap(); // stray
            server.send_to(&buf[..n], from).await.unwrap();
        });
        let a = prober.probe(1, 64, WAIT).await.unwrap();
        assert!(matches!(a.outcome, Outcome::Reply(_)), "{a:?}");
        peer.await.unwrap();
    }
}
