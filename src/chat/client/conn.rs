//! Opening a chat connection: resolve `ADDR`, try each address, in secure
//! mode run the secure channel (`crate::secure::connect`: TLS 1.3, pinned
//! key, passphrase check), then the native handshake (preamble + hello,
//! wait for the welcome) with a timeout, over whichever stream that gave.
//!
//! Every way this can fail is one [`ConnectError`] with a message a person
//! can act on: refused, name taken, server full, version mismatch, a raw
//! chat server that echoed our preamble back (`use --raw`), or something
//! that is not a soquete chat server at all. [`classify`] decides what the
//! first bytes from the server are, without I/O.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::net::addr::{AddrError, resolve};
use crate::sanitize::for_terminal;
use crate::secure::{self, ClientSecurity, Connected, Pinning, SecureError};
use crate::wire::chat::{ClientMsg, ErrorCode, MAGIC, PREAMBLE, ServerMsg};
use crate::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec, LEN_BYTES};

/// Why a connection did not become a chat session.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("connection refused by {0}")]
    Refused(String),
    #[error("timed out connecting to {0}")]
    ConnectTimeout(String),
    #[error("cannot connect to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "{addr} did not answer the chat handshake within {secs}s (not a soquete chat server? for a raw chat server use --raw)"
    )]
    HandshakeTimeout { addr: String, secs: u64 },
    #[error("{0} is a raw chat server; use --raw")]
    RawRelay(String),
    #[error(
        "{addr} is not a soquete chat server (it sent {got:?}); for a raw chat server use --raw"
    )]
    NotChat { addr: String, got: String },
    #[error("{addr} closed the connection during the handshake")]
    Closed { addr: String },
    #[error("the name '{name}' is already taken on {addr}")]
    NameTaken { addr: String, name: String },
    #[error("{addr} refused the name '{name}': {text}")]
    BadName {
        addr: String,
        name: String,
        text: String,
    },
    #[error("{0} is full; try again later")]
    ServerFull(String),
    #[error("{0} takes no more connections from this address")]
    TooManyFromAddress(String),
    #[error("{addr} speaks another version of the chat protocol: {text}")]
    Version { addr: String, text: String },
    #[error("{addr} refused the connection: {text}")]
    Rejected { addr: String, text: String },
    #[error(transparent)]
    Secure(#[from] SecureError),
}

impl ConnectError {
    /// Whether trying again later cannot help (wrong kind of server).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::RawRelay(_)
                | ConnectError::NotChat { .. }
                | ConnectError::Version { .. }
                | ConnectError::Addr(AddrError::Syntax(_))
        ) || matches!(self, ConnectError::Secure(e) if secure_is_permanent(e))
    }

    /// Whether asking for another name would get us in.
    pub fn is_name_refused(&self) -> bool {
        matches!(
            self,
            ConnectError::NameTaken { .. } | ConnectError::BadName { .. }
        )
    }
}

/// Secure-channel failures that another attempt would only repeat: a
/// wrong passphrase, a changed or mismatched identity, a server that does
/// not speak the channel, interception, a local configuration problem.
fn secure_is_permanent(e: &SecureError) -> bool {
    !matches!(
        e,
        SecureError::Timeout { .. } | SecureError::Closed { .. } | SecureError::Io { .. }
    )
}

/// A byte stream a chat session runs over: plain TCP or the secure channel.
pub trait ChatStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ChatStream for T {}

/// The connection's stream, whichever kind.
pub type BoxedStream = Box<dyn ChatStream>;

/// Limits of a connection attempt.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For each TCP connect.
    pub connect: Duration,
    /// From sending the hello to receiving the welcome.
    pub handshake: Duration,
}

/// What the server said in its welcome.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub name: String,
    pub software: String,
    pub max_text: u32,
}

/// A welcomed connection and the bytes already read past the welcome.
pub struct Connection {
    pub stream: BoxedStream,
    /// Bytes received after the welcome frame (the next frames' start).
    pub buffered: BytesMut,
    pub peer: SocketAddr,
    pub welcome: Welcome,
    /// The server's identity, when the secure channel carries the session.
    pub fingerprint: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("welcome", &self.welcome)
            .finish_non_exhaustive()
    }
}

