//! The front door of every secure server: a connection that opens with a
//! TLS client hello runs the secure channel; any other is handed back as
//! plain TCP, so the server can tell that client, in its own protocol, that
//! it is encrypted. Shared by `chat serve` and `files serve`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::channel::{FirstBytes, ServerSecurity, ServerStream, accept, peek_first_bytes};
use crate::net::Shutdown;

/// What came through the door.
pub enum FrontDoor {
    /// The secure channel is up; the application protocol follows.
    Secure(Box<ServerStream>),
    /// Not a TLS client (or silent for `window`).
    Plain(TcpStream),
    /// Closed, failed (logged here) or the server is shutting down.
    Gone,
}

/// Waits up to `window` for the first bytes and runs the secure channel
/// when they are a TLS client hello.
pub async fn front_door(
    stream: TcpStream,
    sec: &ServerSecurity,
    peer: SocketAddr,
    window: Duration,
    shutdown: &Shutdown,
) -> FrontDoor {
    let first = tokio::select! {
        _ = shutdown.cancelled() => return FrontDoor::Gone,
        f = peek_first_bytes(&stream, window) => f,
    };
    match first {
        Ok(FirstBytes::TlsClientHello) => {}
        Ok(_) => return FrontDoor::Plain(stream),
        Err(e) => {
            tracing::debug!("{peer} read failed: {e}");
            return FrontDoor::Gone;
        }
    }
    let accepted = tokio::select! {
        _ = shutdown.cancelled() => return FrontDoor::Gone,
        r = accept(stream, sec, peer) => r,
    };
    match accepted {
        Ok(tls) => FrontDoor::Secure(Box::new(tls)),
        Err(e) => {
            tracing::info!("secure connection from {peer} failed: {e}");
            FrontDoor::Gone
        }
    }
}
