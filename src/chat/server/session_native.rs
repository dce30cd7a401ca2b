//! One native client's session on the server: version check, hello with a
//! deadline, then frames in -> hub calls, paced by the rate limit, with idle
//! pings; the outbox writer sends everything back. Ends with a reason that is
//! logged and told to the rooms.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::hub::{ClientId, encode};
use super::outbox::{Farewell, OutboxSink, run_writer};
use super::pacer::{Paced, Pacer};
use super::render::Flavor;
use super::{ServerCtx, now_ms};
use crate::wire::chat::{ChatKind, ClientMsg, ErrorCode, PREAMBLE, ServerMsg, VERSION};
use crate::wire::frame::{Frame, FrameCodec};

/// How a session ended.
enum End {
    /// Closed by the client, the network, or a hub kick: nothing more to say.
    Quiet(String),
    /// Close with these last words.
    Say(String, ServerMsg),
}

/// Runs a session on a connection's read and write halves (plain TCP or
/// the secure channel); `buf` holds what was read so far, preamble first.
pub(crate) async fn run<R, W>(
    ctx: Arc<ServerCtx>,
    mut rd: R,
    mut wr: W,
    peer: SocketAddr,
    mut buf: BytesMut,
) where
    R: AsyncRead + Unpin + Send,
    W: OutboxSink,
{
    let version = buf[PREAMBLE.len() - 1];
    buf.advance(PREAMBLE.len());
    let codec = FrameCodec::new(ctx.cfg.max_frame());
    if version != VERSION {
        tracing::info!("{peer} refused: protocol version {version}");
        let msg = error(
            ErrorCode::Version,
            &format!("this server speaks version {VERSION}"),
        );
        let _ = wr.write_all(&encode(&msg)).await;
        return;
    }
    let hello = tokio::time::timeout(
        ctx.cfg.handshake_timeout,
        read_frame(&mut rd, &mut buf, &codec),
    )
    .await;
    let name = match hello {
        Ok(Ok(Some(f))) => match ClientMsg::decode(&f) {
            Ok(ClientMsg::Hello { name, .. }) => name,
            _ => return refuse(&mut wr, peer, ErrorCode::Protocol, "expected a hello").await,
        },
        Ok(Ok(None)) => return tracing::debug!("{peer} closed during the handshake"),
        Ok(Err(e)) => return refuse(&mut wr, peer, ErrorCode::Protocol, &e.to_string()).await,
        Err(_) => return refuse(&mut wr, peer, ErrorCode::Timeout, "no hello in time").await,
    };

    let (out, out_rx, wr) = wr.into_outbox(ctx.cfg.queue);
    let writer = tokio::spawn(run_writer(wr, out_rx));
    let joined = ctx.hub(|h| h.connect(Some(&name), Flavor::Native, peer, out.clone(), now_ms()));
    let id = match joined {
        Ok((id, _)) => id,
        Err(e) => {
            tracing::info!("{peer} refused: {e}");
            out.close(Some(farewell(&error(e.code(), &e.to_string()))));
            let _ = writer.await;
            return;
        }
    };

    let end = serve_frames(&ctx, id, &mut rd, &mut buf, &codec, &out).await;
    let (reason, last) = match end {
        End::Quiet(r) => (r, None),
        End::Say(r, m) => (r, Some(farewell(&m))),
    };
    ctx.hub(|h| h.disconnect(id, &reason, now_ms()));
    out.close(last);
    let _ = writer.await;
}

