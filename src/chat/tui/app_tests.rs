use std::time::Duration;

use super::*;
use crate::chat::client::ClientEvent;
use crate::wire::chat::{ChatKind, ChatLine, EventKind, EventLine};

fn stamp(_: u64) -> String {
    "12:00".into()
}

fn apply(app: &mut App, ev: ClientEvent) {
    app.on_client(ev, "12:00", &stamp);
}

fn connected(name: &str) -> ClientEvent {
    ClientEvent::Connected {
        addr: "127.0.0.1:8000".parse().unwrap(),
        name: name.into(),
        software: "soquete".into(),
        reconnected: false,
        max_text: 100,
        fingerprint: None,
    }
}

fn joined(room: &str, members: &[&str]) -> ClientEvent {
    ClientEvent::Joined {
        room: room.into(),
        total: members.len() as u32,
        members: members.iter().map(|m| m.to_string()).collect(),
    }
}

fn chat(kind: ChatKind, room: &str, from: &str, to: &str, text: &str) -> ClientEvent {
    ClientEvent::Chat(ChatLine {
        id: 1,
        ts_ms: 0,
        kind,
        history: false,
        room: room.into(),
        from: from.into(),
        to: to.into(),
        text: text.into(),
    })
}

fn event(kind: EventKind, room: &str, name: &str, detail: &str) -> ClientEvent {
    ClientEvent::Event(EventLine {
        id: 1,
        ts_ms: 0,
        kind,
        room: room.into(),
        name: name.into(),
        detail: detail.into(),
    })
}

/// An app connected as `ana`, in the lobby (with bo) and in lab.
fn in_rooms() -> App {
    let mut app = App::new(Mode::Native, "127.0.0.1:8000");
    apply(&mut app, connected("ana"));
    apply(&mut app, joined("lobby", &["ana", "bo"]));
    apply(&mut app, ClientEvent::CurrentRoom(Some("lobby".into())));
    apply(&mut app, joined("lab", &["ana"]));
    app
}

fn texts(w: &Window) -> Vec<String> {
    w.entries.iter().map(|e| e.text.clone()).collect()
}

fn index(app: &App, label: &str) -> usize {
    app.windows.iter().position(|w| w.label() == label).unwrap()
}

#[test]
fn rooms_become_windows_and_current_room_switches() {
    let mut app = in_rooms();
    let labels: Vec<String> = app.windows.iter().map(Window::label).collect();
    assert_eq!(labels, ["127.0.0.1:8000", "#lobby", "#lab"]);
    assert_eq!(app.active, 1);
    apply(&mut app, ClientEvent::CurrentRoom(Some("lab".into())));
    assert_eq!(app.active, 2);
    apply(&mut app, ClientEvent::Parted { room: "lab".into() });
    apply(&mut app, ClientEvent::CurrentRoom(Some("lobby".into())));
    assert_eq!(app.windows.len(), 2);
    assert_eq!(app.active, 1);
    assert!(texts(&app.windows[0]).iter().any(|t| t == "you left #lab"));
}

#[test]
fn messages_land_in_their_window_and_count_as_unread() {
    let mut app = in_rooms();
    apply(&mut app, chat(ChatKind::Say, "lab", "bo", "", "oi"));
    apply(&mut app, chat(ChatKind::Action, "lobby", "bo", "", "acena"));
    let lab = index(&app, "#lab");
    assert_eq!(app.windows[lab].unread, 1);
    assert_eq!(app.windows[1].unread, 0, "the active window is read");
    assert_eq!(
        app.windows[1].entries.back().unwrap().kind,
        EntryKind::Action
    );
    // Switching reads it and makes it the core's current room.
    let out = app.switch_to(lab);
    assert_eq!(app.windows[lab].unread, 0);
    assert_eq!(
        out,
        [Action::Request(Request::Command(Command::Join(
            "lab".into()
        )))]
    );
}

