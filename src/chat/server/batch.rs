//! Messages to one room gathered while a session applies a batch of its
//! client's messages, then handed to every member as one buffer per
//! flavour: N messages cost each recipient one queue entry, one wake-up and
//! one write, the way `ncat --chat` relays a whole read. Consecutive
//! messages of one sender become one `ChatRun` frame, so each costs its text
//! and two length bytes on the wire instead of a whole `Chat` frame. No I/O.

use bytes::{Bytes, BytesMut};

use crate::wire::chat::{ChatLine, ChatRun};
use crate::wire::fields::put_str;

/// Bytes gathered before a batch is sent anyway, so one batch stays a
/// reasonable single write.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Pending messages for one room.
#[derive(Debug)]
pub struct RoomBatch {
    /// The room's key.
    pub key: String,
    /// Finished native frames, back to back.
    native: BytesMut,
    /// The run of messages being gathered.
    run: Option<Run>,
    /// Raw text lines, back to back; only gathered when `want_raw`.
    raw: BytesMut,
    /// Whether the room has raw members (else `raw` stays empty).
    pub want_raw: bool,
}

/// Consecutive messages of one sender with consecutive ids and one stamp.
#[derive(Debug)]
struct Run {
    first: ChatLine,
    count: u16,
    /// The texts after the first, encoded as string fields.
    more: BytesMut,
}

impl RoomBatch {
    pub fn new(key: String, want_raw: bool) -> Self {
        Self {
            key,
            native: BytesMut::new(),
            run: None,
            raw: BytesMut::new(),
            want_raw,
        }
    }

    /// Adds a room message (its native form; the raw form is `add_raw`).
    pub fn add(&mut self, line: &ChatLine) {
        if let Some(run) = &mut self.run
            && run.fits(line)
        {
            put_str(&mut run.more, &line.text).expect("texts are within the frame limit");
            run.count += 1;
            return;
        }
        self.finish_run();
        self.run = Some(Run {
            first: line.clone(),
            count: 1,
            more: BytesMut::new(),
        });
    }

    /// Adds a raw client's form of the message.
    pub fn add_raw(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// Whether the batch should be sent before more is added.
    pub fn is_full(&self) -> bool {
        let run = self.run.as_ref().map_or(0, |r| r.more.len());
        self.native.len() + run + self.raw.len() >= MAX_BATCH_BYTES
    }

    /// The buffers to send: native frames and raw lines (either may be empty).
    pub fn finish(mut self) -> (Bytes, Bytes) {
        self.finish_run();
        (self.native.freeze(), self.raw.freeze())
    }

    fn finish_run(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        let first = &run.first;
        if run.count == 1 {
            first
                .encode_frame(&mut self.native)
                .expect("chat lines are built within the field limits");
            return;
        }
        let mut texts = BytesMut::with_capacity(2 + first.text.len() + run.more.len());
        put_str(&mut texts, &first.text).expect("texts are within the frame limit");
        texts.extend_from_slice(&run.more);
        ChatRun::encode_prepared(
            first.id,
            first.ts_ms,
            first.kind,
            &first.room,
            &first.from,
            run.count,
            &texts,
            &mut self.native,
        )
        .expect("runs are built within the field limits");
    }
}

impl Run {
    fn fits(&self, line: &ChatLine) -> bool {
        let f = &self.first;
        line.from == f.from
            && line.kind == f.kind
            && line.ts_ms == f.ts_ms
            && line.room == f.room
            && line.to.is_empty()
            && !line.history
            && line.id == f.id + u64::from(self.count)
            && self.count < u16::MAX
            // A run stays well inside a client's 64 KiB frame limit.
            && self.more.len() + line.text.len() < 48 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::chat::{ChatKind, ServerMsg};
    use crate::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec};

    fn line(id: u64, from: &str, text: &str) -> ChatLine {
        ChatLine {
            id,
            ts_ms: 100,
            kind: ChatKind::Say,
            history: false,
            room: "lobby".into(),
            from: from.into(),
            to: String::new(),
            text: text.into(),
        }
    }

    fn decode(b: Bytes) -> Vec<ServerMsg> {
        let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::from(&b[..]);
        let mut out = Vec::new();
        while let Some(f) = codec.decode_frame(&mut buf).unwrap() {
            out.push(ServerMsg::decode(&f).unwrap());
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn one_sender_burst_becomes_one_run_that_expands_back() {
        let mut b = RoomBatch::new("lobby".into(), false);
        let lines: Vec<ChatLine> = (0..5)
            .map(|i| line(10 + i, "ana", &format!("m{i}")))
            .collect();
        lines.iter().for_each(|l| b.add(l));
        let (native, raw) = b.finish();
        assert!(raw.is_empty());
        let msgs = decode(native);
        assert_eq!(msgs.len(), 1, "one frame");
        let expanded: Vec<ServerMsg> = msgs.into_iter().flat_map(ServerMsg::expand).collect();
        let want: Vec<ServerMsg> = lines.into_iter().map(ServerMsg::Chat).collect();
        assert_eq!(expanded, want);
    }

    #[test]
    fn senders_alternating_keep_their_order() {
        let mut b = RoomBatch::new("lobby".into(), false);
        let lines = [
            line(1, "ana", "a1"),
            line(2, "ana", "a2"),
            line(3, "bo", "b1"),
            line(4, "ana", "a3"),
        ];
        lines.iter().for_each(|l| b.add(l));
        let frames = decode(b.finish().0);
        assert_eq!(frames.len(), 3);
        let texts: Vec<String> = frames
            .into_iter()
            .flat_map(ServerMsg::expand)
            .map(|m| match m {
                ServerMsg::Chat(c) => c.text,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(texts, ["a1", "a2", "b1", "a3"]);
    }

    #[test]
    fn a_lone_message_stays_a_chat_frame() {
        let mut b = RoomBatch::new("lobby".into(), false);
        b.add(&line(1, "ana", "só"));
        assert!(matches!(&decode(b.finish().0)[..], [ServerMsg::Chat(c)] if c.text == "só"));
    }

    #[test]
    fn the_chapter_message_costs_33_bytes_in_a_run() {
        let text = "Olá turma de redes industriais";
        let mut one = RoomBatch::new("lobby".into(), false);
        one.add(&line(1, "ana", text));
        one.add(&line(2, "ana", text));
        let two = one.finish().0.len();
        let mut three = RoomBatch::new("lobby".into(), false);
        (1..=3).for_each(|i| three.add(&line(i, "ana", text)));
        assert_eq!(three.finish().0.len() - two, 2 + 31);
    }
}
