//! The secure channel over one TCP connection: TLS 1.3 (rustls, ring), the
//! server identified by its pinned key, then the passphrase check (SPAKE2
//! bound to the TLS session, see `handshake`), all within one deadline
//! (10 s by default). What comes back is a plain byte stream for the native
//! chat protocol.
//!
//! API (the caller binds, accepts and connects the TCP socket):
//!
//! ```text
//! PassphraseArgs::resolve(&self, Role) -> Result<Option<SecureOptions>, PassphraseError>  // None = plain
//! SecureOptions::server(&self) -> Result<ServerSecurity, SecureError>
//! SecureOptions::client(&self) -> ClientSecurity
//! ServerSecurity::load_or_create(state_dir: &Path, passphrase: Passphrase) -> Result<ServerSecurity, SecureError>
//! accept(stream: TcpStream, cfg: &ServerSecurity, peer: SocketAddr) -> Result<ServerStream, SecureError>
//! ClientSecurity::new(state_dir: &Path, passphrase: Passphrase, fingerprint: Option<Fingerprint>) -> ClientSecurity
//! connect(stream: TcpStream, server: &str, cfg: &ClientSecurity) -> Result<(ClientStream, Connected), SecureError>
//! classify_first_bytes(&[u8]) -> FirstBytes          // TLS ClientHello or not
//! peek_first_bytes(&TcpStream, Duration) -> io::Result<FirstBytes>
//! ```
//!
//! `server` in `connect` is the `host:port` the user typed: the key under
//! which known_servers pins the server. Both functions set TCP_NODELAY (the
//! handshake is small messages each way). SNI is not sent (an observer does
//! not learn the host name); TLS resumption and 0-RTT are off, so every
//! connection is a full handshake with fresh ephemeral keys. The returned
//! streams are ordinary `AsyncRead + AsyncWrite`; `shutdown` sends TLS
//! close_notify.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::drive::{DriveError, drive, fill_frame, send, send_and_close};
use super::error::{SecureError, client_tls_error, server_tls_error};
use super::handshake::{ClientHandshake, ServerHandshake};
use super::identity::{Fingerprint, ServerIdentity, create_private_dir};
use super::known::{KNOWN_FILE, KnownError, KnownServers, Pin, append_pin, check_label};
use super::limiter::{Admission, AttemptLimiter, LimiterPolicy};
use super::pake::{EXPORTER_LABEL, EXPORTER_LEN, Exporter};
use super::passphrase::{Passphrase, SecureOptions};
use super::verify::PinVerifier;

/// The whole handshake (TLS and passphrase check) must end within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// ALPN protocol both sides require: a TLS peer that is not soquete fails clearly.
pub const ALPN: &[u8] = b"soquete/1";
/// The name put in the (unsent) SNI; the certificate's names are not checked.
const SERVER_NAME: &str = "soquete";

/// The server side of an established secure channel.
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// The client side of an established secure channel.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// The crypto provider: ring, TLS 1.3 suites and groups only.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A secure server's settings: identity, passphrase, limits.
pub struct ServerSecurity {
    /// TLS 1.3 acceptor with the server's key.
    tls: TlsAcceptor,
    /// The shared passphrase.
    passphrase: Passphrase,
    /// Identity fingerprint, for `--show-fingerprint` and logs.
    fingerprint: Fingerprint,
    /// Whether `load_or_create` made a new key.
    created: bool,
    /// Failed passphrase attempts per address.
    limiter: Mutex<AttemptLimiter>,
    /// Notified when a passphrase attempt finishes, for connections the
    /// limiter told to wait ([`Admission::Busy`]).
    attempt_done: tokio::sync::Notify,
    /// Deadline for each connection's whole handshake.
    timeout: Duration,
}

