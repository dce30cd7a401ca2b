//! The bench's secure mode (`--passphrase-file` and friends, as `chat
//! join`): every native client runs the secure channel (TLS 1.3, pinned
//! key, passphrase check; `crate::secure::connect`) before its hello, so a
//! run against a secure server measures the same fan-out through TLS.
//!
//! Before any client connects, [`preflight`] runs one handshake alone: it
//! turns a wrong passphrase or a changed identity into one clear error
//! instead of a failure per client (each of which the server's limiter
//! would count as a guess), and pins the server on first contact once,
//! instead of every client appending the same pin. Also here: splitting a
//! plain or secure stream into the boxed halves every client uses.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::client::{CONNECT_TIMEOUT, ReadHalf, WriteHalf};
use crate::chat::client::conn::{connect_tcp, report_pinning};
use crate::secure::ClientSecurity;

/// Secure handshakes a run keeps in flight at once. All bench clients share
/// one address, whose passphrase attempts a secure server runs five at a
/// time (`LimiterPolicy::free_attempts`; the rest wait their turn): more in
/// flight lets TLS handshakes overlap those, without piling up past the
/// server's handshake timeout.
pub(crate) const HANDSHAKES_IN_FLIGHT: usize = 16;

/// Where and how the clients open the secure channel.
pub(crate) struct SecureTarget {
    /// Passphrase, known_servers, `--fingerprint`.
    pub security: ClientSecurity,
    /// The server as the user wrote it: the key of its known_servers pin.
    pub label: String,
}

impl std::fmt::Debug for SecureTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureTarget")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// One secure handshake before the run; says (stderr) when it pinned the
/// server. Its error is the run's one line.
pub(crate) async fn preflight(target: &SecureTarget) -> anyhow::Result<()> {
    let tcp = connect_tcp(&target.label, CONNECT_TIMEOUT).await?;
    let (mut tls, connected) = crate::secure::connect(tcp, &target.label, &target.security).await?;
    report_pinning(&target.label, &connected);
    tracing::info!(
        "secure channel to {}: server identity {}",
        target.label,
        connected.fingerprint
    );
    // close_notify, then the server sees the end of the stream.
    let _ = tls.shutdown().await;
    Ok(())
}

/// Runs the secure channel on a connected socket; a failure is the line
/// the run reports.
pub(crate) async fn handshake(
    tcp: TcpStream,
    target: &SecureTarget,
) -> Result<(ReadHalf, WriteHalf), String> {
    match crate::secure::connect(tcp, &target.label, &target.security).await {
        Ok((tls, _)) => {
            let (rd, wr) = tokio::io::split(tls);
            Ok((Box::new(rd), Box::new(wr)))
        }
        Err(e) => Err(format!("secure channel: {e}")),
    }
}

/// A plain socket as the same boxed halves (no lock between them).
pub(crate) fn split_plain(tcp: TcpStream) -> (ReadHalf, WriteHalf) {
    let (rd, wr) = tcp.into_split();
    (Box::new(rd), Box::new(wr))
}
