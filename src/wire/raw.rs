//! Turns the unframed bytes of a raw chat peer into text messages.
//!
//! Raw peers are the chapter's `Cliente.py` (one `send` per message, no
//! newline), `nc` and `telnet` (lines ending in `\n` or `\r\n`), and raw chat
//! servers (`Servidor.py`, `ncat --chat`). TCP may split or coalesce their
//! sends, so the rules are:
//! - a `\n` ends a message (a `\r` before it is dropped);
//! - until a peer has sent a newline, each read is one message (that is how
//!   the chapter's client frames, by luck); once it has, an unterminated tail
//!   waits for its newline, for [`RawSplitter::flush`], or for the length cap;
//! - a UTF-8 character split across reads is put back together; invalid bytes
//!   become U+FFFD; a message never exceeds `max_len` bytes (longer input is
//!   cut at a character boundary into several messages, nothing is dropped);
//! - empty lines are not messages.
//!
//! No I/O: bytes in, strings out.

/// Splits raw bytes into messages. See the module docs for the rules.
#[derive(Debug)]
pub struct RawSplitter {
    /// Bytes of the current, unterminated message (valid UTF-8 or a partial
    /// trailing character).
    pending: Vec<u8>,
    /// Whether this peer ends its messages with newlines.
    line_mode: bool,
    /// Longest message in bytes.
    max_len: usize,
}

impl RawSplitter {
    pub fn new(max_len: usize) -> Self {
        Self {
            pending: Vec::new(),
            line_mode: false,
            max_len: max_len.max(4),
        }
    }

    /// Whether the peer has shown it ends messages with `\n`.
    pub fn is_line_mode(&self) -> bool {
        self.line_mode
    }

    /// Feeds the bytes of one read; returns the messages they complete.
    pub fn push(&mut self, read: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = read;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.line_mode = true;
            self.append(&rest[..pos], &mut out);
            self.finish_message(&mut out, true);
            rest = &rest[pos + 1..];
        }
        self.append(rest, &mut out);
        if !self.line_mode {
            // One read, one message -- but keep a split trailing character.
            self.finish_message(&mut out, false);
        }
        out
    }

    /// Ends the current message (at EOF, or when the peer went quiet).
    /// Several messages when the tail decodes to more than `max_len` bytes.
    pub fn flush(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.finish_message(&mut out, true);
        out
    }

    /// Whether bytes are waiting for a newline.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn append(&mut self, mut bytes: &[u8], out: &mut Vec<String>) {
        while !bytes.is_empty() {
            let room = self.max_len.saturating_sub(self.pending.len());
            if bytes.len() < room {
                self.pending.extend_from_slice(bytes);
                return;
            }
            self.pending.extend_from_slice(&bytes[..room]);
            bytes = &bytes[room..];
            // Cap reached: emit what ends on a character boundary, keep the
            // rest -- and keep a final `\r` too, in case a `\n` follows it.
            let mut cut = char_boundary_cut(&self.pending);
            if cut == self.pending.len() && cut > 1 && self.pending[cut - 1] == b'\r' {
                cut -= 1;
            }
            let tail = self.pending.split_off(cut);
            push_text(&self.pending, self.max_len, out);
            self.pending = tail;
        }
    }

    /// Emits `pending` as a message. With `complete == false` an incomplete
    /// trailing UTF-8 sequence stays behind for the next read.
    fn finish_message(&mut self, out: &mut Vec<String>, complete: bool) {
        let cut = if complete {
            self.pending.len()
        } else {
            incomplete_tail_start(&self.pending)
        };
        let tail = self.pending.split_off(cut);
        let mut line = std::mem::replace(&mut self.pending, tail);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        push_text(&line, self.max_len, out);
    }
}

/// Emits `bytes` as text. Each invalid byte becomes U+FFFD (3 bytes), so the
/// decoded text may be longer than its bytes: it is cut again at character
/// boundaries to stay within `max_len`.
fn push_text(bytes: &[u8], max_len: usize, out: &mut Vec<String>) {
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    while rest.len() > max_len {
        let mut cut = max_len;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
}

/// Where an incomplete UTF-8 sequence at the end of `b` starts (`b.len()` if
/// the buffer ends on a complete character or on bytes that can never become
/// one).
pub fn incomplete_tail_start(b: &[u8]) -> usize {
    // A UTF-8 character is at most 4 bytes: look at the last 3 for a lead byte.
    for back in 1..=3.min(b.len()) {
        let i = b.len() - back;
        let byte = b[i];
        if byte & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead
        }
        let need = match byte {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return b.len(),
        };
        return if back < need && std::str::from_utf8(&b[i..]).is_err() {
            // Only incomplete if what is there is a valid prefix.
            if valid_prefix(&b[i..]) { i } else { b.len() }
        } else {
            b.len()
        };
    }
    b.len()
}

