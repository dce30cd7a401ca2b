//! The native chat protocol's messages and their bytes (version 1).
//!
//! A native client opens with [`PREAMBLE`] (magic + version), then both sides
//! exchange frames from `wire::frame`. Client frames have type bytes
//! `0x01..=0x7F`, server frames `0x80..=0xFF`. `docs/protocol.md` is the
//! byte-by-byte reference; this module is its executable form. No I/O.

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{FieldError, FieldReader, put_str, put_str_list};
use super::frame::{Frame, encode_frame};

/// The four magic bytes that open a native chat connection. The leading NUL
/// keeps any text a raw client could type from looking like it.
pub const MAGIC: [u8; 4] = [0x00, b'S', b'Q', b'C'];
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// What a native client sends first: magic then version.
pub const PREAMBLE: [u8; 5] = [0x00, b'S', b'Q', b'C', VERSION];

/// Longest name or room name, in bytes.
pub const MAX_NAME: usize = 32;
/// Most names listed in a `Joined` or `Who` (34 bytes each at most, so a
/// list stays far inside a client's 64 KiB frame limit).
pub const MAX_LISTED: usize = 1000;
/// Default longest chat text, in bytes.
pub const DEFAULT_MAX_TEXT: usize = 4096;

/// Kinds of [`ServerMsg::Chat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// A message to a room.
    Say = 0,
    /// An action (`/me`) in a room.
    Action = 1,
    /// A private message (`/msg`); `room` is empty and `to` names the target.
    Private = 2,
}

/// Kinds of [`ServerMsg::Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `name` joined `room`.
    Join = 1,
    /// `name` left `room` (`/part`); `detail` is empty.
    Part = 2,
    /// `name` disconnected; `detail` is the reason.
    Quit = 3,
    /// `name` is now called `detail`.
    Nick = 4,
}

/// Error codes carried by [`ServerMsg::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Protocol = 1,
    Version = 2,
    NameTaken = 3,
    BadName = 4,
    ServerFull = 5,
    TooManyFromAddress = 6,
    TooLong = 7,
    RateLimited = 8,
    NoSuchUser = 9,
    NotInRoom = 10,
    BadRoom = 11,
    TooManyRooms = 12,
    Timeout = 13,
    SlowConsumer = 14,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Option<Self> {
        use ErrorCode::*;
        Some(match v {
            1 => Protocol,
            2 => Version,
            3 => NameTaken,
            4 => BadName,
            5 => ServerFull,
            6 => TooManyFromAddress,
            7 => TooLong,
            8 => RateLimited,
            9 => NoSuchUser,
            10 => NotInRoom,
            11 => BadRoom,
            12 => TooManyRooms,
            13 => Timeout,
            14 => SlowConsumer,
            _ => return None,
        })
    }
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// First frame after the preamble. Empty `name` asks for one.
    Hello {
        name: String,
        software: String,
    },
    Say {
        room: String,
        text: String,
    },
    Action {
        room: String,
        text: String,
    },
    Private {
        to: String,
        text: String,
    },
    Join {
        room: String,
    },
    Part {
        room: String,
    },
    Nick {
        name: String,
    },
    Who {
        room: String,
    },
    ListRooms,
    Quit {
        reason: String,
    },
    Ping {
        token: u64,
    },
    Pong {
        token: u64,
    },
}

/// A chat message as the server stamps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// Server-wide increasing id.
    pub id: u64,
    /// Server time, milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub kind: ChatKind,
    /// Set when this line is replayed from history on join.
    pub history: bool,
    /// Room, empty for private messages.
    pub room: String,
    pub from: String,
    /// Target of a private message, empty otherwise.
    pub to: String,
    pub text: String,
}

/// Consecutive messages of one sender to one room, stamped together: the
/// server sends a burst this way so that each message costs its text and
/// two length bytes on the wire, not a whole `Chat` frame. Message `i` has
/// id `first_id + i`. [`ServerMsg::expand`] turns it into `Chat` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRun {
    pub first_id: u64,
    pub ts_ms: u64,
    pub kind: ChatKind,
    pub room: String,
    pub from: String,
    pub texts: Vec<String>,
}

