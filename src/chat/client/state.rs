//! The chat client's protocol state, with no sockets and no clock: who we
//! are, which rooms we are in, where plain text goes, and what to restore
//! after a reconnect. Server messages and typed commands go in; frames to
//! send and events for the user interface come out.
//!
//! The session (`client_session`) drives it; the line mode and a terminal
//! UI only see [`ClientEvent`]s. Everything here is unit tested directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::chat::command::Command;
use crate::chat::names::{self, key};
use crate::wire::chat::{ChatLine, ClientMsg, ErrorCode, EventLine, ServerMsg};

/// The room every client is put in on connect.
pub const LOBBY: &str = "lobby";

/// Unanswered joins remembered for a reconnect (refused ones linger here
/// until then, so the list is capped).
const MAX_PENDING: usize = 64;

/// What the user interface learns from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A session started (first connect or reconnect) under `name`.
    Connected {
        addr: SocketAddr,
        name: String,
        software: String,
        reconnected: bool,
        /// Longest text the server takes, in bytes.
        max_text: u32,
        /// The server's identity (`SHA256:…`) when the session runs over
        /// the secure channel.
        fingerprint: Option<String>,
    },
    /// The connection ended; `reason` says how. A reconnect may follow.
    Disconnected { reason: String },
    /// Waiting `delay` before reconnect attempt `attempt` of `of`.
    Reconnecting {
        attempt: u32,
        of: u32,
        delay: Duration,
    },
    /// A chat message (history replays included, `line.history` set).
    Chat(ChatLine),
    /// Someone joined, left, quit or changed name.
    Event(EventLine),
    /// We are now in `room`, with `total` members (`members` names at most
    /// the first thousand).
    Joined {
        room: String,
        total: u32,
        members: Vec<String>,
    },
    /// We left `room`.
    Parted { room: String },
    /// Plain text now goes to this room (`None`: no room).
    CurrentRoom(Option<String>),
    /// Answer to `/who`.
    Who {
        room: String,
        total: u32,
        members: Vec<String>,
    },
    /// Answer to `/rooms`: each room and its member count.
    Rooms(Vec<(String, u32)>),
    /// Our name is now this.
    NameChanged(String),
    /// A server error (`code` set) or a command refused locally (`None`).
    Error {
        code: Option<ErrorCode>,
        text: String,
    },
    /// Server text for us.
    Notice(String),
}

/// What one input produced: frames to send, then events to show.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub send: Vec<ClientMsg>,
    pub events: Vec<ClientEvent>,
}

impl Output {
    fn event(e: ClientEvent) -> Self {
        Self {
            send: Vec::new(),
            events: vec![e],
        }
    }

    fn local_error(text: impl Into<String>) -> Self {
        Self::event(ClientEvent::Error {
            code: None,
            text: text.into(),
        })
    }
}

/// What to set up once welcomed (the `--room`, or what a reconnect restores).
#[derive(Debug, Default, Clone)]
struct Restore {
    /// Rooms to join (other than the lobby, where the server puts us).
    rooms: Vec<String>,
    /// Room to make current.
    current: Option<String>,
}

/// The client's view of its session. See the module docs.
#[derive(Debug)]
pub struct ClientState {
    /// Name to ask for: `--name`, then whatever the server last gave us.
    wanted_name: Option<String>,
    /// Our name in this session; `None` before the welcome.
    name: Option<String>,
    /// Rooms we are in, in the order we joined them.
    rooms: Vec<String>,
    /// Where plain text and `/me` go.
    current: Option<String>,
    /// A room we asked to join; it becomes current when `Joined` arrives.
    joining: Option<String>,
    /// The current room, being left: text typed after `/part` waits for
    /// the new current room.
    parting: Option<String>,
    /// Rooms whose `Join` is sent but not yet answered.
    pending: Vec<String>,
    /// We left the lobby: leave it again after a reconnect.
    left_lobby: bool,
    /// Rooms and current room to set up once welcomed.
    restore: Restore,
    /// Longest text the server takes, in bytes (from the welcome).
    max_text: usize,
    /// Newest `(ts_ms, id)` seen per room key: history replayed after a
    /// reconnect is not shown twice. One entry per joined room.
    seen: HashMap<String, (u64, u64)>,
    /// The server's `Bye` reason, if it said one on this connection.
    bye: Option<String>,
    /// A fatal server error on this connection (reconnecting cannot help).
    fatal: Option<ErrorCode>,
    /// We sent `Quit`.
    quitting: bool,
}

