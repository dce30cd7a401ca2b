//! Unit tests of [`ClientState`]: server messages and typed commands in,
//! frames and events out, no sockets.

use super::*;
use crate::wire::chat::{ChatKind, EventKind};

fn addr() -> SocketAddr {
    "127.0.0.1:8000".parse().unwrap()
}

fn welcome(s: &mut ClientState, name: &str, reconnected: bool) -> Output {
    s.on_welcome(addr(), name.into(), "soquete test".into(), 100, reconnected)
}

fn joined(s: &mut ClientState, room: &str) -> Output {
    s.on_server(ServerMsg::Joined {
        room: room.into(),
        total: 1,
        members: vec!["ana".into()],
    })
}

fn chat(room: &str, id: u64, ts_ms: u64, history: bool, text: &str) -> ServerMsg {
    ServerMsg::Chat(ChatLine {
        id,
        ts_ms,
        kind: ChatKind::Say,
        history,
        room: room.into(),
        from: "ana".into(),
        to: String::new(),
        text: text.into(),
    })
}

fn sent(o: &Output) -> &[ClientMsg] {
    &o.send
}

fn cmd(s: &mut ClientState, line: &str) -> Output {
    s.on_command(crate::chat::command::parse(line).unwrap().unwrap())
}

/// A client welcomed as `ana` and in the lobby.
fn in_lobby() -> ClientState {
    let mut s = ClientState::new(Some("ana".into()), None);
    welcome(&mut s, "ana", false);
    joined(&mut s, "lobby");
    s
}

#[test]
fn hello_asks_for_the_wanted_name_or_none() {
    assert_eq!(
        ClientState::hello(Some("ana")),
        ClientMsg::Hello {
            name: "ana".into(),
            software: crate::SOFTWARE.into()
        }
    );
    let s = ClientState::new(Some(String::new()), None);
    assert_eq!(s.wanted_name(), None);
}

#[test]
fn welcome_then_lobby_makes_the_lobby_current() {
    let mut s = ClientState::new(None, None);
    let o = welcome(&mut s, "guest-1", false);
    assert!(o.send.is_empty());
    assert!(matches!(&o.events[0], ClientEvent::Connected { name, .. } if name == "guest-1"));
    // `Joined` may come in a later read: text typed before it waits.
    assert!(s.is_waiting(), "text waits for the lobby's Joined");
    let o = joined(&mut s, "lobby");
    assert!(!s.is_waiting());
    assert_eq!(o.events[1], ClientEvent::CurrentRoom(Some("lobby".into())));
    assert_eq!(s.current(), Some("lobby"));
    // The assigned name is the one to take back after a reconnect.
    assert_eq!(s.wanted_name(), Some("guest-1"));
}

#[test]
fn room_option_is_joined_and_made_current_before_text_is_sent() {
    let mut s = ClientState::new(Some("ana".into()), Some("#lab".into()));
    let o = welcome(&mut s, "ana", false);
    assert_eq!(sent(&o), &[ClientMsg::Join { room: "lab".into() }]);
    assert!(s.is_waiting(), "text typed now belongs in lab");
    joined(&mut s, "lobby");
    assert!(s.is_waiting());
    joined(&mut s, "lab");
    assert!(!s.is_waiting());
    assert_eq!(s.current(), Some("lab"));
    assert_eq!(
        sent(&cmd(&mut s, "hi")),
        &[ClientMsg::Say {
            room: "lab".into(),
            text: "hi".into()
        }]
    );
}