impl ChatRun {
    /// Appends a `ChatRun` frame whose texts are already encoded as string
    /// fields (`texts` holds `count` of them, back to back).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_prepared(
        first_id: u64,
        ts_ms: u64,
        kind: ChatKind,
        room: &str,
        from: &str,
        count: u16,
        texts: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), FieldError> {
        let mut p = BytesMut::with_capacity(32 + room.len() + from.len() + texts.len());
        p.put_u64(first_id);
        p.put_u64(ts_ms);
        p.put_u8(kind as u8);
        put_str(&mut p, room)?;
        put_str(&mut p, from)?;
        p.put_u16(count);
        p.put_slice(texts);
        encode_frame(t::CHAT_RUN, &p, dst);
        Ok(())
    }
}

/// A membership change as the server stamps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    pub id: u64,
    pub ts_ms: u64,
    pub kind: EventKind,
    pub room: String,
    pub name: String,
    pub detail: String,
}

/// Frames a server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// Reply to `Hello`: the name given, and the limits in force.
    Welcome {
        name: String,
        software: String,
        max_text: u32,
        history: u16,
    },
    Chat(ChatLine),
    /// Several chat messages in one frame (see [`ChatRun`]).
    ChatRun(ChatRun),
    Event(EventLine),
    /// Reply to `Join`, before the room's history: how many are there and
    /// the names of at most [`MAX_LISTED`] of them.
    Joined {
        room: String,
        total: u32,
        members: Vec<String>,
    },
    /// Reply to `Part`.
    Parted {
        room: String,
    },
    /// Reply to `Who`: like `Joined`.
    Who {
        room: String,
        total: u32,
        members: Vec<String>,
    },
    /// Reply to `ListRooms`: each room and its member count.
    Rooms {
        rooms: Vec<(String, u32)>,
    },
    /// Your name changed (reply to `Nick`).
    YourName {
        name: String,
    },
    Error {
        code: u16,
        text: String,
    },
    /// Server text for this client (e.g. a rate-limit notice).
    Notice {
        text: String,
    },
    Ping {
        token: u64,
    },
    Pong {
        token: u64,
    },
    /// The server is closing this connection; `reason` says why.
    Bye {
        reason: String,
    },
}

/// Why a frame is not a valid chat message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChatWireError {
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("bad payload for frame type 0x{kind:02x}: {err}")]
    Field { kind: u8, err: FieldError },
    #[error("unknown value {value} in frame type 0x{kind:02x}")]
    BadValue { kind: u8, value: u8 },
}

fn field(kind: u8) -> impl Fn(FieldError) -> ChatWireError {
    move |err| ChatWireError::Field { kind, err }
}

mod t {
    pub const HELLO: u8 = 0x01;
    pub const SAY: u8 = 0x02;
    pub const ACTION: u8 = 0x03;
    pub const PRIVATE: u8 = 0x04;
    pub const JOIN: u8 = 0x05;
    pub const PART: u8 = 0x06;
    pub const NICK: u8 = 0x07;
    pub const WHO: u8 = 0x08;
    pub const LIST_ROOMS: u8 = 0x09;
    pub const QUIT: u8 = 0x0A;
    pub const PING: u8 = 0x0B;
    pub const PONG: u8 = 0x0C;

    pub const WELCOME: u8 = 0x81;
    pub const CHAT: u8 = 0x82;
    pub const EVENT: u8 = 0x83;
    pub const JOINED: u8 = 0x84;
    pub const PARTED: u8 = 0x85;
    pub const WHO_REPLY: u8 = 0x86;
    pub const ROOMS: u8 = 0x87;
    pub const YOUR_NAME: u8 = 0x88;
    pub const ERROR: u8 = 0x89;
    pub const NOTICE: u8 = 0x8A;
    pub const S_PING: u8 = 0x8B;
    pub const S_PONG: u8 = 0x8C;
    pub const BYE: u8 = 0x8D;
    pub const CHAT_RUN: u8 = 0x8E;
}