#[test]
fn private_messages_open_a_query_window_where_text_goes_to_that_person() {
    let mut app = in_rooms();
    apply(&mut app, chat(ChatKind::Private, "", "ana", "cy", "psst"));
    let q = index(&app, "@cy");
    assert_eq!(app.windows[q].unread, 0, "our own message is not unread");
    assert!(!app.bell);
    apply(&mut app, chat(ChatKind::Private, "", "cy", "ana", "hi"));
    assert_eq!((app.windows[q].unread, app.windows[q].highlight), (1, true));
    assert!(app.bell, "a private message rings");
    app.switch_to(q);
    app.editor.insert("answer");
    let out = app.submit("12:00");
    let want = Command::Private {
        to: "cy".into(),
        text: "answer".into(),
    };
    assert_eq!(out, [Action::Request(Request::Command(want))]);
    // /part in a query window closes it locally.
    app.editor.insert("/part");
    assert!(app.submit("12:00").is_empty());
    assert!(app.windows.iter().all(|w| w.label() != "@cy"));
}

#[test]
fn mentions_highlight_and_ring_once() {
    let mut app = in_rooms();
    apply(&mut app, chat(ChatKind::Say, "lab", "bo", "", "Ana: look"));
    let lab = index(&app, "#lab");
    assert!(app.windows[lab].entries.back().unwrap().mention);
    assert!(app.windows[lab].highlight);
    assert!(std::mem::take(&mut app.bell));
    // Our own lines, other words and history replays do not ring.
    apply(&mut app, chat(ChatKind::Say, "lab", "ana", "", "ana here"));
    apply(&mut app, chat(ChatKind::Say, "lab", "bo", "", "banana"));
    let old = ChatLine {
        id: 2,
        ts_ms: 0,
        kind: ChatKind::Say,
        history: true,
        room: "lab".into(),
        from: "bo".into(),
        to: String::new(),
        text: "ana?".into(),
    };
    apply(&mut app, ClientEvent::Chat(old));
    assert!(!app.bell);
    assert!(mentions("hey @ana!", "ana"));
    assert!(!mentions("anarchy", "ana"));
}

#[test]
fn members_follow_room_events() {
    let mut app = in_rooms();
    apply(&mut app, event(EventKind::Join, "lobby", "cy", ""));
    apply(&mut app, event(EventKind::Nick, "lobby", "bo", "bob"));
    apply(&mut app, event(EventKind::Quit, "lobby", "cy", "tchau"));
    apply(&mut app, event(EventKind::Join, "lobby", "ana", ""));
    let lobby = &app.windows[1];
    assert_eq!(lobby.members, ["ana", "bob"]);
    let t = texts(lobby);
    assert_eq!(
        t[t.len() - 3..],
        ["cy joined #lobby", "bo is now bob", "cy quit (tchau)"]
    );
}

#[test]
fn network_text_is_shown_inert() {
    let mut app = in_rooms();
    apply(
        &mut app,
        chat(ChatKind::Say, "lobby", "b\x1bo", "", "x\x1b[2J\x07y"),
    );
    let e = app.windows[1].entries.back().unwrap().clone();
    assert_eq!((e.from.as_str(), e.text.as_str()), ("b^[o", "x^[[2J^Gy"));
    apply(&mut app, ClientEvent::Notice("\x1b]0;pwned\x07".into()));
    let t = texts(&app.windows[1]);
    assert_eq!(t.last().unwrap(), "notice: ^[]0;pwned^G");
    assert!(app.log.iter().all(|l| !l.contains('\x1b')));
}

#[test]
fn connection_loss_says_reconnecting_and_the_rejoin_refreshes() {
    let mut app = in_rooms();
    let reason = "server closed the connection".to_owned();
    apply(&mut app, ClientEvent::Disconnected { reason });
    assert!(matches!(app.link, Link::Lost(_)));
    assert!(texts(&app.windows[2]).last().unwrap().contains("closed"));
    let wait = ClientEvent::Reconnecting {
        attempt: 1,
        of: 20,
        delay: Duration::from_millis(500),
    };
    apply(&mut app, wait);
    assert_eq!(app.link, Link::Reconnecting(1, 20));
    let mut again = connected("ana");
    if let ClientEvent::Connected { reconnected, .. } = &mut again {
        *reconnected = true;
    }
    apply(&mut app, again);
    apply(&mut app, joined("lobby", &["ana", "cy"]));
    assert_eq!(app.link, Link::Connected);
    assert_eq!(app.windows.len(), 3, "the same windows, rejoined");
    assert_eq!(app.windows[1].members, ["ana", "cy"]);
}

