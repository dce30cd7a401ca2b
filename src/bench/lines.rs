//! Splits the bytes a raw chat server sends into newline-terminated lines,
//! however TCP cut or glued them, without copying.
//!
//! Lines longer than the cap are skipped whole and reported once, so a
//! server that never sends a newline cannot make a receiver buffer without
//! bound. No I/O.

use bytes::{Buf, BytesMut};

/// One line taken off the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// The line's bytes, without `\n`.
    Text(&'a [u8]),
    /// A line over the cap, dropped.
    Overlong,
}

/// Takes complete lines off the front of a read buffer.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    /// Longest line kept, in bytes.
    max_line: usize,
    /// Bytes at the front of the buffer already known to hold no newline.
    scanned: usize,
    /// Inside a line that went over the cap: drop bytes up to its newline.
    skipping: bool,
}

impl LineSplitter {
    pub(crate) fn new(max_line: usize) -> Self {
        Self {
            max_line,
            scanned: 0,
            skipping: false,
        }
    }

    /// Calls `on_line` for every complete line in `buf` and removes them;
    /// an unterminated tail stays for the next read.
    pub(crate) fn drain(&mut self, buf: &mut BytesMut, mut on_line: impl FnMut(Line<'_>)) {
        loop {
            let Some(pos) = buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = buf.len();
                if buf.len() > self.max_line {
                    self.skipping = true;
                    buf.clear();
                    self.scanned = 0;
                }
                return;
            };
            let end = self.scanned + pos;
            if self.skipping || end > self.max_line {
                on_line(Line::Overlong);
                self.skipping = false;
            } else {
                on_line(Line::Text(&buf[..end]));
            }
            buf.advance(end + 1);
            self.scanned = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut s = LineSplitter::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            s.drain(&mut buf, |l| match l {
                Line::Text(t) => out.push(Ok(t.to_vec())),
                Line::Overlong => out.push(Err(())),
            });
        }
        out
    }

    #[test]
    fn split_at_every_byte_boundary_gives_the_same_lines() {
        let input = b"<user4> @1.2.3--\nhello\n\n@0.0.0\n";
        let whole = lines_of(&[input], 64);
        assert_eq!(whole.len(), 4);
        for cut in 0..=input.len() {
            assert_eq!(lines_of(&[&input[..cut], &input[cut..]], 64), whole);
        }
    }

    #[test]
    fn unterminated_tail_waits_for_its_newline() {
        let got = lines_of(&[b"ab", b"c", b"d\nef"], 64);
        assert_eq!(got, vec![Ok(b"abcd".to_vec())]);
    }

    #[test]
    fn overlong_line_is_reported_once_and_the_next_line_survives() {
        let got = lines_of(&[b"0123456789", b"0123456789", b"xx\nok\n"], 8);
        assert_eq!(got, vec![Err(()), Ok(b"ok".to_vec())]);
        let got = lines_of(&[b"0123456789\nok\n"], 8);
        assert_eq!(got, vec![Err(()), Ok(b"ok".to_vec())]);
    }

    #[test]
    fn buffer_never_grows_past_the_cap_without_a_newline() {
        let mut s = LineSplitter::new(16);
        let mut buf = BytesMut::new();
        for _ in 0..100 {
            buf.extend_from_slice(&[b'a'; 7]);
            s.drain(&mut buf, |_| {});
            assert!(buf.len() <= 16 + 7);
        }
    }
}