impl ServerSecurity {
    /// Loads the server key from `state_dir`, making one on first start.
    pub fn load_or_create(state_dir: &Path, passphrase: Passphrase) -> Result<Self, SecureError> {
        let identity = ServerIdentity::load_or_create(state_dir)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| SecureError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![identity.cert.clone()], identity.private_key())
            .map_err(|e| SecureError::Config(e.to_string()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Self {
            tls: TlsAcceptor::from(Arc::new(config)),
            passphrase,
            fingerprint: identity.fingerprint,
            created: identity.created,
            limiter: Mutex::new(AttemptLimiter::new(LimiterPolicy::default())),
            attempt_done: tokio::sync::Notify::new(),
            timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// The identity clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Whether the key was generated by this `load_or_create` (first start).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Replaces the 10 s handshake deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replaces the default failed-attempt policy.
    pub fn with_limiter(mut self, policy: LimiterPolicy) -> Self {
        self.limiter = Mutex::new(AttemptLimiter::new(policy));
        self
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, AttemptLimiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A secure client's settings.
pub struct ClientSecurity {
    /// ring, shared by every connection's TLS configuration.
    provider: Arc<CryptoProvider>,
    /// The shared passphrase.
    passphrase: Passphrase,
    /// Directory of known_servers (made when the first pin is written).
    state_dir: PathBuf,
    /// `--fingerprint`: overrides known_servers for this run.
    fingerprint: Option<Fingerprint>,
    /// Deadline for the whole handshake.
    timeout: Duration,
}

/// What `connect` did with the server's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// known_servers already pinned this key for the server.
    AlreadyPinned,
    /// First contact: the key was pinned in `file` (tell the user).
    NewlyPinned { file: PathBuf },
    /// `--fingerprint` matched, but `file` pins another key for the server
    /// at `line`; the file was left as it is.
    OverrodeKnown { file: PathBuf, line: usize },
}

/// A successful `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The server's identity.
    pub fingerprint: Fingerprint,
    /// Whether it was pinned now.
    pub pinning: Pinning,
}

impl ClientSecurity {
    /// `state_dir` holds known_servers; `fingerprint` (`--fingerprint`)
    /// is required of the server instead of the known_servers pin.
    pub fn new(state_dir: &Path, passphrase: Passphrase, fingerprint: Option<Fingerprint>) -> Self {
        Self {
            provider: provider(),
            passphrase,
            state_dir: state_dir.to_path_buf(),
            fingerprint,
            timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// Replaces the 10 s handshake deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The known_servers file this client reads and appends to.
    pub fn known_servers_path(&self) -> PathBuf {
        self.state_dir.join(KNOWN_FILE)
    }

    fn tls_config(&self, verifier: PinVerifier) -> Result<ClientConfig, SecureError> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| SecureError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.enable_sni = false;
        config.resumption = Resumption::disabled();
        Ok(config)
    }
}

impl SecureOptions {
    /// The server side of these options (loads or makes the server key).
    pub fn server(&self) -> Result<ServerSecurity, SecureError> {
        ServerSecurity::load_or_create(&self.state_dir, self.passphrase.clone())
    }

    /// The client side of these options.
    pub fn client(&self) -> ClientSecurity {
        ClientSecurity::new(&self.state_dir, self.passphrase.clone(), self.fingerprint)
    }
}

/// What a connection's first bytes say about the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBytes {
    /// A TLS record carrying a ClientHello: a secure client.
    TlsClientHello,
    /// Anything else: a plain client.
    NotTls,
    /// Too few bytes to tell (all agree with a ClientHello so far).
    NeedMore,
}

/// Classifies a connection's first bytes: `16 03 0x LL LL 01` (handshake
/// record, TLS 1.x record version, length, ClientHello) is TLS. The native
/// chat preamble starts with `00`, a typed line with text; neither is `16`.
pub fn classify_first_bytes(bytes: &[u8]) -> FirstBytes {
    let want: [fn(u8) -> bool; 6] = [
        |b| b == 0x16,
        |b| b == 0x03,
        |b| b <= 0x04,
        |_| true,
        |_| true,
        |b| b == 0x01,
    ];
    for (b, ok) in bytes.iter().zip(want) {
        if !ok(*b) {
            return FirstBytes::NotTls;
        }
    }
    if bytes.len() >= want.len() {
        FirstBytes::TlsClientHello
    } else {
        FirstBytes::NeedMore
    }
}

/// Peeks (without consuming) at the first bytes, waiting up to `wait` for
/// some; `NeedMore` when none came in time. A closed connection is `NotTls`.
pub async fn peek_first_bytes(stream: &TcpStream, wait: Duration) -> std::io::Result<FirstBytes> {
    let mut buf = [0u8; 6];
    match tokio::time::timeout(wait, stream.peek(&mut buf)).await {
        Err(_) => Ok(FirstBytes::NeedMore),
        Ok(Ok(0)) => Ok(FirstBytes::NotTls),
        Ok(Ok(n)) => Ok(classify_first_bytes(&buf[..n])),
        Ok(Err(e)) => Err(e),
    }
}

/// Runs the server side on an accepted connection: TLS 1.3, then the
/// passphrase check (after asking the rate limiter). On success the stream
/// carries the application protocol. `peer` is for errors and the limiter.
pub async fn accept(
    stream: TcpStream,
    cfg: &ServerSecurity,
    peer: SocketAddr,
) -> Result<ServerStream, SecureError> {
    let deadline = Instant::now() + cfg.timeout;
    // The handshake is several small messages each way: without this,
    // Nagle's algorithm and delayed ACKs add tens of milliseconds. The
    // caller's setting comes back once it is done: a chat server's fan-out
    // left without Nagle cost TLS about twice the CPU per delivery.
    let nagle_off = stream.nodelay().unwrap_or(false);
    let _ = stream.set_nodelay(true);
    let who = peer.to_string();
    let timeout = |step| SecureError::Timeout {
        who: who.clone(),
        step,
        secs: cfg.timeout.as_secs(),
    };
    let mut first = [0u8; 6];
    let n = match timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Err(timeout("waiting for the tls client hello")),
        Ok(r) => r.map_err(|source| SecureError::Io {
            who: who.clone(),
            source,
        })?,
    };
    if n == 0 {
        return Err(SecureError::Closed {
            who,
            step: "tls handshake",
        });
    }
    if classify_first_bytes(&first[..n]) == FirstBytes::NotTls {
        let detail = "it did not start with a tls client hello".to_string();
        return Err(SecureError::NotSecureClient { peer, detail });
    }
    let mut tls = match timeout_at(deadline, cfg.tls.accept(stream)).await {
        Err(_) => return Err(timeout("tls handshake")),
        Ok(Err(e)) => return Err(server_tls_error(e, peer)),
        Ok(Ok(tls)) => tls,
    };
    if tls.get_ref().1.alpn_protocol() != Some(ALPN) {
        let detail = "tls without the soquete protocol (alpn)".to_string();
        return Err(SecureError::NotSecureClient { peer, detail });
    }
    let exporter = exporter(tls.get_ref().1, &who)?;
    let mut buf = BytesMut::with_capacity(128);
    fill_frame(&mut tls, &mut buf, deadline)
        .await
        .map_err(|e| e.into_error(&who, cfg.timeout, "passphrase check"))?;
    let admission = loop {
        let done = cfg.attempt_done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        match cfg.limiter().begin(peer.ip(), std::time::Instant::now()) {
            Admission::Busy => {}
            other => break other,
        }
        // Other attempts from this address decide first.
        if timeout_at(deadline, done).await.is_err() {
            return Err(timeout(
                "waiting for other passphrase attempts from this address",
            ));
        }
    };
    if let Admission::Refused { retry_after } = admission {
        let secs = u64::try_from(retry_after.as_millis().div_ceil(1000))
            .unwrap_or(u64::MAX)
            .max(1);
        let refusal = ServerHandshake::refusal(u32::try_from(secs).unwrap_or(u32::MAX));
        let _ = send_and_close(&mut tls, &refusal, deadline).await;
        return Err(SecureError::RateLimited {
            peer,
            retry_after_secs: secs,
        });
    }
    let attempt = Attempt {
        cfg,
        ip: peer.ip(),
        succeeded: false,
    };
    let mut machine = ServerHandshake::new(cfg.passphrase.as_bytes(), exporter);
    match drive(&mut tls, &mut buf, deadline, |b| machine.on_bytes(b)).await {
        Ok(()) => {
            attempt.succeed();
            let _ = tls.get_ref().0.set_nodelay(nagle_off);
            Ok(tls)
        }
        Err(DriveError::Handshake(e)) => Err(SecureError::from_server_handshake(e, peer)),
        Err(e) => Err(e.into_error(&who, cfg.timeout, "passphrase check")),
    }
}

/// One passphrase attempt the limiter allowed. Unless it succeeds it is a
/// failure, however it ends: an error, a timeout, a client gone after the
/// server's answer (which was enough to test its guess), or the task
/// dropped at shutdown.
struct Attempt<'a> {
    cfg: &'a ServerSecurity,
    ip: std::net::IpAddr,
    succeeded: bool,
}

impl Attempt<'_> {
    fn succeed(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let now = std::time::Instant::now();
        self.cfg.limiter().finish(self.ip, self.succeeded, now);
        self.cfg.attempt_done.notify_waiters();
    }
}