impl ClientMsg {
    /// Appends this message as one frame.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FieldError> {
        let mut p = BytesMut::new();
        let kind = match self {
            ClientMsg::Hello { name, software } => {
                put_str(&mut p, name)?;
                put_str(&mut p, software)?;
                t::HELLO
            }
            ClientMsg::Say { room, text } => {
                put_str(&mut p, room)?;
                put_str(&mut p, text)?;
                t::SAY
            }
            ClientMsg::Action { room, text } => {
                put_str(&mut p, room)?;
                put_str(&mut p, text)?;
                t::ACTION
            }
            ClientMsg::Private { to, text } => {
                put_str(&mut p, to)?;
                put_str(&mut p, text)?;
                t::PRIVATE
            }
            ClientMsg::Join { room } => {
                put_str(&mut p, room)?;
                t::JOIN
            }
            ClientMsg::Part { room } => {
                put_str(&mut p, room)?;
                t::PART
            }
            ClientMsg::Nick { name } => {
                put_str(&mut p, name)?;
                t::NICK
            }
            ClientMsg::Who { room } => {
                put_str(&mut p, room)?;
                t::WHO
            }
            ClientMsg::ListRooms => t::LIST_ROOMS,
            ClientMsg::Quit { reason } => {
                put_str(&mut p, reason)?;
                t::QUIT
            }
            ClientMsg::Ping { token } => {
                p.put_u64(*token);
                t::PING
            }
            ClientMsg::Pong { token } => {
                p.put_u64(*token);
                t::PONG
            }
        };
        encode_frame(kind, &p, dst);
        Ok(())
    }

    /// Reads a client frame.
    pub fn decode(frame: &Frame) -> Result<Self, ChatWireError> {
        let kind = frame.kind;
        let f = field(kind);
        let mut r = FieldReader::new(&frame.payload);
        let msg = match kind {
            t::HELLO => ClientMsg::Hello {
                name: r.str().map_err(&f)?,
                software: r.str().map_err(&f)?,
            },
            t::SAY => ClientMsg::Say {
                room: r.str().map_err(&f)?,
                text: r.str().map_err(&f)?,
            },
            t::ACTION => ClientMsg::Action {
                room: r.str().map_err(&f)?,
                text: r.str().map_err(&f)?,
            },
            t::PRIVATE => ClientMsg::Private {
                to: r.str().map_err(&f)?,
                text: r.str().map_err(&f)?,
            },
            t::JOIN => ClientMsg::Join {
                room: r.str().map_err(&f)?,
            },
            t::PART => ClientMsg::Part {
                room: r.str().map_err(&f)?,
            },
            t::NICK => ClientMsg::Nick {
                name: r.str().map_err(&f)?,
            },
            t::WHO => ClientMsg::Who {
                room: r.str().map_err(&f)?,
            },
            t::LIST_ROOMS => ClientMsg::ListRooms,
            t::QUIT => ClientMsg::Quit {
                reason: r.str().map_err(&f)?,
            },
            t::PING => ClientMsg::Ping {
                token: r.u64().map_err(&f)?,
            },
            t::PONG => ClientMsg::Pong {
                token: r.u64().map_err(&f)?,
            },
            other => return Err(ChatWireError::UnknownType(other)),
        };
        r.finish().map_err(&f)?;
        Ok(msg)
    }

    /// This message as one encoded frame.
    pub fn to_bytes(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        Ok(b.freeze())
    }
}

impl ChatLine {
    fn put_fields(&self, p: &mut BytesMut) -> Result<(), FieldError> {
        p.put_u64(self.id);
        p.put_u64(self.ts_ms);
        p.put_u8(self.kind as u8);
        p.put_u8(u8::from(self.history));
        put_str(p, &self.room)?;
        put_str(p, &self.from)?;
        put_str(p, &self.to)?;
        put_str(p, &self.text)
    }

    /// Appends this line as a `Chat` frame, exactly as
    /// `ServerMsg::Chat(line).encode` would, without cloning it.
    pub fn encode_frame(&self, dst: &mut BytesMut) -> Result<(), FieldError> {
        let mut p = BytesMut::new();
        self.put_fields(&mut p)?;
        encode_frame(t::CHAT, &p, dst);
        Ok(())
    }
}

