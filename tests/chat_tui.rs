//! The full-screen `soquete chat join`, end to end, in tmux: real servers,
//! real clients in panes of 80x24 and 120x40, typing with `send-keys` and
//! reading the screen with `capture-pane`. Skipped (with a note) when tmux
//! is missing, unless `SOQUETE_REQUIRE_TMUX=1`.

mod common;
#[path = "chat_tui/tmux.rs"]
mod tmux;

use std::time::Duration;

use common::{Server, free_port, run_with_input};
use tmux::Tmux;

fn serve(extra: &[&str]) -> Server {
    let mut args = vec!["chat", "serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Whether the member list (right of a `│`) lists `name`.
fn listed(screen: &str, name: &str) -> bool {
    screen
        .lines()
        .any(|l| l.rsplit('│').next().is_some_and(|m| m.trim() == name))
}

#[test]
fn two_people_chat_switch_rooms_and_resize() {
    let Some(t) = Tmux::start() else { return };
    let server = serve(&[]);
    let addr = server.addr_str();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ana.log");
    let log_arg = log.to_str().unwrap();
    t.spawn(
        "ana",
        80,
        24,
        &["chat", "join", &addr, "--name", "ana", "--log", log_arg],
    );
    t.spawn("bo", 120, 40, &["chat", "join", &addr, "--name", "bo"]);
    t.wait_for("ana", "│ #lobby │ ana │ connected");
    t.wait_for("bo", "│ #lobby │ bo │ connected");
    assert_eq!(t.format("ana", "#{alternate_on}"), "1", "full screen");

    t.line("ana", "hello from ana");
    t.wait_for("bo", "<ana> hello from ana");
    t.wait("bo", "both in the member list", |s| {
        listed(s, "ana") && listed(s, "bo")
    });
    t.line("bo", "oi ana, 日本語 🎉 ok");
    t.wait_for("ana", "<bo> oi ana, 日本語 🎉 ok");
    // Tab completes a name at the start of the line.
    t.type_text("ana", "b");
    t.keys("ana", &["Tab"]);
    t.wait_for("ana", "[#lobby] bo:");
    t.line("ana", "welcome");
    t.wait_for("bo", "<ana> bo: welcome");

    // Rooms: bo opens #lab and talks; ana joins and gets the history.
    t.line("bo", "/join lab");
    t.wait_for("bo", "│ #lab │ bo │");
    t.line("bo", "in the lab");
    t.wait_for("bo", "<bo> in the lab");
    t.line("ana", "/join lab");
    let screen = t.wait_for("ana", "<bo> in the lab");
    assert!(screen.contains("3:#lab"), "{screen}");
    // Alt-2 goes back to #lobby; news in #lab shows as unread.
    t.keys("ana", &["M-2"]);
    t.wait_for("ana", "│ #lobby │ ana │");
    t.line("bo", "lab news");
    t.wait_for("ana", "3:#lab(1)");
    t.keys("ana", &["C-n"]);
    t.wait_for("ana", "│ #lab │ ana │");
    t.wait_for("ana", "<bo> lab news");

    // A resize redraws at the new size.
    t.ok(&["resize-window", "-t", "ana", "-x", "100", "-y", "30"]);
    let screen = t.wait("ana", "the 100x30 layout", |s| {
        let rows: Vec<&str> = s.lines().collect();
        rows.len() >= 30 && rows[28].contains("│ #lab │ ana │") && rows[29].starts_with("[#lab]")
    });
    let rows: Vec<&str> = screen.lines().collect();
    assert_eq!(rows[1].find("│2 here"), Some(80), "{screen}");

    t.line("ana", "/quit");
    assert_eq!(t.wait_exit("ana"), 0);
    assert_eq!(t.format("ana", "#{alternate_on}"), "0", "screen restored");
    t.wait_for("bo", "ana quit");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("[#lobby] <bo> oi ana, 日本語 🎉 ok"),
        "{text}"
    );
    assert!(text.contains("[#lab] <bo> lab news"), "{text}");
}

#[test]
fn escape_sequences_from_others_do_not_clear_the_screen() {
    let Some(t) = Tmux::start() else { return };
    let server = serve(&[]);
    let addr = server.addr_str();
    t.spawn("ana", 80, 24, &["chat", "join", &addr, "--name", "ana"]);
    t.spawn(
        "cy",
        80,
        24,
        &["chat", "join", &addr, "--name", "cy", "--plain"],
    );
    t.wait_for("ana", "│ #lobby │ ana │ connected");
    t.wait_for("cy", "* connected to");
    t.line("ana", "before the attack");
    t.wait_for("ana", "<ana> before the attack");

    // A line-mode client (stdin is a pipe) sends escapes to everyone.
    let hostile = b"x\x1b[2Jy\x1b]2;pwned\x07z\n";
    let args = ["chat", "join", &addr, "--name", "evil"];
    let (status, _, err) = run_with_input(&args, hostile, Duration::from_secs(10));
    assert!(status.success(), "{err}");

    let screen = t.wait_for("ana", "<evil> x^[[2Jy^[]2;pwned^Gz");
    assert!(screen.contains("<ana> before the attack"), "{screen}");
    assert!(screen.starts_with("1:"), "tabs still on top:\n{screen}");
    assert_ne!(t.format("ana", "#{pane_title}"), "pwned");
    // The line mode (--plain on a terminal) shows it inert too.
    let plain = t.wait_for("cy", "[lobby] evil: x^[[2Jy^[]2;pwned^Gz");
    assert!(plain.contains("* connected to"), "{plain}");
    assert_eq!(t.format("cy", "#{alternate_on}"), "0", "no full screen");

    // A bracketed paste of three lines asks first, then sends each.
    t.ok(&["set-buffer", "first\n/second\nthird"]);
    t.ok(&["paste-buffer", "-p", "-t", "ana"]);
    t.wait_for("ana", "Paste 3 lines as 3 messages? [y/N]");
    t.keys("ana", &["y"]);
    t.wait_for("cy", "[lobby] ana: third");
    let plain = t.capture("cy");
    assert!(
        plain.contains("[lobby] ana: first\n[lobby] ana: /second\n"),
        "{plain}"
    );
}

#[test]
fn raw_mode_uses_the_same_screen() {
    let Some(t) = Tmux::start() else { return };
    // The chapter's server: every read relayed as is, to the sender too.
    let server = serve(&["--raw-relay", "verbatim"]);
    let addr = server.addr_str();
    t.spawn("raw", 80, 24, &["chat", "join", &addr, "--raw"]);
    t.wait_for("raw", "connected (raw)");
    t.line("raw", "ola do terminal");
    t.wait("raw", "the echo", |s| {
        s.lines().any(|l| l.get(5..) == Some(" ola do terminal"))
    });
    t.keys("raw", &["C-c"]);
    assert_eq!(t.wait_exit("raw"), 0);
    assert_eq!(t.format("raw", "#{alternate_on}"), "0", "screen restored");
}

#[test]
fn a_lost_connection_reconnects_and_rejoins_rooms() {
    let Some(t) = Tmux::start() else { return };
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start(&["chat", "serve", "--listen", &listen]);
    t.spawn(
        "ana",
        80,
        24,
        &["chat", "join", &listen, "--name", "ana", "--room", "lab"],
    );
    t.wait_for("ana", "│ #lab │ ana │ connected");

    server.interrupt();
    assert!(server.wait_timeout(Duration::from_secs(5)).is_some());
    t.wait_for("ana", "reconnecting…");
    let _again = Server::start(&["chat", "serve", "--listen", &listen]);
    let screen = t.wait_for("ana", "│ #lab │ ana │ connected");
    assert!(screen.contains("reconnected to"), "{screen}");
    assert!(screen.starts_with("1:127.0.0.1"), "{screen}");
    assert!(screen.contains("2:#lobby 3:#lab"), "{screen}");

    t.keys("ana", &["C-c"]);
    assert_eq!(t.wait_exit("ana"), 0);
}

#[test]
fn secure_mode_shows_a_lock_and_the_servers_fingerprint() {
    let Some(t) = Tmux::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let pass = path("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let secure = |state: &str| {
        [
            "--passphrase-file".to_owned(),
            pass.clone(),
            "--state-dir".into(),
            path(state),
        ]
    };
    let mut args: Vec<String> = ["chat", "serve", "--listen", "127.0.0.1:0"]
        .map(String::from)
        .to_vec();
    args.extend(secure("server"));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&argv);
    let addr = server.addr_str();
    let mut show: Vec<String> = ["chat", "join", &addr, "--show-fingerprint"]
        .map(String::from)
        .to_vec();
    show.extend(secure("probe"));
    let argv: Vec<&str> = show.iter().map(String::as_str).collect();
    let (status, out, err) = run_with_input(&argv, b"", Duration::from_secs(10));
    assert!(status.success(), "{err}");
    let fingerprint = out.trim().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");

    let mut join: Vec<String> = ["chat", "join", &addr, "--name", "ana"]
        .map(String::from)
        .to_vec();
    join.extend(secure("client"));
    let argv: Vec<&str> = join.iter().map(String::as_str).collect();
    t.spawn("ana", 160, 24, &argv);
    let screen = t.wait_for("ana", "│ connected │ 🔒 ");
    assert!(screen.contains(&fingerprint), "{screen}");
    // What the core prints on stderr (the new pin) lands in the status
    // window instead of on top of the screen.
    assert!(!screen.contains("pinned server identity"), "{screen}");
    t.keys("ana", &["M-1"]);
    t.wait_for("ana", "-!- * pinned server identity");
    t.line("ana", "/quit");
    assert_eq!(t.wait_exit("ana"), 0);
}

#[test]
fn the_line_mode_keeps_a_transcript_with_log_too() {
    let server = serve(&[]);
    let addr = server.addr_str();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    let args = [
        "chat",
        "join",
        &addr,
        "--name",
        "ana",
        "--log",
        log.to_str().unwrap(),
    ];
    let (status, out, err) = run_with_input(&args, b"oi \x1b[2J\n", Duration::from_secs(10));
    assert!(status.success(), "{err}");
    assert!(out.contains("[lobby] ana: oi ^[[2J"), "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(" [lobby] ana: oi ^[[2J\n"), "{text}");
    assert!(text.contains(" * connected to "), "{text}");
}
