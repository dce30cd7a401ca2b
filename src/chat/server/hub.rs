//! The chat hub: who is connected, under which name, in which rooms, the last
//! messages of each room, and the fan-out of every message to its recipients.
//!
//! The hub does no I/O and reads no clock: connection tasks call it (under a
//! mutex, never across an `await`) with the time, and it pushes encoded
//! frames into each recipient's [`Outbox`]. A message is encoded once per
//! flavour (native frame, raw text line) and the same `Bytes` is queued to
//! every recipient. A recipient whose queue is full is disconnected on the
//! spot with a reason, so one client that stops reading costs the others
//! nothing.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;

use self::queries::raw_names;
use super::batch::RoomBatch;
use super::outbox::{Farewell, Outbox, Refused};
use super::render::{Flavor, Rendered, raw_line};
use crate::chat::names::{self, NameError};
use crate::wire::chat::{ChatKind, ChatLine, ErrorCode, EventKind, EventLine, ServerMsg};

/// The room everyone starts in; it always exists.
pub const LOBBY: &str = "lobby";

/// Settings of a hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Messages kept per room and replayed on join.
    pub history: usize,
    /// Longest chat text in bytes.
    pub max_text: usize,
    /// Most rooms one client may be in.
    pub max_rooms_per_client: usize,
    /// Most rooms on the server.
    pub max_rooms: usize,
    /// Raw clients get the chapter's verbatim relay instead of named lines.
    pub verbatim: bool,
    /// Log chat text too.
    pub log_messages: bool,
    /// Rooms with more members than this get no join, leave, quit or nick
    /// notices (0: always announce). Announcing every arrival to everyone
    /// costs the square of the room size: 10,000 arrivals, 50 million
    /// notices.
    pub announce_limit: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history: 50,
            max_text: crate::wire::chat::DEFAULT_MAX_TEXT,
            max_rooms_per_client: 16,
            max_rooms: 4096,
            verbatim: false,
            log_messages: false,
            announce_limit: 500,
        }
    }
}

/// A connection's id inside the hub.
pub type ClientId = u64;

/// Why a client could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("name '{0}' is taken")]
    NameTaken(String),
    #[error("bad name: {0}")]
    BadName(NameError),
}

impl RegisterError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RegisterError::NameTaken(_) => ErrorCode::NameTaken,
            RegisterError::BadName(_) => ErrorCode::BadName,
        }
    }
}

struct Client {
    name: String,
    addr: SocketAddr,
    flavor: Flavor,
    outbox: Outbox,
    /// Room keys this client is in, in join order.
    rooms: Vec<String>,
}

struct Member {
    id: ClientId,
    flavor: Flavor,
    outbox: Outbox,
}

struct Room {
    name: String,
    members: Vec<Member>,
    history: VecDeque<ChatLine>,
}

/// The hub's state. See the module docs.
pub struct Hub {
    cfg: HubConfig,
    clients: HashMap<ClientId, Client>,
    /// Name key -> client.
    names: HashMap<String, ClientId>,
    /// Room key -> room.
    rooms: HashMap<String, Room>,
    next_client: ClientId,
    next_guest: u64,
    next_msg: u64,
    /// Latest time a caller passed in, for notices raised without one.
    clock_ms: u64,
    /// Writers with newly queued frames, woken once the caller's batch is
    /// done (see [`Hub::take_wakes`]).
    wakes: Vec<Outbox>,
    /// Messages to one room not yet handed to its members (see
    /// `batch.rs`); sent before anything else is queued, so every client
    /// sees everything in order.
    batch: Option<RoomBatch>,
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Self {
        let mut rooms = HashMap::new();
        rooms.insert(LOBBY.to_owned(), Room::new(LOBBY));
        Self {
            cfg,
            clients: HashMap::new(),
            names: HashMap::new(),
            rooms,
            next_client: 1,
            next_guest: 1,
            next_msg: 1,
            clock_ms: 0,
            wakes: Vec::new(),
            batch: None,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// Connected clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Registers a client, greets it and puts it in the lobby. `name` empty or
    /// `None` gets `guest-N`.
    pub fn connect(
        &mut self,
        name: Option<&str>,
        flavor: Flavor,
        addr: SocketAddr,
        outbox: Outbox,
        now_ms: u64,
    ) -> Result<(ClientId, String), RegisterError> {
        self.flush_batch();
        self.clock_ms = self.clock_ms.max(now_ms);
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                names::check_name(n).map_err(RegisterError::BadName)?;
                if self.names.contains_key(&names::key(n)) {
                    return Err(RegisterError::NameTaken(n.to_owned()));
                }
                n.to_owned()
            }
            None => self.guest_name(),
        };
        let id = self.next_client;
        self.next_client += 1;
        self.names.insert(names::key(&name), id);
        self.clients.insert(
            id,
            Client {
                name: name.clone(),
                addr,
                flavor,
                outbox,
                rooms: Vec::new(),
            },
        );
        tracing::info!("{addr} connected as {name} ({})", flavor.label());
        let welcome = match flavor {
            Flavor::Native => Some(encode(&ServerMsg::Welcome {
                name: name.clone(),
                software: crate::SOFTWARE.to_owned(),
                max_text: self.cfg.max_text as u32,
                history: self.cfg.history.min(u16::MAX as usize) as u16,
            })),
            Flavor::Raw if self.cfg.verbatim => None,
            Flavor::Raw => Some(raw_line(&format!(
                "* welcome, {name}! you are in {LOBBY}; /help lists commands"
            ))),
        };
        if let Some(w) = welcome {
            self.send_to(id, w);
        }
        self.join(id, LOBBY, now_ms);
        Ok((id, name))
    }