/// Connects to `addr` (as the user typed it), runs the secure channel when
/// `security` is set, and completes the handshake asking for `name`.
pub async fn connect(
    addr: &str,
    name: Option<&str>,
    limits: Timeouts,
    security: Option<&Arc<ClientSecurity>>,
) -> Result<Connection, ConnectError> {
    let tcp = connect_tcp(addr, limits.connect).await?;
    let peer = tcp.peer_addr().map_err(|source| ConnectError::Io {
        addr: addr.to_owned(),
        source,
    })?;
    let (stream, fingerprint): (BoxedStream, _) = match security {
        None => (Box::new(tcp), None),
        Some(sec) => {
            let (tls, connected) = connect_secure(tcp, addr, sec).await?;
            report_pinning(addr, &connected);
            (Box::new(tls), Some(connected.fingerprint.to_string()))
        }
    };
    let mut conn = handshake(stream, peer, addr, name, limits.handshake).await?;
    conn.fingerprint = fingerprint;
    Ok(conn)
}

/// The secure channel on a connected socket (its own 10 s deadline).
pub async fn connect_secure(
    tcp: TcpStream,
    addr: &str,
    security: &ClientSecurity,
) -> Result<(secure::ClientStream, Connected), ConnectError> {
    Ok(secure::connect(tcp, addr, security).await?)
}

/// Tells the user (stderr) when the server's identity was pinned now, or
/// when `--fingerprint` overrode a different pin.
pub fn report_pinning(addr: &str, connected: &Connected) {
    match &connected.pinning {
        Pinning::AlreadyPinned => {}
        Pinning::NewlyPinned { file } => eprintln!(
            "* pinned server identity {} for {addr} in {} (the passphrase proved it)",
            connected.fingerprint,
            file.display()
        ),
        Pinning::OverrodeKnown { file, line } => eprintln!(
            "* note: --fingerprint {} accepted for {addr}; {} line {line} pins another key (left unchanged)",
            connected.fingerprint,
            file.display()
        ),
    }
}

/// Resolves `addr` and connects to the first of its addresses that answers.
pub async fn connect_tcp(addr: &str, limit: Duration) -> Result<TcpStream, ConnectError> {
    let mut last = ConnectError::Refused(addr.to_owned());
    for sa in resolve(addr).await? {
        match timeout(limit, TcpStream::connect(sa)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = ConnectError::Refused(addr.to_owned());
            }
            Ok(Err(source)) => {
                last = ConnectError::Io {
                    addr: addr.to_owned(),
                    source,
                }
            }
            Err(_) => last = ConnectError::ConnectTimeout(addr.to_owned()),
        }
    }
    Err(last)
}

/// Sends the preamble and hello; reads until the welcome or a refusal.
async fn handshake(
    mut stream: BoxedStream,
    peer: SocketAddr,
    addr: &str,
    name: Option<&str>,
    limit: Duration,
) -> Result<Connection, ConnectError> {
    let io_err = |source| ConnectError::Io {
        addr: addr.to_owned(),
        source,
    };
    let mut out = BytesMut::from(&PREAMBLE[..]);
    super::state::ClientState::hello(name)
        .encode(&mut out)
        .map_err(|e| ConnectError::BadName {
            addr: addr.to_owned(),
            name: name.unwrap_or_default().to_owned(),
            text: e.to_string(),
        })?;
    let deadline = Instant::now() + limit;
    let timed_out = || ConnectError::HandshakeTimeout {
        addr: addr.to_owned(),
        secs: limit.as_secs().max(1),
    };
    let write = async {
        stream.write_all(&out).await?;
        stream.flush().await
    };
    timeout_at(deadline, write)
        .await
        .map_err(|_| timed_out())?
        .map_err(io_err)?;
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match classify(&buf) {
            First::NeedMore => {}
            First::RawEcho => return Err(ConnectError::RawRelay(addr.to_owned())),
            First::NotChat => return Err(not_chat(addr, &buf)),
            First::Frame => {
                let Ok(Some(frame)) = codec.decode_frame(&mut buf) else {
                    return Err(not_chat(addr, &buf));
                };
                let msg = ServerMsg::decode(&frame).map_err(|_| not_chat(addr, &frame.payload))?;
                if let Some(welcome) = on_first_frame(msg, addr, name, &mut stream).await? {
                    return Ok(Connection {
                        stream,
                        buffered: buf,
                        peer,
                        welcome,
                        fingerprint: None,
                    });
                }
                continue;
            }
        }
        let n = timeout_at(deadline, stream.read_buf(&mut buf))
            .await
            .map_err(|_| timed_out())?
            .map_err(io_err)?;
        if n == 0 {
            return Err(ConnectError::Closed {
                addr: addr.to_owned(),
            });
        }
    }
}

