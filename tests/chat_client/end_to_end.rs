//! `chat join` against the real `chat serve`, both as processes: line-mode
//! clients chatting, history, a taken name, the server shutting down and
//! coming back, and a `--raw` client on the server's raw side.

use crate::common::{Server, run_with_input};
use crate::process::{Join, LIMIT};

fn serve(listen: &str) -> Server {
    Server::start(&[
        "chat",
        "serve",
        "--listen",
        listen,
        "--detect-window",
        "100ms",
    ])
}

#[test]
fn line_mode_clients_chat_through_the_real_server() {
    let srv = serve("127.0.0.1:0");
    let addr = srv.addr_str();
    let mut ana = Join::start(&[&addr, "--name", "ana"]);
    ana.expect_err("* you joined lobby");
    let mut bo = Join::start(&[&addr, "--name", "bo"]);
    ana.expect_err("* bo joined lobby");

    ana.line("Olá turma de redes industriais");
    bo.expect_out("[lobby] ana: Olá turma de redes industriais");
    ana.expect_out("[lobby] ana: Olá turma de redes industriais");
    bo.line("/me acena");
    ana.expect_out("[lobby] * bo acena");
    ana.line("/msg BO psst");
    assert_eq!(bo.expect_out("psst"), "[pm] ana -> bo: psst");

    bo.line("/join #lab");
    bo.expect_err("* you joined lab");
    ana.line("/join lab");
    bo.expect_err("* ana joined lab");
    ana.line("só no lab");
    bo.expect_out("[lab] ana: só no lab");
    ana.line("/nick ana2");
    ana.expect_err("* you are now ana2");
    bo.expect_err("* ana is now ana2");

    ana.close_stdin();
    assert!(ana.finish().success(), "{:?}", ana.seen_err);
    bo.expect_err("* ana2 quit");
    bo.close_stdin();
    assert!(bo.finish().success(), "{:?}", bo.seen_err);
    // Both rooms told bo that ana was renamed; the line mode said it once.
    let renames = bo.seen_err.iter().filter(|l| l.contains("is now ana2"));
    assert_eq!(renames.count(), 1, "{:?}", bo.seen_err);
}

#[test]
fn lines_piped_in_are_all_delivered_and_replayed_as_history() {
    let srv = serve("127.0.0.1:0");
    let addr = srv.addr_str();
    let input: String = (1..=20).map(|i| format!("linha {i}\n")).collect();
    let args = [
        "chat",
        "join",
        addr.as_str(),
        "--name",
        "ana",
        "--room",
        "lab",
    ];
    let (status, out, err) = run_with_input(&args, input.as_bytes(), LIMIT);
    assert!(status.success(), "{err}");
    let want: String = (1..=20)
        .map(|i| format!("[lab] ana: linha {i}\n"))
        .collect();
    assert_eq!(out, want);
    // A line for the lobby, then a newcomer gets it (and only it) as history.
    let (status, _, err) = run_with_input(
        &["chat", "join", addr.as_str(), "--name", "ana"],
        b"no lobby\n",
        LIMIT,
    );
    assert!(status.success(), "{err}");
    let (status, out, err) = run_with_input(&["chat", "join", addr.as_str()], b"", LIMIT);
    assert!(status.success(), "{err}");
    assert_eq!(out, "[lobby] ana: no lobby\n");
}

#[test]
fn a_taken_name_is_refused_by_the_real_server() {
    let srv = serve("127.0.0.1:0");
    let addr = srv.addr_str();
    let mut ana = Join::start(&[&addr, "--name", "ana"]);
    ana.expect_err("* connected to");
    let (status, _, err) = run_with_input(&["chat", "join", &addr, "--name", "ANA"], b"", LIMIT);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        err,
        format!("error: the name 'ANA' is already taken on {addr}\n")
    );
}

#[test]
fn server_shutdown_ends_a_no_reconnect_client_with_its_reason() {
    let mut srv = serve("127.0.0.1:0");
    let mut c = Join::start(&[&srv.addr_str(), "--no-reconnect"]);
    c.expect_err("* connected to");
    srv.interrupt();
    assert_eq!(c.finish().code(), Some(1));
    assert_eq!(
        c.seen_err.last().map(String::as_str),
        Some("error: server closed the connection: server shutting down")
    );
    srv.wait_timeout(LIMIT);
}

#[test]
fn client_reconnects_when_the_server_comes_back() {
    let mut srv = serve("127.0.0.1:0");
    let addr = srv.addr_str();
    let mut c = Join::start(&[&addr, "--name", "ana", "--room", "lab"]);
    c.expect_err("* you joined lab");
    srv.interrupt();
    assert!(srv.wait_timeout(LIMIT).is_some(), "server stops");
    c.expect_err("* server closed the connection: server shutting down");
    c.expect_err("* reconnecting in");
    let _srv = serve(&addr);
    c.expect_err(&format!("* reconnected to {addr} as ana"));
    c.expect_err("* you joined lab");
    c.line("de volta");
    c.expect_out("[lab] ana: de volta");
    c.close_stdin();
    assert!(c.finish().success(), "{:?}", c.seen_err);
}

#[test]
fn raw_join_talks_to_the_servers_raw_side() {
    let srv = serve("127.0.0.1:0");
    let addr = srv.addr_str();
    let mut ana = Join::start(&[&addr, "--name", "ana"]);
    ana.expect_err("* you joined lobby");
    let mut raw = Join::start(&[&addr, "--raw", "--newline"]);
    raw.expect_out("* welcome, guest-");
    ana.line("oi raw");
    raw.expect_out("ana: oi raw");
    raw.line("oi ana");
    let line = ana.expect_out("oi ana");
    assert!(
        line.starts_with("[lobby] guest-") && line.ends_with(": oi ana"),
        "{line}"
    );
    raw.close_stdin();
    assert!(raw.finish().success(), "{:?}", raw.seen_err);
    ana.close_stdin();
    assert!(ana.finish().success());
}
