//! The passphrase handshake that runs inside TLS, with no I/O: its framed
//! messages (a pure codec the fuzzer drives) and the client and server state
//! machines (bytes in, [`Step`]s out). `channel` moves the bytes; `pake`
//! does the cryptography.
//!
//! Every message is one frame:
//!
//! ```text
//! +------------+---------+-----------------+---------------------+
//! | version u8 | type u8 | length u16 (BE) | payload (length B)  |
//! +------------+---------+-----------------+---------------------+
//! ```
//!
//! Version is 1. Each type has one exact payload length, checked before
//! anything is allocated:
//!
//! | type | name          | dir | payload |
//! |------|---------------|-----|---------|
//! | 0x01 | ClientPake    | C→S | SPAKE2 message (33) |
//! | 0x02 | ServerPake    | S→C | SPAKE2 message (33), key tag (32), server confirmation (32) |
//! | 0x03 | ClientConfirm | C→S | client confirmation (32) |
//! | 0x04 | Refused       | S→C | retry after, seconds: u32 (4) |
//! | 0x05 | Abort         | both | reason: u8 (1): 1 wrong passphrase, 2 intercepted, 3 protocol error |
//!
//! The exchange: ClientPake → ServerPake → ClientConfirm, after which the
//! application protocol starts on the same TLS stream. A server that will
//! not run the PAKE (rate limit) answers Refused instead of ServerPake.

use bytes::{Buf, BufMut, BytesMut};

use super::pake::{
    BadPakeMessage, Exporter, MAC_LEN, Mac, PAKE_MSG_LEN, PakeStart, Role, SessionKey,
};

/// The handshake format version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 4;
/// The largest frame (a ServerPake).
pub const MAX_FRAME_LEN: usize = HEADER_LEN + PAKE_MSG_LEN + 2 * MAC_LEN;

const CLIENT_PAKE: u8 = 0x01;
const SERVER_PAKE: u8 = 0x02;
const CLIENT_CONFIRM: u8 = 0x03;
const REFUSED: u8 = 0x04;
const ABORT: u8 = 0x05;

/// One handshake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The client's SPAKE2 message.
    ClientPake { pake: [u8; PAKE_MSG_LEN] },
    /// The server's SPAKE2 message, key tag and session confirmation.
    ServerPake {
        pake: [u8; PAKE_MSG_LEN],
        key_tag: Mac,
        confirm: Mac,
    },
    /// The client's session confirmation.
    ClientConfirm { confirm: Mac },
    /// The server will not check a passphrase from this address for now.
    Refused { retry_after_secs: u32 },
    /// The sender gives up, saying why.
    Abort { reason: AbortReason },
}

/// Why a side aborted the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AbortReason {
    /// The confirmation did not match: the passphrases differ.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The passphrase matched but the TLS sessions differ.
    #[error("the connection is intercepted")]
    Intercepted,
    /// A malformed or unexpected message.
    #[error("handshake protocol error")]
    Protocol,
    /// A code this version does not know (kept so decoding never fails on it).
    #[error("unknown reason {0}")]
    Other(u8),
}

impl AbortReason {
    fn code(self) -> u8 {
        match self {
            Self::WrongPassphrase => 1,
            Self::Intercepted => 2,
            Self::Protocol => 3,
            Self::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => Self::WrongPassphrase,
            2 => Self::Intercepted,
            3 => Self::Protocol,
            c => Self::Other(c),
        }
    }
}

/// A frame that is not a valid handshake message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first byte is not [`VERSION`].
    #[error("handshake version {0}, this soquete speaks version {VERSION}")]
    Version(u8),
    /// The type byte is not one of the five.
    #[error("unknown handshake message type {0:#04x}")]
    Type(u8),
    /// The length is not the type's one length.
    #[error("handshake message type {kind:#04x} with length {len}, want {want}")]
    Length { kind: u8, len: usize, want: usize },
}