/// The session loop: reads frames until the client leaves, misbehaves, is
/// kicked, or the server shuts down.
async fn serve_frames<R: AsyncRead + Unpin>(
    ctx: &ServerCtx,
    id: ClientId,
    rd: &mut R,
    buf: &mut BytesMut,
    codec: &FrameCodec,
    out: &super::outbox::Outbox,
) -> End {
    let idle = ctx.cfg.idle_timeout;
    let mut pacer: Pacer<ClientMsg> = Pacer::new(ctx.cfg.rate, ctx.cfg.burst);
    let mut last_rx = Instant::now();
    let mut ping_sent = false;
    // A batch may take at most a quarter of this client's own queue, which
    // is at least half free whenever a batch starts.
    let max_batch = MAX_BATCH.min(ctx.cfg.queue / 4).max(1);
    let mut read_size = MIN_READ;
    loop {
        // Everything decoded from what was read is applied in one hub call,
        // so recipients are woken once per batch, not once per message.
        let mut batch = Vec::new();
        let mut end = None;
        while batch.len() < max_batch {
            let frame = match codec.decode_frame(buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    end = Some(protocol_error(&e.to_string()));
                    break;
                }
            };
            let msg = match ClientMsg::decode(&frame) {
                Ok(m) => m,
                Err(e) => {
                    end = Some(protocol_error(&e.to_string()));
                    break;
                }
            };
            match msg {
                ClientMsg::Quit { reason } => {
                    let bye = ServerMsg::Bye {
                        reason: "goodbye".into(),
                    };
                    end = Some(End::Say(reason, bye));
                    break;
                }
                ClientMsg::Ping { token } => {
                    let _ = out.push(encode(&ServerMsg::Pong { token }));
                }
                ClientMsg::Pong { .. } => {}
                ClientMsg::Hello { .. } => {
                    end = Some(protocol_error("hello sent twice"));
                    break;
                }
                other => match pacer.offer(other, Instant::now()) {
                    Paced::Now(m) => batch.push(Some(m)),
                    Paced::Held => {}
                    Paced::Dropped { notify } => {
                        if notify {
                            batch.push(None);
                        }
                    }
                },
            }
        }
        if !batch.is_empty() {
            ctx.hub(|h| {
                for m in batch {
                    match m {
                        Some(m) => apply(h, id, m),
                        None => h.error(id, ErrorCode::RateLimited, RATE_LIMITED),
                    }
                }
            });
        }
        if let Some(end) = end {
            return end;
        }
        if codec_has_frame(buf) {
            // More complete frames wait: apply them before reading, once
            // this client's own queue has room.
            tokio::select! {
                _ = ctx.shutdown.cancelled() => {}
                _ = out.closing() => {}
                _ = out.wait_for_room(usize::MAX) => {}
            }
            if !out.is_closing() && !ctx.shutdown.is_cancelled() {
                continue;
            }
        }
        // Read more only when this client's own queue has room for what
        // its next messages will bring back to it.
        tokio::select! {
            _ = ctx.shutdown.cancelled() => {}
            _ = out.closing() => {}
            _ = out.wait_for_room(usize::MAX) => {}
        }
        let check_at = last_rx + if ping_sent { idle * 2 } else { idle };
        let due = pacer.next_due();
        tokio::select! {
            _ = ctx.shutdown.cancelled() => {
                return End::Say("server shutting down".into(), ServerMsg::Bye { reason: "server shutting down".into() });
            }
            _ = out.closing() => return End::Quiet("closed by server".into()),
            r = read_adaptive(rd, buf, &mut read_size) => match r {
                Ok(0) => return End::Quiet("connection closed".into()),
                Ok(_) => {
                    last_rx = Instant::now();
                    ping_sent = false;
                }
                Err(e) => return End::Quiet(format!("read error: {e}")),
            },
            _ = sleep_until_opt(due) => {
                let ready = pacer.due(Instant::now());
                ctx.hub(|h| ready.into_iter().for_each(|m| apply(h, id, m)));
            }
            _ = tokio::time::sleep_until(check_at) => {
                if ping_sent {
                    return End::Say("idle timeout".into(), error(ErrorCode::Timeout, "idle timeout"));
                }
                ping_sent = true;
                let _ = out.push(encode(&ServerMsg::Ping { token: now_ms() }));
            }
        }
    }
}

/// Most messages applied in one hub call: bounds how long the hub is held
/// and how far one batch can fill a recipient's queue.
const MAX_BATCH: usize = 256;
const RATE_LIMITED: &str = "sending too fast: message dropped";

/// Read buffer of a quiet client; it grows for a busy one, so a sender's
/// burst arrives in few reads and is fanned out in few batches.
const MIN_READ: usize = 2048;
const MAX_READ: usize = 64 * 1024;

/// Reads into `buf` with room for `read_size` bytes, doubling `read_size`
/// (up to `MAX_READ`) when a read fills it.
async fn read_adaptive<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    read_size: &mut usize,
) -> std::io::Result<usize> {
    buf.reserve(*read_size);
    let room = buf.capacity() - buf.len();
    let n = rd.read_buf(buf).await?;
    if n == room {
        *read_size = (*read_size * 2).min(MAX_READ);
    }
    Ok(n)
}

/// Whether `buf` holds at least one complete frame.
fn codec_has_frame(buf: &BytesMut) -> bool {
    buf.len() >= 4 && {
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        buf.len() >= 4 + len
    }
}

/// Runs one client command on the hub.
fn apply(h: &mut super::hub::Hub, id: ClientId, msg: ClientMsg) {
    let now = now_ms();
    match msg {
        ClientMsg::Say { room, text } => h.say(id, &room, ChatKind::Say, &text, now),
        ClientMsg::Action { room, text } => h.say(id, &room, ChatKind::Action, &text, now),
        ClientMsg::Private { to, text } => h.private(id, &to, &text, now),
        ClientMsg::Join { room } => h.join(id, &room, now),
        ClientMsg::Part { room } => h.part(id, &room, now),
        ClientMsg::Nick { name } => h.nick(id, &name, now),
        ClientMsg::Who { room } => h.who(id, &room),
        ClientMsg::ListRooms => h.list_rooms(id),
        // Handled by the session loop before pacing.
        ClientMsg::Hello { .. }
        | ClientMsg::Quit { .. }
        | ClientMsg::Ping { .. }
        | ClientMsg::Pong { .. } => {}
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Reads until one frame is complete; `None` at a clean EOF.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    codec: &FrameCodec,
) -> std::io::Result<Option<Frame>> {
    loop {
        if let Some(f) = codec
            .decode_frame(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            return Ok(Some(f));
        }
        if rd.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

fn error(code: ErrorCode, text: &str) -> ServerMsg {
    ServerMsg::Error {
        code: code as u16,
        text: text.to_owned(),
    }
}

fn protocol_error(text: &str) -> End {
    End::Say(
        format!("protocol error: {text}"),
        error(ErrorCode::Protocol, &format!("protocol error: {text}")),
    )
}

fn farewell(msg: &ServerMsg) -> Farewell {
    Farewell {
        bytes: encode(msg),
        drain: true,
    }
}

async fn refuse<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    peer: SocketAddr,
    code: ErrorCode,
    text: &str,
) {
    tracing::info!("{peer} refused: {text}");
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        wr.write_all(&encode(&error(code, text))).await?;
        wr.shutdown().await
    })
    .await;
}
