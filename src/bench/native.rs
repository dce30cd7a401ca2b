//! One benchmark client speaking soquete's native chat protocol: the
//! handshake (preamble, `Hello`, wait for `Welcome` and `Joined lobby`),
//! then a read loop that answers pings, skips events and history, and
//! counts every chat line that carries a benchmark message.
//!
//! [`Session`] is the pure part (server message in, what to do out);
//! [`run`] drives it over a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::client::{
    End, Inbox, Joined, ReadHalf, Shared, Tally, Writer, connect, report_failure, send,
};
use super::payload;
use super::secure::{SecureTarget, handshake, split_plain};
use crate::sanitize::for_terminal;
use crate::wire::chat::{ClientMsg, PREAMBLE, ServerMsg};
use crate::wire::frame::FrameCodec;

/// Largest frame accepted from the server. Far above the protocol's 64 KiB:
/// a benchmark measures what the server sends rather than policing it, and
/// the `Joined` member list of a lobby of 10,000 outgrows 64 KiB.
const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Read buffer of a client.
const READ_BUFFER: usize = 8 * 1024;
/// A read buffer grown past this is given back once empty: with thousands
/// of clients, one big frame each would otherwise stay as resident memory.
const KEEP_BUFFER: usize = 64 * 1024;

/// Longest wait from connect to `Joined lobby`.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The room every client lands in and every benchmark message goes to.
pub(crate) const ROOM: &str = "lobby";

/// What to do about one server message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// In the lobby: ready for the run.
    Ready,
    /// A live chat line's text, to look for a benchmark message in.
    Deliver(String),
    /// Send this back (a `Pong`).
    Reply(ClientMsg),
    /// The server refused the client before it was ready.
    Refused(String),
    /// The server closed a ready client, saying why.
    Kicked(String),
    Ignore,
}

/// Where a native client is in its conversation.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// `Joined lobby` arrived.
    ready: bool,
}

impl Session {
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    pub(crate) fn on_msg(&mut self, msg: ServerMsg) -> Step {
        match msg {
            ServerMsg::Joined { room, .. } if room == ROOM && !self.ready => {
                self.ready = true;
                Step::Ready
            }
            ServerMsg::Chat(line) if self.ready && !line.history => Step::Deliver(line.text),
            ServerMsg::Ping { token } => Step::Reply(ClientMsg::Pong { token }),
            ServerMsg::Error { code, text } => {
                self.closing(format!("error {code}: {}", for_terminal(&text)))
            }
            ServerMsg::Bye { reason } => self.closing(format!("bye: {}", for_terminal(&reason))),
            _ => Step::Ignore,
        }
    }

    fn closing(&self, why: String) -> Step {
        if self.ready {
            Step::Kicked(why)
        } else {
            Step::Refused(why)
        }
    }
}

/// Connects client `idx` (through the secure channel when `secure` is
/// set), joins the lobby, then receives until the run stops.
pub(crate) async fn run(
    shared: Arc<Shared>,
    idx: u32,
    addr: SocketAddr,
    secure: Option<Arc<SecureTarget>>,
    permit: OwnedSemaphorePermit,
    ready: mpsc::UnboundedSender<Joined>,
) -> Tally {
    let stream = match connect(addr).await {
        Ok(s) => s,
        Err(why) => return report_failure(&shared, &ready, why),
    };
    let (mut rd, wr) = match &secure {
        None => split_plain(stream),
        Some(target) => match handshake(stream, target).await {
            Ok(halves) => halves,
            Err(why) => return report_failure(&shared, &ready, format!("client {idx}: {why}")),
        },
    };
    let writer: Writer = Arc::new(tokio::sync::Mutex::new(wr));
    let hello = ClientMsg::Hello {
        name: format!("bench-{idx}"),
        software: crate::SOFTWARE.to_owned(),
    };
    let mut out = BytesMut::from(&PREAMBLE[..]);
    if let Err(e) = hello.encode(&mut out) {
        return report_failure(&shared, &ready, format!("cannot encode hello: {e}"));
    }
    if let Err(e) = send(&writer, &out).await {
        return report_failure(&shared, &ready, format!("cannot send hello to {addr}: {e}"));
    }

    let mut conn = Conn {
        shared,
        idx,
        writer,
        session: Session::default(),
        inbox: None,
        permit: Some(permit),
        ready,
    };
    let end = conn.read_loop(&mut rd).await;
    conn.finish(end)
}

