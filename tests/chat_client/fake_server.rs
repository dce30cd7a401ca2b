//! A fake native chat server: the server side of the protocol exactly as
//! `docs/protocol.md` describes it (welcome, lobby auto-join with history,
//! echoes, joins, parts, nick, who, rooms, bye on quit), scripted per test,
//! recording every client frame. std::net and a thread per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use soquete::wire::chat::{
    ChatKind, ChatLine, ClientMsg, ErrorCode, EventKind, EventLine, PREAMBLE, ServerMsg,
};
use soquete::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};

use crate::process::LIMIT;

#[derive(Clone, Default)]
pub struct Script {
    /// Names refused with `NameTaken`.
    pub taken: Vec<String>,
    /// From the second connection on, every asked-for name is taken (the
    /// first connection's ghost still holds it).
    pub taken_after_first: bool,
    /// `(from, text)` replayed as lobby history.
    pub history: Vec<(String, String)>,
    /// Frames sent after the welcome burst.
    pub extra: Vec<ServerMsg>,
    /// Close the first connection right after its welcome burst, saying
    /// `Bye` with this reason first if set.
    pub drop_first: Option<Option<String>>,
    /// Pause before handling each client frame (a slow server).
    pub delay: Duration,
}

pub struct Fake {
    pub addr: SocketAddr,
    /// Every client frame: connection number (from 0) and message.
    pub got: mpsc::Receiver<(usize, ClientMsg)>,
}

impl Fake {
    pub fn start(script: Script) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, got) = mpsc::channel();
        thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let (tx, script) = (tx.clone(), script.clone());
                thread::spawn(move || {
                    let _ = serve(i, stream, &script, &tx);
                });
            }
        });
        Fake { addr, got }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Collects client frames until `stop` matches one (bounded).
    pub fn until(&self, stop: impl Fn(usize, &ClientMsg) -> bool) -> Vec<(usize, ClientMsg)> {
        let deadline = Instant::now() + LIMIT;
        let mut all = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.got.recv_timeout(left) {
                Ok((i, m)) => {
                    let done = stop(i, &m);
                    all.push((i, m));
                    if done {
                        return all;
                    }
                }
                Err(_) => panic!("fake server: expected frame never came; got {all:?}"),
            }
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn chat(
    kind: ChatKind,
    room: &str,
    from: &str,
    to: &str,
    text: &str,
    history: bool,
) -> ServerMsg {
    ServerMsg::Chat(ChatLine {
        id: now_ms(),
        ts_ms: now_ms(),
        kind,
        history,
        room: room.into(),
        from: from.into(),
        to: to.into(),
        text: text.into(),
    })
}

pub fn event(kind: EventKind, room: &str, name: &str, detail: &str) -> ServerMsg {
    ServerMsg::Event(EventLine {
        id: 1,
        ts_ms: now_ms(),
        kind,
        room: room.into(),
        name: name.into(),
        detail: detail.into(),
    })
}

pub fn write(s: &mut TcpStream, msgs: &[ServerMsg]) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    for m in msgs {
        m.encode(&mut b).unwrap();
    }
    s.write_all(&b)
}

