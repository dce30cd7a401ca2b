//! One raw client's session on the server: the chapter's `Cliente.py`, `nc`
//! or `telnet`. Bytes are split into messages by [`RawSplitter`] (or, in
//! verbatim mode, each read is relayed unchanged as the chapter's server
//! does); a message starting with `/` is a command. Paced by the same rate
//! limit as native clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::hub::{ClientId, Hub};
use super::outbox::{Farewell, outbox_tcp, run_writer};
use super::pacer::{Paced, Pacer};
use super::render::{Flavor, raw_line};
use super::{ServerCtx, now_ms};
use crate::chat::command::{self, Command};
use crate::wire::chat::{ChatKind, ErrorCode};
use crate::wire::raw::RawSplitter;

/// A line-mode peer's unterminated tail is sent after this much quiet.
const TAIL_FLUSH: Duration = Duration::from_secs(1);
/// Bytes read at once from a raw client (the chapter's scripts use 1024).
const READ_CHUNK: usize = 4096;

/// What a raw client sent, once split.
enum Input {
    Text(String),
    /// One read, relayed unchanged (verbatim mode).
    Verbatim(Bytes),
}

pub(crate) async fn run(ctx: Arc<ServerCtx>, stream: TcpStream, peer: SocketAddr, first: BytesMut) {
    let (mut rd, wr) = stream.into_split();
    let (out, out_rx, wr) = outbox_tcp(ctx.cfg.queue, wr);
    let writer = tokio::spawn(run_writer(wr, out_rx));
    let verbatim = ctx.cfg.hub.verbatim;
    let joined = ctx.hub(|h| h.connect(None, Flavor::Raw, peer, out.clone(), now_ms()));
    let Ok((id, _)) = joined else {
        // Guest names are always free; nothing to tell.
        out.close(None);
        let _ = writer.await;
        return;
    };

    let mut splitter = RawSplitter::new(ctx.cfg.hub.max_text);
    let mut pacer: Pacer<Input> = Pacer::new(ctx.cfg.rate, ctx.cfg.burst);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut last_rx = Instant::now();
    let mut pending_read = (!first.is_empty()).then(|| first.freeze());
    let reason = loop {
        if let Some(read) = pending_read.take() {
            let inputs = if verbatim {
                vec![Input::Verbatim(read)]
            } else {
                splitter.push(&read).into_iter().map(Input::Text).collect()
            };
            if let Some(end) = offer_all(&ctx, id, &mut pacer, inputs) {
                break end;
            }
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => {}
            _ = out.closing() => {}
            _ = out.wait_for_room(usize::MAX) => {}
        }
        let tail_at = splitter.has_pending().then_some(last_rx + TAIL_FLUSH);
        let due = pacer.next_due();
        tokio::select! {
            _ = ctx.shutdown.cancelled() => {
                let bye = (!verbatim).then(|| raw_line("* server shutting down"));
                out.close(bye.map(|bytes| Farewell { bytes, drain: true }));
                break "server shutting down".to_owned();
            }
            _ = out.closing() => break "closed by server".to_owned(),
            r = read_some(&mut rd, &mut buf) => match r {
                Ok(Some(read)) => {
                    last_rx = Instant::now();
                    pending_read = Some(read);
                }
                Ok(None) => {
                    // EOF: what was typed without a newline still counts.
                    let inputs = splitter.flush().into_iter().map(Input::Text).collect();
                    offer_all(&ctx, id, &mut pacer, inputs);
                    let held = pacer.due(Instant::now() + super::pacer::MAX_DELAY);
                    ctx.hub(|h| held.into_iter().for_each(|i| { apply(h, id, i); }));
                    break "connection closed".to_owned();
                }
                Err(e) => break format!("read error: {e}"),
            },
            _ = sleep_until_opt(tail_at) => {
                let inputs = splitter.flush().into_iter().map(Input::Text).collect();
                if let Some(end) = offer_all(&ctx, id, &mut pacer, inputs) {
                    break end;
                }
            }
            _ = sleep_until_opt(due) => {
                let ready = pacer.due(Instant::now());
                if let Some(end) = ctx.hub(|h| ready.into_iter().find_map(|i| apply(h, id, i))) {
                    break end;
                }
            }
        }
    };
    ctx.hub(|h| h.disconnect(id, &reason, now_ms()));
    out.close(None);
    let _ = writer.await;
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<Option<Bytes>> {
    buf.reserve(READ_CHUNK);
    match rd.read_buf(buf).await? {
        0 => Ok(None),
        _ => Ok(Some(buf.split().freeze())),
    }
}

/// Paces and runs inputs, all in one hub call (one wake-up per recipient
/// for the whole read); `Some(reason)` when the client asked to leave.
fn offer_all(
    ctx: &ServerCtx,
    id: ClientId,
    pacer: &mut Pacer<Input>,
    inputs: Vec<Input>,
) -> Option<String> {
    let now = Instant::now();
    let mut batch = Vec::new();
    for input in inputs {
        match pacer.offer(input, now) {
            Paced::Now(i) => batch.push(Some(i)),
            Paced::Held => {}
            Paced::Dropped { notify: true } => batch.push(None),
            Paced::Dropped { notify: false } => {}
        }
    }
    if batch.is_empty() {
        return None;
    }
    ctx.hub(|h| {
        for item in batch {
            match item {
                Some(i) => {
                    if let Some(end) = apply(h, id, i) {
                        return Some(end);
                    }
                }
                None => h.error(
                    id,
                    ErrorCode::RateLimited,
                    "sending too fast: message dropped",
                ),
            }
        }
        None
    })
}

/// Runs one input on the hub; `Some(reason)` for `/quit`.
fn apply(h: &mut Hub, id: ClientId, input: Input) -> Option<String> {
    let now = now_ms();
    let text = match input {
        Input::Verbatim(bytes) => {
            h.relay_verbatim(id, bytes, now);
            return None;
        }
        Input::Text(t) => t,
    };
    let current = h.rooms_of(id).into_iter().next();
    let cmd = match command::parse(&text) {
        None => return None,
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            h.error(id, ErrorCode::Protocol, &e.to_string());
            return None;
        }
    };
    let in_room = |h: &mut Hub, f: &dyn Fn(&mut Hub, &str)| match &current {
        Some(room) => f(h, room),
        None => h.error(id, ErrorCode::NotInRoom, "you are in no room: /join ROOM"),
    };
    match cmd {
        Command::Say(t) => in_room(h, &|h, r| h.say(id, r, ChatKind::Say, &t, now)),
        Command::Action(t) => in_room(h, &|h, r| h.say(id, r, ChatKind::Action, &t, now)),
        Command::Private { to, text } => h.private(id, &to, &text, now),
        Command::Join(room) => h.join(id, &room, now),
        Command::Part(Some(room)) => h.part(id, &room, now),
        Command::Part(None) => in_room(h, &|h, r| h.part(id, r, now)),
        Command::Nick(name) => h.nick(id, &name, now),
        Command::Who(Some(room)) => h.who(id, &room),
        Command::Who(None) => in_room(h, &|h, r| h.who(id, r)),
        Command::Rooms => h.list_rooms(id),
        Command::Help => {
            for line in command::help_text().lines() {
                h.notice(id, line);
            }
        }
        Command::Quit(reason) => return Some(reason.unwrap_or_default()),
    }
    None
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
