//! How the line mode shows each [`ClientEvent`]: which stream, which words.
//! Pure; every string from the network passes `sanitize::for_terminal`.
//!
//! A person in several rooms with us gets one `Quit` or `Nick` event per
//! shared room; the line mode, which shows events without their room, says
//! it once.

use std::collections::VecDeque;

use crate::chat::client::ClientEvent;
use crate::sanitize::for_terminal as clean;
use crate::wire::chat::{ChatKind, ChatLine, EventKind, EventLine};

/// Member names listed when we join a room; the rest are counted.
const MEMBERS_SHOWN: usize = 20;
/// Recent quit/nick events remembered to drop their per-room repeats.
const RECENT: usize = 16;
/// Repeats of one quit/nick arrive together; further apart they are new.
const REPEAT_WINDOW_MS: u64 = 2000;

/// Where one rendered line goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// Chat data (scripts read it).
    Stdout(String),
    /// Everything a person reads.
    Stderr(String),
}

/// The line mode's memory between events.
#[derive(Debug)]
pub struct LineView {
    /// Our name, to leave out our own join/nick events (said otherwise).
    me: String,
    /// Recent quit/nick events: kind, name, detail, server time.
    recent: VecDeque<(EventKind, String, String, u64)>,
    /// Whether a reconnect follows a lost connection (else the final error
    /// line says it all).
    reconnects: bool,
}

impl LineView {
    pub fn new(reconnects: bool) -> Self {
        Self {
            me: String::new(),
            recent: VecDeque::new(),
            reconnects,
        }
    }

    /// The line for one event, if it has one.
    pub fn render(&mut self, event: &ClientEvent) -> Option<Shown> {
        let err = |s: String| Some(Shown::Stderr(s));
        match event {
            ClientEvent::Chat(line) => Some(Shown::Stdout(chat_line(line))),
            ClientEvent::Event(e) => self.event_line(e).map(Shown::Stderr),
            ClientEvent::Connected {
                addr,
                name,
                reconnected,
                ..
            } => {
                self.me = name.clone();
                let verb = if *reconnected {
                    "reconnected"
                } else {
                    "connected"
                };
                err(format!("* {verb} to {addr} as {}", clean(name)))
            }
            ClientEvent::Disconnected { reason } if self.reconnects => err(format!("* {reason}")),
            ClientEvent::Disconnected { .. } => None,
            ClientEvent::Reconnecting { attempt, of, delay } => err(format!(
                "* reconnecting in {:.1}s (attempt {attempt} of {of})",
                delay.as_secs_f64()
            )),
            ClientEvent::Joined {
                room,
                total,
                members,
            } => err(format!(
                "* you joined {} ({})",
                clean(room),
                member_list(*total, members, MEMBERS_SHOWN)
            )),
            ClientEvent::Parted { room } => err(format!("* you left {}", clean(room))),
            ClientEvent::CurrentRoom(None) => err("* you are in no room; /join one".into()),
            ClientEvent::CurrentRoom(Some(_)) => None,
            ClientEvent::Who {
                room,
                total,
                members,
            } => err(format!(
                "* {}: {}",
                clean(room),
                member_list(*total, members, usize::MAX)
            )),
            ClientEvent::Rooms(rooms) => err(rooms_line(rooms)),
            ClientEvent::NameChanged(name) => {
                self.me = name.clone();
                err(format!("* you are now {}", clean(name)))
            }
            ClientEvent::Error { text, .. } => err(format!("error: {}", clean(text))),
            ClientEvent::Notice(text) => err(format!("notice: {}", clean(text))),
        }
    }

    fn event_line(&mut self, e: &EventLine) -> Option<String> {
        let (name, room, detail) = (clean(&e.name), clean(&e.room), clean(&e.detail));
        let own = e.name == self.me || (e.kind == EventKind::Nick && e.detail == self.me);
        match e.kind {
            EventKind::Join if own => None,
            EventKind::Join => Some(format!("* {name} joined {room}")),
            EventKind::Part => Some(format!("* {name} left {room}")),
            EventKind::Nick if own => None,
            EventKind::Nick | EventKind::Quit if self.is_repeat(e) => None,
            EventKind::Nick => Some(format!("* {name} is now {detail}")),
            EventKind::Quit if detail.is_empty() => Some(format!("* {name} quit")),
            EventKind::Quit => Some(format!("* {name} quit ({detail})")),
        }
    }

