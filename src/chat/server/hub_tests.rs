//! Unit tests of the hub: fan-out, rooms, history, names, slow consumers,
//! raw rendering and the verbatim relay — no sockets, no clock.

use std::net::SocketAddr;

use bytes::BytesMut;

use crate::chat::server::hub::{ClientId, Hub, HubConfig};
use crate::chat::server::outbox::{OutboxReceiver, outbox};
use crate::chat::server::render::Flavor;
use crate::wire::chat::{ChatKind, ErrorCode, EventKind, ServerMsg};
use crate::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};

fn addr() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

struct Peer {
    id: ClientId,
    name: String,
    rx: OutboxReceiver,
}

fn join(hub: &mut Hub, name: Option<&str>, flavor: Flavor, cap: usize) -> Peer {
    let (ob, rx) = outbox(cap);
    let (id, name) = hub.connect(name, flavor, addr(), ob, 1).unwrap();
    Peer { id, name, rx }
}

fn native(hub: &mut Hub, name: &str) -> Peer {
    join(hub, Some(name), Flavor::Native, 64)
}

fn decode_all(p: &mut Peer) -> Vec<ServerMsg> {
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    let mut out = Vec::new();
    for b in p.rx.drain_now() {
        let mut buf = BytesMut::from(&b[..]);
        while let Some(f) = codec.decode_frame(&mut buf).unwrap() {
            out.extend(ServerMsg::decode(&f).unwrap().expand());
        }
    }
    out
}

fn chats(p: &mut Peer) -> Vec<(String, String, bool)> {
    chat_lines(decode_all(p))
}

/// Each chat message as (room, "name: text", history).
fn chat_lines(msgs: Vec<ServerMsg>) -> Vec<(String, String, bool)> {
    msgs.into_iter()
        .filter_map(|m| match m {
            ServerMsg::Chat(c) => Some((c.room, format!("{}: {}", c.from, c.text), c.history)),
            _ => None,
        })
        .collect()
}

