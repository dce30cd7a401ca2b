//! One sending client's writer: sends its share of the messages, each
//! stamped with sender, sequence and send time, either closed loop (at most
//! a window in flight, reopened as its witness receives them) or open loop
//! (at its share of `--rate`, on a schedule it catches up with when late).
//! Messages due together go out in one write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

use super::client::{Shared, Writer};
use super::native::ROOM;
use super::payload::{self, Kind, Stamp};
use super::plan::{due_by, scheduled_us};
use crate::wire::chat::ClientMsg;

/// Most messages in one write.
const BATCH: u64 = 64;
/// Most bytes of message text in one write.
const BATCH_BYTES: u64 = 256 * 1024;

/// Sends all of sender `s`'s messages through `writer`, or stops early when
/// the run stops. An error means the connection broke.
pub(crate) async fn run(shared: Arc<Shared>, s: u32, writer: Writer) -> Result<(), String> {
    let plan = &shared.plan;
    let count = plan.count(s);
    let batch = (BATCH_BYTES / plan.size as u64).clamp(1, BATCH);
    let start_us = shared.now_us();
    let mut out = BytesMut::new();
    let mut seq = 0;
    while seq < count {
        let Some(n) = next_batch(&shared, s, seq, start_us).await else {
            return Ok(());
        };
        let n = n.min(batch).min(count - seq);
        out.clear();
        let now_us = shared.now_us();
        for i in seq..seq + n {
            // The actual send time, not the scheduled one: the timer is
            // coarser (about 1 ms) than loopback latency.
            let stamp = Stamp {
                kind: Kind::Data,
                sender: s,
                seq: i,
                sent_us: now_us,
            };
            put_message(&shared, &stamp, &mut out)?;
        }
        let mut w = writer.lock().await;
        let write = async {
            w.write_all(&out).await?;
            w.flush().await
        };
        tokio::select! {
            _ = shared.stop.cancelled() => return Ok(()),
            r = write => r.map_err(|e| format!("sender {s}: connection lost: {e}"))?,
        }
        drop(w);
        seq += n;
        shared.sent.fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

/// Waits until sender `s` may send message `seq`; returns how many it may
/// send now, or `None` when the run stops.
async fn next_batch(shared: &Shared, s: u32, seq: u64, start_us: u64) -> Option<u64> {
    let plan = &shared.plan;
    let echo = shared.echo.load(Ordering::SeqCst);
    loop {
        if shared.stop.is_cancelled() {
            return None;
        }
        if let Some(rate) = plan.rate_per_sender {
            let phase = plan.phase(s);
            let due = due_by(shared.now_us().saturating_sub(start_us), rate, phase);
            if due > seq {
                return Some(due - seq);
            }
            let at = start_us + scheduled_us(seq, rate, phase);
            let wait = Duration::from_micros(at.saturating_sub(shared.now_us()));
            tokio::select! {
                _ = shared.stop.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        if plan.witness(s, echo).is_none() {
            return Some(BATCH);
        }
        let acked = shared.acked[s as usize].load(Ordering::SeqCst);
        let room = (acked + plan.window).saturating_sub(seq);
        if room > 0 {
            return Some(room);
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return None,
            _ = shared.wake[s as usize].notified() => {}
        }
    }
}

/// Appends one message as the server expects it: a `Say` frame (native) or
/// the text and a newline (raw).
pub(crate) fn put_message(
    shared: &Shared,
    stamp: &Stamp,
    out: &mut BytesMut,
) -> Result<(), String> {
    let mut text = Vec::with_capacity(shared.plan.size + 1);
    payload::encode_into(stamp, shared.plan.size, &mut text);
    if shared.native {
        let text = String::from_utf8(text).expect("message text is ASCII");
        ClientMsg::Say {
            room: ROOM.to_owned(),
            text,
        }
        .encode(out)
        .map_err(|e| format!("cannot encode a message: {e}"))
    } else {
        out.put_slice(&text);
        out.put_u8(b'\n');
        Ok(())
    }
}
