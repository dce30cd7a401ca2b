//! `soquete echo serve` and `soquete echo ping`, run as the real binary
//! against each other and against the chapter's echo servers (Python peer).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, run_with_input};

const LIMIT: Duration = Duration::from_secs(20);

fn ping(args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["echo", "ping"];
    full.extend_from_slice(args);
    let (status, out, err) = run_with_input(&full, b"", LIMIT);
    (status.code().unwrap_or(-1), out, err)
}

fn reply_lines(out: &str) -> usize {
    out.lines()
        .filter(|l| l.contains(" bytes from ") && l.contains(" time="))
        .count()
}

fn assert_all_answered(out: &str, n: usize) {
    assert_eq!(reply_lines(out), n, "stdout:\n{out}");
    let expected = format!("{n} probes sent, {n} received, 0% loss");
    assert!(out.contains(&expected), "stdout:\n{out}");
    assert!(out.contains("rtt min/avg/max/mdev = "), "stdout:\n{out}");
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn tcp_ping_against_echo_serve() {
    let server = Server::start(&["echo", "serve", "--listen", "127.0.0.1:0"]);
    let addr = server.addr_str();
    let (code, out, err) = ping(&[&addr, "-c", "3", "-i", "10ms", "-W", "2s"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_all_answered(&out, 3);
    assert!(
        out.contains(&format!("56 bytes from {addr}: seq=1 time=")),
        "{out}"
    );
    assert!(out.contains(&format!("--- {addr} echo ping statistics ---")));
}

#[test]
fn udp_ping_against_echo_serve() {
    let server = Server::start(&["echo", "serve", "--udp", "--listen", "127.0.0.1:0"]);
    let addr = server.addr_str();
    let (code, out, err) = ping(&["--udp", &addr, "-c", "3", "-i", "10ms", "-s", "1400"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_all_answered(&out, 3);
    assert!(out.contains("1400 bytes from"), "{out}");
}

#[test]
fn json_summary_is_one_object_with_per_probe_times() {
    let server = Server::start(&["echo", "serve", "--listen", "127.0.0.1:0"]);
    let (code, out, err) = ping(&[&server.addr_str(), "-c", "4", "-i", "0", "--json"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.trim().lines().count(), 1, "stdout:\n{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("valid JSON");
    assert_eq!(v["sent"], 4);
    assert_eq!(v["received"], 4);
    assert_eq!(v["loss_percent"], 0.0);
    assert_eq!(v["rtts_ms"].as_array().unwrap().len(), 4);
    for key in ["min_ms", "avg_ms", "max_ms", "mdev_ms"] {
        assert!(v[key].is_f64(), "{key} missing in {v}");
    }
    assert!(v["min_ms"].as_f64() <= v["max_ms"].as_f64());
}

#[test]
fn fifty_tcp_clients_are_served_at_once() {
    let server = Server::start(&["echo", "serve", "--listen", "127.0.0.1:0"]);
    // All connected before any is served: a one-at-a-time server (like the
    // chapter's) would leave the second client waiting forever.
    let mut clients: Vec<TcpStream> = (0..50).map(|_| connect(&server)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let msg: Vec<u8> = (0..20_000).map(|j| ((i * 7 + j) % 251) as u8).collect();
        c.write_all(&msg).unwrap();
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back).expect("echo within 10 s");
        assert_eq!(back, msg, "client {i} got other bytes");
    }
}

#[test]
fn tcp_ping_against_the_chapter_echo_server() {
    let server = Server::python("chapter_echo_server.py", &["0"]);
    let addr = server.addr_str();
    // 30000 bytes come back in several recv(10240) pieces.
    let (code, out, err) = ping(&[&addr, "-c", "3", "-i", "10ms", "-s", "30000"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_all_answered(&out, 3);
}

#[test]
fn udp_ping_against_the_chapter_echo_server() {
    let server = Server::python("chapter_echo_server.py", &["0", "--udp"]);
    let (code, out, err) = ping(&["--udp", &server.addr_str(), "-c", "3", "-i", "10ms"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_all_answered(&out, 3);
}

#[test]
fn udp_reply_cut_by_the_chapter_server_is_reported_as_differing() {
    let server = Server::python("chapter_echo_server.py", &["0", "--udp"]);
    let (code, out, err) = ping(&[
        "--udp",
        &server.addr_str(),
        "-c",
        "2",
        "-i",
        "10ms",
        "-s",
        "2000",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("1024 bytes from"), "{out}");
    assert!(out.contains("seq=1 reply differs from probe"), "{out}");
    assert!(
        out.contains("2 probes sent, 0 received, 2 differed, 100% loss"),
        "{out}"
    );
    assert_eq!(err.trim().lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
}

/// A port nothing listens on (bound, then released).
fn closed_tcp_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn ping_to_a_closed_port_is_one_line_error() {
    let addr = closed_tcp_port();
    let (code, out, err) = ping(&[&addr, "-c", "2", "-W", "1s"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), format!("error: connection refused by {addr}"));
    assert!(out.is_empty(), "stdout: {out}");
}

#[test]
fn udp_ping_to_a_silent_port_reports_total_loss() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let (code, out, err) = ping(&["--udp", &addr, "-c", "2", "-i", "10ms", "-W", "200ms"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("2 probes sent, 0 received, 100% loss"),
        "{out}"
    );
    assert!(out.contains("seq=1 no reply within 200ms"), "{out}");
    assert_eq!(err.trim(), format!("error: no reply from {addr}"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn server_exits_on_ctrl_c_and_closes_connections() {
    let mut server = Server::start(&["echo", "serve", "--listen", "127.0.0.1:0"]);
    let mut client = connect(&server);
    client.write_all(b"hi").unwrap();
    let mut two = [0; 2];
    client.read_exact(&mut two).unwrap();
    server.interrupt();
    let status = server
        .wait_timeout(Duration::from_secs(3))
        .expect("exit after SIGINT");
    assert_eq!(status.code(), Some(130));
    let mut rest = Vec::new();
    assert!(matches!(client.read_to_end(&mut rest), Ok(0) | Err(_)));
}

#[test]
fn udp_server_exits_on_ctrl_c() {
    let mut server = Server::start(&["echo", "serve", "--udp", "--listen", "127.0.0.1:0"]);
    server.interrupt();
    let status = server
        .wait_timeout(Duration::from_secs(3))
        .expect("exit after SIGINT");
    assert_eq!(status.code(), Some(130));
}

#[test]
fn client_that_never_reads_does_not_stop_the_server() {
    let server = Server::start(&["echo", "serve", "--listen", "127.0.0.1:0"]);
    let mut hog = connect(&server);
    hog.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Write without ever reading: once the socket buffers are full the
    // server must stop reading from us rather than buffer our echoes.
    let chunk = vec![b'x'; 64 * 1024];
    let (mut written, started) = (0usize, Instant::now());
    let stalled = loop {
        match hog.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true;
            }
            Err(e) => panic!("write failed: {e}"),
        }
        if written > 512 << 20 || started.elapsed() > Duration::from_secs(15) {
            break false;
        }
    };
    assert!(
        stalled,
        "server kept reading {written} bytes nobody read back"
    );
    let (code, out, err) = ping(&[&server.addr_str(), "-c", "2", "-i", "10ms"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_all_answered(&out, 2);
}

#[test]
fn over_the_limit_client_is_closed_and_others_still_served() {
    let server = Server::start(&[
        "echo",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--max-clients",
        "1",
    ]);
    let mut first = connect(&server);
    first.write_all(b"a").unwrap();
    let mut one = [0; 1];
    first.read_exact(&mut one).unwrap();
    let mut second = connect(&server);
    let mut buf = [0; 16];
    assert!(
        matches!(second.read(&mut buf), Ok(0) | Err(_)),
        "refused client was not closed"
    );
    first.write_all(b"b").unwrap();
    first.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"b");
}

#[test]
fn idle_connection_is_closed() {
    let server = Server::start(&[
        "echo",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--idle-timeout",
        "200ms",
    ]);
    let mut c = connect(&server);
    let mut buf = [0; 16];
    assert!(matches!(c.read(&mut buf), Ok(0) | Err(_)));
    assert!(
        server
            .wait_for_log("idle", Duration::from_secs(5))
            .is_some()
    );
}

#[test]
fn ping_interrupted_prints_the_summary_so_far() {
    let server = Server::start(&["echo", "serve", "--listen", "127.0.0.1:0"]);
    let mut child = Command::new(common::bin())
        .args([
            "echo",
            "ping",
            &server.addr_str(),
            "-c",
            "1000",
            "-i",
            "100ms",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(350));
    common::signal(child.id(), "INT");
    let status =
        common::wait_timeout(&mut child, Duration::from_secs(5)).expect("exit after SIGINT");
    assert_eq!(status.code(), Some(130));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("echo ping statistics"), "{out}");
    assert!(out.contains("0% loss"), "{out}");
    assert!(reply_lines(&out) >= 1, "{out}");
}