/// Whether `b` (a lead byte and continuation bytes) can still become a valid
/// character.
fn valid_prefix(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Largest cut point `<= b.len()` that does not split a character; for
/// invalid data the whole buffer.
fn char_boundary_cut(b: &[u8]) -> usize {
    let cut = incomplete_tail_start(b);
    if cut == 0 { b.len() } else { cut }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_is_a_message_until_a_newline_is_seen() {
        let mut s = RawSplitter::new(4096);
        assert_eq!(s.push(b"one"), vec!["one"]);
        assert_eq!(s.push(b"two"), vec!["two"]);
        assert!(!s.is_line_mode());
    }

    #[test]
    fn coalesced_sends_of_the_script_stay_one_message() {
        let mut s = RawSplitter::new(4096);
        assert_eq!(s.push(b"onetwo"), vec!["onetwo"]);
    }

    #[test]
    fn lines_split_at_newlines_and_crlf_is_stripped() {
        let mut s = RawSplitter::new(4096);
        assert_eq!(s.push(b"a\r\nb\nc"), vec!["a", "b"]);
        assert!(s.has_pending());
        assert_eq!(s.push(b"d\n"), vec!["cd"]);
    }

    #[test]
    fn tail_is_flushed_at_eof() {
        let mut s = RawSplitter::new(4096);
        s.push(b"x\nhalf");
        assert_eq!(s.flush(), vec!["half"]);
        assert!(s.flush().is_empty());
    }

    #[test]
    fn empty_lines_are_not_messages() {
        let mut s = RawSplitter::new(4096);
        assert_eq!(s.push(b"\n\r\n\nhi\n"), vec!["hi"]);
    }

    #[test]
    fn utf8_split_across_reads_is_reassembled() {
        let text = "Olá turma de redes industriais".as_bytes();
        for cut in 0..=text.len() {
            let mut s = RawSplitter::new(4096);
            let mut got = s.push(&text[..cut]);
            got.extend(s.push(&text[cut..]));
            got.extend(s.flush());
            // Script mode: two reads are two messages, but no character is
            // damaged and nothing is lost.
            assert_eq!(got.concat(), "Olá turma de redes industriais", "cut {cut}");
            assert!(!got.concat().contains('\u{FFFD}'), "cut {cut}");
        }
    }

    #[test]
    fn utf8_split_in_line_mode_is_reassembled() {
        let text = "é\nçã\n".as_bytes();
        for cut in 0..=text.len() {
            let mut s = RawSplitter::new(4096);
            s.push(b"\n");
            let mut got = s.push(&text[..cut]);
            got.extend(s.push(&text[cut..]));
            assert_eq!(got, vec!["é", "çã"], "cut {cut}");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut s = RawSplitter::new(4096);
        assert_eq!(s.push(b"a\xFFb"), vec!["a\u{FFFD}b"]);
        assert_eq!(s.push(b"\xC3\x28\n"), vec!["\u{FFFD}("]);
    }

    #[test]
    fn long_input_is_cut_into_pieces_without_loss() {
        let mut s = RawSplitter::new(8);
        let got = s.push("ééééé\n".as_bytes()); // 10 bytes of text
        assert_eq!(got, vec!["éééé", "é"]);
        let mut got = s.push(&[b'x'; 20]);
        got.extend(s.flush()); // line mode: the unterminated tail waits
        assert_eq!(got.concat(), "x".repeat(20));
        assert!(got.iter().all(|m| m.len() <= 8));
    }

    #[test]
    fn flush_returns_every_piece_of_a_long_tail() {
        let mut s = RawSplitter::new(4);
        assert!(s.push(b"\n\xFF\xFF").is_empty());
        assert_eq!(s.flush(), vec!["\u{FFFD}", "\u{FFFD}"]);
    }

    #[test]
    fn crlf_at_the_length_cap_loses_the_cr() {
        let mut s = RawSplitter::new(4);
        assert_eq!(s.push(b"abc\r\n"), vec!["abc"]);
        let mut s = RawSplitter::new(4);
        s.push(b"\n");
        assert_eq!(s.push(b"abc\rd\n"), vec!["abc", "\rd"]);
    }

    #[test]
    fn replacement_characters_do_not_exceed_the_cap() {
        let mut s = RawSplitter::new(5);
        let got = s.push(&[0x8A, 0xB7]);
        assert_eq!(got.concat(), "\u{FFFD}\u{FFFD}");
        assert!(got.iter().all(|m| m.len() <= 5), "{got:?}");
        let mut s = RawSplitter::new(4096);
        let mut got = s.push(&[0xE9; 4096]);
        got.extend(s.flush()); // the last 0xE9 could still start a character
        assert!(got.iter().all(|m| m.len() <= 4096));
        assert_eq!(got.concat().chars().count(), 4096);
    }

    #[test]
    fn incomplete_tail_detection() {
        assert_eq!(incomplete_tail_start("aé".as_bytes()), 3);
        assert_eq!(incomplete_tail_start(&[b'a', 0xC3]), 1);
        assert_eq!(incomplete_tail_start(&[b'a', 0xE2, 0x82]), 1);
        assert_eq!(incomplete_tail_start(&[0xF0, 0x9F, 0x98]), 0);
        assert_eq!(incomplete_tail_start(&[b'a', 0xFF]), 2);
        assert_eq!(incomplete_tail_start(&[b'a', 0x80]), 2);
    }
}