pub fn read_msg(s: &mut TcpStream, buf: &mut BytesMut) -> Option<ClientMsg> {
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    loop {
        if let Some(f) = codec.decode_frame(buf).expect("client frame") {
            return Some(ClientMsg::decode(&f).expect("client message"));
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

pub fn serve(
    i: usize,
    mut s: TcpStream,
    script: &Script,
    tx: &mpsc::Sender<(usize, ClientMsg)>,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut pre = [0u8; 5];
    s.read_exact(&mut pre)?;
    assert_eq!(pre, PREAMBLE, "client preamble");
    let mut buf = BytesMut::new();
    let Some(hello) = read_msg(&mut s, &mut buf) else {
        return Ok(());
    };
    let _ = tx.send((i, hello.clone()));
    let ClientMsg::Hello { name, .. } = hello else {
        panic!("first frame {hello:?}")
    };
    if script.taken.contains(&name) || (script.taken_after_first && i > 0 && !name.is_empty()) {
        let text = "name taken".into();
        return write(
            &mut s,
            &[ServerMsg::Error {
                code: ErrorCode::NameTaken as u16,
                text,
            }],
        );
    }
    let me = if name.is_empty() {
        format!("guest-{}", i + 1)
    } else {
        name
    };
    let mut burst = vec![
        ServerMsg::Welcome {
            name: me.clone(),
            software: "fake".into(),
            max_text: 4096,
            history: 50,
        },
        ServerMsg::Joined {
            room: "lobby".into(),
            total: 2,
            members: vec!["bo".into(), me.clone()],
        },
    ];
    for (from, text) in &script.history {
        burst.push(chat(ChatKind::Say, "lobby", from, "", text, true));
    }
    burst.push(event(EventKind::Join, "lobby", &me, ""));
    burst.extend(script.extra.iter().cloned());
    write(&mut s, &burst)?;
    if let (0, Some(bye)) = (i, &script.drop_first) {
        if let Some(reason) = bye {
            write(
                &mut s,
                &[ServerMsg::Bye {
                    reason: reason.clone(),
                }],
            )?;
        }
        return s.shutdown(std::net::Shutdown::Both);
    }
    let mut me = me;
    while let Some(msg) = read_msg(&mut s, &mut buf) {
        let _ = tx.send((i, msg.clone()));
        thread::sleep(script.delay);
        if !answer(&mut s, &mut me, msg)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Answers one client frame; `false` after `Quit`.
pub fn answer(s: &mut TcpStream, me: &mut String, msg: ClientMsg) -> std::io::Result<bool> {
    let reply = match msg {
        ClientMsg::Say { room, text } => vec![chat(ChatKind::Say, &room, me, "", &text, false)],
        ClientMsg::Action { room, text } => {
            vec![chat(ChatKind::Action, &room, me, "", &text, false)]
        }
        ClientMsg::Private { to, text } => vec![chat(ChatKind::Private, "", me, &to, &text, false)],
        ClientMsg::Join { room } => vec![
            ServerMsg::Joined {
                room: room.clone(),
                total: 1,
                members: vec![me.clone()],
            },
            event(EventKind::Join, &room, me, ""),
        ],
        ClientMsg::Part { room } => vec![ServerMsg::Parted { room }],
        ClientMsg::Nick { name } => {
            let old = std::mem::replace(me, name.clone());
            vec![
                ServerMsg::YourName { name: name.clone() },
                event(EventKind::Nick, "lobby", &old, &name),
            ]
        }
        ClientMsg::Who { room } => vec![ServerMsg::Who {
            room,
            total: 1,
            members: vec![me.clone()],
        }],
        ClientMsg::ListRooms => vec![ServerMsg::Rooms {
            rooms: vec![("lobby".into(), 1)],
        }],
        ClientMsg::Quit { .. } => {
            write(
                s,
                &[ServerMsg::Bye {
                    reason: "quit".into(),
                }],
            )?;
            return Ok(false);
        }
        ClientMsg::Ping { token } => vec![ServerMsg::Pong { token }],
        ClientMsg::Pong { .. } | ClientMsg::Hello { .. } => vec![],
    };
    write(s, &reply)?;
    Ok(true)
}

pub fn is_quit(_: usize, m: &ClientMsg) -> bool {
    matches!(m, ClientMsg::Quit { .. })
}

pub fn msgs(all: &[(usize, ClientMsg)]) -> Vec<ClientMsg> {
    all.iter().map(|(_, m)| m.clone()).collect()
}

pub fn say(room: &str, text: &str) -> ClientMsg {
    ClientMsg::Say {
        room: room.into(),
        text: text.into(),
    }
}

pub fn hello(name: &str) -> ClientMsg {
    ClientMsg::Hello {
        name: name.into(),
        software: soquete::SOFTWARE.into(),
    }
}
