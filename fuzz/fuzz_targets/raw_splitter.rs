//! Fuzzes `wire::raw::RawSplitter`, which cuts a raw peer's bytes into chat
//! messages.
//!
//! Input: a config byte (bit 7 set: `max_len` 4096, else `max_len` is the low
//! six bits, which the splitter raises to at least 4), a count `k` (0..16) of
//! chunk-size bytes, those `k` bytes (each a read of `byte + 1` bytes, used in
//! turn, cycling), then the stream. `k == 0` feeds the stream as one read.
//!
//! Checked, for every input:
//! 1. no panic; no message is empty or contains `\n`; no message is longer
//!    than `max_len` bytes (of UTF-8, after invalid bytes became U+FFFD);
//!    each message is all or part of the lossy decoding of a run of at most
//!    `max_len` consecutive input bytes;
//! 2. content, whatever the chunking: the messages concatenated, with every
//!    `\r` removed, equal the input split at each `\n` into lines, each line
//!    decoded on its own with `String::from_utf8_lossy`, concatenated, with
//!    every `\r` removed. (Lines are independent: `\n` ends any partial
//!    character. Inside a line the splitter only cuts where lossy decoding of
//!    the parts equals lossy decoding of the whole: at character boundaries,
//!    before an ASCII `\r`, or in the decoded text.) When the stream starts
//!    with `\n` (line mode from the first byte) it holds without removing
//!    every `\r`: the messages concatenated equal the lines, each minus one
//!    trailing `\r` and decoded with `String::from_utf8_lossy`, concatenated;
//! 3. exact messages: equal to a byte-at-a-time model of the module's rules —
//!    a `\n` ends the message (dropping one `\r` before it); until the first
//!    `\n` each read ends a message (keeping back an incomplete trailing
//!    character, dropping one `\r` at the end of the rest); reaching `max_len`
//!    pending bytes emits what ends on a character boundary and keeps the
//!    incomplete character — or, if there is none and the last byte is `\r`,
//!    keeps that `\r` (nothing dropped); flush ends the rest (dropping one
//!    trailing `\r`); each emitted run of bytes is decoded lossily and the
//!    text cut greedily at character boundaries into pieces of at most
//!    `max_len` bytes; empty messages are not emitted;
//! 4. a `\r` right before a `\n` never reaches a message: checked at each
//!    `max_len` cut, where it can be the last byte of what is emitted (3
//!    drops it everywhere else).
//!
//! The inputs of the bugs these checks found are in
//! `fuzz/regressions/raw_splitter/`; `fuzz/README.md` says which are fixed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use soquete::wire::raw::RawSplitter;

/// How the model saw a message end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndedBy {
    Newline,
    Read,
    Cap,
    Flush,
    /// Not the last piece of its run: the decoded text was over `max_len`.
    Decoded,
}

/// One message of the model, with where it came from in the input.
#[derive(Debug)]
struct ModelMsg {
    text: String,
    end: EndedBy,
    /// Input bytes of the run the message was decoded from (all of it or a
    /// piece), after a dropped `\r`.
    source_len: usize,
    /// Input index just past the last of those bytes.
    until: usize,
    /// Whether the run's last byte is `\r` (kept in the text if not dropped).
    source_ends_cr: bool,
}

/// A deliberately simple re-statement of the splitter's rules, one byte at a
/// time, independent of the slicing in `wire::raw`.
struct Model {
    pending: Vec<u8>,
    line_mode: bool,
    max_len: usize,
    out: Vec<ModelMsg>,
}

/// Length of the incomplete-but-valid UTF-8 sequence ending `b` (0 if `b`
/// ends on a complete character or on bytes that can never become one).
fn incomplete_tail_len(b: &[u8]) -> usize {
    match b.utf8_chunks().last() {
        Some(chunk) if !chunk.invalid().is_empty() => match std::str::from_utf8(chunk.invalid()) {
            Err(e) if e.error_len().is_none() => chunk.invalid().len(),
            _ => 0,
        },
        _ => 0,
    }
}

impl Model {
    fn new(max_len: usize) -> Self {
        Self {
            pending: Vec::new(),
            line_mode: false,
            max_len: max_len.max(4),
            out: Vec::new(),
        }
    }

