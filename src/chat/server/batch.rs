//! Messages to one room gathered while a session applies a batch of its
//! client's messages, then handed to every member as one buffer per
//! flavour: N messages cost each recipient one queue entry, one wake-up and
//! one write, the way `ncat --chat` relays a whole read. Consecutive
//! messages of one sender become one `ChatRun` frame, so each costs its text
//! and two length bytes on the wire instead of a whole `Chat` frame. No I/O.

use bytes::{Bytes, BytesMut};

use crate::wire::chat::{ChatKind, ChatLine, ChatRun};
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

    /// Adds a room message to the run being gathered if it continues it
    /// (same sender, kind and stamp, the next id); returns whether it did.
    /// The same as [`add`](Self::add) for such a message, without a
    /// [`ChatLine`] to build first.
    pub fn extend_run(
        &mut self,
        id: u64,
        ts_ms: u64,
        kind: ChatKind,
        from: &str,
        text: &str,
    ) -> bool {
        let Some(run) = &mut self.run else {
            return false;
        };
        if !run.continues(id, ts_ms, kind, from, text.len()) {
            return false;
        }
        put_str(&mut run.more, text).expect("texts are within the frame limit");
        run.count += 1;
        true
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
        line.room == self.first.room
            && line.to.is_empty()
            && !line.history
            && self.continues(line.id, line.ts_ms, line.kind, &line.from, line.text.len())
    }

    /// Whether a message to this run's room continues it.
    fn continues(&self, id: u64, ts_ms: u64, kind: ChatKind, from: &str, text_len: usize) -> bool {
        let f = &self.first;
        from == f.from
            && kind == f.kind
            && ts_ms == f.ts_ms
            && id == f.id + u64::from(self.count)
            && self.count < u16::MAX
            // A run stays well inside a client's 64 KiB frame limit.
            && self.more.len() + text_len < 48 * 1024
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
    fn extending_a_run_encodes_as_adding_its_lines() {
        let lines: Vec<ChatLine> = (0..4)
            .map(|i| line(7 + i, "ana", &format!("texto {i}")))
            .collect();
        let mut added = RoomBatch::new("lobby".into(), false);
        lines.iter().for_each(|l| added.add(l));
        let mut extended = RoomBatch::new("lobby".into(), false);
        assert!(
            !extended.extend_run(7, 100, ChatKind::Say, "ana", "x"),
            "no run to extend yet"
        );
        extended.add(&lines[0]);
        for l in &lines[1..] {
            assert!(extended.extend_run(l.id, l.ts_ms, l.kind, &l.from, &l.text));
        }
        assert_eq!(added.finish().0, extended.finish().0);
    }

    #[test]
    fn a_run_is_extended_only_by_what_continues_it() {
        let mut b = RoomBatch::new("lobby".into(), false);
        b.add(&line(1, "ana", "a"));
        assert!(
            !b.extend_run(2, 100, ChatKind::Say, "bo", "b"),
            "another sender"
        );
        assert!(
            !b.extend_run(2, 101, ChatKind::Say, "ana", "b"),
            "another stamp"
        );
        assert!(
            !b.extend_run(2, 100, ChatKind::Action, "ana", "b"),
            "another kind"
        );
        assert!(
            !b.extend_run(3, 100, ChatKind::Say, "ana", "b"),
            "an id skipped"
        );
        assert!(b.extend_run(2, 100, ChatKind::Say, "ana", "b"));
        let big = "x".repeat(4000);
        let mut id = 3;
        while b.extend_run(id, 100, ChatKind::Say, "ana", &big) {
            id += 1;
        }
        assert!(
            id > 3 && id < 20,
            "a run stops short of the frame limit ({id})"
        );
        let expanded: Vec<ServerMsg> = decode(b.finish().0)
            .into_iter()
            .flat_map(ServerMsg::expand)
            .collect();
        assert_eq!(expanded.len() as u64, id - 1);
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
