//! The interop suite: soquete against the chapter's scripts (Python stand-ins
//! that send and read exactly the chapter's bytes, in `tests/peers/`) and
//! against `ncat --chat`. CI runs it again on the release binary.
//!
//! `ncat` is needed for the ncat tests: when it is missing they are skipped
//! with a note, unless `SOQUETE_REQUIRE_INTEROP=1` (set by `.ci/run`), which
//! turns a missing `ncat` into a failure.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;

/// Runs the chapter's chat client (`Cliente.py`'s behaviour) on `port`,
/// typing `lines` after `delay`; returns what it printed.
fn chapter_client(port: u16, delay: Duration, lines: &[&str]) -> std::thread::JoinHandle<String> {
    let script = format!(
        "{}/tests/peers/chapter_chat_client.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::thread::spawn(move || {
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg("0.2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the chapter client");
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(delay);
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let Some(_) = common::wait_timeout(&mut child, Duration::from_secs(15)) else {
            let _ = child.kill();
            panic!("chapter client did not finish");
        };
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

#[test]
fn chapter_clients_chat_through_soquete_with_names() {
    let srv = Server::start(&["chat", "serve", "--listen", "127.0.0.1:0"]);
    let port = srv.addr.port();
    let listener = chapter_client(port, Duration::from_millis(1500), &[]);
    let speaker = chapter_client(
        port,
        Duration::from_millis(500),
        &["Olá turma de redes industriais"],
    );
    let heard = listener.join().unwrap();
    let said = speaker.join().unwrap();
    assert!(
        heard.contains(": Olá turma de redes industriais"),
        "listener got:\n{heard}"
    );
    assert!(
        said.contains(": Olá turma de redes industriais"),
        "speaker gets its own line too:\n{said}"
    );
    assert!(heard.contains("* welcome, guest-"), "{heard}");
}

#[test]
fn chapter_clients_see_the_chapter_bytes_in_verbatim_mode() {
    let srv = Server::start(&[
        "chat",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--raw-relay",
        "verbatim",
    ]);
    let port = srv.addr.port();
    let listener = chapter_client(port, Duration::from_millis(2500), &[]);
    // The listener must be in before the speaker talks: no history here.
    let joined = srv.wait_for_log("connected as guest-1 (raw)", Duration::from_secs(10));
    assert!(joined.is_some(), "the listener connected");
    let speaker = chapter_client(
        port,
        Duration::from_millis(500),
        &["Olá turma de redes industriais"],
    );
    let heard = listener.join().unwrap();
    speaker.join().unwrap();
    // Exactly what Servidor.py relays: the 31 bytes, nothing else, no name.
    assert_eq!(
        heard, "Olá turma de redes industriais\n",
        "listener got {heard:?}"
    );
}

#[test]
fn line_mode_client_and_chapter_client_share_the_lobby() {
    let srv = Server::start(&["chat", "serve", "--listen", "127.0.0.1:0"]);
    let script = chapter_client(
        srv.addr.port(),
        Duration::from_millis(300),
        &["sou o script"],
    );
    std::thread::sleep(Duration::from_millis(1200));
    let addr = srv.addr_str();
    let (status, out, err) = common::run_with_input(
        &["chat", "join", &addr, "--name", "ana"],
        "oi, script\n".as_bytes(),
        Duration::from_secs(10),
    );
    assert!(status.success(), "{err}");
    assert!(
        out.contains(": sou o script"),
        "history holds the script's line:\n{out}"
    );
    let heard = script.join().unwrap();
    assert!(heard.contains("ana: oi, script"), "script got:\n{heard}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have_ncat() -> bool {
    let found = Command::new("ncat")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("SOQUETE_REQUIRE_INTEROP").is_err(),
            "ncat is required for the interop suite (apt-get install ncat)"
        );
        eprintln!("note: ncat not installed; skipping the ncat interop test");
    }
    found
}

#[test]
fn raw_clients_chat_through_ncat_chat() {
    if !have_ncat() {
        return;
    }
    let port = free_port();
    let mut ncat = Command::new("ncat")
        .args(["--chat", "-l", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ncat --chat");
    let addr = format!("127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(up, "ncat did not start listening");
    let listener_addr = addr.clone();
    let listener = std::thread::spawn(move || {
        common::run_with_input_delayed(
            &["chat", "join", &listener_addr, "--raw", "--newline"],
            b"",
            Duration::from_millis(4000),
            Duration::from_secs(15),
        )
    });
    // ncat keeps no history: give the listener time to connect first.
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _, err) = common::run_with_input(
        &["chat", "join", &addr, "--raw", "--newline"],
        b"hello from soquete\n",
        Duration::from_secs(10),
    );
    assert!(status.success(), "{err}");
    let (status, out, err) = listener.join().unwrap();
    let _ = ncat.kill();
    let _ = ncat.wait();
    assert!(status.success(), "{err}");
    // ncat prefixes the sender (`<user5> hello…`) and escapes non-ASCII
    // bytes as octal, so the text here is ASCII.
    assert!(
        out.lines().any(|l| l.ends_with("> hello from soquete")),
        "listener got:\n{out}"
    );
}
