//! The echo servers: TCP (many clients at once, each read written straight
//! back) and UDP (every datagram returned to its sender).
//!
//! Unlike the chapter's `echo_server.py`, which serves one connection at a
//! time, the TCP server runs one task per connection behind the shared
//! accept loop and its limits. Memory per connection is one read buffer
//! ([`MAX_READ`] at most): a client that never reads its echoes stalls only
//! its own connection (we stop reading from it while its echo waits) until
//! the idle timeout closes it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::net::{AcceptLimits, Admission, Shutdown};

/// Largest single read echoed back on TCP, and so the most a connection's
/// buffer grows to (64 KiB).
pub const MAX_READ: usize = 64 * 1024;

/// Buffer a TCP connection starts with; it doubles when a read fills it.
const FIRST_READ: usize = 4 * 1024;

/// Largest UDP datagram (and the UDP server's one buffer).
pub const MAX_DATAGRAM: usize = 65_535;

/// How long open connections get to finish after Ctrl-C.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Settings of the TCP server.
#[derive(Debug, Clone, Copy)]
pub struct TcpConfig {
    /// Connection limits for the accept loop.
    pub limits: AcceptLimits,
    /// A connection with no read or write progress this long is closed.
    pub idle_timeout: Duration,
}

/// Serves TCP echo on `listener` until `shutdown`, then closes every
/// connection and returns within about [`DRAIN_TIMEOUT`].
pub async fn run_tcp(listener: TcpListener, config: TcpConfig, shutdown: Shutdown) {
    let tracker = TaskTracker::new();
    let token = shutdown.token.clone();
    crate::net::accept_loop(
        listener,
        config.limits,
        token.clone(),
        tracker.clone(),
        move |stream, peer, admission| {
            let token = token.clone();
            async move {
                match admission {
                    Admission::Admitted(_slot) => {
                        // An echo is one small write per read: send it now.
                        let _ = stream.set_nodelay(true);
                        serve_connection(stream, peer, config.idle_timeout, token).await
                    }
                    Admission::Rejected(why, _slot) => {
                        tracing::debug!("refused {peer}: {why:?}");
                    }
                }
            }
        },
    )
    .await;
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("{} connections did not close in time", tracker.len());
    }
}

/// Why a connection ended, for its closing log line.
#[derive(Debug)]
enum Ending {
    ClientClosed,
    Idle,
    Shutdown,
    Failed(std::io::Error),
}

/// Echoes one connection until EOF, error, idle timeout or shutdown.
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    idle: Duration,
    token: CancellationToken,
) {
    tracing::info!("{peer} connected");
    let started = Instant::now();
    let mut echoed: u64 = 0;
    let ending = tokio::select! {
        _ = token.cancelled() => Ending::Shutdown,
        e = echo_until_done(&mut stream, idle, &mut echoed) => e,
    };
    let how = match ending {
        Ending::ClientClosed => "closed by client".to_owned(),
        Ending::Idle => format!("idle for {idle:?}"),
        Ending::Shutdown => "server shutting down".to_owned(),
        Ending::Failed(e) => format!("error: {e}"),
    };
    tracing::info!(
        "{peer} disconnected ({how}) after {:.1}s, {echoed} bytes echoed",
        started.elapsed().as_secs_f64()
    );
}

/// The echo loop proper: read, write the same bytes back, repeat. The
/// buffer starts small and doubles (up to [`MAX_READ`]) while reads fill it.
async fn echo_until_done(stream: &mut TcpStream, idle: Duration, echoed: &mut u64) -> Ending {
    let mut buf = vec![0u8; FIRST_READ];
    loop {
        let n = match tokio::time::timeout(idle, stream.read(&mut buf)).await {
            Err(_) => return Ending::Idle,
            Ok(Ok(0)) => return Ending::ClientClosed,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Ending::Failed(e),
        };
        match tokio::time::timeout(idle, stream.write_all(&buf[..n])).await {
            Err(_) => return Ending::Idle,
            Ok(Err(e)) => return Ending::Failed(e),
            Ok(Ok(())) => *echoed += n as u64,
        }
        if n == buf.len() && buf.len() < MAX_READ {
            buf.resize((buf.len() * 2).min(MAX_READ), 0);
        }
    }
}

/// Serves UDP echo on `socket` until `shutdown`: each datagram (up to
/// [`MAX_DATAGRAM`] bytes) goes back to the address it came from.
pub async fn run_udp(socket: UdpSocket, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    let mut failures = 0u32;
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors for earlier replies surface here on some
                // systems (Windows: WSAECONNRESET); they concern one peer,
                // not the server, so keep serving, pausing if they persist.
                failures += 1;
                tracing::debug!("receive failed: {e}");
                if failures > 100 {
                    return Err(e).context("the UDP socket keeps failing");
                }
                tokio::time::sleep(Duration::from_millis(u64::from(failures.min(10)))).await;
                continue;
            }
        };
        failures = 0;
        match socket.send_to(&buf[..n], peer).await {
            Ok(_) => {
                datagrams += 1;
                bytes += n as u64;
                tracing::trace!("echoed {n} bytes to {peer}");
            }
            Err(e) => tracing::debug!("cannot echo to {peer}: {e}"),
        }
    }
    tracing::info!("served {datagrams} datagrams ({bytes} bytes)");
    Ok(())
}
