//! `soquete chat serve --passphrase-file`: the real binary with the secure
//! channel in front of the native protocol. Right and wrong passphrases,
//! plain native and raw clients told why, a secure client of a plain server,
//! `--show-fingerprint` and a key that survives restarts. Every wait is
//! bounded.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use common::Server;
use common::native::{NativeClient, RawClient};
use common::secure::{PASS, SecureDirs};
use soquete::secure::{ClientSecurity, ClientStream, Passphrase, SecureError, connect};
use soquete::wire::chat::{ClientMsg, ErrorCode, PREAMBLE, ServerMsg};
use soquete::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(15);

/// Runs `chat serve --show-fingerprint` on the server state of `dirs`;
/// returns its stdout.
fn show_fingerprint(dirs: &SecureDirs) -> String {
    let mut child = Command::new(common::bin())
        .args(["chat", "serve", "--show-fingerprint", "--state-dir"])
        .arg(&dirs.server)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = common::wait_timeout(&mut child, LIMIT).expect("exits in time");
    assert!(status.success(), "{status}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

/// A native client inside the secure channel.
struct SecureClient {
    tls: ClientStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl SecureClient {
    /// Runs the secure channel with `pass`, then says hello.
    async fn connect(
        addr: SocketAddr,
        state: &Path,
        pass: &str,
        name: &str,
    ) -> Result<SecureClient, SecureError> {
        let tcp = timeout(LIMIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let pass = Passphrase::new(pass.into(), "test").unwrap();
        let sec = ClientSecurity::new(state, pass, None);
        let (mut tls, _) = timeout(LIMIT, connect(tcp, &addr.to_string(), &sec))
            .await
            .expect("secure handshake in time")?;
        let mut hello = BytesMut::from(&PREAMBLE[..]);
        ClientMsg::Hello {
            name: name.into(),
            software: "test".into(),
        }
        .encode(&mut hello)
        .unwrap();
        tls.write_all(&hello).await.unwrap();
        tls.flush().await.unwrap();
        Ok(SecureClient {
            tls,
            buf: BytesMut::new(),
            codec: FrameCodec::new(DEFAULT_MAX_FRAME),
        })
    }

    async fn send(&mut self, msg: ClientMsg) {
        self.tls.write_all(&msg.to_bytes().unwrap()).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// The next message matching `pred` (≤ 10 s), or a panic.
    async fn expect(&mut self, what: &str, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let found = timeout(Duration::from_secs(10), async {
            loop {
                if let Some(f) = self.codec.decode_frame(&mut self.buf).unwrap() {
                    let msg = ServerMsg::decode(&f).unwrap();
                    if let Some(m) = msg.expand().into_iter().find(|m| pred(m)) {
                        return Some(m);
                    }
                    continue;
                }
                match self.tls.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await;
        match found {
            Ok(Some(m)) => m,
            Ok(None) => panic!("closed before {what}"),
            Err(_) => panic!("no {what} within 10 s"),
        }
    }
}

/// The fingerprint in the server's log line.
fn logged_fingerprint(server: &Server) -> String {
    let line = server
        .wait_for_log("fingerprint", LIMIT)
        .expect("fingerprint logged");
    let at = line.find("SHA256:").expect("SHA256: in the log line");
    line[at..].trim().to_string()
}

#[tokio::test]
async fn right_passphrase_joins_and_chats() {
    let dirs = SecureDirs::new();
    let server = dirs.serve();
    assert!(logged_fingerprint(&server).starts_with("SHA256:"));
    let mut alice = SecureClient::connect(server.addr, &dirs.client, PASS, "alice")
        .await
        .unwrap();
    alice
        .expect("welcome", |m| matches!(m, ServerMsg::Welcome { .. }))
        .await;
    let mut bob = SecureClient::connect(server.addr, &dirs.client, PASS, "bob")
        .await
        .unwrap();
    bob.expect("welcome", |m| matches!(m, ServerMsg::Welcome { .. }))
        .await;
    alice
        .send(ClientMsg::Say {
            room: "lobby".into(),
            text: "olá, secretly".into(),
        })
        .await;
    bob.expect(
        "alice's message",
        |m| matches!(m, ServerMsg::Chat(c) if c.text == "olá, secretly"),
    )
    .await;
}

#[tokio::test]
async fn wrong_passphrase_is_refused_and_the_server_keeps_serving() {
    let dirs = SecureDirs::new();
    let server = dirs.serve();
    let err = SecureClient::connect(server.addr, &dirs.client, "wrong horse", "mallory")
        .await
        .err()
        .expect("a wrong passphrase must fail");
    assert!(matches!(err, SecureError::WrongPassphrase { .. }), "{err}");
    let line = server
        .wait_for_log("wrong passphrase", LIMIT)
        .expect("the failure is logged");
    assert!(line.contains("127.0.0.1"), "{line}");
    let mut ok = SecureClient::connect(server.addr, &dirs.client, PASS, "alice")
        .await
        .unwrap();
    ok.expect("welcome", |m| matches!(m, ServerMsg::Welcome { .. }))
        .await;
}

#[test]
fn plain_native_client_gets_an_error_frame() {
    let dirs = SecureDirs::new();
    let server = dirs.serve();
    let mut c = NativeClient::connect(server.addr, "plain");
    let msg = c.expect("error", |m| matches!(m, ServerMsg::Error { .. }));
    let ServerMsg::Error { code, text } = msg else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::Protocol as u16);
    assert!(
        text.contains("encrypted") && text.contains("--passphrase-file"),
        "{text}"
    );
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn raw_client_gets_an_error_line() {
    let dirs = SecureDirs::new();
    let server = dirs.serve();
    let mut c = RawClient::connect(server.addr);
    c.send(b"hello?\n");
    let text = c.wait_for("this chat is encrypted");
    assert!(text.contains("--passphrase-file"), "{text}");
}

#[tokio::test]
async fn secure_client_of_a_plain_server_fails_at_once() {
    let dirs = SecureDirs::new();
    let server = Server::start(&["chat", "serve", "--listen", "127.0.0.1:0"]);
    let err = SecureClient::connect(server.addr, &dirs.client, PASS, "alice")
        .await
        .err()
        .expect("a plain server cannot pass the secure handshake");
    assert!(!matches!(err, SecureError::Timeout { .. }), "{err}");
    server
        .wait_for_log("no passphrase", LIMIT)
        .expect("the refusal is logged");
}

#[test]
fn show_fingerprint_prints_it_and_it_survives_restarts() {
    let dirs = SecureDirs::new();
    let first = show_fingerprint(&dirs);
    let line = first.trim();
    assert!(line.starts_with("SHA256:"), "{first:?}");
    assert_eq!(first.lines().count(), 1, "{first:?}");
    assert_eq!(show_fingerprint(&dirs), first);
    for _ in 0..2 {
        let server = dirs.serve();
        assert_eq!(logged_fingerprint(&server), line);
    }
}

#[test]
fn fernet_and_a_passphrase_exclude_each_other() {
    let dirs = SecureDirs::new();
    let mut child = Command::new(common::bin())
        .args(["chat", "serve", "--listen", "127.0.0.1:0", "--fernet"])
        .arg("--passphrase-file")
        .arg(&dirs.pass_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::wait_timeout(&mut child, LIMIT);
    let _ = child.kill();
    let status = status.expect("refused at once, not served");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("--fernet") && err.contains("cannot be used"),
        "{err}"
    );
}

#[tokio::test]
async fn shutdown_says_bye_inside_the_secure_channel() {
    let dirs = SecureDirs::new();
    let mut server = dirs.serve();
    let mut alice = SecureClient::connect(server.addr, &dirs.client, PASS, "alice")
        .await
        .unwrap();
    alice
        .expect("welcome", |m| matches!(m, ServerMsg::Welcome { .. }))
        .await;
    server.interrupt();
    alice
        .expect("bye", |m| matches!(m, ServerMsg::Bye { .. }))
        .await;
    // Interrupted: 130, as a shell reports Ctrl-C.
    let status = server.wait_timeout(LIMIT).expect("exits in time");
    assert_eq!(status.code(), Some(130), "{status}");
}
