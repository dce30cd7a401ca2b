//! How each [`ClientEvent`] changes the terminal chat's model: which
//! window it lands in, what line it adds, what it does to members, the
//! connection state and the bell. Every string from the network is
//! `clean`ed here, on its way in.

use super::{App, Link, mentions};
use crate::chat::client::ClientEvent;
use crate::chat::names::key;
use crate::chat::tui::text::clean;
use crate::chat::tui::window::{Entry, EntryKind, Kind};
use crate::wire::chat::{ChatKind, ChatLine, EventKind, EventLine};

/// Names listed in a `/who` answer; the rest are counted.
const WHO_SHOWN: usize = 50;

/// Turns a server timestamp (ms since the epoch) into `HH:MM`.
pub type Stamp<'a> = &'a dyn Fn(u64) -> String;

impl App {
    /// Applies one event. `now` is the local `HH:MM`.
    pub fn on_client(&mut self, ev: ClientEvent, now: &str, stamp: Stamp<'_>) {
        match ev {
            ClientEvent::Connected {
                addr,
                name,
                reconnected,
                max_text,
                fingerprint,
                ..
            } => {
                self.me = clean(&name);
                self.link = Link::Connected;
                self.fingerprint = fingerprint.map(|f| clean(&f));
                self.max_text = Some(max_text as usize);
                let verb = if reconnected {
                    "reconnected"
                } else {
                    "connected"
                };
                let text = format!("{verb} to {addr} as {}", self.me);
                self.everywhere(now, &text, reconnected);
            }
            ClientEvent::Disconnected { reason } => {
                self.link = Link::Lost(clean(&reason));
                self.everywhere(now, &clean(&reason), true);
            }
            ClientEvent::Reconnecting { attempt, of, delay } => {
                self.link = Link::Reconnecting(attempt, of);
                let text = format!(
                    "reconnecting in {:.1}s (attempt {attempt} of {of})",
                    delay.as_secs_f64()
                );
                self.info(0, now, text);
            }
            ClientEvent::Chat(line) => self.on_chat(line, stamp),
            ClientEvent::Event(e) => self.on_event(e, stamp),
            ClientEvent::Joined {
                room,
                total,
                members,
            } => {
                let i = self.window(&room, Kind::Room);
                let members: Vec<String> = members.iter().map(|m| clean(m)).collect();
                self.windows[i].set_members(total, members);
                let n = self.windows[i].total;
                let text = format!("you joined {} ({n} here)", self.windows[i].label());
                self.info(i, now, text);
            }
            ClientEvent::Parted { room } => self.on_parted(&room, now),
            ClientEvent::CurrentRoom(Some(room)) => {
                if let Some(i) = self.find(&room, &Kind::Room) {
                    self.active = i;
                    self.windows[i].seen();
                }
            }
            ClientEvent::CurrentRoom(None) => {
                self.info(self.active, now, "you are in no room; /join one".into());
            }
            ClientEvent::Who {
                room,
                total,
                members,
            } => self.on_who(&room, total, members, now),
            ClientEvent::Rooms(rooms) => {
                self.learn_rooms(&rooms);
                let list: Vec<String> = rooms
                    .iter()
                    .map(|(r, n)| format!("#{} ({n})", clean(r)))
                    .collect();
                let text = if list.is_empty() {
                    "no rooms".to_owned()
                } else {
                    format!("rooms: {}", list.join(", "))
                };
                self.info(self.active, now, text);
            }
            ClientEvent::NameChanged(name) => {
                self.me = clean(&name);
                let text = format!("you are now {}", self.me);
                self.info(self.active, now, text);
            }
            ClientEvent::Error { text, .. } => self.error(now, clean(&text)),
            ClientEvent::Notice(text) => {
                let text = format!("notice: {}", clean(&text));
                self.info(self.active, now, text);
            }
        }
    }

    /// An info line in the status window and, with `rooms`, in every room.
    fn everywhere(&mut self, now: &str, text: &str, rooms: bool) {
        self.info(0, now, text.to_owned());
        if rooms {
            for i in 1..self.windows.len() {
                if self.windows[i].kind == Kind::Room {
                    self.info(i, now, text.to_owned());
                }
            }
        }
    }

    fn on_chat(&mut self, line: ChatLine, stamp: Stamp<'_>) {
        let from = clean(&line.from);
        let own = key(&from) == key(&self.me);
        let i = if line.kind == ChatKind::Private {
            let peer = if own { clean(&line.to) } else { from.clone() };
            self.window(&peer, Kind::Query)
        } else {
            self.window(&line.room, Kind::Room)
        };
        let text = clean(&line.text);
        let to_us = line.kind == ChatKind::Private && !own;
        let mention = !own && (to_us || mentions(&text, &self.me));
        if mention && !line.history {
            self.bell = true;
        }
        if !own {
            self.spoke(&from);
        }
        let kind = match line.kind {
            ChatKind::Action => EntryKind::Action,
            ChatKind::Say | ChatKind::Private => EntryKind::Say,
        };
        let entry = Entry {
            time: stamp(line.ts_ms),
            kind,
            from,
            text,
            mention,
            history: line.history,
            own,
        };
        self.push(i, entry);
    }

    fn on_event(&mut self, e: EventLine, stamp: Stamp<'_>) {
        let Some(i) = self.find(&e.room, &Kind::Room) else {
            return;
        };
        let (name, detail) = (clean(&e.name), clean(&e.detail));
        let own = key(&name) == key(&self.me);
        let label = self.windows[i].label();
        let w = &mut self.windows[i];
        let text = match e.kind {
            EventKind::Join if own => return,
            EventKind::Join => {
                w.add_member(&name);
                format!("{name} joined {label}")
            }
            EventKind::Part => {
                w.remove_member(&name);
                format!("{name} left {label}")
            }
            EventKind::Quit => {
                w.remove_member(&name);
                if detail.is_empty() {
                    format!("{name} quit")
                } else {
                    format!("{name} quit ({detail})")
                }
            }
            EventKind::Nick => {
                w.rename_member(&name, &detail);
                format!("{name} is now {detail}")
            }
        };
        self.info(i, &stamp(e.ts_ms), text);
    }

    fn on_parted(&mut self, room: &str, now: &str) {
        let Some(i) = self.find(room, &Kind::Room) else {
            return;
        };
        let label = self.windows[i].label();
        self.windows.remove(i);
        if self.active >= i {
            self.active = self.active.saturating_sub(1);
        }
        self.info(0, now, format!("you left {label}"));
    }

    fn on_who(&mut self, room: &str, total: u32, members: Vec<String>, now: &str) {
        let members: Vec<String> = members.iter().map(|m| clean(m)).collect();
        let n = (total as usize).max(members.len());
        let mut shown: Vec<String> = members.iter().take(WHO_SHOWN).cloned().collect();
        if n > shown.len() {
            shown.push(format!("and {} more", n - shown.len()));
        }
        let text = format!("#{}: {n} here: {}", clean(room), shown.join(", "));
        if let Some(i) = self.find(room, &Kind::Room) {
            self.windows[i].set_members(total, members);
        }
        self.info(self.active, now, text);
    }
}