impl Message {
    /// The name used in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClientPake { .. } => "ClientPake",
            Self::ServerPake { .. } => "ServerPake",
            Self::ClientConfirm { .. } => "ClientConfirm",
            Self::Refused { .. } => "Refused",
            Self::Abort { .. } => "Abort",
        }
    }

    /// The frame bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            Self::ClientPake { pake } => (CLIENT_PAKE, pake.to_vec()),
            Self::ServerPake {
                pake,
                key_tag,
                confirm,
            } => (SERVER_PAKE, [&pake[..], key_tag, confirm].concat()),
            Self::ClientConfirm { confirm } => (CLIENT_CONFIRM, confirm.to_vec()),
            Self::Refused { retry_after_secs } => {
                (REFUSED, retry_after_secs.to_be_bytes().to_vec())
            }
            Self::Abort { reason } => (ABORT, vec![reason.code()]),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.put_u8(VERSION);
        out.put_u8(kind);
        out.put_u16(payload.len() as u16);
        out.extend_from_slice(&payload);
        out
    }

    /// Takes one message off the front of `buf`: `Ok(None)` when more bytes
    /// are needed (nothing consumed), `Err` when the header is invalid (the
    /// connection must end). At most [`MAX_FRAME_LEN`] bytes are looked at.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, FrameError> {
        if bytes_needed(buf)? > 0 {
            return Ok(None);
        }
        let kind = buf[1];
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len);
        let mut p = &payload[..];
        Ok(Some(match kind {
            CLIENT_PAKE => Self::ClientPake { pake: take(&mut p) },
            SERVER_PAKE => Self::ServerPake {
                pake: take(&mut p),
                key_tag: take(&mut p),
                confirm: take(&mut p),
            },
            CLIENT_CONFIRM => Self::ClientConfirm {
                confirm: take(&mut p),
            },
            REFUSED => Self::Refused {
                retry_after_secs: p.get_u32(),
            },
            _ => Self::Abort {
                reason: AbortReason::from_code(p[0]),
            },
        }))
    }
}

/// How many more bytes `buf` needs at least before it holds a whole frame
/// (0 when it does): the rest of the header, then the rest of the payload.
/// A reader that reads at most this many at a time never takes bytes past
/// the handshake, which belong to the application protocol. Errors as soon
/// as the header is wrong.
pub fn bytes_needed(buf: &[u8]) -> Result<usize, FrameError> {
    if let Some(&v) = buf.first()
        && v != VERSION
    {
        return Err(FrameError::Version(v));
    }
    if let Some(&kind) = buf.get(1) {
        payload_len(kind).ok_or(FrameError::Type(kind))?;
    }
    if buf.len() < HEADER_LEN {
        return Ok(HEADER_LEN - buf.len());
    }
    let kind = buf[1];
    let want = payload_len(kind).ok_or(FrameError::Type(kind))?;
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if len != want {
        return Err(FrameError::Length { kind, len, want });
    }
    Ok((HEADER_LEN + len).saturating_sub(buf.len()))
}

/// The one payload length of each message type.
fn payload_len(kind: u8) -> Option<usize> {
    match kind {
        CLIENT_PAKE => Some(PAKE_MSG_LEN),
        SERVER_PAKE => Some(PAKE_MSG_LEN + 2 * MAC_LEN),
        CLIENT_CONFIRM => Some(MAC_LEN),
        REFUSED => Some(4),
        ABORT => Some(1),
        _ => None,
    }
}

/// Takes a fixed-size array off the front of `p` (lengths are checked first).
fn take<const N: usize>(p: &mut &[u8]) -> [u8; N] {
    let (head, rest) = p.split_at(N);
    *p = rest;
    head.try_into().expect("length checked by bytes_needed")
}

/// What the state machine wants done after some bytes came in.
#[derive(Debug)]
pub enum Step {
    /// Read more bytes ([`bytes_needed`] says how many).
    NeedMore,
    /// Send these bytes and keep reading.
    Reply(Vec<u8>),
    /// Send these bytes (may be empty): the passphrase check succeeded.
    Done(Vec<u8>),
    /// Send these bytes (may be empty), then close: the check failed.
    Fail(Vec<u8>, HandshakeError),
}

/// Why the passphrase handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A frame that does not parse.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A valid message at the wrong time.
    #[error("unexpected {got} message while waiting for {want}")]
    Unexpected {
        got: &'static str,
        want: &'static str,
    },
    /// The peer's SPAKE2 message is invalid.
    #[error("{0}")]
    BadPake(#[from] BadPakeMessage),
    /// The confirmation failed: the passphrases differ.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Same passphrase, different TLS sessions: someone terminated TLS.
    #[error(
        "the passphrase matched but the tls session did not: someone is intercepting the connection"
    )]
    Intercepted,
    /// The peer sent Abort.
    #[error("the peer gave up: {0}")]
    PeerAborted(AbortReason),
    /// The server refused to check a passphrase for now.
    #[error("too many failed attempts from this address; retry in {0} s")]
    Refused(u32),
}

/// The bytes of an Abort frame.
fn abort(reason: AbortReason) -> Vec<u8> {
    Message::Abort { reason }.encode()
}

/// Decodes one message or turns the failure into a [`Step`].
fn next_message(input: &mut BytesMut) -> Result<Message, Step> {
    match Message::decode(input) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Step::NeedMore),
        Err(e) => Err(Step::Fail(abort(AbortReason::Protocol), e.into())),
    }
}

/// The reply to a message that may not come now.
fn unexpected(got: &Message, want: &'static str) -> Step {
    match got {
        Message::Abort { reason } => Step::Fail(Vec::new(), HandshakeError::PeerAborted(*reason)),
        _ => Step::Fail(
            abort(AbortReason::Protocol),
            HandshakeError::Unexpected {
                got: got.name(),
                want,
            },
        ),
    }
}