    fn guest_name(&mut self) -> String {
        loop {
            let n = format!("guest-{}", self.next_guest);
            self.next_guest += 1;
            if !self.names.contains_key(&names::key(&n)) {
                return n;
            }
        }
    }

    /// Removes a client: out of every room, with a quit notice to the others.
    pub fn disconnect(&mut self, id: ClientId, reason: &str, now_ms: u64) {
        self.flush_batch();
        self.clock_ms = self.clock_ms.max(now_ms);
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        self.names.remove(&names::key(&client.name));
        let why = if reason.is_empty() { "quit" } else { reason };
        tracing::info!("{} {} disconnected: {why}", client.addr, client.name);
        for room_key in &client.rooms {
            let Some(room) = self.rooms.get_mut(room_key) else {
                continue;
            };
            room.members.retain(|m| m.id != id);
            let room_name = room.name.clone();
            self.remove_room_if_empty(room_key);
            let ev = self.event(EventKind::Quit, &room_name, &client.name, reason, now_ms);
            self.fan_out_event(room_key, ev);
        }
    }

    /// Sends `text` from `id` to `room` (a `Say` or an `Action`).
    pub fn say(&mut self, id: ClientId, room: &str, kind: ChatKind, text: &str, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        if !self.clients.contains_key(&id) || !self.text_ok(id, text) {
            return;
        }
        let key = names::key_cow(room.strip_prefix('#').unwrap_or(room));
        let client = &self.clients[&id];
        if !client.rooms.iter().any(|r| *r == *key) {
            self.error(id, ErrorCode::NotInRoom, &format!("you are not in {room}"));
            return;
        }
        if self.cfg.log_messages {
            tracing::info!("[{}] {}: {text}", self.rooms[&*key].name, client.name);
        }
        // A burst from one sender, with no history to keep: the text joins
        // the batch's run as it is, no line built (this is most messages
        // under load, and the line was six allocations).
        if self.cfg.history == 0
            && let Some(batch) = &mut self.batch
            && batch.key == *key
            && !batch.want_raw
            && !batch.is_full()
            && batch.extend_run(self.next_msg, now_ms, kind, &client.name, text)
        {
            self.next_msg += 1;
            return;
        }
        let line = ChatLine {
            id: self.next_id(),
            ts_ms: now_ms,
            kind,
            history: false,
            room: self.rooms[&*key].name.clone(),
            from: self.clients[&id].name.clone(),
            to: String::new(),
            text: text.to_owned(),
        };
        self.add_to_batch(&key, &line);
        self.remember(&key, line);
    }