    /// Emits `pending` minus its last `keep` bytes; `strip_cr` drops one
    /// trailing `\r`. `at` is the input index after the last byte seen.
    fn emit(&mut self, keep: usize, strip_cr: bool, end: EndedBy, at: usize) {
        let tail = self.pending.split_off(self.pending.len() - keep);
        let mut run = std::mem::replace(&mut self.pending, tail);
        let until = at - keep;
        if strip_cr && run.last() == Some(&b'\r') {
            run.pop();
        }
        let msg = |text: String, end| ModelMsg {
            text,
            end,
            source_len: run.len(),
            until,
            source_ends_cr: run.last() == Some(&b'\r'),
        };
        // Greedy: each piece takes characters while they fit in `max_len`.
        let mut piece = String::new();
        for c in String::from_utf8_lossy(&run).chars() {
            if piece.len() + c.len_utf8() > self.max_len {
                let full = std::mem::take(&mut piece);
                self.out.push(msg(full, EndedBy::Decoded));
            }
            piece.push(c);
        }
        if !piece.is_empty() {
            self.out.push(msg(piece, end));
        }
    }

    /// One read; `start` is the input index of its first byte.
    fn read(&mut self, chunk: &[u8], start: usize) {
        for (i, &b) in chunk.iter().enumerate() {
            let at = start + i + 1;
            if b == b'\n' {
                self.line_mode = true;
                self.emit(0, true, EndedBy::Newline, at - 1);
            } else {
                self.pending.push(b);
                if self.pending.len() == self.max_len {
                    let mut keep = incomplete_tail_len(&self.pending);
                    if keep == self.pending.len() {
                        keep = 0;
                    }
                    if keep == 0 && b == b'\r' {
                        keep = 1; // a `\n` may follow and drop it
                    }
                    self.emit(keep, false, EndedBy::Cap, at);
                }
            }
        }
        if !self.line_mode {
            let keep = incomplete_tail_len(&self.pending);
            self.emit(keep, true, EndedBy::Read, start + chunk.len());
        }
    }

    fn flush(&mut self, at: usize) {
        self.emit(0, true, EndedBy::Flush, at);
    }
}

fn strip_cr(s: &str) -> String {
    s.chars().filter(|&c| c != '\r').collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let Some((&k, rest)) = rest.split_first() else {
        return;
    };
    let k = usize::from(k % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    let max_len = if config & 0x80 != 0 {
        4096
    } else {
        usize::from(config & 0x3F)
    };
    let effective_max = max_len.max(4);

    let mut splitter = RawSplitter::new(max_len);
    let mut model = Model::new(max_len);
    let mut got = Vec::new();
    let mut start = 0;
    let mut turn = 0;
    while start < stream.len() {
        let size = if sizes.is_empty() {
            stream.len()
        } else {
            usize::from(sizes[turn % sizes.len()]) + 1
        };
        turn += 1;
        let end = (start + size).min(stream.len());
        got.extend(splitter.push(&stream[start..end]));
        model.read(&stream[start..end], start);
        start = end;
    }
    got.extend(splitter.flush());
    model.flush(stream.len());
    assert!(!splitter.has_pending(), "bytes left after flush");

    // 1. Shape of each message.
    for m in &got {
        assert!(!m.is_empty(), "empty message");
        assert!(!m.contains('\n'), "message with a newline: {m:?}");
    }

    // 2. Content, independent of the chunking.
    let lines = || stream.split(|&b| b == b'\n');
    let expected: String = lines()
        .map(|line| strip_cr(&String::from_utf8_lossy(line)))
        .collect();
    assert_eq!(strip_cr(&got.concat()), expected, "content differs");
    if stream.first() == Some(&b'\n') {
        let exact: String = lines()
            .map(|line| String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)))
            .collect();
        assert_eq!(got.concat(), exact, "content differs in line mode");
    }

    // 3. Exact messages.
    let want: Vec<&str> = model.out.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(got, want, "messages differ from the model");

    // 1. (continued) Lengths.
    for m in &got {
        assert!(
            m.len() <= effective_max,
            "message of {} bytes over max_len {effective_max}: {m:?}",
            m.len()
        );
    }
    for m in &model.out {
        assert!(m.source_len <= effective_max, "{m:?} over {effective_max}");
    }

    // 4. No `\r` of a `\r\n` kept at the cut (checked against the model,
    // now known to agree).
    for m in &model.out {
        let kept_cr_before_newline =
            m.end == EndedBy::Cap && m.source_ends_cr && stream.get(m.until) == Some(&b'\n');
        assert!(
            !kept_cr_before_newline,
            "a \\r right before \\n was kept at the max_len cut: {m:?}"
        );
    }
});
