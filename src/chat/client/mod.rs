//! The chat client core, shared by the line mode (`chat join`) and a
//! full-screen interface: connect, hand-shake, then an event-driven session
//! that reconnects with exponential back-off when the server goes away.
//!
//! The interface sends [`Request`]s (typed commands or raw frames) through a
//! bounded channel and receives [`ClientEvent`]s through another; it never
//! touches the socket. [`run`] returns when the user quits (the server has
//! then processed everything sent before), on Ctrl-C, or with a
//! [`ClientError`] whose message is the one line to show.
//!
//! Parts: `client_state` (pure protocol state), `client_conn` (connect and
//! handshake), `client_session` (one connection's loop); this file holds the
//! reconnect policy and loop.

pub mod conn;
mod session;
pub mod state;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

pub use conn::{ConnectError, Timeouts};
pub use state::{ClientEvent, ClientState, LOBBY};

use crate::chat::command::Command;
use crate::chat::names;
use crate::net::Shutdown;
use crate::secure::ClientSecurity;
use crate::wire::chat::ClientMsg;
use session::{Io, SessionEnd};

/// Requests typed while reconnecting that are kept for the new connection.
/// Past this the interface's channel fills and it waits.
pub const MAX_HELD: usize = 256;

/// What the interface asks the client to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A typed line, already parsed.
    Command(Command),
    /// A frame built by the interface itself.
    Send(ClientMsg),
}

impl Request {
    fn is_quit(&self) -> bool {
        matches!(
            self,
            Request::Command(Command::Quit(_)) | Request::Send(ClientMsg::Quit { .. })
        )
    }
}

/// When and how often to reconnect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Wait before the first attempt.
    pub first: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// Attempts before giving up.
    pub attempts: u32,
}

impl Default for BackoffPolicy {
    /// 0.5 s doubling to 10 s, 20 attempts (about 2.5 minutes in all).
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(10),
            attempts: 20,
        }
    }
}

/// Exponential back-off with ±20 % jitter, so clients of a restarted server
/// do not all come back in the same instant. Pure: the caller passes the
/// random number.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// Attempts handed out so far.
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The next attempt's number and the wait before it, or `None` when the
    /// attempts are used up. `unit` is a random number in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Option<(u32, Duration)> {
        if self.attempt >= self.policy.attempts {
            return None;
        }
        let doubling = 2u32.saturating_pow(self.attempt.min(30));
        let base = self
            .policy
            .first
            .saturating_mul(doubling)
            .min(self.policy.max);
        self.attempt += 1;
        let factor = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
        Some((self.attempt, base.mul_f64(factor)))
    }
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server address as the user typed it (`host:port`).
    pub addr: String,
    /// Name to ask for (`None`: the server assigns one).
    pub name: Option<String>,
    /// Room to join after connecting and make current.
    pub room: Option<String>,
    /// `None`: end with an error when the connection is lost.
    pub reconnect: Option<BackoffPolicy>,
    pub timeouts: Timeouts,
    /// After `Quit`, how long to wait for the server to close.
    pub quit_wait: Duration,
    /// Silence after which we ping the server; as long again without an
    /// answer and the connection counts as lost.
    pub keepalive: Duration,
    /// The secure channel's settings; `None`: plain TCP.
    pub secure: Option<Secure>,
}

/// The secure channel's client settings, shared by every (re)connect.
#[derive(Clone)]
pub struct Secure(pub Arc<ClientSecurity>);

impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secure(..)")
    }
}

impl ClientConfig {
    fn security(&self) -> Option<&Arc<ClientSecurity>> {
        self.secure.as_ref().map(|s| &s.0)
    }
}

impl ClientConfig {
    /// Defaults: reconnect, 5 s connect and handshake, 2 s quit wait, 30 s
    /// keepalive.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            name: None,
            room: None,
            reconnect: Some(BackoffPolicy::default()),
            timeouts: Timeouts {
                connect: Duration::from_secs(5),
                handshake: Duration::from_secs(5),
            },
            quit_wait: Duration::from_secs(2),
            keepalive: Duration::from_secs(30),
            secure: None,
        }
    }
}