#[test]
fn the_status_window_refuses_text_but_takes_commands() {
    let mut app = App::new(Mode::Native, "h:1");
    app.editor.insert("hello");
    assert!(app.submit("12:00").is_empty());
    assert_eq!(
        app.windows[0].entries.back().unwrap().kind,
        EntryKind::Error
    );
    app.editor.insert("/join lab");
    assert_eq!(
        app.submit("12:00"),
        [Action::Request(Request::Command(Command::Join(
            "lab".into()
        )))]
    );
    app.editor.insert("/frob");
    assert!(app.submit("12:00").is_empty());
    assert!(
        texts(&app.windows[0])
            .last()
            .unwrap()
            .contains("unknown command")
    );
}

#[test]
fn help_lists_commands_and_keys_and_quit_is_remembered() {
    let mut app = in_rooms();
    app.editor.insert("/help");
    assert!(app.submit("12:00").is_empty());
    let t = texts(&app.windows[1]).join("\n");
    assert!(t.contains("/join ROOM") && t.contains("PageUp"), "{t}");
    app.editor.insert("/quit bye");
    let out = app.submit("12:00");
    assert_eq!(
        out,
        [Action::Request(Request::Command(Command::Quit(Some(
            "bye".into()
        ))))]
    );
    assert!(app.quitting);
}

#[test]
fn pasted_lines_are_sent_as_text_even_with_a_slash() {
    let mut app = in_rooms();
    app.paste("first\n/etc/passwd is a path\n", "12:00");
    let out = app.answer_paste(true, "12:00");
    let say = |s: &str| Action::Request(Request::Command(Command::Say(s.into())));
    assert_eq!(out, [say("first"), say("/etc/passwd is a path")]);
}

#[test]
fn the_counter_shows_near_the_servers_limit() {
    let mut app = in_rooms(); // max_text 100
    app.editor.insert(&"x".repeat(79));
    assert_eq!(app.counter(), None);
    app.editor.insert("x");
    assert_eq!(app.counter(), Some((80, 100)));
}

#[test]
fn completion_offers_members_and_recent_speakers_but_not_us() {
    let mut app = in_rooms();
    apply(&mut app, chat(ChatKind::Say, "lobby", "bea", "", "oi"));
    app.editor.insert("b");
    app.complete();
    assert_eq!(app.editor.line(), "bea: ");
    app.complete();
    assert_eq!(app.editor.line(), "bo: ");
    let mut app = in_rooms();
    app.editor.insert("an");
    app.complete();
    assert_eq!(app.editor.line(), "an");
}

#[test]
fn the_transcript_gets_every_line_with_its_window() {
    let mut app = in_rooms();
    app.log.clear();
    apply(&mut app, chat(ChatKind::Say, "lab", "bo", "", "oi"));
    apply(&mut app, event(EventKind::Part, "lab", "bo", ""));
    assert_eq!(app.log, ["[#lab] <bo> oi", "[#lab] -!- bo left #lab"]);
}

#[test]
fn raw_mode_has_one_window_of_plain_lines() {
    let mut app = App::new(Mode::Raw, "127.0.0.1:50000");
    app.on_raw("ana: oi\x1b[2J", "12:00");
    let w = app.windows.last().unwrap();
    assert_eq!(w.entries[0].text, "ana: oi^[[2J");
    assert_eq!(w.entries[0].kind, EntryKind::Raw);
    app.editor.insert("/join lab");
    // A raw server takes commands as text, if at all.
    assert_eq!(app.submit("12:00"), [Action::RawLine("/join lab".into())]);
}

#[test]
fn a_huge_paste_is_refused_whole() {
    let mut app = in_rooms();
    let big = "x\n".repeat(MAX_PASTE_LINES + 1);
    app.paste(&big, "12:00");
    assert!(app.paste.is_none());
    let last = app.windows[1].entries.back().unwrap();
    assert_eq!(last.kind, EntryKind::Error);
    assert!(last.text.contains("1001 lines"), "{}", last.text);
}