#[test]
fn commands_become_the_right_frames() {
    let mut s = in_lobby();
    let cases: Vec<(&str, ClientMsg)> = vec![
        (
            "/me waves",
            ClientMsg::Action {
                room: "lobby".into(),
                text: "waves".into(),
            },
        ),
        (
            "/msg bo oi",
            ClientMsg::Private {
                to: "bo".into(),
                text: "oi".into(),
            },
        ),
        (
            "/nick ana2",
            ClientMsg::Nick {
                name: "ana2".into(),
            },
        ),
        (
            "/who",
            ClientMsg::Who {
                room: "lobby".into(),
            },
        ),
        ("/who #lab", ClientMsg::Who { room: "lab".into() }),
        ("/rooms", ClientMsg::ListRooms),
        (
            "/part",
            ClientMsg::Part {
                room: "lobby".into(),
            },
        ),
        (
            "/quit tchau",
            ClientMsg::Quit {
                reason: "tchau".into(),
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(sent(&cmd(&mut s, line)), &[want], "{line}");
    }
    assert!(s.is_quitting());
}

#[test]
fn join_of_a_room_already_joined_only_switches() {
    let mut s = in_lobby();
    assert_eq!(
        sent(&cmd(&mut s, "/join lab")),
        &[ClientMsg::Join { room: "lab".into() }]
    );
    joined(&mut s, "lab");
    assert_eq!(s.current(), Some("lab"));
    let o = cmd(&mut s, "/join LOBBY");
    assert!(o.send.is_empty());
    assert_eq!(
        o.events,
        vec![ClientEvent::CurrentRoom(Some("lobby".into()))]
    );
}

#[test]
fn refused_join_stops_waiting() {
    let mut s = in_lobby();
    cmd(&mut s, "/join lab");
    assert!(s.is_waiting());
    s.on_server(ServerMsg::Error {
        code: ErrorCode::TooManyRooms as u16,
        text: "too many rooms".into(),
    });
    assert!(!s.is_waiting());
    assert_eq!(s.current(), Some("lobby"));
}

#[test]
fn parting_the_current_room_falls_back_to_the_last_joined() {
    let mut s = in_lobby();
    cmd(&mut s, "/join lab");
    joined(&mut s, "lab");
    assert_eq!(
        sent(&cmd(&mut s, "/part")),
        &[ClientMsg::Part { room: "lab".into() }]
    );
    assert!(
        s.is_waiting(),
        "text typed now goes to the next current room"
    );
    let o = s.on_server(ServerMsg::Parted { room: "lab".into() });
    assert!(!s.is_waiting());
    assert_eq!(
        o.events,
        vec![
            ClientEvent::Parted { room: "lab".into() },
            ClientEvent::CurrentRoom(Some("lobby".into()))
        ]
    );
    s.on_server(ServerMsg::Parted {
        room: "lobby".into(),
    });
    assert_eq!(s.current(), None);
    let o = cmd(&mut s, "hello");
    assert!(o.send.is_empty());
    assert!(matches!(
        &o.events[0],
        ClientEvent::Error { code: None, .. }
    ));
}

#[test]
fn bad_input_is_refused_locally() {
    let mut s = in_lobby();
    for line in ["/nick a:b", "/msg #x hi", "/join /x"] {
        let o = cmd(&mut s, line);
        assert!(o.send.is_empty(), "{line}");
        assert!(
            matches!(&o.events[0], ClientEvent::Error { code: None, .. }),
            "{line}"
        );
    }
    // max_text is 100 in these tests.
    let o = cmd(&mut s, &"x".repeat(101));
    assert!(o.send.is_empty());
    assert_eq!(sent(&cmd(&mut s, &"x".repeat(100))).len(), 1);
}

#[test]
fn ping_is_answered_with_its_token() {
    let mut s = in_lobby();
    let o = s.on_server(ServerMsg::Ping { token: 42 });
    assert_eq!(sent(&o), &[ClientMsg::Pong { token: 42 }]);
    assert!(o.events.is_empty());
}

#[test]
fn your_name_updates_the_name_to_take_back() {
    let mut s = in_lobby();
    let o = s.on_server(ServerMsg::YourName { name: "bo".into() });
    assert_eq!(o.events, vec![ClientEvent::NameChanged("bo".into())]);
    assert_eq!(s.name(), Some("bo"));
    assert_eq!(s.wanted_name(), Some("bo"));
}

#[test]
fn bye_and_fatal_errors_are_remembered_for_the_session() {
    let mut s = in_lobby();
    s.on_server(ServerMsg::Error {
        code: ErrorCode::Protocol as u16,
        text: "bad frame".into(),
    });
    s.on_server(ServerMsg::Bye {
        reason: "server shutting down".into(),
    });
    assert_eq!(s.fatal_error(), Some(ErrorCode::Protocol));
    assert_eq!(s.bye_reason(), Some("server shutting down"));
    s.on_lost();
    welcome(&mut s, "ana", true);
    assert_eq!(s.fatal_error(), None);
    assert_eq!(s.bye_reason(), None);
}

#[test]
fn reconnect_rejoins_rooms_and_restores_the_current_one() {
    let mut s = in_lobby();
    cmd(&mut s, "/join lab");
    joined(&mut s, "lab");
    cmd(&mut s, "/join ops");
    joined(&mut s, "ops");
    cmd(&mut s, "/join lab"); // current: lab
    s.on_lost();
    assert_eq!(s.name(), None);
    let o = welcome(&mut s, "ana", true);
    assert_eq!(
        sent(&o),
        &[
            ClientMsg::Join { room: "lab".into() },
            ClientMsg::Join { room: "ops".into() }
        ]
    );
    joined(&mut s, "lobby");
    joined(&mut s, "lab");
    joined(&mut s, "ops");
    assert_eq!(s.current(), Some("lab"));
    assert_eq!(s.rooms(), ["lobby", "lab", "ops"]);
}

#[test]
fn reconnect_leaves_the_lobby_again_if_we_had_left_it() {
    let mut s = in_lobby();
    cmd(&mut s, "/join lab");
    joined(&mut s, "lab");
    s.on_server(ServerMsg::Parted {
        room: "lobby".into(),
    });
    s.on_lost();
    let o = welcome(&mut s, "ana", true);
    assert_eq!(
        sent(&o),
        &[
            ClientMsg::Join { room: "lab".into() },
            ClientMsg::Part {
                room: "lobby".into()
            }
        ]
    );
}

#[test]
fn connection_lost_before_joins_were_answered_keeps_the_plan() {
    let mut s = ClientState::new(None, Some("lab".into()));
    welcome(&mut s, "guest-1", false);
    s.on_lost();
    let o = welcome(&mut s, "guest-1", true);
    assert_eq!(sent(&o), &[ClientMsg::Join { room: "lab".into() }]);
    assert!(s.is_waiting());
}

#[test]
fn reconnect_under_another_name_takes_ours_back() {
    let mut s = in_lobby();
    s.on_lost();
    let o = welcome(&mut s, "guest-7", true);
    assert_eq!(sent(&o), &[ClientMsg::Nick { name: "ana".into() }]);
}

#[test]
fn history_seen_before_a_reconnect_is_not_shown_twice() {
    let mut s = in_lobby();
    assert_eq!(
        s.on_server(chat("lobby", 5, 1000, true, "old"))
            .events
            .len(),
        1
    );
    assert_eq!(
        s.on_server(chat("lobby", 6, 1001, false, "live"))
            .events
            .len(),
        1
    );
    s.on_lost();
    welcome(&mut s, "ana", true);
    joined(&mut s, "lobby");
    assert!(
        s.on_server(chat("lobby", 5, 1000, true, "old"))
            .events
            .is_empty()
    );
    assert!(
        s.on_server(chat("lobby", 6, 1001, true, "live"))
            .events
            .is_empty()
    );
    assert_eq!(
        s.on_server(chat("lobby", 7, 1002, true, "missed"))
            .events
            .len(),
        1
    );
    // A restarted server numbers from 1 again, but its clock moved on.
    assert_eq!(
        s.on_server(chat("lobby", 1, 5000, true, "new server"))
            .events
            .len(),
        1
    );
}

#[test]
fn events_and_private_messages_pass_through() {
    let mut s = in_lobby();
    let e = EventLine {
        id: 1,
        ts_ms: 2,
        kind: EventKind::Join,
        room: "lobby".into(),
        name: "bo".into(),
        detail: String::new(),
    };
    assert_eq!(
        s.on_server(ServerMsg::Event(e.clone())).events,
        vec![ClientEvent::Event(e)]
    );
    let pm = ServerMsg::Chat(ChatLine {
        id: 2,
        ts_ms: 3,
        kind: ChatKind::Private,
        history: false,
        room: String::new(),
        from: "bo".into(),
        to: "ana".into(),
        text: "oi".into(),
    });
    assert_eq!(s.on_server(pm).events.len(), 1);
}