/// Handles a frame before the welcome: the welcome itself, a refusal, or
/// something to answer and wait past.
async fn on_first_frame(
    msg: ServerMsg,
    addr: &str,
    name: Option<&str>,
    stream: &mut BoxedStream,
) -> Result<Option<Welcome>, ConnectError> {
    match msg {
        ServerMsg::Welcome {
            name,
            software,
            max_text,
            ..
        } => Ok(Some(Welcome {
            name,
            software,
            max_text,
        })),
        ServerMsg::Error { code, text } => Err(refusal(code, &text, addr, name)),
        ServerMsg::Bye { reason } => Err(ConnectError::Rejected {
            addr: addr.to_owned(),
            text: for_terminal(&reason),
        }),
        ServerMsg::Ping { token } => {
            let pong = ClientMsg::Pong { token }.to_bytes().unwrap_or_default();
            let _ = stream.write_all(&pong).await;
            Ok(None)
        }
        ServerMsg::Notice { text } => {
            tracing::info!("{}", for_terminal(&text));
            Ok(None)
        }
        _ => Err(ConnectError::NotChat {
            addr: addr.to_owned(),
            got: "a chat message before the welcome".to_owned(),
        }),
    }
}

/// Turns a handshake `Error` frame into the matching one-line error.
pub fn refusal(code: u16, text: &str, addr: &str, name: Option<&str>) -> ConnectError {
    let addr = addr.to_owned();
    let text = for_terminal(text);
    let name = name.unwrap_or_default().to_owned();
    match ErrorCode::from_u16(code) {
        Some(ErrorCode::NameTaken) => ConnectError::NameTaken { addr, name },
        Some(ErrorCode::BadName) => ConnectError::BadName { addr, name, text },
        Some(ErrorCode::ServerFull) => ConnectError::ServerFull(addr),
        Some(ErrorCode::TooManyFromAddress) => ConnectError::TooManyFromAddress(addr),
        Some(ErrorCode::Version) => ConnectError::Version { addr, text },
        _ => ConnectError::Rejected { addr, text },
    }
}

fn not_chat(addr: &str, got: &[u8]) -> ConnectError {
    const SHOWN: usize = 40;
    let text = String::from_utf8_lossy(&got[..got.len().min(SHOWN)]);
    ConnectError::NotChat {
        addr: addr.to_owned(),
        got: for_terminal(&text).chars().take(SHOWN).collect(),
    }
}

/// What the first bytes from a server are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// Too few bytes to tell.
    NeedMore,
    /// Our own preamble came back: a relay that echoes every read.
    RawEcho,
    /// Not the start of a server frame.
    NotChat,
    /// A complete server frame is at the front.
    Frame,
}