/// The client's side: sends ClientPake, checks ServerPake, sends ClientConfirm.
pub struct ClientHandshake {
    /// The SPAKE2 secret until ServerPake arrives; `None` after.
    pake: Option<PakeStart>,
    /// This TLS session's exporter, which the confirmations bind.
    exporter: Exporter,
}

impl ClientHandshake {
    /// Starts; returns the ClientPake bytes to send first.
    pub fn start(passphrase: &[u8], exporter: Exporter) -> (Self, Vec<u8>) {
        let (pake, msg) = PakeStart::new(Role::Client, passphrase);
        let bytes = Message::ClientPake { pake: msg }.encode();
        (
            Self {
                pake: Some(pake),
                exporter,
            },
            bytes,
        )
    }

    /// Consumes at most one message from `input`.
    pub fn on_bytes(&mut self, input: &mut BytesMut) -> Step {
        let msg = match next_message(input) {
            Ok(m) => m,
            Err(step) => return step,
        };
        let Some(start) = self.pake.take() else {
            return unexpected(&msg, "nothing");
        };
        let (pake, key_tag, confirm) = match msg {
            Message::ServerPake {
                pake,
                key_tag,
                confirm,
            } => (pake, key_tag, confirm),
            Message::Refused { retry_after_secs } => {
                return Step::Fail(Vec::new(), HandshakeError::Refused(retry_after_secs));
            }
            m => return unexpected(&m, "ServerPake"),
        };
        let key = match start.finish(&pake) {
            Ok(k) => k,
            Err(e) => return Step::Fail(abort(AbortReason::Protocol), e.into()),
        };
        if key.verify_server_confirm(&self.exporter, &confirm) {
            let reply = Message::ClientConfirm {
                confirm: key.client_confirm(&self.exporter),
            };
            Step::Done(reply.encode())
        } else if key.verify_server_key_tag(&key_tag) {
            Step::Fail(abort(AbortReason::Intercepted), HandshakeError::Intercepted)
        } else {
            Step::Fail(
                abort(AbortReason::WrongPassphrase),
                HandshakeError::WrongPassphrase,
            )
        }
    }
}

/// The server's side: waits for ClientPake, answers ServerPake, checks
/// ClientConfirm.
pub struct ServerHandshake {
    /// What comes next.
    state: ServerState,
    /// This TLS session's exporter, which the confirmations bind.
    exporter: Exporter,
}

enum ServerState {
    /// Waiting for ClientPake; holds the passphrase (wiped on drop).
    AwaitPake(zeroize::Zeroizing<Vec<u8>>),
    /// ServerPake sent; the client can now test one passphrase guess.
    AwaitConfirm(SessionKey),
    /// Done or failed.
    Over,
}

impl ServerHandshake {
    /// Waits for the client's first message.
    pub fn new(passphrase: &[u8], exporter: Exporter) -> Self {
        Self {
            state: ServerState::AwaitPake(zeroize::Zeroizing::new(passphrase.to_vec())),
            exporter,
        }
    }

    /// The Refused frame for a client that may not try now.
    pub fn refusal(retry_after_secs: u32) -> Vec<u8> {
        Message::Refused { retry_after_secs }.encode()
    }

    /// Consumes at most one message from `input`.
    pub fn on_bytes(&mut self, input: &mut BytesMut) -> Step {
        let msg = match next_message(input) {
            Ok(m) => m,
            Err(step) => return step,
        };
        match (std::mem::replace(&mut self.state, ServerState::Over), &msg) {
            (ServerState::AwaitPake(pass), Message::ClientPake { pake }) => {
                self.answer_pake(&pass, pake)
            }
            (ServerState::AwaitConfirm(key), Message::ClientConfirm { confirm }) => {
                if key.verify_client_confirm(&self.exporter, confirm) {
                    Step::Done(Vec::new())
                } else {
                    Step::Fail(
                        abort(AbortReason::WrongPassphrase),
                        HandshakeError::WrongPassphrase,
                    )
                }
            }
            (ServerState::AwaitPake(_), m) => unexpected(m, "ClientPake"),
            (ServerState::AwaitConfirm(_), m) => unexpected(m, "ClientConfirm"),
            (ServerState::Over, m) => unexpected(m, "nothing"),
        }
    }

    fn answer_pake(&mut self, passphrase: &[u8], client_msg: &[u8; PAKE_MSG_LEN]) -> Step {
        let (start, msg) = PakeStart::new(Role::Server, passphrase);
        let key = match start.finish(client_msg) {
            Ok(k) => k,
            Err(e) => return Step::Fail(abort(AbortReason::Protocol), e.into()),
        };
        let reply = Message::ServerPake {
            pake: msg,
            key_tag: key.server_key_tag(),
            confirm: key.server_confirm(&self.exporter),
        };
        self.state = ServerState::AwaitConfirm(key);
        Step::Reply(reply.encode())
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
