//! The interop suite: soquete against the chapter's scripts (Python stand-ins
//! that send and read exactly the chapter's bytes, in `tests/peers/`) and
//! against `ncat --chat`. CI runs it again on the release binary.
//!
//! `ncat` is needed for the ncat tests: when it is missing they are skipped
//! with a note, unless `SOQUETE_REQUIRE_INTEROP=1` (set by `.ci/run`), which
//! turns a missing `ncat` into a failure.

mod common;

use std::time::Duration;

use common::Server;

#[test]
fn chapter_clients_chat_through_soquete_with_names() {
    let srv = Server::start(&["chat", "serve", "--listen", "127.0.0.1:0"]);
    let port = srv.addr.port();
    let listener = common::chapter_client(
        "chapter_chat_client.py",
        port,
        Duration::from_millis(1500),
        &[],
    );
    let speaker = common::chapter_client(
        "chapter_chat_client.py",
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
    let listener = common::chapter_client(
        "chapter_chat_client.py",
        port,
        Duration::from_millis(2500),
        &[],
    );
    // The listener must be in before the speaker talks: no history here.
    let joined = srv.wait_for_log("connected as guest-1 (raw)", Duration::from_secs(10));
    assert!(joined.is_some(), "the listener connected");
    let speaker = common::chapter_client(
        "chapter_chat_client.py",
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
    let script = common::chapter_client(
        "chapter_chat_client.py",
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

#[test]
fn raw_clients_chat_through_ncat_chat() {
    let Some(ncat) = common::Ncat::start() else {
        return;
    };
    let addr = ncat.addr.clone();
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
    drop(ncat);
    assert!(status.success(), "{err}");
    // ncat prefixes the sender (`<user5> hello…`) and escapes non-ASCII
    // bytes as octal, so the text here is ASCII.
    assert!(
        out.lines().any(|l| l.ends_with("> hello from soquete")),
        "listener got:\n{out}"
    );
}