/// Classifies the start of what a server sent. A frame starts with a `u32`
/// length of at most [`DEFAULT_MAX_FRAME`], so its first byte is 0 and its
/// second at most 1; our echoed preamble starts `00 'S' 'Q' 'C'`, whose
/// "length" would be far over the limit.
pub fn classify(buf: &[u8]) -> First {
    let n = buf.len().min(MAGIC.len());
    if n > 0 && buf[..n] == MAGIC[..n] {
        return if n == MAGIC.len() {
            First::RawEcho
        } else {
            First::NeedMore
        };
    }
    if buf.is_empty() {
        return First::NeedMore;
    }
    if buf[0] != 0 {
        return First::NotChat;
    }
    if buf.len() < LEN_BYTES + 1 {
        return First::NeedMore;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 || len > DEFAULT_MAX_FRAME || buf[LEN_BYTES] < 0x80 {
        return First::NotChat;
    }
    if buf.len() < LEN_BYTES + len {
        First::NeedMore
    } else {
        First::Frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome_bytes() -> Vec<u8> {
        ServerMsg::Welcome {
            name: "ana".into(),
            software: "soquete".into(),
            max_text: 4096,
            history: 50,
        }
        .to_bytes()
        .unwrap()
        .to_vec()
    }

    #[test]
    fn a_welcome_frame_is_recognised_at_every_split() {
        let w = welcome_bytes();
        for cut in 0..w.len() {
            assert_eq!(classify(&w[..cut]), First::NeedMore, "cut {cut}");
        }
        assert_eq!(classify(&w), First::Frame);
    }

    #[test]
    fn our_echoed_preamble_means_a_raw_relay() {
        let mut echo = PREAMBLE.to_vec();
        echo.extend_from_slice(&ClientState::hello(Some("ana")).to_bytes().unwrap());
        assert_eq!(classify(&echo), First::RawEcho);
        assert_eq!(classify(&echo[..4]), First::RawEcho);
        assert_eq!(classify(&echo[..2]), First::NeedMore);
    }

    #[test]
    fn text_and_client_frames_are_not_a_chat_server() {
        assert_eq!(classify(b"SSH-2.0-OpenSSH_9.6\r\n"), First::NotChat);
        assert_eq!(classify(b"hello"), First::NotChat);
        assert_eq!(classify(&[0, 0, 0, 0, 0x81]), First::NotChat);
        assert_eq!(classify(&[0, 0x10, 0, 0, 0x81]), First::NotChat);
        // A client frame type (< 0x80) is not what a server sends.
        let hello = ClientState::hello(None).to_bytes().unwrap();
        assert_eq!(classify(&hello), First::NotChat);
    }

    #[test]
    fn handshake_errors_map_to_clear_messages() {
        let e = refusal(ErrorCode::NameTaken as u16, "taken", "h:1", Some("ana"));
        assert_eq!(e.to_string(), "the name 'ana' is already taken on h:1");
        assert!(e.is_name_refused());
        let e = refusal(ErrorCode::ServerFull as u16, "full", "h:1", None);
        assert_eq!(e.to_string(), "h:1 is full; try again later");
        let e = refusal(ErrorCode::Version as u16, "server speaks 2", "h:1", None);
        assert!(e.is_permanent());
        let e = refusal(999, "go \x1b[2Jaway", "h:1", None);
        assert_eq!(e.to_string(), "h:1 refused the connection: go ^[[2Jaway");
    }

    #[test]
    fn secure_refusals_are_permanent_but_network_trouble_is_not() {
        let server = "h:1".to_string();
        let wrong = ConnectError::from(SecureError::WrongPassphrase {
            server: server.clone(),
        });
        assert!(wrong.is_permanent());
        assert_eq!(wrong.to_string(), "wrong passphrase for h:1");
        let not_secure = SecureError::NotSecureServer {
            server: server.clone(),
            detail: "x".into(),
        };
        assert!(ConnectError::from(not_secure).is_permanent());
        let closed = SecureError::Closed {
            who: server.clone(),
            step: "tls handshake",
        };
        assert!(!ConnectError::from(closed).is_permanent());
        let timeout = SecureError::Timeout {
            who: server,
            step: "tls handshake",
            secs: 10,
        };
        assert!(!ConnectError::from(timeout).is_permanent());
    }

    #[test]
    fn not_chat_quotes_a_short_sanitized_sample() {
        let e = not_chat(
            "h:1",
            b"\x1b[31mSSH-2.0-OpenSSH_9.6 with a very long banner text",
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("h:1 is not a soquete chat server (it sent \"^[[31mSSH"),
            "{msg}"
        );
        assert!(!msg.contains('\x1b'));
    }

    use crate::chat::client::state::ClientState;
}
