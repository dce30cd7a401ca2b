//! The secure chat against an attacker on the path, with the real binaries:
//! a real `chat serve --passphrase-file` and real `chat join` clients, and
//! between them, written here, either a man in the middle that terminates
//! TLS with a key of its own (refused on the client's very first contact,
//! and it learns nothing), or a plain TCP relay that records every byte
//! (it sees neither the chat nor the passphrase, and the chat still gets
//! through). The library-level versions are in tests/secure_channel.rs.
//! Everything on 127.0.0.1 port 0; every wait at most 10 s.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::secure::{PASS, SecureDirs};
use common::tls::AcceptAny;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use soquete::secure::ALPN;
use soquete::wire::chat::PREAMBLE;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// Bytes seen by a relay, one buffer per direction.
#[derive(Default)]
struct Seen {
    to_server: Mutex<Vec<u8>>,
    to_client: Mutex<Vec<u8>>,
}

impl Seen {
    fn to_server(&self) -> Vec<u8> {
        self.to_server.lock().unwrap().clone()
    }
    fn to_client(&self) -> Vec<u8> {
        self.to_client.lock().unwrap().clone()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// What the tests here add to the shared folders.
trait JoinArgs {
    fn join_args<'a>(&'a self, addr: &'a str, name: &'a str) -> Vec<&'a str>;
    fn known_servers(&self) -> PathBuf;
}

impl JoinArgs for SecureDirs {
    /// `chat join ADDR` in secure mode, as NAME.
    fn join_args<'a>(&'a self, addr: &'a str, name: &'a str) -> Vec<&'a str> {
        vec![
            "chat",
            "join",
            addr,
            "--passphrase-file",
            self.pass_file.to_str().unwrap(),
            "--state-dir",
            self.client.to_str().unwrap(),
            "--name",
            name,
            "--no-reconnect",
        ]
    }

    fn known_servers(&self) -> PathBuf {
        self.client.join("known_servers")
    }
}

/// Copies `from` to `to`, recording every byte in `seen`; closes `to`'s
/// sending side at the end.
async fn pump<R, W>(mut from: R, mut to: W, seen: Arc<Seen>, up: bool)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let log = if up { &seen.to_server } else { &seen.to_client };
        log.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Relays both ways between `client` and `server`, recording.
async fn relay<C, S>(client: C, server: S, seen: Arc<Seen>)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (cr, cw) = tokio::io::split(client);
    let (sr, sw) = tokio::io::split(server);
    let up = tokio::spawn(pump(cr, sw, seen.clone(), true));
    let down = tokio::spawn(pump(sr, cw, seen, false));
    let _ = tokio::join!(up, down);
}

/// A plain TCP relay to `upstream` for any number of connections.
fn start_wiretap(rt: &Runtime, upstream: SocketAddr) -> (SocketAddr, Arc<Seen>) {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let record = seen.clone();
    rt.spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                if let Ok(Ok(server)) =
                    tokio::time::timeout(WAIT, TcpStream::connect(upstream)).await
                {
                    relay(client, server, record).await;
                }
            });
        }
    });
    (addr, seen)
}

/// A man in the middle to `upstream`: terminates the client's TLS with its
/// own fresh key and self-signed certificate, opens its own TLS (soquete
/// ALPN, any certificate) to the server, and relays the plaintext both ways,
/// recording it: everything a relay that holds both TLS sessions can see.
fn start_mitm(rt: &Runtime, upstream: SocketAddr) -> (SocketAddr, Arc<Seen>) {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(mitm_server_config()));
    let connector = TlsConnector::from(Arc::new(mitm_client_config()));
    let seen = Arc::new(Seen::default());
    let record = seen.clone();
    rt.spawn(async move {
        while let Ok((victim, _)) = listener.accept().await {
            let (acceptor, connector, record) =
                (acceptor.clone(), connector.clone(), record.clone());
            tokio::spawn(async move {
                let bounded = tokio::time::timeout(WAIT, async {
                    let victim = acceptor.accept(victim).await.ok()?;
                    let tcp = TcpStream::connect(upstream).await.ok()?;
                    let name = ServerName::try_from("soquete").unwrap();
                    let server = connector.connect(name, tcp).await.ok()?;
                    Some((victim, server))
                });
                if let Ok(Some((victim, server))) = bounded.await {
                    relay(victim, server, record).await;
                }
            });
        }
    });
    (addr, seen)
}