impl ServerMsg {
    /// Appends this message as one frame.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FieldError> {
        let mut p = BytesMut::new();
        let kind = match self {
            ServerMsg::Welcome {
                name,
                software,
                max_text,
                history,
            } => {
                put_str(&mut p, name)?;
                put_str(&mut p, software)?;
                p.put_u32(*max_text);
                p.put_u16(*history);
                t::WELCOME
            }
            ServerMsg::Chat(c) => {
                c.put_fields(&mut p)?;
                t::CHAT
            }
            ServerMsg::ChatRun(r) => {
                let count = u16::try_from(r.texts.len())
                    .map_err(|_| FieldError::StringTooLong(r.texts.len()))?;
                let mut texts = BytesMut::new();
                for text in &r.texts {
                    put_str(&mut texts, text)?;
                }
                ChatRun::encode_prepared(
                    r.first_id, r.ts_ms, r.kind, &r.room, &r.from, count, &texts, dst,
                )?;
                return Ok(());
            }
            ServerMsg::Event(e) => {
                p.put_u64(e.id);
                p.put_u64(e.ts_ms);
                p.put_u8(e.kind as u8);
                put_str(&mut p, &e.room)?;
                put_str(&mut p, &e.name)?;
                put_str(&mut p, &e.detail)?;
                t::EVENT
            }
            ServerMsg::Joined {
                room,
                total,
                members,
            } => {
                put_str(&mut p, room)?;
                p.put_u32(*total);
                put_str_list(&mut p, members)?;
                t::JOINED
            }
            ServerMsg::Parted { room } => {
                put_str(&mut p, room)?;
                t::PARTED
            }
            ServerMsg::Who {
                room,
                total,
                members,
            } => {
                put_str(&mut p, room)?;
                p.put_u32(*total);
                put_str_list(&mut p, members)?;
                t::WHO_REPLY
            }
            ServerMsg::Rooms { rooms } => {
                let n = u16::try_from(rooms.len())
                    .map_err(|_| FieldError::StringTooLong(rooms.len()))?;
                p.put_u16(n);
                for (room, count) in rooms {
                    put_str(&mut p, room)?;
                    p.put_u32(*count);
                }
                t::ROOMS
            }
            ServerMsg::YourName { name } => {
                put_str(&mut p, name)?;
                t::YOUR_NAME
            }
            ServerMsg::Error { code, text } => {
                p.put_u16(*code);
                put_str(&mut p, text)?;
                t::ERROR
            }
            ServerMsg::Notice { text } => {
                put_str(&mut p, text)?;
                t::NOTICE
            }
            ServerMsg::Ping { token } => {
                p.put_u64(*token);
                t::S_PING
            }
            ServerMsg::Pong { token } => {
                p.put_u64(*token);
                t::S_PONG
            }
            ServerMsg::Bye { reason } => {
                put_str(&mut p, reason)?;
                t::BYE
            }
        };
        encode_frame(kind, &p, dst);
        Ok(())
    }

    /// This message as one encoded frame, ready to share among recipients.
    pub fn to_bytes(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        Ok(b.freeze())
    }

    /// Reads a server frame.
    pub fn decode(frame: &Frame) -> Result<Self, ChatWireError> {
        let kind = frame.kind;
        let f = field(kind);
        let mut r = FieldReader::new(&frame.payload);
        let msg = match kind {
            t::WELCOME => ServerMsg::Welcome {
                name: r.str().map_err(&f)?,
                software: r.str().map_err(&f)?,
                max_text: r.u32().map_err(&f)?,
                history: r.u16().map_err(&f)?,
            },
            t::CHAT => {
                let id = r.u64().map_err(&f)?;
                let ts_ms = r.u64().map_err(&f)?;
                let chat_kind = chat_kind(kind, r.u8().map_err(&f)?)?;
                let flags = r.u8().map_err(&f)?;
                ServerMsg::Chat(ChatLine {
                    id,
                    ts_ms,
                    kind: chat_kind,
                    history: flags & 1 == 1,
                    room: r.str().map_err(&f)?,
                    from: r.str().map_err(&f)?,
                    to: r.str().map_err(&f)?,
                    text: r.str().map_err(&f)?,
                })
            }
            t::CHAT_RUN => {
                let first_id = r.u64().map_err(&f)?;
                let ts_ms = r.u64().map_err(&f)?;
                let run_kind = chat_kind(kind, r.u8().map_err(&f)?)?;
                let room = r.str().map_err(&f)?;
                let from = r.str().map_err(&f)?;
                let texts = r.str_list().map_err(&f)?;
                ServerMsg::ChatRun(ChatRun {
                    first_id,
                    ts_ms,
                    kind: run_kind,
                    room,
                    from,
                    texts,
                })
            }
            t::EVENT => {
                let id = r.u64().map_err(&f)?;
                let ts_ms = r.u64().map_err(&f)?;
                let ev = match r.u8().map_err(&f)? {
                    1 => EventKind::Join,
                    2 => EventKind::Part,
                    3 => EventKind::Quit,
                    4 => EventKind::Nick,
                    value => return Err(ChatWireError::BadValue { kind, value }),
                };
                ServerMsg::Event(EventLine {
                    id,
                    ts_ms,
                    kind: ev,
                    room: r.str().map_err(&f)?,
                    name: r.str().map_err(&f)?,
                    detail: r.str().map_err(&f)?,
                })
            }
            t::JOINED => ServerMsg::Joined {
                room: r.str().map_err(&f)?,
                total: r.u32().map_err(&f)?,
                members: r.str_list().map_err(&f)?,
            },
            t::PARTED => ServerMsg::Parted {
                room: r.str().map_err(&f)?,
            },
            t::WHO_REPLY => ServerMsg::Who {
                room: r.str().map_err(&f)?,
                total: r.u32().map_err(&f)?,
                members: r.str_list().map_err(&f)?,
            },
            t::ROOMS => {
                let n = r.u16().map_err(&f)? as usize;
                // Each entry is at least 2 + 4 bytes: check before allocating.
                if n.saturating_mul(6) > r.remaining() {
                    return Err(ChatWireError::Field {
                        kind,
                        err: FieldError::Truncated,
                    });
                }
                let mut rooms = Vec::with_capacity(n);
                for _ in 0..n {
                    let room = r.str().map_err(&f)?;
                    let count = r.u32().map_err(&f)?;
                    rooms.push((room, count));
                }
                ServerMsg::Rooms { rooms }
            }
            t::YOUR_NAME => ServerMsg::YourName {
                name: r.str().map_err(&f)?,
            },
            t::ERROR => ServerMsg::Error {
                code: r.u16().map_err(&f)?,
                text: r.str().map_err(&f)?,
            },
            t::NOTICE => ServerMsg::Notice {
                text: r.str().map_err(&f)?,
            },
            t::S_PING => ServerMsg::Ping {
                token: r.u64().map_err(&f)?,
            },
            t::S_PONG => ServerMsg::Pong {
                token: r.u64().map_err(&f)?,
            },
            t::BYE => ServerMsg::Bye {
                reason: r.str().map_err(&f)?,
            },
            other => return Err(ChatWireError::UnknownType(other)),
        };
        r.finish().map_err(&f)?;
        Ok(msg)
    }
}

fn chat_kind(frame: u8, value: u8) -> Result<ChatKind, ChatWireError> {
    match value {
        0 => Ok(ChatKind::Say),
        1 => Ok(ChatKind::Action),
        2 => Ok(ChatKind::Private),
        value => Err(ChatWireError::BadValue { kind: frame, value }),
    }
}

impl ServerMsg {
    /// This message as the messages it stands for: a `ChatRun` becomes one
    /// `Chat` per text, anything else stays as it is.
    pub fn expand(self) -> Vec<ServerMsg> {
        match self {
            ServerMsg::ChatRun(r) => {
                let ChatRun {
                    first_id,
                    ts_ms,
                    kind,
                    room,
                    from,
                    texts,
                } = r;
                texts
                    .into_iter()
                    .zip(first_id..)
                    .map(|(text, id)| {
                        ServerMsg::Chat(ChatLine {
                            id,
                            ts_ms,
                            kind,
                            history: false,
                            room: room.clone(),
                            from: from.clone(),
                            to: String::new(),
                            text,
                        })
                    })
                    .collect()
            }
            other => vec![other],
        }
    }
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