/// Runs the client side on a connected stream: TLS 1.3 with the server's
/// key checked against the pin for `server` (`host:port`) or
/// `--fingerprint`, then the passphrase check; pins the key on first
/// contact. On success the stream carries the application protocol.
pub async fn connect(
    stream: TcpStream,
    server: &str,
    cfg: &ClientSecurity,
) -> Result<(ClientStream, Connected), SecureError> {
    let deadline = Instant::now() + cfg.timeout;
    let _ = stream.set_nodelay(true);
    check_label(server)?;
    let known = KnownServers::load(&cfg.known_servers_path())?;
    let pin = known.lookup(server).cloned();
    let expected = cfg.fingerprint.or(pin.as_ref().map(|p| p.fingerprint));
    let presented = Arc::new(Mutex::new(None));
    let verifier = PinVerifier::new(
        expected,
        presented.clone(),
        cfg.provider.signature_verification_algorithms,
    );
    let connector = TlsConnector::from(Arc::new(cfg.tls_config(verifier)?));
    let name = ServerName::try_from(SERVER_NAME).expect("valid dns name");
    let who = server.to_string();
    let mut tls = match timeout_at(deadline, connector.connect(name, stream)).await {
        Err(_) => {
            let step = "no tls answer; is it a secure soquete server?";
            return Err(SecureError::Timeout {
                who,
                step,
                secs: cfg.timeout.as_secs(),
            });
        }
        Ok(Err(e)) => {
            let presented = *presented.lock().unwrap_or_else(|p| p.into_inner());
            return Err(client_tls_error(
                e,
                server,
                cfg.fingerprint,
                pin.as_ref(),
                &known.path,
                presented,
            ));
        }
        Ok(Ok(tls)) => tls,
    };
    if tls.get_ref().1.alpn_protocol() != Some(ALPN) {
        let detail = "a tls server that does not speak the soquete protocol (alpn)".to_string();
        return Err(SecureError::NotSecureServer {
            server: who,
            detail,
        });
    }
    let fingerprint = presented
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .ok_or_else(|| SecureError::Config("the certificate check did not run".to_string()))?;
    let exporter = exporter(tls.get_ref().1, &who)?;
    let (mut machine, first) = ClientHandshake::start(cfg.passphrase.as_bytes(), exporter);
    let mut buf = BytesMut::with_capacity(128);
    let steps = async {
        send(&mut tls, &first, deadline).await?;
        drive(&mut tls, &mut buf, deadline, |b| machine.on_bytes(b)).await
    };
    match steps.await {
        Ok(()) => {}
        Err(DriveError::Handshake(e)) => return Err(SecureError::from_client_handshake(e, server)),
        Err(e) => return Err(e.into_error(&who, cfg.timeout, "passphrase check")),
    }
    let pinning = record_pin(cfg, &known, pin.as_ref(), server, fingerprint)?;
    Ok((
        tls,
        Connected {
            fingerprint,
            pinning,
        },
    ))
}

/// After a successful check: pin a first-contact key.
fn record_pin(
    cfg: &ClientSecurity,
    known: &KnownServers,
    pin: Option<&Pin>,
    server: &str,
    fingerprint: Fingerprint,
) -> Result<Pinning, SecureError> {
    match pin {
        Some(p) if p.fingerprint == fingerprint => Ok(Pinning::AlreadyPinned),
        Some(p) => Ok(Pinning::OverrodeKnown {
            file: known.path.clone(),
            line: p.line,
        }),
        None => {
            create_private_dir(&cfg.state_dir).map_err(|source| KnownError::Io {
                path: cfg.state_dir.clone(),
                source,
            })?;
            append_pin(&known.path, server, &fingerprint)?;
            Ok(Pinning::NewlyPinned {
                file: known.path.clone(),
            })
        }
    }
}

/// This TLS session's exporter value.
fn exporter<D>(conn: &rustls::ConnectionCommon<D>, who: &str) -> Result<Exporter, SecureError> {
    conn.export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, None)
        .map_err(|e| SecureError::Tls {
            who: who.to_string(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