impl ClientState {
    /// A client that will ask for `name` and, once in, join `room`.
    pub fn new(name: Option<String>, room: Option<String>) -> Self {
        let room = room.map(|r| r.strip_prefix('#').map(str::to_owned).unwrap_or(r));
        Self {
            wanted_name: name.filter(|n| !n.is_empty()),
            name: None,
            rooms: Vec::new(),
            current: None,
            joining: None,
            parting: None,
            pending: Vec::new(),
            left_lobby: false,
            restore: Restore {
                current: room.clone(),
                rooms: room.into_iter().collect(),
            },
            max_text: crate::wire::chat::DEFAULT_MAX_TEXT,
            seen: HashMap::new(),
            bye: None,
            fatal: None,
            quitting: false,
        }
    }

    /// The name we will ask for in the hello (`None`: let the server pick).
    pub fn wanted_name(&self) -> Option<&str> {
        self.wanted_name.as_deref()
    }

    /// Our name, once welcomed.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Rooms we are in.
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    /// Where plain text goes.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The hello frame, asking for `name` (empty: the server picks).
    pub fn hello(name: Option<&str>) -> ClientMsg {
        ClientMsg::Hello {
            name: name.unwrap_or_default().to_owned(),
            software: crate::SOFTWARE.to_owned(),
        }
    }

    /// Whether new commands must wait: a `/join` or a `/part` of the
    /// current room is in flight, and text typed after it belongs in the
    /// room that will then be current.
    pub fn is_waiting(&self) -> bool {
        self.joining.is_some() || self.parting.is_some()
    }

    /// Whether we sent `Quit`.
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// The server's `Bye` reason on this connection.
    pub fn bye_reason(&self) -> Option<&str> {
        self.bye.as_deref()
    }

    /// A fatal error the server reported on this connection.
    pub fn fatal_error(&self) -> Option<ErrorCode> {
        self.fatal
    }

    /// The server welcomed us as `name`: restore rooms (first connect: the
    /// `--room`), take our name back if the server gave another.
    pub fn on_welcome(
        &mut self,
        addr: SocketAddr,
        name: String,
        software: String,
        max_text: u32,
        reconnected: bool,
    ) -> Output {
        let mut out = Output::default();
        self.max_text = max_text as usize;
        self.name = Some(name.clone());
        self.bye = None;
        self.fatal = None;
        match &self.wanted_name {
            Some(w) if key(w) != key(&name) => {
                out.send.push(ClientMsg::Nick { name: w.clone() });
            }
            Some(_) => {}
            None => self.wanted_name = Some(name.clone()),
        }
        let restore = std::mem::take(&mut self.restore);
        for room in restore.rooms.into_iter().filter(|r| key(r) != key(LOBBY)) {
            out.send.push(ClientMsg::Join { room: room.clone() });
            self.pending.push(room);
        }
        if self.left_lobby {
            out.send.push(ClientMsg::Part {
                room: LOBBY.to_owned(),
            });
        }
        // Text typed before the server's `Joined` for the room it will go to
        // waits for it (the lobby too: `Welcome` and `Joined` may arrive in
        // separate reads).
        self.joining = restore
            .current
            .filter(|c| key(c) != key(LOBBY))
            .or_else(|| (!self.left_lobby).then(|| LOBBY.to_owned()));
        out.events.push(ClientEvent::Connected {
            addr,
            name,
            software,
            reconnected,
            max_text,
            fingerprint: None,
        });
        out
    }

    /// The connection is gone: remember what to restore on the next one.
    pub fn on_lost(&mut self) {
        let mut rooms = std::mem::take(&mut self.rooms);
        for room in self.pending.drain(..) {
            if !rooms.iter().any(|r| key(r) == key(&room)) {
                rooms.push(room);
            }
        }
        let current = self.joining.take().or(self.current.take());
        self.parting = None;
        self.restore = Restore { rooms, current };
        self.name = None;
        self.quitting = false;
    }