    /// Whether this quit/nick was already shown for another room.
    fn is_repeat(&mut self, e: &EventLine) -> bool {
        let seen = self.recent.iter().any(|(k, n, d, ts)| {
            *k == e.kind
                && *n == e.name
                && *d == e.detail
                && ts.abs_diff(e.ts_ms) <= REPEAT_WINDOW_MS
        });
        if !seen {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent
                .push_back((e.kind, e.name.clone(), e.detail.clone(), e.ts_ms));
        }
        seen
    }
}

/// The stdout line of a chat message.
pub fn chat_line(c: &ChatLine) -> String {
    let (from, text) = (clean(&c.from), clean(&c.text));
    match c.kind {
        ChatKind::Say => format!("[{}] {from}: {text}", clean(&c.room)),
        ChatKind::Action => format!("[{}] * {from} {text}", clean(&c.room)),
        ChatKind::Private => format!("[pm] {from} -> {}: {text}", clean(&c.to)),
    }
}

/// `3 here: ana, bo, cy`, at most `shown` names (the server lists at most
/// a thousand of `total`).
fn member_list(total: u32, members: &[String], shown: usize) -> String {
    let n = (total as usize).max(members.len());
    let mut names: Vec<String> = members.iter().take(shown).map(|m| clean(m)).collect();
    if n > names.len() {
        names.push(format!("and {} more", n - names.len()));
    }
    format!("{n} here: {}", names.join(", "))
}

