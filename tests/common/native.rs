//! A small blocking native-protocol chat client for tests, built on the
//! library's wire module: connect, hello, send frames, wait for messages.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use soquete::wire::chat::{ClientMsg, PREAMBLE, ServerMsg};
use soquete::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};

pub struct NativeClient {
    pub stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
    /// Messages read but not yet taken by `expect`.
    pub seen: Vec<ServerMsg>,
    /// Messages decoded but not yet returned by `next` (a `ChatRun` holds
    /// several).
    ready: std::collections::VecDeque<ServerMsg>,
    pub name: String,
}

impl NativeClient {
    /// Connects and says hello; panics unless welcomed.
    pub fn join(addr: SocketAddr, name: &str) -> NativeClient {
        let mut c = NativeClient::connect(addr, name);
        match c.next(Duration::from_secs(5)) {
            Some(ServerMsg::Welcome { name, .. }) => c.name = name,
            other => panic!("expected welcome, got {other:?}"),
        }
        c
    }

    /// Connects and says hello without waiting for the answer.
    pub fn connect(addr: SocketAddr, name: &str) -> NativeClient {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut hello = BytesMut::from(&PREAMBLE[..]);
        ClientMsg::Hello {
            name: name.into(),
            software: "test".into(),
        }
        .encode(&mut hello)
        .unwrap();
        stream.write_all(&hello).unwrap();
        NativeClient {
            stream,
            buf: BytesMut::new(),
            codec: FrameCodec::new(DEFAULT_MAX_FRAME),
            seen: Vec::new(),
            ready: Default::default(),
            name: name.into(),
        }
    }

    pub fn send(&mut self, msg: ClientMsg) {
        let b = msg.to_bytes().unwrap();
        self.stream.write_all(&b).unwrap();
    }

    pub fn say(&mut self, room: &str, text: &str) {
        self.send(ClientMsg::Say {
            room: room.into(),
            text: text.into(),
        });
    }

    /// The next message, or `None` on EOF/timeout.
    pub fn next(&mut self, limit: Duration) -> Option<ServerMsg> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Some(m);
            }
            if let Some(f) = self
                .codec
                .decode_frame(&mut self.buf)
                .expect("valid frames")
            {
                let msg = ServerMsg::decode(&f).expect("valid message");
                self.ready.extend(msg.expand());
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(_) => return None,
            }
        }
    }

    /// A short description of what was seen, for failure messages.
    pub fn seen_summary(&self) -> String {
        let tail: Vec<String> = self
            .seen
            .iter()
            .rev()
            .take(6)
            .map(|m| format!("{m:?}").chars().take(120).collect())
            .collect();
        format!("{} messages, last: {tail:?}", self.seen.len())
    }

    /// Waits (≤ 5 s) for a message matching `pred`, skipping others.
    /// Messages skipped earlier count too.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: no {what} within 5 s; saw {}",
                        self.name,
                        self.seen_summary()
                    )
                });
            match self.next(left) {
                Some(m) if pred(&m) => return m,
                Some(m) => self.seen.push(m),
                None => panic!(
                    "{}: connection ended before {what}; saw {}",
                    self.name,
                    self.seen_summary()
                ),
            }
        }
    }

    /// Waits for a chat line with this text.
    pub fn expect_chat(&mut self, text: &str) -> soquete::wire::chat::ChatLine {
        let short: String = text.chars().take(40).collect();
        match self.expect(
            &format!("chat '{short}'"),
            |m| matches!(m, ServerMsg::Chat(c) if c.text == text),
        ) {
            ServerMsg::Chat(c) => c,
            _ => unreachable!(),
        }
    }

    /// True if the connection is closed within `limit` (reading and
    /// discarding whatever comes before).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
        false
    }

    /// Every message still buffered (after `closed_within`).
    pub fn drain_buffered(&mut self) -> Vec<ServerMsg> {
        let mut out: Vec<ServerMsg> = self.ready.drain(..).collect();
        while let Ok(Some(f)) = self.codec.decode_frame(&mut self.buf) {
            if let Ok(m) = ServerMsg::decode(&f) {
                out.extend(m.expand());
            }
        }
        out
    }
}

/// A raw TCP client, like the chapter's Cliente.py or nc.
pub struct RawClient {
    pub stream: TcpStream,
    pub got: Vec<u8>,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            got: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads until `needle` has appeared in everything received (≤ 5 s).
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = String::from_utf8_lossy(&self.got).into_owned();
            if text.contains(needle) {
                return text;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("raw client: no '{needle}' within 5 s; got {text:?}"));
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => panic!("raw client: closed before '{needle}'; got {text:?}"),
                Ok(n) => self.got.extend_from_slice(&tmp[..n]),
                Err(_) => {}
            }
        }
    }

    /// Reads for `quiet` of silence (≤ 5 s in all) and returns what came.
    pub fn read_quiet(&mut self, quiet: Duration) -> Vec<u8> {
        let start = self.got.len();
        let deadline = Instant::now() + Duration::from_secs(5);
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        while Instant::now() < deadline {
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => break,
                Ok(n) => self.got.extend_from_slice(&tmp[..n]),
                Err(_) => break,
            }
        }
        self.got[start..].to_vec()
    }
}