    /// A `/join` or `/part` got no answer in time: stop holding commands
    /// back.
    pub fn wait_timed_out(&mut self) {
        self.joining = None;
        self.parting = None;
    }

    /// Handles one frame from the server.
    pub fn on_server(&mut self, msg: ServerMsg) -> Output {
        if matches!(msg, ServerMsg::ChatRun(_)) {
            let mut all = Output::default();
            for line in msg.expand() {
                let out = self.on_server(line);
                all.send.extend(out.send);
                all.events.extend(out.events);
            }
            return all;
        }
        match msg {
            ServerMsg::Chat(line) => self.on_chat(line),
            ServerMsg::Event(e) => Output::event(ClientEvent::Event(e)),
            ServerMsg::Joined {
                room,
                total,
                members,
            } => self.on_joined(room, total, members),
            ServerMsg::Parted { room } => self.on_parted(room),
            ServerMsg::Who {
                room,
                total,
                members,
            } => Output::event(ClientEvent::Who {
                room,
                total,
                members,
            }),
            ServerMsg::Rooms { rooms } => Output::event(ClientEvent::Rooms(rooms)),
            ServerMsg::YourName { name } => {
                self.name = Some(name.clone());
                self.wanted_name = Some(name.clone());
                Output::event(ClientEvent::NameChanged(name))
            }
            ServerMsg::Error { code, text } => self.on_error(code, text),
            ServerMsg::Notice { text } => Output::event(ClientEvent::Notice(text)),
            ServerMsg::Ping { token } => Output {
                send: vec![ClientMsg::Pong { token }],
                events: Vec::new(),
            },
            ServerMsg::Bye { reason } => {
                self.bye = Some(reason);
                Output::default()
            }
            // A second welcome or an unasked pong changes nothing.
            ServerMsg::Welcome { .. } | ServerMsg::Pong { .. } | ServerMsg::ChatRun(_) => {
                Output::default()
            }
        }
    }

    fn on_chat(&mut self, line: ChatLine) -> Output {
        if line.room.is_empty() {
            return Output::event(ClientEvent::Chat(line));
        }
        let stamp = (line.ts_ms, line.id);
        let newest = self.seen.entry(key(&line.room)).or_insert((0, 0));
        if line.history && stamp <= *newest {
            return Output::default(); // already shown before a reconnect
        }
        *newest = stamp.max(*newest);
        Output::event(ClientEvent::Chat(line))
    }

    fn on_joined(&mut self, room: String, total: u32, members: Vec<String>) -> Output {
        if !self.rooms.iter().any(|r| key(r) == key(&room)) {
            self.rooms.push(room.clone());
        }
        self.pending.retain(|r| key(r) != key(&room));
        if key(&room) == key(LOBBY) {
            self.left_lobby = false;
        }
        let mut out = Output::event(ClientEvent::Joined {
            room: room.clone(),
            total,
            members,
        });
        let asked = self.joining.as_ref().is_some_and(|j| key(j) == key(&room));
        if asked || self.current.is_none() {
            if asked {
                self.joining = None;
            }
            self.current = Some(room.clone());
            out.events.push(ClientEvent::CurrentRoom(Some(room)));
        }
        out
    }

    fn on_parted(&mut self, room: String) -> Output {
        self.rooms.retain(|r| key(r) != key(&room));
        self.seen.remove(&key(&room));
        if self.parting.as_ref().is_some_and(|p| key(p) == key(&room)) {
            self.parting = None;
        }
        if key(&room) == key(LOBBY) {
            self.left_lobby = true;
        }
        let mut out = Output::event(ClientEvent::Parted { room: room.clone() });
        if self.current.as_ref().is_some_and(|c| key(c) == key(&room)) {
            self.current = self.rooms.last().cloned();
            out.events
                .push(ClientEvent::CurrentRoom(self.current.clone()));
        }
        out
    }

