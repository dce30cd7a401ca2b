//! `soquete chat join` run as a real process: `--raw` against the chapter's
//! chat server (and its client), and the native line mode against a fake
//! server (`chat_client/fake_server.rs`) that speaks the server side of the
//! protocol, so each test controls exactly what the server does.

mod common;
#[path = "chat_client/end_to_end.rs"]
mod end_to_end;
#[path = "chat_client/fake_server.rs"]
mod fake_server;
#[path = "chat_client/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{Server, run_with_input, signal, wait_timeout};
use fake_server::{Fake, Script, chat, event, hello, is_quit, msgs, say};
use process::{Join, LIMIT, pump, wait_line};
use soquete::wire::chat::{ChatKind, ClientMsg, EventKind, ServerMsg};

fn join(args: &[&str], stdin: &str) -> (ExitStatus, String, String) {
    let mut all = vec!["chat", "join"];
    all.extend_from_slice(args);
    run_with_input(&all, stdin.as_bytes(), LIMIT)
}

// ---------------------------------------------------------------------------
// Native line mode.

#[test]
fn line_mode_prints_chat_on_stdout_and_the_rest_on_stderr() {
    let fake = Fake::start(Script {
        history: vec![("bo".into(), "antes".into())],
        extra: vec![
            chat(ChatKind::Say, "lobby", "bo", "", "oi \x1b[2J", false),
            chat(ChatKind::Action, "lobby", "bo", "", "acena", false),
            chat(ChatKind::Private, "", "bo", "ana", "psst", false),
            event(EventKind::Join, "lobby", "cy", ""),
            ServerMsg::Notice {
                text: "bem-vindo".into(),
            },
            event(EventKind::Quit, "lobby", "bo", "tchau"),
            event(EventKind::Quit, "lab", "bo", "tchau"),
        ],
        ..Script::default()
    });
    let (status, out, err) = join(&[&fake.addr(), "--name", "ana"], "");
    assert!(status.success(), "{err}");
    assert_eq!(
        out,
        "[lobby] bo: antes\n[lobby] bo: oi ^[[2J\n[lobby] * bo acena\n[pm] bo -> ana: psst\n"
    );
    for want in [
        &format!("* connected to {} as ana", fake.addr()),
        "* you joined lobby (2 here: bo, ana)",
        "* cy joined lobby",
        "notice: bem-vindo",
    ] {
        assert!(err.lines().any(|l| l == want), "missing {want:?} in {err}");
    }
    assert_eq!(err.matches("* bo quit (tchau)").count(), 1, "{err}");
    assert!(!err.contains("ana joined"), "own join is said once: {err}");
}

#[test]
fn typed_commands_become_the_right_frames() {
    let fake = Fake::start(Script::default());
    let input = "/join #lab\nhello\n/me waves\n/msg bo oi\n/nick ana2\n/who\n/rooms\n/part\n\
                 /frob\n/help\nbye all\n";
    let (status, out, err) = join(&[&fake.addr(), "--name", "ana"], input);
    assert!(status.success(), "{err}");
    let got = msgs(&fake.until(is_quit));
    assert_eq!(
        got,
        vec![
            hello("ana"),
            ClientMsg::Join { room: "lab".into() },
            say("lab", "hello"),
            ClientMsg::Action {
                room: "lab".into(),
                text: "waves".into()
            },
            ClientMsg::Private {
                to: "bo".into(),
                text: "oi".into()
            },
            ClientMsg::Nick {
                name: "ana2".into()
            },
            ClientMsg::Who { room: "lab".into() },
            ClientMsg::ListRooms,
            ClientMsg::Part { room: "lab".into() },
            say("lobby", "bye all"),
            ClientMsg::Quit {
                reason: String::new()
            },
        ]
    );
    assert!(
        out.contains("[lab] ana: hello\n[lab] * ana waves\n[pm] ana -> bo: oi\n"),
        "{out}"
    );
    assert!(out.ends_with("[lobby] ana2: bye all\n"), "{out}");
    for want in [
        "error: unknown command /frob (try /help)",
        "* you are now ana2",
        "* you left lab",
    ] {
        assert!(err.lines().any(|l| l == want), "missing {want:?} in {err}");
    }
    assert!(err.contains("/join ROOM"), "help text: {err}");
}

#[test]
fn stdin_eof_waits_until_a_slow_server_has_everything() {
    let fake = Fake::start(Script {
        delay: Duration::from_millis(150),
        ..Script::default()
    });
    let (status, out, err) = join(&[&fake.addr(), "--room", "lab"], "one\ntwo\nthree\n");
    assert!(status.success(), "{err}");
    let got = msgs(&fake.until(is_quit));
    assert_eq!(
        got[1..4],
        [
            ClientMsg::Join { room: "lab".into() },
            say("lab", "one"),
            say("lab", "two")
        ]
    );
    assert_eq!(got[4], say("lab", "three"));
    assert_eq!(
        out,
        "[lab] guest-1: one\n[lab] guest-1: two\n[lab] guest-1: three\n"
    );
}