/// The relay's TLS server side: a fresh Ed25519 key, self-signed.
fn mitm_server_config() -> ServerConfig {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["soquete".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config
}

/// The relay's TLS client side: takes whatever certificate it is shown.
fn mitm_client_config() -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A `chat join` left running: stdin held open, stdout lines as they come.
struct Member {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Member {
    fn start(args: &[&str]) -> Member {
        let mut child = Command::new(common::bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chat join");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Member { child, lines }
    }

    /// Waits (≤ [`WAIT`]) for a stdout line equal to `want`.
    fn wait_line(&self, want: &str) -> bool {
        let deadline = std::time::Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if common::wait_timeout(&mut self.child, Duration::from_secs(2)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_man_in_the_middle_on_first_contact_is_refused_and_learns_nothing() {
    let dirs = SecureDirs::new();
    let server = dirs.serve();
    let rt = Runtime::new().unwrap();
    let (mitm, seen) = start_mitm(&rt, server.addr);
    let addr = mitm.to_string();
    let text = "meet at the loading dock at nine";
    let (status, out, err) = common::run_with_input(
        &dirs.join_args(&addr, "ana"),
        format!("{text}\n").as_bytes(),
        WAIT,
    );
    assert_eq!(status.code(), Some(1), "stderr:\n{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "stderr:\n{err}");
    assert!(
        errors[0].starts_with(&format!("error: the connection to {addr} is intercepted"))
            && errors[0].contains("man in the middle"),
        "stderr:\n{err}"
    );
    assert!(!out.contains(text), "stdout: {out}");
    assert!(out.trim().is_empty(), "no chat output at all: {out}");
    assert!(!dirs.known_servers().exists(), "nothing pinned");
    assert!(
        server
            .wait_for_log("intercepted", WAIT)
            .is_some_and(|l| l.contains("man in the middle")),
        "the server saw the interception reported"
    );
    drop(rt);
    // The relay held both TLS sessions, so it saw the plaintext of the
    // passphrase check -- and never the passphrase, and the client never
    // got as far as the chat protocol.
    let (up, down) = (seen.to_server(), seen.to_client());
    assert!(
        up.len() >= 37,
        "the client's PAKE message crossed the relay"
    );
    for (dir, bytes) in [("to server", &up), ("to client", &down)] {
        assert!(!contains(bytes, PASS.as_bytes()), "passphrase {dir}");
        assert!(!contains(bytes, text.as_bytes()), "chat text {dir}");
        assert!(!contains(bytes, &PREAMBLE), "chat preamble {dir}");
    }
}

#[test]
fn a_wiretap_between_secure_members_sees_no_chat_and_no_passphrase() {
    let dirs = SecureDirs::new();
    let server = dirs.serve();
    let rt = Runtime::new().unwrap();
    let (tap, seen) = start_wiretap(&rt, server.addr);
    let addr = tap.to_string();
    let text = "the eagle lands at noon";

    let bob = Member::start(&dirs.join_args(&addr, "bob"));
    assert!(
        server.wait_for_log("connected as bob", WAIT).is_some(),
        "bob did not join through the tap"
    );
    let (status, _out, err) = common::run_with_input(
        &dirs.join_args(&addr, "ana"),
        format!("{text}\n").as_bytes(),
        WAIT,
    );
    assert!(status.success(), "ana: {err}");
    assert!(
        bob.wait_line(&format!("[lobby] ana: {text}")),
        "bob did not receive ana's message"
    );
    drop(bob);
    drop(rt);

    let (up, down) = (seen.to_server(), seen.to_client());
    // It really carried secure connections: TLS ClientHellos up, and both
    // directions well past the handshake.
    assert!(up.starts_with(&[0x16, 0x03]), "a tls client hello first");
    assert!(
        up.len() > 1000 && down.len() > 1000,
        "{} / {}",
        up.len(),
        down.len()
    );
    for (dir, bytes) in [("to server", &up), ("to client", &down)] {
        assert!(!contains(bytes, text.as_bytes()), "chat text {dir}");
        assert!(!contains(bytes, PASS.as_bytes()), "passphrase {dir}");
        for word in PASS.split(' ') {
            assert!(!contains(bytes, word.as_bytes()), "'{word}' {dir}");
        }
        assert!(!contains(bytes, &PREAMBLE), "chat preamble {dir}");
    }
}