/// A native client after its hello.
struct Conn {
    shared: Arc<Shared>,
    idx: u32,
    writer: Writer,
    session: Session,
    /// Created when ready.
    inbox: Option<Inbox>,
    /// Connect slot, given back when ready.
    permit: Option<OwnedSemaphorePermit>,
    ready: mpsc::UnboundedSender<Joined>,
}

/// How a read loop ended, and why if it failed.
type Ending = (End, Option<String>);

impl Conn {
    async fn read_loop(&mut self, rd: &mut ReadHalf) -> Ending {
        let codec = FrameCodec::new(MAX_FRAME);
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        let handshake = tokio::time::sleep(HANDSHAKE_TIMEOUT);
        tokio::pin!(handshake);
        let stop = self.shared.stop.clone();
        loop {
            let read = tokio::select! {
                biased;
                _ = stop.cancelled() => return (End::Stopped, None),
                _ = &mut handshake, if !self.session.is_ready() => {
                    return (End::ConnectFailed, Some("no welcome within 10 s".into()));
                }
                r = rd.read_buf(&mut buf) => r,
            };
            match read {
                Ok(0) => {
                    return (
                        self.closed_end(),
                        Some("server closed the connection".into()),
                    );
                }
                Err(e) => return (self.closed_end(), Some(format!("connection lost: {e}"))),
                Ok(_) => {}
            }
            let now_us = self.shared.now_us();
            loop {
                let frame = match codec.decode_frame(&mut buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        return (
                            End::DecodeError,
                            Some(format!("bad frame from server: {e}")),
                        );
                    }
                };
                let msg = match ServerMsg::decode(&frame) {
                    Ok(m) => m,
                    Err(e) => {
                        return (
                            End::DecodeError,
                            Some(format!("bad message from server: {e}")),
                        );
                    }
                };
                if let ServerMsg::ChatRun(run) = &msg
                    && self.session.is_ready()
                {
                    // The bulk of a run: each text is a delivery, taken as it
                    // lies in the decoded frame (expanding a run into whole
                    // `Chat` messages cost the bench more than the server
                    // spent delivering them).
                    for text in &run.texts {
                        self.deliver(text, now_us);
                    }
                    continue;
                }
                for msg in msg.expand() {
                    if let Some(ending) = self.act(msg, now_us).await {
                        return ending;
                    }
                }
            }
            if let Some(inbox) = &mut self.inbox {
                inbox.flush(&self.shared);
            }
            if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
                // A big frame (a long member list) came and went.
                buf = BytesMut::with_capacity(READ_BUFFER);
            }
        }
    }

    async fn act(&mut self, msg: ServerMsg, now_us: u64) -> Option<Ending> {
        match self.session.on_msg(msg) {
            Step::Ready => {
                self.permit = None;
                self.inbox = Some(Inbox::new(self.idx, self.shared.plan.messages));
                self.shared.client_ready();
                let _ = self.ready.send(Joined::Ready {
                    idx: self.idx,
                    writer: self.writer.clone(),
                });
            }
            Step::Deliver(text) => self.deliver(&text, now_us),
            Step::Reply(m) => {
                if let Ok(bytes) = m.to_bytes() {
                    let _ = send(&self.writer, &bytes).await;
                }
            }
            Step::Refused(why) => {
                return Some((End::ConnectFailed, Some(format!("refused: {why}"))));
            }
            Step::Kicked(why) => return Some((End::Kicked, Some(format!("kicked: {why}")))),
            Step::Ignore => {}
        }
        None
    }

    /// One message text received while ready: a delivery, a probe, or
    /// something else, as its stamp says.
    fn deliver(&mut self, text: &str, now_us: u64) {
        if let Some(inbox) = &mut self.inbox {
            let found = payload::find(text.as_bytes(), self.shared.plan.size);
            inbox.on_found(&self.shared, found, now_us);
        }
    }

    fn closed_end(&self) -> End {
        if self.session.is_ready() {
            End::Disconnected
        } else {
            End::ConnectFailed
        }
    }

    fn finish(mut self, (end, why): Ending) -> Tally {
        let why = why.map(|w| format!("client {}: {w}", self.idx));
        if !self.session.is_ready() && end != End::Stopped {
            // Whatever went wrong, the run is waiting to hear about it.
            let why = why.unwrap_or_else(|| format!("client {}: not welcomed", self.idx));
            let tally = report_failure(&self.shared, &self.ready, why);
            return Tally { end, ..tally };
        }
        if let Some(why) = why
            && !self.shared.stop.is_cancelled()
        {
            self.shared.note_error(why);
        }
        let Some(mut inbox) = self.inbox.take() else {
            return Tally {
                end,
                ..Tally::default()
            };
        };
        let mut tally = inbox.finish(&self.shared);
        tally.end = end;
        self.shared.client_gone(end != End::Stopped);
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::chat::{ChatKind, ChatLine, EventKind, EventLine};

    fn chat(text: &str, history: bool) -> ServerMsg {
        ServerMsg::Chat(ChatLine {
            id: 1,
            ts_ms: 0,
            kind: ChatKind::Say,
            history,
            room: ROOM.into(),
            from: "bench-0".into(),
            to: String::new(),
            text: text.into(),
        })
    }

    fn welcome() -> ServerMsg {
        ServerMsg::Welcome {
            name: "bench-1".into(),
            software: "soquete".into(),
            max_text: 4096,
            history: 0,
        }
    }

    fn joined(room: &str) -> ServerMsg {
        ServerMsg::Joined {
            room: room.into(),
            total: 0,
            members: vec![],
        }
    }

    #[test]
    fn ready_only_once_in_the_lobby() {
        let mut s = Session::default();
        assert_eq!(s.on_msg(welcome()), Step::Ignore);
        assert_eq!(s.on_msg(joined("lab")), Step::Ignore);
        assert_eq!(s.on_msg(joined(ROOM)), Step::Ready);
        assert_eq!(s.on_msg(joined(ROOM)), Step::Ignore);
    }

    #[test]
    fn history_and_events_are_skipped_live_chat_is_delivered() {
        let mut s = Session::default();
        assert_eq!(s.on_msg(chat("early", false)), Step::Ignore);
        s.on_msg(joined(ROOM));
        assert_eq!(s.on_msg(chat("old", true)), Step::Ignore);
        let ev = ServerMsg::Event(EventLine {
            id: 2,
            ts_ms: 0,
            kind: EventKind::Join,
            room: ROOM.into(),
            name: "x".into(),
            detail: String::new(),
        });
        assert_eq!(s.on_msg(ev), Step::Ignore);
        assert_eq!(
            s.on_msg(chat("~@0.0.0", false)),
            Step::Deliver("~@0.0.0".into())
        );
    }

    #[test]
    fn pings_are_answered_with_their_token() {
        let mut s = Session::default();
        assert_eq!(
            s.on_msg(ServerMsg::Ping { token: 42 }),
            Step::Reply(ClientMsg::Pong { token: 42 })
        );
    }

    #[test]
    fn errors_refuse_before_ready_and_kick_after() {
        let mut s = Session::default();
        let err = ServerMsg::Error {
            code: 5,
            text: "server full\x1b[2J".into(),
        };
        assert_eq!(
            s.on_msg(err.clone()),
            Step::Refused("error 5: server full^[[2J".into())
        );
        s.on_msg(joined(ROOM));
        assert!(matches!(s.on_msg(err), Step::Kicked(_)));
        assert!(matches!(
            s.on_msg(ServerMsg::Bye {
                reason: "slow".into()
            }),
            Step::Kicked(_)
        ));
    }
}
