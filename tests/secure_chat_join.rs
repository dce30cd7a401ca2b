//! `chat join` over the secure channel, against an in-process server built
//! from the library (`secure::accept`) with a minimal native chat side
//! written here: a message round trip, the first-contact pin, a wrong
//! passphrase, a changed server identity and `--show-fingerprint`, all
//! with the real binary. Every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use soquete::secure::{self, Fingerprint, Passphrase, ServerSecurity};
use soquete::wire::chat::{ChatKind, ChatLine, ClientMsg, PREAMBLE, ServerMsg};
use soquete::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest a test run of the binary may take.
const LIMIT: Duration = Duration::from_secs(20);
/// Longest one server connection may live.
const CONN_LIMIT: Duration = Duration::from_secs(20);

/// A secure chat server on 127.0.0.1, running on its own runtime.
struct TestServer {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    rt: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Listens on `port` (0: any) with the key in `state_dir`.
    fn start(state_dir: &Path, pass: &str, port: u16) -> TestServer {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let phrase = Passphrase::new(pass.to_string(), "test").unwrap();
        let sec = Arc::new(ServerSecurity::load_or_create(state_dir, phrase).unwrap());
        let fingerprint = sec.fingerprint();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let sec = sec.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONN_LIMIT, serve(tcp, &sec, peer)).await;
                });
            }
        });
        TestServer {
            addr,
            fingerprint,
            rt: Some(rt),
        }
    }

    fn addr_str(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// One connection: the secure channel, the preamble and hello, a welcome
/// and the lobby; then each `Say` comes back as a `Chat`, until `Quit`.
async fn serve(tcp: tokio::net::TcpStream, sec: &ServerSecurity, peer: SocketAddr) {
    let Ok(mut s) = secure::accept(tcp, sec, peer).await else {
        return;
    };
    let mut buf = BytesMut::with_capacity(4096);
    while buf.len() < PREAMBLE.len() {
        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
    assert_eq!(&buf[..PREAMBLE.len()], &PREAMBLE[..]);
    let _ = buf.split_to(PREAMBLE.len());
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    let mut name = String::new();
    let mut next_id = 1;
    loop {
        while let Ok(Some(frame)) = codec.decode_frame(&mut buf) {
            let mut out = Vec::new();
            match ClientMsg::decode(&frame).unwrap() {
                ClientMsg::Hello { name: n, .. } => {
                    name = if n.is_empty() { "guest1".into() } else { n };
                    out.push(ServerMsg::Welcome {
                        name: name.clone(),
                        software: "test".into(),
                        max_text: 4096,
                        history: 0,
                    });
                    out.push(joined("lobby", &name));
                }
                ClientMsg::Join { room } => out.push(joined(&room, &name)),
                ClientMsg::Say { room, text } => {
                    out.push(ServerMsg::Chat(ChatLine {
                        id: next_id,
                        ts_ms: 0,
                        kind: ChatKind::Say,
                        history: false,
                        room,
                        from: name.clone(),
                        to: String::new(),
                        text,
                    }));
                    next_id += 1;
                }
                ClientMsg::Ping { token } => out.push(ServerMsg::Pong { token }),
                ClientMsg::Quit { .. } => {
                    // Close our side, then read to the end so that closing
                    // does not reset the connection under unread data.
                    let _ = s.shutdown().await;
                    let mut sink = [0u8; 1024];
                    while s.read(&mut sink).await.unwrap_or(0) > 0 {}
                    return;
                }
                _ => {}
            }
            // One write, as the real server does: the welcome and the
            // lobby arrive together.
            let mut bytes = Vec::new();
            for msg in out {
                bytes.extend_from_slice(&msg.to_bytes().unwrap());
            }
            if s.write_all(&bytes).await.is_err() || s.flush().await.is_err() {
                return;
            }
        }
        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
}

fn joined(room: &str, name: &str) -> ServerMsg {
    ServerMsg::Joined {
        room: room.into(),
        total: 1,
        members: vec![name.into()],
    }
}

/// A temporary directory with a passphrase file.
fn pass_file(dir: &Path, name: &str, pass: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{pass}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path.to_str().unwrap().to_string()
}

fn join(addr: &str, pass: &str, state: &Path, extra: &[&str], input: &[u8]) -> Run {
    let state = state.to_str().unwrap();
    let mut args = vec![
        "chat",
        "join",
        addr,
        "--passphrase-file",
        pass,
        "--state-dir",
        state,
        "--name",
        "ana",
        "--no-reconnect",
    ];
    args.extend_from_slice(extra);
    let (status, out, err) = common::run_with_input(&args, input, LIMIT);
    Run {
        code: status.code(),
        out,
        err,
    }
}

struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

#[test]
fn a_message_round_trip_over_the_secure_channel_pins_on_first_contact() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("srv"), "correct horse battery", 0);
    let pass = pass_file(tmp.path(), "pass", "correct horse battery");
    let state = tmp.path().join("cli");
    let addr = server.addr_str();
    let r = join(&addr, &pass, &state, &[], b"hello secure world\n");
    assert_eq!(r.code, Some(0), "stderr: {}", r.err);
    assert!(
        r.out
            .lines()
            .any(|l| l == "[lobby] ana: hello secure world"),
        "stdout: {} stderr: {}",
        r.out,
        r.err
    );
    let pinned = format!(
        "* pinned server identity {} for {addr} in {} (the passphrase proved it)",
        server.fingerprint,
        state.join("known_servers").display()
    );
    assert!(r.err.lines().any(|l| l == pinned), "stderr: {}", r.err);
    let known = std::fs::read_to_string(state.join("known_servers")).unwrap();
    assert!(known.contains(&addr), "{known}");
    assert!(known.contains(&server.fingerprint.to_string()), "{known}");

    // Second contact: already pinned, no note.
    let r = join(&addr, &pass, &state, &[], b"again\n");
    assert_eq!(r.code, Some(0), "stderr: {}", r.err);
    assert!(
        r.out.contains("[lobby] ana: again"),
        "stdout: {} stderr: {}",
        r.out,
        r.err
    );
    assert!(
        !r.err.contains("pinned server identity"),
        "stderr: {}",
        r.err
    );
}

#[test]
fn a_wrong_passphrase_is_one_error_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("srv"), "correct horse battery", 0);
    let pass = pass_file(tmp.path(), "pass", "wrong horse battery");
    let state = tmp.path().join("cli");
    let addr = server.addr_str();
    let r = join(&addr, &pass, &state, &[], b"never sent\n");
    assert_eq!(r.code, Some(1), "stderr: {}", r.err);
    let want = format!("error: wrong passphrase for {addr}");
    assert!(r.err.lines().any(|l| l == want), "stderr: {}", r.err);
    assert!(r.out.is_empty(), "stdout: {}", r.out);
    assert!(!state.join("known_servers").exists());
}