fn raw_text(p: &mut Peer) -> String {
    p.rx.drain_now()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn welcome_joined_then_own_join_event() {
    let mut hub = Hub::new(HubConfig::default());
    let mut ana = native(&mut hub, "ana");
    let msgs = decode_all(&mut ana);
    assert!(matches!(&msgs[0], ServerMsg::Welcome { name, .. } if name == "ana"));
    assert!(
        matches!(&msgs[1], ServerMsg::Joined { room, total: 1, members } if room == "lobby" && members == &["ana"])
    );
    assert!(
        matches!(&msgs[2], ServerMsg::Event(e) if e.kind == EventKind::Join && e.name == "ana")
    );
}

#[test]
fn message_reaches_every_member_including_sender() {
    let mut hub = Hub::new(HubConfig::default());
    let mut ana = native(&mut hub, "ana");
    let mut bo = native(&mut hub, "bo");
    decode_all(&mut ana);
    decode_all(&mut bo);
    hub.say(
        ana.id,
        "lobby",
        ChatKind::Say,
        "Olá turma de redes industriais",
        2,
    );
    hub.take_wakes(); // ends the batch, as a session does
    let want = vec![(
        "lobby".to_string(),
        "ana: Olá turma de redes industriais".to_string(),
        false,
    )];
    assert_eq!(chats(&mut ana), want);
    assert_eq!(chats(&mut bo), want);
}

#[test]
fn rooms_are_isolated_and_need_membership() {
    let mut hub = Hub::new(HubConfig::default());
    let mut ana = native(&mut hub, "ana");
    let mut bo = native(&mut hub, "bo");
    hub.join(ana.id, "#lab", 2);
    decode_all(&mut ana);
    decode_all(&mut bo);
    hub.say(ana.id, "lab", ChatKind::Say, "só no lab", 3);
    hub.take_wakes(); // ends the batch, as a session does
    hub.say(bo.id, "lab", ChatKind::Say, "intruso", 3);
    hub.take_wakes(); // ends the batch, as a session does
    assert_eq!(
        chats(&mut ana),
        vec![("lab".into(), "ana: só no lab".into(), false)]
    );
    let bo_msgs = decode_all(&mut bo);
    assert!(
        matches!(&bo_msgs[..], [ServerMsg::Error { code, .. }] if *code == ErrorCode::NotInRoom as u16)
    );
}

#[test]
fn history_is_replayed_on_join_and_bounded() {
    let mut hub = Hub::new(HubConfig {
        history: 2,
        ..HubConfig::default()
    });
    let ana = native(&mut hub, "ana");
    for t in ["one", "two", "three"] {
        hub.say(ana.id, "lobby", ChatKind::Say, t, 2);
        hub.take_wakes(); // ends the batch, as a session does
    }
    let mut bo = native(&mut hub, "bo");
    assert_eq!(
        chats(&mut bo),
        vec![
            ("lobby".into(), "ana: two".into(), true),
            ("lobby".into(), "ana: three".into(), true)
        ]
    );
}

#[test]
fn a_burst_without_history_arrives_whole_and_in_order() {
    let mut hub = Hub::new(HubConfig {
        history: 0,
        ..HubConfig::default()
    });
    let mut ana = native(&mut hub, "ana");
    let mut bo = native(&mut hub, "bo");
    hub.join(ana.id, "Lab", 1);
    hub.join(bo.id, "lab", 1);
    hub.take_wakes();
    decode_all(&mut ana);
    decode_all(&mut bo);
    // Two sends in one batch per sender, alternating rooms and senders, one
    // room named in other cases: each message arrives once, in order, under
    // the name its room was created with.
    for (who, room, text) in [
        (&ana, "lobby", "a1"),
        (&ana, "lobby", "a2"),
        (&ana, "#LAB", "a3"),
        (&bo, "lab", "b1"),
        (&bo, "lab", "b2"),
        (&ana, "lab", "a4"),
    ] {
        hub.say(who.id, room, ChatKind::Say, text, 5);
    }
    hub.take_wakes();
    let want: Vec<(String, String, bool)> = [
        ("lobby", "ana: a1"),
        ("lobby", "ana: a2"),
        ("Lab", "ana: a3"),
        ("Lab", "bo: b1"),
        ("Lab", "bo: b2"),
        ("Lab", "ana: a4"),
    ]
    .iter()
    .map(|(r, t)| (r.to_string(), t.to_string(), false))
    .collect();
    let got = decode_all(&mut ana);
    let ids: Vec<u64> = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Chat(c) => Some(c.id),
            _ => None,
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids {ids:?}");
    assert_eq!(chat_lines(got), want);
    assert_eq!(chats(&mut bo), want);
    let mut raw = join(&mut hub, Some("cris"), Flavor::Raw, 64);
    raw_text(&mut raw);
    hub.say(ana.id, "lobby", ChatKind::Say, "r1", 6);
    hub.say(ana.id, "lobby", ChatKind::Say, "r2", 6);
    hub.take_wakes();
    assert_eq!(
        raw_text(&mut raw),
        "ana: r1\nana: r2\n",
        "a raw member gets every message of a run"
    );
}

#[test]
fn names_are_unique_without_case_and_guests_are_numbered() {
    let mut hub = Hub::new(HubConfig::default());
    let _ana = native(&mut hub, "ana");
    let (ob, _rx) = outbox(8);
    assert!(
        hub.connect(Some("ANA"), Flavor::Native, addr(), ob, 1)
            .is_err()
    );
    let g1 = join(&mut hub, None, Flavor::Raw, 8);
    let g2 = join(&mut hub, Some(""), Flavor::Native, 8);
    assert_eq!(g1.name, "guest-1");
    assert_eq!(g2.name, "guest-2");
}

#[test]
fn private_message_goes_to_target_and_sender_only() {
    let mut hub = Hub::new(HubConfig::default());
    let mut ana = native(&mut hub, "ana");
    let mut bo = native(&mut hub, "bo");
    let mut cy = native(&mut hub, "cy");
    for p in [&mut ana, &mut bo, &mut cy] {
        decode_all(p);
    }
    hub.private(ana.id, "BO", "segredo", 2);
    assert_eq!(
        chats(&mut ana),
        vec![(String::new(), "ana: segredo".into(), false)]
    );
    assert_eq!(
        chats(&mut bo),
        vec![(String::new(), "ana: segredo".into(), false)]
    );
    assert!(chats(&mut cy).is_empty());
    hub.private(ana.id, "nobody", "x", 3);
    assert!(
        matches!(&decode_all(&mut ana)[..], [ServerMsg::Error { code, .. }] if *code == ErrorCode::NoSuchUser as u16)
    );
}

#[test]
fn slow_reader_is_dropped_and_does_not_delay_others() {
    let mut hub = Hub::new(HubConfig::default());
    let mut fast = native(&mut hub, "fast");
    let slow = join(&mut hub, Some("slow"), Flavor::Native, 8);
    let sender = native(&mut hub, "sender");
    let mut delivered = 0;
    for i in 0..50 {
        hub.say(sender.id, "lobby", ChatKind::Say, &format!("m{i}"), 2);
        hub.take_wakes(); // ends the batch, as a session does
        delivered += chats(&mut fast).len(); // the fast one keeps reading
    }
    assert_eq!(delivered, 50);
    assert_eq!(hub.len(), 2, "the slow client was removed");
    assert!(hub.name_of(slow.id).is_none());
}

#[test]
fn oversized_text_is_refused_with_an_error() {
    let mut hub = Hub::new(HubConfig {
        max_text: 10,
        ..HubConfig::default()
    });
    let mut ana = native(&mut hub, "ana");
    decode_all(&mut ana);
    hub.say(ana.id, "lobby", ChatKind::Say, "this is far too long", 2);
    hub.take_wakes(); // ends the batch, as a session does
    assert!(
        matches!(&decode_all(&mut ana)[..], [ServerMsg::Error { code, .. }] if *code == ErrorCode::TooLong as u16)
    );
}

#[test]
fn raw_clients_get_named_lines_and_switch_rooms() {
    let mut hub = Hub::new(HubConfig::default());
    let mut raw = join(&mut hub, None, Flavor::Raw, 64);
    let ana = native(&mut hub, "ana");
    hub.say(ana.id, "lobby", ChatKind::Say, "oi", 2);
    hub.take_wakes(); // ends the batch, as a session does
    let text = raw_text(&mut raw);
    assert!(text.starts_with("* welcome, guest-1!"), "{text}");
    assert!(text.ends_with("* ana joined lobby\nana: oi\n"), "{text}");
    hub.join(raw.id, "lab", 3);
    assert_eq!(hub.rooms_of(raw.id), vec!["lab"]);
    let text = raw_text(&mut raw);
    assert!(
        text.contains("* you left lobby\n* now in lab: guest-1\n"),
        "{text}"
    );
}

#[test]
fn verbatim_relay_sends_the_same_bytes_to_every_raw_client() {
    let mut hub = Hub::new(HubConfig {
        verbatim: true,
        ..HubConfig::default()
    });
    let mut a = join(&mut hub, None, Flavor::Raw, 64);
    let mut b = join(&mut hub, None, Flavor::Raw, 64);
    let mut n = native(&mut hub, "ana");
    assert_eq!(raw_text(&mut a), "", "no server text in verbatim mode");
    decode_all(&mut n);
    let msg = bytes::Bytes::from("Olá turma de redes industriais");
    hub.relay_verbatim(a.id, msg.clone(), 2);
    hub.take_wakes(); // ends the batch, as a session does
    assert_eq!(a.rx.drain_now(), vec![msg.clone()]);
    assert_eq!(b.rx.drain_now(), vec![msg]);
    assert_eq!(
        chats(&mut n),
        vec![(
            "lobby".into(),
            "guest-1: Olá turma de redes industriais".into(),
            false
        )]
    );
    hub.say(n.id, "lobby", ChatKind::Say, "de volta", 3);
    hub.take_wakes(); // ends the batch, as a session does
    assert_eq!(raw_text(&mut b), "de volta");
}

#[test]
fn nick_change_is_announced_and_frees_the_old_name() {
    let mut hub = Hub::new(HubConfig::default());
    let mut ana = native(&mut hub, "ana");
    let mut bo = native(&mut hub, "bo");
    decode_all(&mut ana);
    decode_all(&mut bo);
    hub.nick(ana.id, "bo", 2);
    assert!(
        matches!(&decode_all(&mut ana)[..], [ServerMsg::Error { code, .. }] if *code == ErrorCode::NameTaken as u16)
    );
    hub.nick(ana.id, "ana2", 3);
    assert!(
        matches!(&decode_all(&mut bo)[..], [ServerMsg::Event(e)] if e.kind == EventKind::Nick && e.name == "ana" && e.detail == "ana2")
    );
    let _new_ana = native(&mut hub, "ana");
}

#[test]
fn big_rooms_are_not_told_of_every_arrival() {
    let mut hub = Hub::new(HubConfig {
        announce_limit: 2,
        ..HubConfig::default()
    });
    let mut ana = native(&mut hub, "ana");
    let _bo = native(&mut hub, "bo");
    decode_all(&mut ana);
    let _cy = native(&mut hub, "cy"); // the third member: over the limit
    hub.take_wakes();
    assert!(decode_all(&mut ana).is_empty());
    let mut dee = native(&mut hub, "dee");
    let joined = decode_all(&mut dee);
    assert!(
        joined
            .iter()
            .any(|m| matches!(m, ServerMsg::Joined { total: 4, .. }))
    );
}

#[test]
fn leaving_tells_the_room_and_empty_rooms_vanish() {
    let mut hub = Hub::new(HubConfig::default());
    let mut ana = native(&mut hub, "ana");
    let bo = native(&mut hub, "bo");
    hub.join(bo.id, "lab", 2);
    decode_all(&mut ana);
    hub.disconnect(bo.id, "bye", 3);
    let msgs = decode_all(&mut ana);
    assert!(
        matches!(&msgs[..], [ServerMsg::Event(e)] if e.kind == EventKind::Quit && e.detail == "bye")
    );
    hub.list_rooms(ana.id);
    assert!(
        matches!(&decode_all(&mut ana)[..], [ServerMsg::Rooms { rooms }] if rooms == &[("lobby".to_string(), 1)])
    );
}
