//! `soquete chat serve` run as a real process on 127.0.0.1:0, driven by
//! native clients (the library's wire module) and raw clients that send the
//! chapter's exact bytes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use common::native::{NativeClient, RawClient};
use soquete::wire::chat::{ClientMsg, ErrorCode, EventKind, ServerMsg};

const SECS_5: Duration = Duration::from_secs(5);

fn serve(extra: &[&str]) -> Server {
    let mut args = vec![
        "chat",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--detect-window",
        "100ms",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn is_error(m: &ServerMsg, code: ErrorCode) -> bool {
    matches!(m, ServerMsg::Error { code: c, .. } if *c == code as u16)
}

#[test]
fn native_clients_chat_across_rooms() {
    let srv = serve(&[]);
    let mut ana = NativeClient::join(srv.addr, "ana");
    let mut bo = NativeClient::join(srv.addr, "bo");
    ana.expect(
        "bo's join",
        |m| matches!(m, ServerMsg::Event(e) if e.kind == EventKind::Join && e.name == "bo"),
    );

    ana.say("lobby", "Olá turma de redes industriais");
    let line = bo.expect_chat("Olá turma de redes industriais");
    assert_eq!((line.from.as_str(), line.room.as_str()), ("ana", "lobby"));
    assert!(line.id > 0 && line.ts_ms > 1_600_000_000_000);
    ana.expect_chat("Olá turma de redes industriais"); // the sender gets it too

    ana.send(ClientMsg::Join { room: "lab".into() });
    ana.expect(
        "joined lab",
        |m| matches!(m, ServerMsg::Joined { room, .. } if room == "lab"),
    );
    ana.say("lab", "only lab");
    ana.expect_chat("only lab");
    bo.say("lobby", "still lobby");
    bo.expect_chat("still lobby");
    assert!(
        !bo.seen
            .iter()
            .any(|m| matches!(m, ServerMsg::Chat(c) if c.text == "only lab")),
        "a lobby-only client must not see lab messages"
    );

    bo.send(ClientMsg::Private {
        to: "ana".into(),
        text: "psst".into(),
    });
    let pm = ana.expect_chat("psst");
    assert_eq!((pm.from.as_str(), pm.to.as_str()), ("bo", "ana"));
}

#[test]
fn history_is_sent_on_join() {
    let srv = serve(&["--history", "3"]);
    let mut ana = NativeClient::join(srv.addr, "ana");
    for i in 0..5 {
        ana.say("lobby", &format!("m{i}"));
    }
    ana.expect_chat("m4");
    let mut bo = NativeClient::join(srv.addr, "bo");
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        if let ServerMsg::Chat(c) = bo.expect("history", |m| matches!(m, ServerMsg::Chat(_))) {
            assert!(c.history);
            replayed.push(c.text);
        }
    }
    assert_eq!(replayed, ["m2", "m3", "m4"]);
}

#[test]
fn taken_name_is_refused_with_a_clear_error() {
    let srv = serve(&[]);
    let _ana = NativeClient::join(srv.addr, "ana");
    let mut other = NativeClient::connect(srv.addr, "ANA");
    let m = other.next(SECS_5).expect("an answer");
    assert!(is_error(&m, ErrorCode::NameTaken), "{m:?}");
    assert!(other.closed_within(SECS_5));
}

#[test]
fn chapter_client_bytes_chat_with_native_clients() {
    let srv = serve(&[]);
    let mut ana = NativeClient::join(srv.addr, "ana");
    // Cliente.py: connect, then send input().encode() with no newline.
    let mut script = RawClient::connect(srv.addr);
    script.wait_for("welcome");
    let join = ana.expect("the script's join", |m| {
        matches!(m, ServerMsg::Event(e) if e.kind == EventKind::Join && e.name.starts_with("guest-"))
    });
    let ServerMsg::Event(join) = join else {
        unreachable!()
    };
    let name = join.name;
    script.send("Olá turma de redes industriais".as_bytes());
    let line = ana.expect_chat("Olá turma de redes industriais");
    assert_eq!(line.from, name);
    ana.say("lobby", "oi, script");
    script.wait_for("ana: oi, script\n");
    // A UTF-8 character split across two sends is put back together.
    let text = "ação".as_bytes();
    script.send(&text[..2]);
    std::thread::sleep(Duration::from_millis(50));
    script.send(&text[2..]);
    // The first send is its own message; no character is broken.
    let a = ana.expect(
        "split text",
        |m| matches!(m, ServerMsg::Chat(c) if c.text.starts_with('a')),
    );
    if let ServerMsg::Chat(c) = a {
        assert!(!c.text.contains('\u{FFFD}'), "{c:?}");
    }
}

#[test]
fn nc_style_lines_and_commands_work_for_raw_clients() {
    let srv = serve(&[]);
    let mut nc = RawClient::connect(srv.addr);
    nc.send(b"/nick carla\r\nfirst line\nsecond line\n");
    let text = nc.wait_for("carla: second line\n");
    assert!(text.contains("* you are now carla\n"), "{text}");
    assert!(text.contains("carla: first line\n"), "{text}");
    nc.send(b"/join lab\n/who\n");
    nc.wait_for("* in lab: carla\n");
    nc.send(b"\xff\xfebad bytes\n");
    nc.wait_for("carla: \u{FFFD}\u{FFFD}bad bytes\n");
}

#[test]
fn verbatim_relay_reproduces_the_chapter_wireshark_experiment() {
    let srv = serve(&["--raw-relay", "verbatim"]);
    let mut c1 = RawClient::connect(srv.addr);
    let mut c2 = RawClient::connect(srv.addr);
    std::thread::sleep(Duration::from_millis(300)); // both detected as raw
    let msg = "Olá turma de redes industriais".as_bytes();
    assert_eq!(msg.len(), 31);
    c1.send(msg);
    assert_eq!(c2.read_quiet(Duration::from_millis(300)), msg);
    assert_eq!(
        c1.read_quiet(Duration::from_millis(300)),
        msg,
        "the sender gets its own bytes back"
    );
}

#[test]
fn slow_consumer_does_not_block_others() {
    let srv = serve(&["--rate-limit", "0", "--queue", "64"]);
    let mut sleeper = NativeClient::join(srv.addr, "sleeper");
    // Tiny receive buffer, never read: its queue fills quickly.
    let mut reader = NativeClient::join(srv.addr, "reader");
    let mut sender = NativeClient::join(srv.addr, "sender");
    // The sender is in the room too and reads its own copies, as clients do.
    let mut sender_rx = sender.stream.try_clone().unwrap();
    std::thread::spawn(move || std::io::copy(&mut sender_rx, &mut std::io::sink()));
    let big = "x".repeat(4000);
    let start = Instant::now();
    // 16 MB: more than the kernel buffers of a client that never reads.
    for i in 0..4000 {
        sender.say("lobby", &format!("{i} {big}"));
        if i % 50 == 0 {
            // The reader keeps up as a normal client would.
            reader.expect_chat(&format!("{i} {big}"));
        }
    }
    reader.expect_chat(&format!("3999 {big}"));
    assert!(start.elapsed() < Duration::from_secs(10));
    let kicked = srv.wait_for_log("sleeper kicked", SECS_5);
    assert!(kicked.is_some(), "server logs the kick");
    reader.expect(
        "sleeper's quit",
        |m| matches!(m, ServerMsg::Event(e) if e.kind == EventKind::Quit && e.name == "sleeper"),
    );
    assert!(sleeper.closed_within(SECS_5));
}

#[test]
fn oversized_length_prefix_gets_an_error_and_the_server_keeps_serving() {
    let srv = serve(&[]);
    let mut bad = NativeClient::join(srv.addr, "bad");
    bad.stream
        .write_all(&[0xFF, 0xFF, 0xFF, 0xF0, 0x02])
        .unwrap();
    let m = bad.expect("protocol error", |m| matches!(m, ServerMsg::Error { .. }));
    assert!(is_error(&m, ErrorCode::Protocol), "{m:?}");
    assert!(bad.closed_within(SECS_5));
    let mut ok = NativeClient::join(srv.addr, "ok");
    ok.say("lobby", "still here");
    ok.expect_chat("still here");
}

#[test]
fn garbage_frames_and_long_messages_are_reported() {
    let srv = serve(&["--max-message", "100"]);
    let mut c = NativeClient::join(srv.addr, "c");
    c.say("lobby", &"y".repeat(101));
    let m = c.expect("too long", |m| matches!(m, ServerMsg::Error { .. }));
    assert!(is_error(&m, ErrorCode::TooLong), "{m:?}");
    // Unknown frame type: protocol error, connection closed.
    c.stream.write_all(&[0, 0, 0, 1, 0x7E]).unwrap();
    let m = c.expect("protocol error", |m| matches!(m, ServerMsg::Error { .. }));
    assert!(is_error(&m, ErrorCode::Protocol), "{m:?}");
    assert!(c.closed_within(SECS_5));
}

#[test]
fn half_open_and_silent_connections_do_not_stall_the_server() {
    let srv = serve(&["--handshake-timeout", "300ms"]);
    // Sends the magic and stops: must be dropped after the handshake timeout.
    let mut half = TcpStream::connect(srv.addr).unwrap();
    half.write_all(&[0, b'S', b'Q', b'C', 1]).unwrap();
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(srv.addr).unwrap())
        .collect();
    let mut ana = NativeClient::join(srv.addr, "ana");
    ana.say("lobby", "served");
    ana.expect_chat("served");
    half.set_read_timeout(Some(SECS_5)).unwrap();
    let mut got = Vec::new();
    let _ = half.read_to_end(&mut got);
    assert!(
        got.windows(3).any(|w| w == b"no "),
        "timeout error sent: {got:?}"
    );
    drop(silent);
}