    /// Adds a room message to the batch (sending the batch first if it is
    /// for another room or full).
    fn add_to_batch(&mut self, key: &str, line: &ChatLine) {
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.key != key || b.is_full())
        {
            self.flush_batch();
        }
        let want_raw = || {
            self.rooms
                .get(key)
                .is_some_and(|r| r.members.iter().any(|m| m.flavor == Flavor::Raw))
        };
        let batch = match &mut self.batch {
            Some(b) => b,
            None => self
                .batch
                .insert(RoomBatch::new(key.to_owned(), want_raw())),
        };
        batch.add(line);
        if batch.want_raw
            && let Some(raw) = Rendered::chat(line, self.cfg.verbatim).for_flavor(Flavor::Raw)
        {
            batch.add_raw(&raw);
        }
    }

    /// Hands the pending batch to its room's members.
    fn flush_batch(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let key = batch.key.clone();
        let (native, raw) = batch.finish();
        let mut rendered = Rendered::prepared(native, raw);
        self.fan_out(&key, &mut rendered);
    }

    /// Relays one raw read unchanged, as the chapter's server does
    /// (verbatim mode): the same bytes to every raw client in the lobby, and
    /// as a chat line to native ones.
    pub fn relay_verbatim(&mut self, id: ClientId, bytes: Bytes, now_ms: u64) {
        self.flush_batch();
        self.clock_ms = self.clock_ms.max(now_ms);
        let Some(from) = self.clients.get(&id).map(|c| c.name.clone()) else {
            return;
        };
        let line = ChatLine {
            id: self.next_id(),
            ts_ms: now_ms,
            kind: ChatKind::Say,
            history: false,
            room: LOBBY.to_owned(),
            from,
            to: String::new(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        };
        let mut rendered = Rendered::with_raw(&ServerMsg::Chat(line.clone()), bytes);
        self.fan_out(LOBBY, &mut rendered);
        self.remember(LOBBY, line);
    }

    /// A private message; the sender gets a copy.
    pub fn private(&mut self, id: ClientId, to: &str, text: &str, now_ms: u64) {
        self.flush_batch();
        self.clock_ms = self.clock_ms.max(now_ms);
        let Some(from) = self.clients.get(&id).map(|c| c.name.clone()) else {
            return;
        };
        if !self.text_ok(id, text) {
            return;
        }
        let Some(&target) = self.names.get(&names::key(to)) else {
            self.error(id, ErrorCode::NoSuchUser, &format!("no one is called {to}"));
            return;
        };
        let line = ChatLine {
            id: self.next_id(),
            ts_ms: now_ms,
            kind: ChatKind::Private,
            history: false,
            room: String::new(),
            from,
            to: self.clients[&target].name.clone(),
            text: text.to_owned(),
        };
        let mut rendered = Rendered::chat(&line, false);
        for cid in if target == id {
            vec![id]
        } else {
            vec![target, id]
        } {
            let flavor = self.clients[&cid].flavor;
            if let Some(bytes) = rendered.for_flavor(flavor) {
                self.send_to(cid, bytes);
            }
        }
    }

    /// Joins a room (created on first join), replays its history, and tells
    /// its members.
    pub fn join(&mut self, id: ClientId, room: &str, now_ms: u64) {
        self.flush_batch();
        self.clock_ms = self.clock_ms.max(now_ms);
        let room = match names::room_name(room) {
            Ok(r) => r,
            Err(e) => return self.error(id, ErrorCode::BadRoom, &format!("bad room name: {e}")),
        };
        let key = names::key(&room);
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if client.rooms.contains(&key) {
            return self.notice(id, &format!("you are already in {room}"));
        }
        if client.flavor == Flavor::Raw && self.cfg.verbatim && key != LOBBY {
            return self.notice(id, "rooms are off in verbatim mode");
        }
        if client.rooms.len() >= self.cfg.max_rooms_per_client {
            return self.error(id, ErrorCode::TooManyRooms, "you are in too many rooms");
        }
        if !self.rooms.contains_key(&key) && self.rooms.len() >= self.cfg.max_rooms {
            return self.error(id, ErrorCode::TooManyRooms, "the server has too many rooms");
        }
        // Raw clients see one room at a time: joining moves them.
        if client.flavor == Flavor::Raw {
            let old: Vec<String> = client.rooms.clone();
            for r in old {
                self.part(id, &r, now_ms);
            }
        }
        let client = self.clients.get_mut(&id).expect("checked above");
        client.rooms.push(key.clone());
        let (flavor, outbox) = (client.flavor, client.outbox.clone());
        let room_ref = self
            .rooms
            .entry(key.clone())
            .or_insert_with(|| Room::new(&room));
        room_ref.members.push(Member { id, flavor, outbox });
        let room_name = room_ref.name.clone();
        let history: Vec<ChatLine> = room_ref.history.iter().cloned().collect();
        let members = self.listing(&key);
        self.send_joined(id, flavor, &room_name, members, history);
        let name = self.clients[&id].name.clone();
        let ev = self.event(EventKind::Join, &room_name, &name, "", now_ms);
        self.fan_out_event(&key, ev);
    }

    fn send_joined(
        &mut self,
        id: ClientId,
        flavor: Flavor,
        room: &str,
        (total, members): (u32, Vec<String>),
        history: Vec<ChatLine>,
    ) {
        if flavor == Flavor::Raw && self.cfg.verbatim {
            return;
        }
        let head = match flavor {
            Flavor::Native => encode(&ServerMsg::Joined {
                room: room.to_owned(),
                total,
                members,
            }),
            Flavor::Raw => raw_line(&format!("* now in {room}: {}", raw_names(total, &members))),
        };
        self.send_to(id, head);
        for mut line in history {
            line.history = true;
            if let Some(b) = Rendered::chat(&line, false).for_flavor(flavor) {
                self.send_to(id, b);
            }
        }
    }

    /// Leaves a room; the lobby can be left too (a client may be in none).
    pub fn part(&mut self, id: ClientId, room: &str, now_ms: u64) {
        self.flush_batch();
        self.clock_ms = self.clock_ms.max(now_ms);
        let key = names::key(room.strip_prefix('#').unwrap_or(room));
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(pos) = client.rooms.iter().position(|r| *r == key) else {
            let msg = format!("you are not in {room}");
            return self.error(id, ErrorCode::NotInRoom, &msg);
        };
        client.rooms.remove(pos);
        let (name, flavor) = (client.name.clone(), client.flavor);
        let Some(room_ref) = self.rooms.get_mut(&key) else {
            return;
        };
        room_ref.members.retain(|m| m.id != id);
        let room_name = room_ref.name.clone();
        let reply = match flavor {
            Flavor::Native => Some(encode(&ServerMsg::Parted {
                room: room_name.clone(),
            })),
            Flavor::Raw if self.cfg.verbatim => None,
            Flavor::Raw => Some(raw_line(&format!("* you left {room_name}"))),
        };
        if let Some(r) = reply {
            self.send_to(id, r);
        }
        let ev = self.event(EventKind::Part, &room_name, &name, "", now_ms);
        self.fan_out_event(&key, ev);
        self.remove_room_if_empty(&key);
    }

    /// Renames a client, telling every room it is in.
    pub fn nick(&mut self, id: ClientId, new: &str, now_ms: u64) {
        self.flush_batch();
        self.clock_ms = self.clock_ms.max(now_ms);
        let Some(old) = self.clients.get(&id).map(|c| c.name.clone()) else {
            return;
        };
        if let Err(e) = names::check_name(new) {
            return self.error(id, ErrorCode::BadName, &format!("bad name: {e}"));
        }
        let new_key = names::key(new);
        match self.names.get(&new_key) {
            Some(&other) if other != id => {
                return self.error(id, ErrorCode::NameTaken, &format!("name '{new}' is taken"));
            }
            _ => {}
        }
        self.names.remove(&names::key(&old));
        self.names.insert(new_key, id);
        let client = self.clients.get_mut(&id).expect("checked above");
        client.name = new.to_owned();
        let (flavor, rooms, addr) = (client.flavor, client.rooms.clone(), client.addr);
        tracing::info!("{addr} {old} is now {new}");
        let reply = match flavor {
            Flavor::Native => encode(&ServerMsg::YourName {
                name: new.to_owned(),
            }),
            Flavor::Raw => raw_line(&format!("* you are now {new}")),
        };
        self.send_to(id, reply);
        for key in rooms {
            let room_name = self.rooms[&key].name.clone();
            let ev = self.event(EventKind::Nick, &room_name, &old, new, now_ms);
            self.fan_out_event(&key, ev);
        }
    }

    /// Tells `id` something (a server notice).
    pub fn notice(&mut self, id: ClientId, text: &str) {
        self.flush_batch();
        let msg = match self.flavor(id) {
            Some(Flavor::Native) => encode(&ServerMsg::Notice {
                text: text.to_owned(),
            }),
            Some(Flavor::Raw) if self.cfg.verbatim => return,
            Some(Flavor::Raw) => raw_line(&format!("* {text}")),
            None => return,
        };
        self.send_to(id, msg);
    }

    /// Reports a non-fatal error to `id`.
    pub fn error(&mut self, id: ClientId, code: ErrorCode, text: &str) {
        self.flush_batch();
        let msg = match self.flavor(id) {
            Some(Flavor::Native) => encode(&ServerMsg::Error {
                code: code as u16,
                text: text.to_owned(),
            }),
            Some(Flavor::Raw) if self.cfg.verbatim => return,
            Some(Flavor::Raw) => raw_line(&format!("* error: {text}")),
            None => return,
        };
        self.send_to(id, msg);
    }

    fn flavor(&self, id: ClientId) -> Option<Flavor> {
        self.clients.get(&id).map(|c| c.flavor)
    }

    fn text_ok(&mut self, id: ClientId, text: &str) -> bool {
        if text.len() > self.cfg.max_text {
            let msg = format!(
                "message of {} bytes is longer than the limit of {} bytes",
                text.len(),
                self.cfg.max_text
            );
            self.error(id, ErrorCode::TooLong, &msg);
            return false;
        }
        !text.is_empty()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_msg;
        self.next_msg += 1;
        id
    }

    fn event(
        &mut self,
        kind: EventKind,
        room: &str,
        name: &str,
        detail: &str,
        now: u64,
    ) -> EventLine {
        EventLine {
            id: self.next_id(),
            ts_ms: now,
            kind,
            room: room.to_owned(),
            name: name.to_owned(),
            detail: detail.to_owned(),
        }
    }

    fn remember(&mut self, key: &str, line: ChatLine) {
        if self.cfg.history == 0 {
            return;
        }
        if let Some(room) = self.rooms.get_mut(key) {
            if room.history.len() == self.cfg.history {
                room.history.pop_front();
            }
            room.history.push_back(line);
        }
    }

    fn remove_room_if_empty(&mut self, key: &str) {
        if key != LOBBY && self.rooms.get(key).is_some_and(|r| r.members.is_empty()) {
            self.rooms.remove(key);
        }
    }

    fn fan_out_event(&mut self, key: &str, ev: EventLine) {
        let size = self.rooms.get(key).map_or(0, |r| r.members.len());
        if self.cfg.announce_limit != 0 && size > self.cfg.announce_limit {
            return;
        }
        let mut rendered = Rendered::event(&ev, self.cfg.verbatim);
        self.fan_out(key, &mut rendered);
    }

    /// Queues a rendered message to every member of a room; members whose
    /// queue is full are disconnected afterwards.
    fn fan_out(&mut self, key: &str, rendered: &mut Rendered) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let mut slow = Vec::new();
        for m in &room.members {
            let Some(bytes) = rendered.for_flavor(m.flavor) else {
                continue;
            };
            match m.outbox.push_quiet(bytes) {
                Ok(true) => self.wakes.push(m.outbox.clone()),
                Ok(false) | Err(Refused::Closed) => {}
                Err(Refused::Full) => slow.push(m.id),
            }
        }
        for id in slow {
            self.kick_slow(id);
        }
    }

    fn send_to(&mut self, id: ClientId, bytes: Bytes) {
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        match c.outbox.push_quiet(bytes) {
            Ok(true) => self.wakes.push(c.outbox.clone()),
            Ok(false) | Err(Refused::Closed) => {}
            Err(Refused::Full) => self.kick_slow(id),
        }
    }

    /// The writers to wake now that a batch of calls is done. The caller
    /// wakes them after releasing the hub, once each.
    #[cfg(test)]
    pub fn take_wakes(&mut self) -> Vec<Outbox> {
        let mut wakes = Vec::new();
        self.swap_wakes(&mut wakes);
        wakes
    }

    /// [`take_wakes`](Self::take_wakes) into `spare` (which must be
    /// empty), leaving `spare`'s allocation to the hub for next time.
    pub fn swap_wakes(&mut self, spare: &mut Vec<Outbox>) {
        debug_assert!(spare.is_empty());
        self.flush_batch();
        std::mem::swap(&mut self.wakes, spare);
    }

    /// Drops a client that does not read: close it with a reason it can see
    /// if it ever reads again, and tell the rooms.
    fn kick_slow(&mut self, id: ClientId) {
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        let reason = "too slow: stopped reading its messages";
        let bytes = match c.flavor {
            Flavor::Native => encode(&ServerMsg::Error {
                code: ErrorCode::SlowConsumer as u16,
                text: reason.to_owned(),
            }),
            Flavor::Raw => raw_line(&format!("* disconnected: {reason}")),
        };
        tracing::warn!("{} {} kicked: {reason}", c.addr, c.name);
        c.outbox.close(Some(Farewell {
            bytes,
            drain: false,
        }));
        self.disconnect(id, "too slow", self.clock_ms);
    }
}

impl Room {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            members: Vec::new(),
            history: VecDeque::new(),
        }
    }
}

/// Encodes a server message; our own messages always fit a frame.
pub fn encode(msg: &ServerMsg) -> Bytes {
    msg.to_bytes()
        .expect("server messages are built within the field limits")
}

#[path = "hub_queries.rs"]
mod queries;

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
