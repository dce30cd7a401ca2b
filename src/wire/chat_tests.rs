//! Unit tests of the native chat messages: every message round-trips, the
//! documented bytes and sizes hold, bad frames are refused.

use super::*;
use crate::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};

fn roundtrip_server(m: ServerMsg) {
    let mut b = BytesMut::new();
    m.encode(&mut b).unwrap();
    let f = FrameCodec::new(DEFAULT_MAX_FRAME)
        .decode_frame(&mut b)
        .unwrap()
        .unwrap();
    assert_eq!(ServerMsg::decode(&f).unwrap(), m);
}

fn roundtrip_client(m: ClientMsg) {
    let mut b = BytesMut::new();
    m.encode(&mut b).unwrap();
    let f = FrameCodec::new(DEFAULT_MAX_FRAME)
        .decode_frame(&mut b)
        .unwrap()
        .unwrap();
    assert_eq!(ClientMsg::decode(&f).unwrap(), m);
}

#[test]
fn every_client_message_round_trips() {
    for m in [
        ClientMsg::Hello {
            name: "ana".into(),
            software: "soquete/0.1".into(),
        },
        ClientMsg::Say {
            room: "lobby".into(),
            text: "Olá turma de redes industriais".into(),
        },
        ClientMsg::Action {
            room: "lobby".into(),
            text: "waves".into(),
        },
        ClientMsg::Private {
            to: "bo".into(),
            text: "hi".into(),
        },
        ClientMsg::Join { room: "lab".into() },
        ClientMsg::Part { room: "lab".into() },
        ClientMsg::Nick {
            name: "ana2".into(),
        },
        ClientMsg::Who {
            room: "lobby".into(),
        },
        ClientMsg::ListRooms,
        ClientMsg::Quit {
            reason: "bye".into(),
        },
        ClientMsg::Ping { token: 7 },
        ClientMsg::Pong { token: u64::MAX },
    ] {
        roundtrip_client(m);
    }
}

#[test]
fn every_server_message_round_trips() {
    for m in [
        ServerMsg::Welcome {
            name: "guest-1".into(),
            software: "soquete 0.1.0".into(),
            max_text: 4096,
            history: 50,
        },
        ServerMsg::Chat(ChatLine {
            id: 1,
            ts_ms: 1_700_000_000_000,
            kind: ChatKind::Action,
            history: true,
            room: "lobby".into(),
            from: "ana".into(),
            to: String::new(),
            text: "waves".into(),
        }),
        ServerMsg::ChatRun(ChatRun {
            first_id: 7,
            ts_ms: 9,
            kind: ChatKind::Say,
            room: "lobby".into(),
            from: "ana".into(),
            texts: vec!["um".into(), "dois".into()],
        }),
        ServerMsg::Event(EventLine {
            id: 2,
            ts_ms: 3,
            kind: EventKind::Nick,
            room: "lobby".into(),
            name: "ana".into(),
            detail: "ana2".into(),
        }),
        ServerMsg::Joined {
            room: "lab".into(),
            total: 2,
            members: vec!["ana".into(), "bo".into()],
        },
        ServerMsg::Parted { room: "lab".into() },
        ServerMsg::Who {
            room: "lab".into(),
            total: 0,
            members: vec![],
        },
        ServerMsg::Rooms {
            rooms: vec![("lobby".into(), 3), ("lab".into(), 1)],
        },
        ServerMsg::YourName { name: "x".into() },
        ServerMsg::Error {
            code: ErrorCode::NameTaken as u16,
            text: "name taken".into(),
        },
        ServerMsg::Notice { text: "hi".into() },
        ServerMsg::Ping { token: 1 },
        ServerMsg::Pong { token: 2 },
        ServerMsg::Bye {
            reason: "server shutting down".into(),
        },
    ] {
        roundtrip_server(m);
    }
}

#[test]
fn a_run_expands_to_chat_lines_with_consecutive_ids() {
    let run = ServerMsg::ChatRun(ChatRun {
        first_id: 41,
        ts_ms: 5,
        kind: ChatKind::Say,
        room: "lobby".into(),
        from: "ana".into(),
        texts: vec!["a".into(), "b".into()],
    });
    let lines = run.expand();
    assert_eq!(lines.len(), 2);
    assert!(
        matches!(&lines[1], ServerMsg::Chat(c) if c.id == 42 && c.text == "b" && c.from == "ana")
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let f = Frame {
        kind: 0x09,
        payload: Bytes::from_static(b"x"),
    };
    assert!(matches!(
        ClientMsg::decode(&f),
        Err(ChatWireError::Field {
            err: FieldError::Trailing(1),
            ..
        })
    ));
}

#[test]
fn unknown_type_is_rejected() {
    let f = Frame {
        kind: 0x7F,
        payload: Bytes::new(),
    };
    assert_eq!(ClientMsg::decode(&f), Err(ChatWireError::UnknownType(0x7F)));
}

#[test]
fn chapter_message_sizes_match_the_protocol_doc() {
    let text = "Olá turma de redes industriais";
    assert_eq!(text.len(), 31);
    let say = ClientMsg::Say {
        room: "lobby".into(),
        text: text.into(),
    };
    assert_eq!(say.to_bytes().unwrap().len(), 45);
    let chat = ServerMsg::Chat(ChatLine {
        id: 1,
        ts_ms: 2,
        kind: ChatKind::Say,
        history: false,
        room: "lobby".into(),
        from: "ana".into(),
        to: String::new(),
        text: text.into(),
    });
    assert_eq!(chat.to_bytes().unwrap().len(), 70);
}

#[test]
fn say_frame_matches_documented_bytes() {
    // The worked example of docs/protocol.md.
    let b = ClientMsg::Say {
        room: "lobby".into(),
        text: "Olá".into(),
    }
    .to_bytes()
    .unwrap();
    assert_eq!(
        &b[..],
        &[
            0, 0, 0, 0x0E, 0x02, 0, 5, b'l', b'o', b'b', b'b', b'y', 0, 4, b'O', b'l', 0xC3, 0xA1
        ]
    );
}