/// Why the client ended other than by the user's choice.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("invalid name '{name}': {err}")]
    BadName { name: String, err: names::NameError },
    #[error("invalid room '{room}': {err}")]
    BadRoom { room: String, err: names::NameError },
    /// The connection ended and no reconnect was tried.
    #[error("{0}")]
    Lost(String),
    #[error("{reason}; gave up reconnecting after {attempts} attempts ({last})")]
    GaveUp {
        reason: String,
        attempts: u32,
        last: String,
    },
    #[error("{reason}; {unsent} typed message(s) not sent")]
    Unsent { reason: String, unsent: usize },
}

/// Runs the client until the user quits, Ctrl-C, or a failure. The first
/// connection's failure is returned at once; later losses reconnect per
/// `config.reconnect`.
pub async fn run(
    config: ClientConfig,
    mut requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<ClientEvent>,
    shutdown: Shutdown,
) -> Result<(), ClientError> {
    check_options(&config)?;
    let mut state = ClientState::new(config.name.clone(), config.room.clone());
    let mut conn = tokio::select! {
        c = conn::connect(&config.addr, state.wanted_name(), config.timeouts, config.security()) => c?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let mut held = VecDeque::new();
    let mut input_closed = false;
    let mut reconnected = false;
    loop {
        let io = Io {
            requests: &mut requests,
            held: &mut held,
            input_closed: &mut input_closed,
            events: &events,
            shutdown: &shutdown,
        };
        let lost = match session::run(conn, &mut state, &config, io, reconnected).await {
            SessionEnd::Quit | SessionEnd::Interrupted => return Ok(()),
            SessionEnd::Lost(lost) => lost,
        };
        let _ = events
            .send(ClientEvent::Disconnected {
                reason: lost.reason.clone(),
            })
            .await;
        let policy = match config.reconnect {
            Some(p) if !lost.fatal => p,
            _ => return Err(ClientError::Lost(lost.reason)),
        };
        state.on_lost();
        let mut r = Reconnect {
            config: &config,
            state: &state,
            requests: &mut requests,
            held: &mut held,
            input_closed: &mut input_closed,
            events: &events,
            shutdown: &shutdown,
        };
        conn = match r.run(policy, &lost.reason).await? {
            Some(c) => c,
            None => return Ok(()),
        };
        reconnected = true;
    }
}

fn check_options(config: &ClientConfig) -> Result<(), ClientError> {
    if let Some(name) = config.name.as_deref().filter(|n| !n.is_empty()) {
        names::check_name(name).map_err(|err| ClientError::BadName {
            name: name.to_owned(),
            err,
        })?;
    }
    if let Some(room) = &config.room {
        names::room_name(room).map_err(|err| ClientError::BadRoom {
            room: room.clone(),
            err,
        })?;
    }
    Ok(())
}

/// The wait-and-retry loop after a lost connection.
struct Reconnect<'a> {
    config: &'a ClientConfig,
    state: &'a ClientState,
    requests: &'a mut mpsc::Receiver<Request>,
    /// Requests typed meanwhile, for the new connection.
    held: &'a mut VecDeque<Request>,
    input_closed: &'a mut bool,
    events: &'a mpsc::Sender<ClientEvent>,
    shutdown: &'a Shutdown,
}

