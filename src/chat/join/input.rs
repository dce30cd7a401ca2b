//! Typed lines from stdin, bounded: a thread reads stdin (blocking, so it
//! never holds up the runtime) and hands each line, without its `\n` or
//! `\r\n`, to a bounded channel. A line longer than the limit comes in
//! pieces cut at character boundaries; invalid UTF-8 becomes U+FFFD. The
//! channel closes at EOF.

use std::io::BufRead;

use tokio::sync::mpsc;

use crate::wire::raw::incomplete_tail_start;

/// Lines queued between the stdin thread and the client.
const QUEUE: usize = 64;

/// Starts the stdin thread; its lines arrive on the returned channel.
pub fn stdin_lines(max: usize) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut carry = Vec::new();
            while let Ok(Some(line)) = read_piece(&mut input, &mut carry, max) {
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot read stdin: {e}");
    }
    rx
}

/// Reads the next line (or piece of a long line) from `r`; `None` at EOF.
/// `carry` holds the start of a character cut at the previous piece's end.
pub fn read_piece<R: BufRead>(
    r: &mut R,
    carry: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<String>> {
    let max = max.max(4);
    let room = max.saturating_sub(carry.len()) as u64;
    let n = std::io::Read::take(&mut *r, room).read_until(b'\n', carry)?;
    if n == 0 && carry.is_empty() {
        return Ok(None);
    }
    let line = if carry.last() == Some(&b'\n') {
        carry.pop();
        if carry.last() == Some(&b'\r') {
            carry.pop();
        }
        std::mem::take(carry)
    } else if n == 0 || carry.len() < max {
        std::mem::take(carry) // EOF without a newline
    } else {
        let tail = carry.split_off(incomplete_tail_start(carry).max(1));
        std::mem::replace(carry, tail)
    };
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn all(input: &[u8], max: usize) -> Vec<String> {
        let mut r = Cursor::new(input.to_vec());
        let mut carry = Vec::new();
        std::iter::from_fn(|| read_piece(&mut r, &mut carry, max).unwrap()).collect()
    }

    #[test]
    fn lines_lose_their_line_ends() {
        assert_eq!(
            all(b"one\r\ntwo\n\nthree", 100),
            ["one", "two", "", "three"]
        );
        assert!(all(b"", 100).is_empty());
    }

    #[test]
    fn long_lines_come_in_pieces_without_cutting_characters() {
        let got = all("aééé\nb".as_bytes(), 4);
        assert_eq!(got, ["aé", "éé", "", "b"]);
        assert_eq!(got.concat(), "aéééb");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(all(b"a\xffb\n", 100), ["a\u{FFFD}b"]);
    }
}
