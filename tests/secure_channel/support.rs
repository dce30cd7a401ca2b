//! Test peers for `tests/secure_channel.rs`: a secure server loop, a man in
//! the middle that terminates TLS on both sides, an impostor holding the real
//! certificate but not its key, plain servers, a wiretap relay, and a
//! generic TLS client. All on 127.0.0.1, all bounded.
#![allow(dead_code)]

pub use crate::tls::AcceptAny;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use soquete::secure::{
    ALPN, ClientSecurity, Fingerprint, Passphrase, SecureError, ServerSecurity, ServerStream,
    accept,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test after [`WAIT`].
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut).await.expect("timed out")
}

pub async fn tcp(addr: SocketAddr) -> TcpStream {
    bounded(TcpStream::connect(addr)).await.unwrap()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.to_string(), "test").unwrap()
}

/// A server and a client state directory in one temporary directory.
pub struct Dirs {
    _tmp: tempfile::TempDir,
    pub server: PathBuf,
    pub client: PathBuf,
}

impl Dirs {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (server, client) = (tmp.path().join("server"), tmp.path().join("client"));
        Self {
            _tmp: tmp,
            server,
            client,
        }
    }

    pub fn server_security(&self, pass: &str) -> ServerSecurity {
        ServerSecurity::load_or_create(&self.server, passphrase(pass)).unwrap()
    }

    pub fn client_security(&self, pass: &str, fingerprint: Option<Fingerprint>) -> ClientSecurity {
        ClientSecurity::new(&self.client, passphrase(pass), fingerprint)
    }
}

/// A secure server: every accepted connection runs `accept`; results come
/// out of [`Srv::next`] in completion order.
pub struct Srv {
    pub addr: SocketAddr,
    pub sec: Arc<ServerSecurity>,
    results: tokio::sync::Mutex<mpsc::Receiver<Result<ServerStream, SecureError>>>,
    task: JoinHandle<()>,
}

impl Srv {
    pub async fn start(sec: ServerSecurity) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sec = Arc::new(sec);
        let (tx, rx) = mpsc::channel(64);
        let s = sec.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let (s, tx) = (s.clone(), tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(accept(stream, &s, peer).await).await;
                });
            }
        });
        Self {
            addr,
            sec,
            results: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    /// The `host:port` label clients pin this server under.
    pub fn label(&self) -> String {
        self.addr.to_string()
    }

    /// The next finished `accept`.
    pub async fn next(&self) -> Result<ServerStream, SecureError> {
        bounded(async {
            self.results
                .lock()
                .await
                .recv()
                .await
                .expect("server loop ended")
        })
        .await
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn client_config(alpn: bool) -> ClientConfig {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth();
    if alpn {
        config.alpn_protocols = vec![ALPN.to_vec()];
    }
    config
}

fn server_config(resolver: Arc<dyn rustls::server::ResolvesServerCert>) -> ServerConfig {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN.to_vec()];
    config
}

/// A fresh Ed25519 key and a self-signed certificate for it.
fn fresh_identity() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["soquete".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A resolver serving `cert` with `key`, without checking they match.
fn resolver(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::sign::SingleCertAndKey> {
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .unwrap();
    Arc::new(rustls::sign::CertifiedKey::new(vec![cert], signing).into())
}

/// A man in the middle: terminates the client's TLS with its own key,
/// opens its own TLS to the real server, and relays the plaintext (the
/// PAKE messages included) both ways.
pub struct Mitm {
    pub addr: SocketAddr,
    relayed: JoinHandle<u64>,
}

impl Mitm {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cert, key) = fresh_identity();
        let acceptor = TlsAcceptor::from(Arc::new(server_config(resolver(cert, key))));
        let relayed = tokio::spawn(async move {
            let (victim, _) = listener.accept().await.unwrap();
            let mut victim = acceptor.accept(victim).await.unwrap();
            let connector = TlsConnector::from(Arc::new(client_config(true)));
            let name = ServerName::try_from("soquete").unwrap();
            let mut server = connector.connect(name, tcp(upstream).await).await.unwrap();
            let (to_server, _) = tokio::io::copy_bidirectional(&mut victim, &mut server)
                .await
                .unwrap_or((0, 0));
            to_server
        });
        Self { addr, relayed }
    }

    /// Whether at least a ClientPake frame went from the victim to the server.
    pub async fn relayed_pake(self) -> bool {
        bounded(self.relayed).await.unwrap() >= 37
    }
}

/// Serves the real server's certificate (from its state directory) with a
/// key of its own, which the TLS 1.3 signature check must catch.
pub struct Impostor {
    pub addr: SocketAddr,
}

impl Impostor {
    pub async fn start(real_state_dir: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let real_cert =
            CertificateDer::from_pem_file(real_state_dir.join("server-cert.pem")).unwrap();
        let (_, own_key) = fresh_identity();
        let acceptor = TlsAcceptor::from(Arc::new(server_config(resolver(real_cert, own_key))));
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(stream).await;
        });
        Self { addr }
    }
}

/// A TLS client with no soquete ALPN; returns once its handshake is done.
pub async fn generic_tls_client(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = TlsConnector::from(Arc::new(client_config(false)));
    let name = ServerName::try_from("soquete").unwrap();
    bounded(connector.connect(name, tcp(addr).await))
        .await
        .unwrap()
}

/// Servers that do not speak the secure channel.
#[derive(Debug, Clone, Copy)]
pub enum PlainServer {
    /// Sends back what it reads.
    Echo,
    /// Greets every client with a line of text at once.
    Greeter,
    /// Closes every connection at once.
    Closer,
    /// Answers the first bytes with a native chat Error frame and closes.
    NativeChatError,
    /// Reads and never answers.
    Silent,
}

impl PlainServer {
    pub async fn start(self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move { self.serve(&mut s).await });
            }
        });
        addr
    }

    async fn serve(self, s: &mut TcpStream) {
        let mut buf = [0u8; 4096];
        match self {
            Self::Echo => {
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    let _ = s.write_all(&buf[..n]).await;
                }
            }
            Self::Greeter => {
                let _ = s.write_all(b"welcome to the chat, type your name\n").await;
                while let Ok(1..) = s.read(&mut buf).await {}
            }
            Self::Closer => {}
            Self::NativeChatError => {
                let _ = s.read(&mut buf).await;
                let text = b"not a soquete client";
                let mut frame = vec![
                    0,
                    0,
                    0,
                    (1 + 2 + 2 + text.len()) as u8,
                    0x89,
                    0,
                    2,
                    0,
                    text.len() as u8,
                ];
                frame.extend_from_slice(text);
                let _ = s.write_all(&frame).await;
            }
            Self::Silent => while let Ok(1..) = s.read(&mut buf).await {},
        }
    }
}

/// A transparent TCP relay that records every byte, both directions.
pub struct Wiretap {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
    relay: JoinHandle<()>,
}

impl Wiretap {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let relay = tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let server = tcp(upstream).await;
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(pump(cr, sw, record.clone()));
            let down = tokio::spawn(pump(sr, cw, record));
            let _ = tokio::join!(up, down);
        });
        Self { addr, seen, relay }
    }

    /// Everything relayed, once both directions have ended.
    pub async fn captured(self) -> Vec<u8> {
        bounded(self.relay).await.unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The DER certificate inside a state directory's `server-cert.pem`.
pub fn cert_der(state_dir: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(state_dir.join("server-cert.pem"))
        .unwrap()
        .to_vec()
}