impl Reconnect<'_> {
    /// A new welcomed connection, `None` on Ctrl-C or when the user quit
    /// with nothing left to deliver, or the error that ends the client.
    async fn run(
        &mut self,
        policy: BackoffPolicy,
        reason: &str,
    ) -> Result<Option<conn::Connection>, ClientError> {
        let mut backoff = Backoff::new(policy);
        let mut last = String::new();
        loop {
            let Some((attempt, delay)) = backoff.next_delay(rand::random()) else {
                let unsent = self.undelivered();
                if unsent > 0 {
                    return Err(ClientError::Unsent {
                        reason: format!("{reason}; could not reconnect ({last})"),
                        unsent,
                    });
                }
                return Err(ClientError::GaveUp {
                    reason: reason.to_owned(),
                    attempts: policy.attempts,
                    last,
                });
            };
            let _ = self
                .events
                .send(ClientEvent::Reconnecting {
                    attempt,
                    of: policy.attempts,
                    delay,
                })
                .await;
            if !self.wait(delay).await {
                return Ok(None);
            }
            match self.attempt().await {
                Ok(Some(c)) => return Ok(Some(c)),
                Ok(None) => return Ok(None),
                Err(e) if e.is_permanent() => return Err(e.into()),
                Err(e) => last = e.to_string(),
            }
        }
    }

    /// Typed requests waiting to be sent (a quit is not one).
    fn undelivered(&self) -> usize {
        self.held.iter().filter(|r| !r.is_quit()).count()
    }

    /// Sleeps `delay`, collecting typed requests. `false`: stop trying
    /// (Ctrl-C, or the user is done and nothing waits to be delivered).
    async fn wait(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            if *self.input_closed && self.undelivered() == 0 {
                return false;
            }
            let room = self.held.len() < MAX_HELD;
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                _ = sleep_until(deadline) => return true,
                r = self.requests.recv(), if room && !*self.input_closed => match r {
                    Some(req) => {
                        *self.input_closed = req.is_quit();
                        self.held.push_back(req);
                    }
                    None => *self.input_closed = true,
                },
            }
        }
    }

    /// One connection attempt; a refused name retries at once without one
    /// (the session then asks for it back with `/nick`).
    async fn attempt(&mut self) -> Result<Option<conn::Connection>, ConnectError> {
        let (addr, limits) = (&self.config.addr, self.config.timeouts);
        let security = self.config.security();
        let first = tokio::select! {
            c = conn::connect(addr, self.state.wanted_name(), limits, security) => c,
            _ = self.shutdown.cancelled() => return Ok(None),
        };
        match first {
            Err(e) if e.is_name_refused() => tokio::select! {
                c = conn::connect(addr, None, limits, security) => c.map(Some),
                _ = self.shutdown.cancelled() => Ok(None),
            },
            other => other.map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_then_gives_up() {
        let mut b = Backoff::new(BackoffPolicy {
            first: Duration::from_millis(500),
            max: Duration::from_secs(10),
            attempts: 8,
        });
        let delays: Vec<u64> = std::iter::from_fn(|| b.next_delay(0.5))
            .map(|(_, d)| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
        assert_eq!(b.next_delay(0.5), None);
    }

    #[test]
    fn backoff_jitter_stays_within_twenty_percent() {
        let mut lo = Backoff::new(BackoffPolicy::default());
        let mut hi = Backoff::new(BackoffPolicy::default());
        assert_eq!(lo.next_delay(0.0), Some((1, Duration::from_millis(400))));
        assert_eq!(hi.next_delay(1.0), Some((1, Duration::from_millis(600))));
    }

    #[test]
    fn quit_requests_are_recognised() {
        assert!(Request::Command(Command::Quit(None)).is_quit());
        assert!(
            Request::Send(ClientMsg::Quit {
                reason: String::new()
            })
            .is_quit()
        );
        assert!(!Request::Command(Command::Say("x".into())).is_quit());
    }

    #[test]
    fn bad_options_are_refused_before_connecting() {
        let mut c = ClientConfig::new("127.0.0.1:1");
        c.name = Some("a b".into());
        assert!(matches!(
            check_options(&c),
            Err(ClientError::BadName { .. })
        ));
        c.name = Some("ana".into());
        c.room = Some("#".into());
        assert!(matches!(
            check_options(&c),
            Err(ClientError::BadRoom { .. })
        ));
        c.room = Some("#lab".into());
        assert!(check_options(&c).is_ok());
    }
}