#[test]
fn name_taken_exits_1_with_one_line() {
    let fake = Fake::start(Script {
        taken: vec!["ana".into()],
        ..Script::default()
    });
    let (status, out, err) = join(&[&fake.addr(), "--name", "ana"], "hi\n");
    assert_eq!(status.code(), Some(1));
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "error: the name 'ana' is already taken on {}\n",
            fake.addr()
        )
    );
}

#[test]
fn server_ping_is_answered() {
    let fake = Fake::start(Script {
        extra: vec![ServerMsg::Ping { token: 42 }],
        ..Script::default()
    });
    let mut c = Join::start(&[&fake.addr()]);
    fake.until(|_, m| *m == ClientMsg::Pong { token: 42 });
    c.close_stdin();
    assert!(c.finish().success());
}

#[test]
fn ctrl_c_sends_quit_and_exits_130() {
    let fake = Fake::start(Script::default());
    let mut c = Join::start(&[&fake.addr(), "--name", "ana"]);
    c.expect_err("* connected to");
    signal(c.child.id(), "INT");
    assert_eq!(c.finish().code(), Some(130));
    fake.until(is_quit);
}

#[test]
fn reconnects_with_the_same_name_and_rooms_after_the_server_drops() {
    let fake = Fake::start(Script {
        drop_first: Some(None),
        ..Script::default()
    });
    let mut c = Join::start(&[&fake.addr(), "--room", "lab"]);
    c.expect_err("* server closed the connection");
    c.expect_err("* reconnecting in");
    c.expect_err(&format!("* reconnected to {} as guest-1", fake.addr()));
    c.expect_err("* you joined lab");
    c.line("after");
    c.expect_out("[lab] guest-1: after");
    c.close_stdin();
    assert!(c.finish().success(), "{:?}", c.seen_err);
    let got = fake.until(is_quit);
    // The second connection asks for the name the first one was given.
    assert!(got.contains(&(1, hello("guest-1"))), "{got:?}");
    assert!(
        got.contains(&(1, ClientMsg::Join { room: "lab".into() })),
        "{got:?}"
    );
    assert!(got.contains(&(1, say("lab", "after"))), "{got:?}");
}

#[test]
fn reconnect_while_the_old_name_is_held_takes_it_back_with_nick() {
    let fake = Fake::start(Script {
        drop_first: Some(None),
        taken_after_first: true,
        ..Script::default()
    });
    let mut c = Join::start(&[&fake.addr(), "--name", "ana"]);
    c.expect_err("* reconnected to");
    c.expect_err("* you are now ana");
    c.close_stdin();
    assert!(c.finish().success(), "{:?}", c.seen_err);
    let got = fake.until(is_quit);
    let nick = ClientMsg::Nick { name: "ana".into() };
    assert!(got.contains(&(1, hello("ana"))), "{got:?}");
    assert!(got.contains(&(2, hello(""))), "{got:?}");
    assert!(got.contains(&(2, nick)), "{got:?}");
}

#[test]
fn no_reconnect_exits_1_when_the_server_closes() {
    let fake = Fake::start(Script {
        drop_first: Some(None),
        ..Script::default()
    });
    let mut c = Join::start(&[&fake.addr(), "--no-reconnect"]);
    assert_eq!(c.finish().code(), Some(1));
    assert_eq!(
        c.seen_err.last().map(String::as_str),
        Some("error: server closed the connection")
    );
}

#[test]
fn no_reconnect_says_why_the_server_said_bye() {
    let bye = Some("server shutting down".to_owned());
    let fake = Fake::start(Script {
        drop_first: Some(bye),
        ..Script::default()
    });
    let mut c = Join::start(&[&fake.addr(), "--no-reconnect"]);
    assert_eq!(c.finish().code(), Some(1));
    assert_eq!(
        c.seen_err.last().map(String::as_str),
        Some("error: server closed the connection: server shutting down")
    );
}

#[test]
fn connection_refused_is_one_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for raw in [false, true] {
        let mut args = vec![addr.as_str()];
        if raw {
            args.push("--raw");
        }
        let (status, out, err) = join(&args, "");
        assert_eq!(status.code(), Some(1));
        assert_eq!(out, "");
        assert_eq!(
            err,
            format!("error: connection refused by {addr}\n"),
            "raw: {raw}"
        );
    }
}