#[test]
fn per_address_limit_is_enforced_with_a_reason() {
    let srv = serve(&["--max-per-ip", "2"]);
    let _a = NativeClient::join(srv.addr, "a");
    let _b = NativeClient::join(srv.addr, "b");
    let mut c = NativeClient::connect(srv.addr, "c");
    let m = c.next(SECS_5).expect("refusal");
    assert!(is_error(&m, ErrorCode::TooManyFromAddress), "{m:?}");
    let mut raw = RawClient::connect(srv.addr);
    raw.wait_for("* error: too many connections from your address\n");
}

#[test]
fn full_server_says_so_to_native_and_raw_clients() {
    let srv = serve(&["--max-clients", "1"]);
    let _a = NativeClient::join(srv.addr, "a");
    let mut b = NativeClient::connect(srv.addr, "b");
    let m = b.next(SECS_5).expect("refusal");
    assert!(is_error(&m, ErrorCode::ServerFull), "{m:?}");
    let mut raw = RawClient::connect(srv.addr);
    raw.wait_for("* error: server full\n");
}

#[test]
fn rate_limit_delays_then_drops_with_a_notice() {
    let srv = serve(&["--rate-limit", "5", "--rate-burst", "2"]);
    let mut c = NativeClient::join(srv.addr, "flood");
    for i in 0..40 {
        c.say("lobby", &format!("f{i}"));
    }
    let m = c.expect("rate-limit error", |m| matches!(m, ServerMsg::Error { .. }));
    assert!(is_error(&m, ErrorCode::RateLimited), "{m:?}");
    // The burst and then the delayed ones arrive, in order, paced; the
    // flood's tail (beyond 2 s of delay) is dropped.
    let mut texts = Vec::new();
    while let Some(m) = c.next(Duration::from_millis(700)) {
        c.seen.push(m);
    }
    for m in &c.seen {
        if let ServerMsg::Chat(line) = m {
            texts.push(line.text.clone());
        }
    }
    let n = texts.len();
    assert!((8..30).contains(&n), "delivered {n}: {texts:?}");
    let want: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
    assert_eq!(texts, want, "in order, nothing skipped before the drops");
}