fn rooms_line(rooms: &[(String, u32)]) -> String {
    if rooms.is_empty() {
        return "* no rooms".into();
    }
    let list: Vec<String> = rooms
        .iter()
        .map(|(r, n)| format!("{} ({n})", clean(r)))
        .collect();
    format!("* rooms: {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn chat(kind: ChatKind, room: &str, to: &str, text: &str) -> ChatLine {
        ChatLine {
            id: 1,
            ts_ms: 0,
            kind,
            history: false,
            room: room.into(),
            from: "ana".into(),
            to: to.into(),
            text: text.into(),
        }
    }

    fn ev(kind: EventKind, room: &str, name: &str, detail: &str, ts_ms: u64) -> ClientEvent {
        ClientEvent::Event(EventLine {
            id: 1,
            ts_ms,
            kind,
            room: room.into(),
            name: name.into(),
            detail: detail.into(),
        })
    }

    fn err(s: &str) -> Option<Shown> {
        Some(Shown::Stderr(s.into()))
    }

    fn view_as(me: &str) -> LineView {
        let mut v = LineView::new(true);
        v.render(&ClientEvent::Connected {
            addr: "127.0.0.1:8000".parse().unwrap(),
            name: me.into(),
            software: "x".into(),
            reconnected: false,
            max_text: 4096,
            fingerprint: None,
        });
        v
    }

    #[test]
    fn chat_lines_have_the_documented_shape() {
        assert_eq!(
            chat_line(&chat(ChatKind::Say, "lobby", "", "oi")),
            "[lobby] ana: oi"
        );
        assert_eq!(
            chat_line(&chat(ChatKind::Action, "lab", "", "acena")),
            "[lab] * ana acena"
        );
        assert_eq!(
            chat_line(&chat(ChatKind::Private, "", "bo", "psst")),
            "[pm] ana -> bo: psst"
        );
    }

    #[test]
    fn network_text_is_sanitized() {
        let line = chat_line(&chat(ChatKind::Say, "lo\x1bbby", "", "a\x1b[2Jb\nc"));
        assert_eq!(line, "[lo^[bby] ana: a^[[2Jb^Jc");
        let mut v = view_as("me");
        assert_eq!(
            v.render(&ClientEvent::Error {
                code: None,
                text: "bad\x07".into()
            }),
            err("error: bad^G")
        );
    }

    #[test]
    fn chat_goes_to_stdout_and_the_rest_to_stderr() {
        let mut v = view_as("me");
        let c = ClientEvent::Chat(chat(ChatKind::Say, "lobby", "", "x"));
        assert_eq!(v.render(&c), Some(Shown::Stdout("[lobby] ana: x".into())));
        assert_eq!(
            v.render(&ev(EventKind::Join, "lobby", "bo", "", 0)),
            err("* bo joined lobby")
        );
        assert_eq!(
            v.render(&ev(EventKind::Part, "lab", "bo", "", 0)),
            err("* bo left lab")
        );
        assert_eq!(
            v.render(&ClientEvent::Notice("slow down".into())),
            err("notice: slow down")
        );
        assert_eq!(
            v.render(&ClientEvent::NameChanged("bo2".into())),
            err("* you are now bo2")
        );
    }

    #[test]
    fn own_join_and_nick_events_are_not_repeated() {
        let mut v = view_as("me");
        assert_eq!(v.render(&ev(EventKind::Join, "lobby", "me", "", 0)), None);
        v.render(&ClientEvent::NameChanged("me2".into()));
        assert_eq!(
            v.render(&ev(EventKind::Nick, "lobby", "me", "me2", 0)),
            None
        );
    }

    #[test]
    fn quit_and_nick_are_said_once_across_rooms() {
        let mut v = view_as("me");
        let q = |room, ts| ev(EventKind::Quit, room, "bo", "bye", ts);
        assert_eq!(v.render(&q("lobby", 100)), err("* bo quit (bye)"));
        assert_eq!(v.render(&q("lab", 101)), None);
        // Much later the same words are a new event.
        assert_eq!(v.render(&q("lobby", 60_000)), err("* bo quit (bye)"));
        let n = |room| ev(EventKind::Nick, room, "cy", "cy2", 5);
        assert_eq!(v.render(&n("lobby")), err("* cy is now cy2"));
        assert_eq!(v.render(&n("lab")), None);
        assert_eq!(
            v.render(&ev(EventKind::Quit, "lab", "di", "", 7)),
            err("* di quit")
        );
    }

    #[test]
    fn membership_and_listings() {
        let mut v = view_as("me");
        let joined = ClientEvent::Joined {
            room: "lab".into(),
            total: 2,
            members: vec!["ana".into(), "me".into()],
        };
        assert_eq!(v.render(&joined), err("* you joined lab (2 here: ana, me)"));
        let many: Vec<String> = (0..25).map(|i| format!("u{i}")).collect();
        assert!(member_list(25, &many, 20).ends_with("u19, and 5 more"));
        // The server lists at most a thousand names of a big room.
        assert!(member_list(5000, &many, 20).starts_with("5000 here: u0"));
        assert!(member_list(5000, &many, 20).ends_with("u19, and 4980 more"));
        let rooms = ClientEvent::Rooms(vec![("lobby".into(), 3), ("lab".into(), 1)]);
        assert_eq!(v.render(&rooms), err("* rooms: lobby (3), lab (1)"));
        assert_eq!(
            v.render(&ClientEvent::CurrentRoom(Some("lab".into()))),
            None
        );
    }

    #[test]
    fn connection_changes_are_told() {
        let mut v = view_as("me");
        let r = ClientEvent::Reconnecting {
            attempt: 1,
            of: 20,
            delay: Duration::from_millis(500),
        };
        assert_eq!(
            v.render(&r),
            err("* reconnecting in 0.5s (attempt 1 of 20)")
        );
        let d = ClientEvent::Disconnected {
            reason: "server closed the connection".into(),
        };
        assert_eq!(v.render(&d), err("* server closed the connection"));
        // Without reconnects the final error line says it.
        assert_eq!(LineView::new(false).render(&d), None);
    }
}