#[test]
fn another_server_key_on_a_pinned_address_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = pass_file(tmp.path(), "pass", "correct horse battery");
    let state = tmp.path().join("cli");
    let first = TestServer::start(&tmp.path().join("srv1"), "correct horse battery", 0);
    let addr = first.addr_str();
    let port = first.addr.port();
    let r = join(&addr, &pass, &state, &[], b"hi\n");
    assert_eq!(r.code, Some(0), "stderr: {}", r.err);
    drop(first);

    let second = TestServer::start(&tmp.path().join("srv2"), "correct horse battery", port);
    let r = join(&addr, &pass, &state, &[], b"hi\n");
    assert_eq!(r.code, Some(1), "stderr: {}", r.err);
    let lines: Vec<&str> = r.err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "stderr: {}", r.err);
    assert!(
        lines[0].starts_with(&format!("error: server identity changed for {addr}")),
        "stderr: {}",
        r.err
    );
    assert!(
        lines[0].contains(&second.fingerprint.to_string()),
        "{}",
        r.err
    );
    assert!(r.out.is_empty(), "stdout: {}", r.out);
}

#[test]
fn show_fingerprint_prints_the_servers_identity_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("srv"), "correct horse battery", 0);
    let pass = pass_file(tmp.path(), "pass", "correct horse battery");
    let state = tmp.path().join("cli");
    let r = join(
        &server.addr_str(),
        &pass,
        &state,
        &["--show-fingerprint"],
        b"",
    );
    assert_eq!(r.code, Some(0), "stderr: {}", r.err);
    let want = server.fingerprint.to_string();
    assert!(want.starts_with("SHA256:"), "{want}");
    assert_eq!(r.out, format!("{want}\n"));
}

#[test]
fn raw_and_fernet_refuse_the_passphrase_options() {
    for mode in ["--raw", "--fernet"] {
        let (status, _out, err) = common::run_with_input(
            &["chat", "join", "127.0.0.1:1", mode, "--passphrase-env", "X"],
            b"",
            LIMIT,
        );
        assert_eq!(status.code(), Some(2), "{mode}: {err}");
        assert!(err.contains("cannot be used with"), "{mode}: {err}");
    }
}

#[test]
fn a_plain_chat_server_is_named_not_secure() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = common::Server::start(&["chat", "serve", "--listen", "127.0.0.1:0"]);
    let pass = pass_file(tmp.path(), "pass", "correct horse battery");
    let state = tmp.path().join("cli");
    let addr = plain.addr_str();
    let r = join(&addr, &pass, &state, &[], b"hi\n");
    assert_eq!(r.code, Some(1), "stderr: {}", r.err);
    let want = format!("error: {addr} is not a secure soquete server");
    assert!(
        r.err.lines().any(|l| l.starts_with(&want)),
        "stderr: {}",
        r.err
    );
    assert!(!state.join("known_servers").exists());
}