#[test]
fn ctrl_c_tells_clients_and_exits_within_a_second() {
    let mut srv = serve(&[]);
    let mut ana = NativeClient::join(srv.addr, "ana");
    let mut raw = RawClient::connect(srv.addr);
    raw.wait_for("welcome");
    srv.interrupt();
    let t0 = Instant::now();
    let status = srv.wait_timeout(Duration::from_secs(3)).expect("exits");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    ana.expect(
        "bye",
        |m| matches!(m, ServerMsg::Bye { reason } if reason.contains("shutting down")),
    );
    raw.wait_for("* server shutting down\n");
}

#[test]
fn quit_flushes_and_closes() {
    let srv = serve(&[]);
    let mut ana = NativeClient::join(srv.addr, "ana");
    ana.say("lobby", "last words");
    ana.send(ClientMsg::Quit {
        reason: "done".into(),
    });
    ana.expect_chat("last words");
    ana.expect("bye", |m| matches!(m, ServerMsg::Bye { .. }));
    assert!(ana.closed_within(SECS_5));
}

#[test]
fn idle_native_client_is_pinged_then_dropped() {
    let srv = serve(&["--idle-timeout", "200ms"]);
    let mut quiet = NativeClient::join(srv.addr, "quiet");
    let ping = quiet.expect("ping", |m| matches!(m, ServerMsg::Ping { .. }));
    if let ServerMsg::Ping { token } = ping {
        quiet.send(ClientMsg::Pong { token });
    }
    // Answered: still connected; then silent for good: timed out.
    let m = quiet.expect("timeout", |m| matches!(m, ServerMsg::Error { .. }));
    assert!(is_error(&m, ErrorCode::Timeout), "{m:?}");
}
