//! One welcomed chat connection, driven until it ends: frames from the
//! server and requests from the interface go through [`ClientState`], whose
//! frames are written and whose events are forwarded.
//!
//! Bounded in every direction: reads are framed with the maximum frame
//! size, a write that stalls for [`WRITE_STALL`] ends the connection, a
//! silent server is pinged and dropped after a second keepalive period, and
//! after `Quit` the wait for the server's close is `quit_wait`.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::WriteHalf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

use super::conn::{BoxedStream, Connection};
use super::state::{ClientEvent, ClientState, Output};
use super::{ClientConfig, Request};
use crate::chat::command::Command;
use crate::net::Shutdown;
use crate::wire::chat::{ChatWireError, ClientMsg, ServerMsg};
use crate::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};

/// A write blocked this long means the server stopped reading.
pub const WRITE_STALL: Duration = Duration::from_secs(10);
/// A `/join` or `/part` unanswered this long stops holding later commands
/// back.
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// On Ctrl-C, how long the `Quit` frame may take to write.
const INTERRUPT_WRITE: Duration = Duration::from_millis(300);

/// The interface side of a session, borrowed from the reconnect loop.
pub struct Io<'a> {
    pub requests: &'a mut mpsc::Receiver<Request>,
    /// Requests typed while reconnecting; sent before new ones.
    pub held: &'a mut VecDeque<Request>,
    /// The interface closed its channel (stdin EOF).
    pub input_closed: &'a mut bool,
    pub events: &'a mpsc::Sender<ClientEvent>,
    pub shutdown: &'a Shutdown,
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// We sent `Quit` and the server closed (or `quit_wait` passed).
    Quit,
    /// Ctrl-C.
    Interrupted,
    /// The connection went away.
    Lost(Lost),
}

/// A lost connection.
#[derive(Debug)]
pub struct Lost {
    /// One line saying what happened.
    pub reason: String,
    /// The server reported an error that reconnecting cannot fix.
    pub fatal: bool,
}

/// The socket's write side plus the timers of the loop.
struct Session<'a> {
    wr: WriteHalf<BoxedStream>,
    events: &'a mpsc::Sender<ClientEvent>,
    /// When anything last arrived from the server.
    last_rx: Instant,
    /// When our keepalive ping went out, if unanswered.
    ping_sent: Option<Instant>,
    /// When our `Quit` went out.
    quit_sent: Option<Instant>,
    /// Since when a `/join` or `/part` holds commands back.
    wait_since: Option<Instant>,
    /// Token for the next keepalive ping.
    next_token: u64,
}

/// Runs one connection until it ends.
pub async fn run(
    conn: Connection,
    state: &mut ClientState,
    config: &ClientConfig,
    io: Io<'_>,
    reconnected: bool,
) -> SessionEnd {
    let Connection {
        stream,
        buffered: mut buf,
        peer,
        welcome,
        fingerprint,
    } = conn;
    let (mut rd, wr) = tokio::io::split(stream);
    let mut s = Session {
        wr,
        events: io.events,
        last_rx: Instant::now(),
        ping_sent: None,
        quit_sent: None,
        wait_since: None,
        next_token: 1,
    };
    let w = welcome;
    let mut out = state.on_welcome(peer, w.name, w.software, w.max_text, reconnected);
    for e in &mut out.events {
        if let ClientEvent::Connected { fingerprint: f, .. } = e {
            f.clone_from(&fingerprint);
        }
    }
    if let Err(end) = s.apply(state, out).await {
        return end;
    }
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    loop {
        if let Err(end) = s.drain_frames(state, &codec, &mut buf).await {
            return end;
        }
        let timer = s.next_timer(state, config);
        let taking = !state.is_waiting() && !state.is_quitting();
        tokio::select! {
            _ = io.shutdown.cancelled() => {
                let quit = ClientMsg::Quit { reason: String::new() }.to_bytes().unwrap_or_default();
                let write = async {
                    s.wr.write_all(&quit).await?;
                    s.wr.flush().await
                };
                let _ = timeout(INTERRUPT_WRITE, write).await;
                return SessionEnd::Interrupted;
            }
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return s.closed(state, None),
                Ok(_) => {
                    s.last_rx = Instant::now();
                    s.ping_sent = None;
                }
                Err(e) => return s.closed(state, Some(e)),
            },
            req = next_request(io.requests, io.held, io.input_closed), if taking => {
                let out = match req {
                    Request::Command(cmd) => state.on_command(cmd),
                    Request::Send(msg) => state.send(msg),
                };
                if let Err(end) = s.apply(state, out).await {
                    return end;
                }
            }
            _ = sleep_until(timer) => {
                if let Err(end) = s.on_timer(state, config).await {
                    return end;
                }
            }
        }
    }
}

