//! The secure channel's errors, each one line for a user (client) or a log
//! (server), and the mapping from rustls' handshake failures to them: a
//! peer that answers with something other than TLS is "not a secure soquete
//! endpoint", a key that differs from the pin is "server identity changed".

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::handshake::{AbortReason, HandshakeError};
use super::identity::{Fingerprint, IdentityError};
use super::known::{KnownError, Pin};

/// Why a secure connection was not established.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    /// Client: the server's confirmation failed.
    #[error("wrong passphrase for {server}")]
    WrongPassphrase { server: String },
    /// Server: the client's passphrase was wrong.
    #[error("{peer} tried a wrong passphrase")]
    PeerWrongPassphrase { peer: SocketAddr },
    /// Client: right passphrase, but the server's TLS session is not ours.
    #[error(
        "the connection to {server} is intercepted: the passphrase matched but the tls session did not (man in the middle); nothing was pinned"
    )]
    Intercepted { server: String },
    /// Server: the client reports interception between it and us.
    #[error("{peer} reports that its connection to this server is intercepted (man in the middle)")]
    PeerIntercepted { peer: SocketAddr },
    /// Client: the server's key differs from the known_servers pin.
    #[error(
        "server identity changed for {server}: known {known}, presented {presented}; if the server's key was replaced on purpose, edit {} line {line}",
        file.display()
    )]
    IdentityChanged {
        server: String,
        known: Fingerprint,
        presented: Fingerprint,
        file: PathBuf,
        line: usize,
    },
    /// Client: the server's key differs from `--fingerprint`.
    #[error(
        "server identity mismatch for {server}: presented {presented}, but --fingerprint is {expected}"
    )]
    FingerprintMismatch {
        server: String,
        expected: Fingerprint,
        presented: Fingerprint,
    },
    /// Server: the client refused this server's key (its pin differs).
    #[error("{peer} refused this server's identity (its pin or --fingerprint differs)")]
    IdentityRefusedByPeer { peer: SocketAddr },
    /// Client: the peer does not speak the secure channel.
    #[error("{server} is not a secure soquete server: {detail}")]
    NotSecureServer { server: String, detail: String },
    /// Server: the peer does not speak the secure channel.
    #[error("{peer} is not a secure soquete client: {detail}")]
    NotSecureClient { peer: SocketAddr, detail: String },
    /// Client: the server refuses guesses from this address for a while.
    #[error(
        "{server} refuses this address for {retry_after_secs} s after too many failed passphrase attempts"
    )]
    TooManyAttempts {
        server: String,
        retry_after_secs: u64,
    },
    /// Server: this address made too many failed attempts.
    #[error("{peer} refused for {retry_after_secs} s more: too many failed passphrase attempts")]
    RateLimited {
        peer: SocketAddr,
        retry_after_secs: u64,
    },
    /// A step did not finish before the deadline.
    #[error("secure handshake with {who} timed out after {secs} s ({step})")]
    Timeout {
        who: String,
        step: &'static str,
        secs: u64,
    },
    /// The peer closed the connection mid-handshake.
    #[error("{who} closed the connection during the {step}")]
    Closed { who: String, step: &'static str },
    /// Another TLS failure.
    #[error("tls handshake with {who} failed: {detail}")]
    Tls { who: String, detail: String },
    /// Another passphrase-handshake failure (malformed message...).
    #[error("secure handshake with {who} failed: {source}")]
    Handshake { who: String, source: HandshakeError },
    /// Socket error.
    #[error("secure handshake with {who}: {source}")]
    Io { who: String, source: std::io::Error },
    /// The server's state directory.
    #[error("server identity: {0}")]
    Identity(#[from] IdentityError),
    /// The client's known_servers.
    #[error("known servers: {0}")]
    Known(#[from] KnownError),
    /// rustls refused the configuration (a bug, or an unusable key).
    #[error("tls configuration: {0}")]
    Config(String),
}

impl SecureError {
    /// Client side: what the passphrase handshake's failure means.
    pub(crate) fn from_client_handshake(e: HandshakeError, server: &str) -> Self {
        let server = server.to_string();
        match e {
            HandshakeError::WrongPassphrase => Self::WrongPassphrase { server },
            HandshakeError::Intercepted => Self::Intercepted { server },
            HandshakeError::Refused(secs) => Self::TooManyAttempts {
                server,
                retry_after_secs: u64::from(secs),
            },
            source => Self::Handshake {
                who: server,
                source,
            },
        }
    }

    /// Server side: what the passphrase handshake's failure means.
    pub(crate) fn from_server_handshake(e: HandshakeError, peer: SocketAddr) -> Self {
        match e {
            HandshakeError::WrongPassphrase
            | HandshakeError::PeerAborted(AbortReason::WrongPassphrase) => {
                Self::PeerWrongPassphrase { peer }
            }
            HandshakeError::PeerAborted(AbortReason::Intercepted) => Self::PeerIntercepted { peer },
            source => Self::Handshake {
                who: peer.to_string(),
                source,
            },
        }
    }
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Whether the peer's bytes were not TLS at all.
fn not_tls(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
    )
}

/// Whether the peer hung up (rather than failing TLS).
fn hung_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Client side: a failed TLS handshake, explained. `presented` is what the
/// certificate check saw; `pin` and `file` tell the user what to edit.
pub(crate) fn client_tls_error(
    e: std::io::Error,
    server: &str,
    override_fp: Option<Fingerprint>,
    pin: Option<&Pin>,
    file: &Path,
    presented: Option<Fingerprint>,
) -> SecureError {
    let server = server.to_string();
    if let Some(presented) = presented {
        match (override_fp, pin) {
            (Some(expected), _) if expected != presented => {
                return SecureError::FingerprintMismatch {
                    server,
                    expected,
                    presented,
                };
            }
            (None, Some(pin)) if pin.fingerprint != presented => {
                let (known, file, line) = (pin.fingerprint, file.to_path_buf(), pin.line);
                return SecureError::IdentityChanged {
                    server,
                    known,
                    presented,
                    file,
                    line,
                };
            }
            _ => {}
        }
    }
    match rustls_error(&e) {
        Some(r) if not_tls(r) => {
            let detail = "it answered with something other than tls".to_string();
            SecureError::NotSecureServer { server, detail }
        }
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)) => {
            let detail =
                "the server's signature does not verify with its certificate's key (an impostor?)";
            SecureError::Tls {
                who: server,
                detail: detail.to_string(),
            }
        }
        Some(r) => SecureError::Tls {
            who: server,
            detail: r.to_string(),
        },
        None if hung_up(&e) => {
            let detail = "it closed the connection during the tls handshake".to_string();
            SecureError::NotSecureServer { server, detail }
        }
        None => SecureError::Io {
            who: server,
            source: e,
        },
    }
}

/// Server side: a failed TLS handshake, explained.
pub(crate) fn server_tls_error(e: std::io::Error, peer: SocketAddr) -> SecureError {
    match rustls_error(&e) {
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::AccessDenied | rustls::AlertDescription::BadCertificate,
        )) => SecureError::IdentityRefusedByPeer { peer },
        Some(r) if not_tls(r) => {
            let detail = "it sent something other than tls".to_string();
            SecureError::NotSecureClient { peer, detail }
        }
        Some(r) => SecureError::Tls {
            who: peer.to_string(),
            detail: r.to_string(),
        },
        None if hung_up(&e) => SecureError::Closed {
            who: peer.to_string(),
            step: "tls handshake",
        },
        None => SecureError::Io {
            who: peer.to_string(),
            source: e,
        },
    }
}