    fn on_error(&mut self, code: u16, text: String) -> Output {
        let code = ErrorCode::from_u16(code);
        if matches!(
            code,
            Some(ErrorCode::BadRoom | ErrorCode::TooManyRooms | ErrorCode::BadName)
        ) {
            // The join in flight (if any) was refused.
            if let Some(j) = self.joining.take() {
                self.pending.retain(|r| key(r) != key(&j));
            }
        }
        if code == Some(ErrorCode::NotInRoom) {
            self.parting = None;
        }
        if matches!(code, Some(ErrorCode::Protocol | ErrorCode::Version)) {
            self.fatal = code;
        }
        Output::event(ClientEvent::Error { code, text })
    }

    /// Handles one typed command. `Help` is the interface's business and
    /// produces nothing here.
    pub fn on_command(&mut self, cmd: Command) -> Output {
        match cmd {
            Command::Say(text) => {
                self.in_current_room(text, |room, text| ClientMsg::Say { room, text })
            }
            Command::Action(text) => {
                self.in_current_room(text, |room, text| ClientMsg::Action { room, text })
            }
            Command::Private { to, text } => {
                if let Err(e) = names::check_name(&to) {
                    return Output::local_error(format!("cannot message '{to}': {e}"));
                }
                self.checked_text(text, |text| ClientMsg::Private { to, text })
            }
            Command::Join(room) => self.join(&room),
            Command::Part(room) => self.part(room),
            Command::Nick(name) => match names::check_name(&name) {
                Ok(()) => self.send(ClientMsg::Nick { name }),
                Err(e) => Output::local_error(format!("cannot use the name '{name}': {e}")),
            },
            Command::Who(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => self.send(ClientMsg::Who {
                    room: strip_hash(room),
                }),
                None => Output::local_error("you are in no room; /who ROOM"),
            },
            Command::Rooms => self.send(ClientMsg::ListRooms),
            Command::Quit(reason) => self.send(ClientMsg::Quit {
                reason: reason.unwrap_or_default(),
            }),
            Command::Help => Output::default(),
        }
    }

    /// Passes a frame the interface built itself, noting a `Quit`.
    pub fn send(&mut self, msg: ClientMsg) -> Output {
        if matches!(msg, ClientMsg::Quit { .. }) {
            self.quitting = true;
        }
        Output {
            send: vec![msg],
            events: Vec::new(),
        }
    }

    fn part(&mut self, room: Option<String>) -> Output {
        let Some(room) = room.or_else(|| self.current.clone()) else {
            return Output::local_error("you are in no room");
        };
        let room = strip_hash(room);
        if self.current.as_ref().is_some_and(|c| key(c) == key(&room)) {
            self.parting = Some(room.clone());
        }
        self.send(ClientMsg::Part { room })
    }

    fn join(&mut self, room: &str) -> Output {
        let room = match names::room_name(room) {
            Ok(r) => r,
            Err(e) => return Output::local_error(format!("cannot join '{room}': {e}")),
        };
        if let Some(r) = self.rooms.iter().find(|r| key(r) == key(&room)) {
            // Already in it: just talk there from now on.
            self.current = Some(r.clone());
            return Output::event(ClientEvent::CurrentRoom(self.current.clone()));
        }
        self.joining = Some(room.clone());
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(room.clone());
        self.send(ClientMsg::Join { room })
    }

    fn in_current_room(
        &mut self,
        text: String,
        make: impl FnOnce(String, String) -> ClientMsg,
    ) -> Output {
        match self.current.clone() {
            Some(room) => self.checked_text(text, |text| make(room, text)),
            None => Output::local_error("you are in no room; /join one first"),
        }
    }

    fn checked_text(&mut self, text: String, make: impl FnOnce(String) -> ClientMsg) -> Output {
        if text.len() > self.max_text {
            return Output::local_error(format!(
                "message not sent: {} bytes, the server takes at most {}",
                text.len(),
                self.max_text
            ));
        }
        self.send(make(text))
    }
}

fn strip_hash(room: String) -> String {
    match room.strip_prefix('#') {
        Some(r) => r.to_owned(),
        None => room,
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