/// The next request: held ones first; a closed channel reads as `/quit`.
async fn next_request(
    requests: &mut mpsc::Receiver<Request>,
    held: &mut VecDeque<Request>,
    input_closed: &mut bool,
) -> Request {
    if let Some(r) = held.pop_front() {
        return r;
    }
    if !*input_closed {
        if let Some(r) = requests.recv().await {
            return r;
        }
        *input_closed = true;
    }
    Request::Command(Command::Quit(None))
}

impl Session<'_> {
    /// Handles every complete frame in `buf`.
    async fn drain_frames(
        &mut self,
        state: &mut ClientState,
        codec: &FrameCodec,
        buf: &mut BytesMut,
    ) -> Result<(), SessionEnd> {
        loop {
            let frame = match codec.decode_frame(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(protocol_error(&e)),
            };
            let msg = match ServerMsg::decode(&frame) {
                Ok(m) => m,
                Err(ChatWireError::UnknownType(t)) => {
                    // A newer server's frame: skip it.
                    tracing::debug!("ignoring unknown frame type 0x{t:02x}");
                    continue;
                }
                Err(e) => return Err(protocol_error(&e)),
            };
            let out = state.on_server(msg);
            self.apply(state, out).await?;
        }
    }

    /// Writes the frames of `out`, then forwards its events.
    async fn apply(&mut self, state: &ClientState, out: Output) -> Result<(), SessionEnd> {
        if !out.send.is_empty() {
            let mut bytes = BytesMut::new();
            for msg in &out.send {
                if let Err(e) = msg.encode(&mut bytes) {
                    // Only texts over 64 KiB fail here; state limits them first.
                    tracing::warn!("cannot encode {msg:?}: {e}");
                }
            }
            // Flushed: over the secure channel, TLS may hold bytes back.
            let write = async {
                self.wr.write_all(&bytes).await?;
                self.wr.flush().await
            };
            match timeout(WRITE_STALL, write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.closed(state, Some(e))),
                Err(_) => return Err(lost("the server stopped reading", false)),
            }
        }
        if state.is_quitting() && self.quit_sent.is_none() {
            self.quit_sent = Some(Instant::now());
        }
        self.wait_since = match (state.is_waiting(), self.wait_since) {
            (true, None) => Some(Instant::now()),
            (true, since) => since,
            (false, _) => None,
        };
        for e in out.events {
            // A closed receiver means the interface is gone; it also closed
            // its request channel, which ends the session.
            let _ = self.events.send(e).await;
        }
        Ok(())
    }

    /// The earliest of the keepalive, quit-wait and join-wait deadlines.
    fn next_timer(&self, state: &ClientState, config: &ClientConfig) -> Instant {
        let keepalive = match self.ping_sent {
            Some(at) => at + config.keepalive,
            None => self.last_rx + config.keepalive,
        };
        let quit = self.quit_sent.map(|at| at + config.quit_wait);
        let join = self
            .wait_since
            .filter(|_| state.is_waiting())
            .map(|at| at + ANSWER_WAIT);
        [Some(keepalive), quit, join]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(keepalive)
    }

    async fn on_timer(
        &mut self,
        state: &mut ClientState,
        config: &ClientConfig,
    ) -> Result<(), SessionEnd> {
        let now = Instant::now();
        if self
            .quit_sent
            .is_some_and(|at| now >= at + config.quit_wait)
        {
            return Err(SessionEnd::Quit);
        }
        if self.wait_since.is_some_and(|at| now >= at + ANSWER_WAIT) {
            state.wait_timed_out();
            self.wait_since = None;
        }
        match self.ping_sent {
            Some(at) if now >= at + config.keepalive => {
                let secs = (config.keepalive * 2).as_secs();
                Err(lost(
                    &format!("no answer from the server for {secs}s"),
                    false,
                ))
            }
            None if now >= self.last_rx + config.keepalive => {
                self.ping_sent = Some(now);
                let token = self.next_token;
                self.next_token += 1;
                let out = state.send(ClientMsg::Ping { token });
                self.apply(state, out).await
            }
            _ => Ok(()),
        }
    }

    /// The server closed (or reset) the connection.
    fn closed(&self, state: &ClientState, err: Option<std::io::Error>) -> SessionEnd {
        if state.is_quitting() {
            return SessionEnd::Quit;
        }
        let reason = match (state.bye_reason(), err) {
            (Some(bye), _) if !bye.is_empty() => format!(
                "server closed the connection: {}",
                crate::sanitize::for_terminal(bye)
            ),
            (_, None) => "server closed the connection".to_owned(),
            (_, Some(e)) => format!("connection lost: {e}"),
        };
        lost(&reason, state.fatal_error().is_some())
    }
}

fn lost(reason: &str, fatal: bool) -> SessionEnd {
    SessionEnd::Lost(Lost {
        reason: reason.to_owned(),
        fatal,
    })
}

fn protocol_error(e: &dyn std::fmt::Display) -> SessionEnd {
    lost(&format!("protocol error from the server: {e}"), false)
}