#[test]
fn a_server_that_is_not_a_chat_server_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
            thread::sleep(Duration::from_secs(2));
        }
    });
    let (status, _, err) = join(&[&addr], "");
    assert_eq!(status.code(), Some(1));
    assert!(
        err.starts_with(&format!("error: {addr} is not a soquete chat server")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

// ---------------------------------------------------------------------------
// Raw mode and the chapter's scripts.

#[test]
fn native_join_on_the_chapter_server_says_use_raw() {
    let server = Server::python("chapter_chat_server.py", &["0"]);
    let (status, _, err) = join(&[&server.addr_str()], "");
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        err,
        format!(
            "error: {} is a raw chat server; use --raw\n",
            server.addr_str()
        )
    );
}

/// Starts a raw client and waits until the server relays to it (its own
/// probe comes back), so it is sure to see what others send next.
fn raw_client(server: &Server, probe: &str) -> Join {
    let mut c = Join::start(&[&server.addr_str(), "--raw"]);
    c.line(probe);
    c.expect_out(probe);
    c
}

#[test]
fn raw_clients_see_each_other_through_the_chapter_server() {
    let server = Server::python("chapter_chat_server.py", &["0"]);
    let mut a = raw_client(&server, "a-ready");
    let mut b = raw_client(&server, "b-ready");
    // Raw messages have no delimiter: if b's probe were still on its way to
    // a, a's next read could glue it to the echo of a's own message.
    a.expect_out("b-ready");
    a.line("Olá turma de redes industriais");
    assert_eq!(b.expect_out("turma"), "Olá turma de redes industriais");
    assert_eq!(a.expect_out("turma"), "Olá turma de redes industriais");
    b.line("oi");
    a.expect_out("oi");
    for c in [&mut a, &mut b] {
        c.close_stdin();
        assert!(c.finish().success(), "{:?}", c.seen_err);
    }
}

#[test]
fn raw_client_and_the_chapter_client_talk() {
    let server = Server::python("chapter_chat_server.py", &["0"]);
    let mut a = raw_client(&server, "soquete-ready");
    let mut py = Command::new("python3")
        .arg(format!(
            "{}/tests/peers/chapter_chat_client.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(server.addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let py_out = pump(py.stdout.take().unwrap());
    let mut py_seen = Vec::new();
    let mut py_in = py.stdin.take().unwrap();
    py_in.write_all("do script é\n".as_bytes()).unwrap();
    py_in.flush().unwrap();
    a.expect_out("do script é");
    // Its own echo printed, the chapter client reads our line as a new chunk.
    wait_line(&py_out, &mut py_seen, "do script é").expect("chapter client sees its echo");
    a.line("de soquete");
    let got = wait_line(&py_out, &mut py_seen, "soquete");
    assert_eq!(got.as_deref(), Some("de soquete"), "{py_seen:?}");
    drop(py_in);
    assert!(
        wait_timeout(&mut py, LIMIT)
            .expect("chapter client exits")
            .success()
    );
}

/// A raw server that records what it receives until the client's EOF.
fn recording_server() -> (String, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    (addr, rx)
}

#[test]
fn raw_mode_sends_exactly_the_chapter_clients_bytes() {
    for (newline, want) in [
        (false, &b"Ol\xc3\xa1 two"[..]),
        (true, b"Ol\xc3\xa1\n two\n"),
    ] {
        let (addr, rx) = recording_server();
        let mut args = vec![addr.as_str(), "--raw"];
        if newline {
            args.push("--newline");
        }
        let (status, _, err) = join(&args, "Olá\r\n\n two\n");
        assert!(status.success(), "{err}");
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), want, "newline: {newline}");
    }
}

#[test]
fn raw_mode_prints_split_coalesced_and_hostile_reads_safely() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let pieces: [&[u8]; 6] = [
            b"Ol\xc3",
            b"\xa1 turma",
            b"one two",
            b"\x1b[2Jx\xff",
            b"a\nb",
            b"c\n",
        ];
        for p in pieces {
            s.write_all(p).unwrap();
            thread::sleep(Duration::from_millis(150));
        }
    });
    let mut c = Join::start(&[&addr, "--raw"]);
    assert_eq!(c.finish().code(), Some(1));
    // Each read is a message until a newline shows up (reads 150 ms apart
    // stay apart unless the machine stalls, hence the looser checks).
    assert_eq!(
        c.seen_out.concat(),
        "Olá turmaone two^[[2Jx\u{FFFD}abc",
        "{:?}",
        c.seen_out
    );
    assert_eq!(c.seen_out.last().map(String::as_str), Some("bc"));
    assert_eq!(
        c.seen_out.concat().matches('\u{FFFD}').count(),
        1,
        "split é repaired"
    );
    assert_eq!(
        c.seen_err.last().map(String::as_str),
        Some("error: server closed the connection")
    );
}
