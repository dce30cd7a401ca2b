//! The self-describing text of one benchmark message, and finding it again
//! in whatever a server delivers.
//!
//! A message reads `~@S.Q.T.CC----`: a marker (`~@` for data, `~?` for
//! the probes that check every client is listening; two bytes, so server
//! chatter such as `welcome, guest-1!` does not look like a message, and
//! at least one that chat text rarely holds), the sender's number, its
//! sequence number and its send time in microseconds since the benchmark
//! began, in base 62, a two-digit check of those, then `-` padding up to
//! the requested size. None of the digits, dots or dashes is a marker, so a
//! receiver finds the message from the *last* marker of a line even behind
//! a prefix (`<user4> ` of `ncat --chat`, `name: ` of a relaying server) or
//! behind the torn remains of another message. The check catches pieces of
//! two messages that happen to splice into the right shape (a server that
//! interleaves its relays mid-message, as the chapter's does with several
//! senders, makes such splices). No I/O.

/// First byte of every marker.
const LEAD: u8 = b'~';
/// Second byte: a data message.
const DATA: u8 = b'@';
/// Second byte: a probe (sent before the run to learn who hears whom).
const PROBE: u8 = b'?';
const SEP: u8 = b'.';
const PAD: u8 = b'-';
const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Counted and timed.
    Data,
    /// Only shows that its receiver hears its sender.
    Probe,
}

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub kind: Kind,
    /// Index of the sending client.
    pub sender: u32,
    /// Sequence number within that sender's messages.
    pub seq: u64,
    /// Send time, microseconds since the benchmark's epoch.
    pub sent_us: u64,
}

/// What a received line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A whole message.
    Message(Stamp),
    /// No marker: server chatter such as `ncat`'s `<announce>` lines.
    Other,
    /// A marker, but not a whole message of the expected size: torn or mixed.
    Garbled,
}

/// Digits of the check.
const CHECK_DIGITS: usize = 2;

/// Bytes of a stamp before the padding.
pub(crate) fn header_len(stamp: &Stamp) -> usize {
    5 + digits_len(u64::from(stamp.sender))
        + digits_len(stamp.seq)
        + digits_len(stamp.sent_us)
        + CHECK_DIGITS
}

/// A hash of the stamp, `0..62²` (FNV-1a over its fields).
fn check(stamp: &Stamp) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let kind = u64::from(stamp.kind == Kind::Probe);
    for v in [kind, u64::from(stamp.sender), stamp.seq, stamp.sent_us] {
        for b in v.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h % (62 * 62)
}

/// Appends the `size`-byte text of `stamp` to `out`. The caller checks
/// beforehand that the size fits ([`header_len`] of the largest stamp).
pub(crate) fn encode_into(stamp: &Stamp, size: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(LEAD);
    out.push(match stamp.kind {
        Kind::Data => DATA,
        Kind::Probe => PROBE,
    });
    put_digits(u64::from(stamp.sender), out);
    out.push(SEP);
    put_digits(stamp.seq, out);
    out.push(SEP);
    put_digits(stamp.sent_us, out);
    out.push(SEP);
    let c = check(stamp);
    out.extend_from_slice(&[DIGITS[(c / 62) as usize], DIGITS[(c % 62) as usize]]);
    let used = out.len() - start;
    out.resize(start + size.max(used), PAD);
}

/// Looks for a message of `size` bytes in one received line (without its
/// newline; a trailing `\r` is ignored).
pub(crate) fn find(line: &[u8], size: usize) -> Found {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let is_marker = |w: &[u8]| w[0] == LEAD && (w[1] == DATA || w[1] == PROBE);
    // A native delivery is the message text alone: no search needed.
    if line.len() == size && line.len() >= 2 && is_marker(&line[..2]) {
        return match parse(line) {
            Some(stamp) => Found::Message(stamp),
            None => Found::Garbled,
        };
    }
    let Some(at) = line.windows(2).rposition(is_marker) else {
        return Found::Other;
    };
    let text = &line[at..];
    if text.len() != size {
        return Found::Garbled;
    }
    match parse(text) {
        Some(stamp) => Found::Message(stamp),
        None => Found::Garbled,
    }
}

fn parse(text: &[u8]) -> Option<Stamp> {
    let kind = match text[1] {
        DATA => Kind::Data,
        _ => Kind::Probe,
    };
    let mut fields = text[2..].split(|&b| b == SEP);
    let sender = u32::try_from(read_digits(fields.next()?)?).ok()?;
    let seq = read_digits(fields.next()?)?;
    let sent_us = read_digits(fields.next()?)?;
    let last = fields.next()?;
    if fields.next().is_some() || last.len() < CHECK_DIGITS {
        return None;
    }
    let (digits, pad) = last.split_at(CHECK_DIGITS);
    if !pad.iter().all(|&b| b == PAD) {
        return None;
    }
    let stamp = Stamp {
        kind,
        sender,
        seq,
        sent_us,
    };
    (read_digits(digits)? == check(&stamp)).then_some(stamp)
}

fn digits_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 62 {
        v /= 62;
        n += 1;
    }
    n
}

fn put_digits(v: u64, out: &mut Vec<u8>) {
    let mut tmp = [0u8; 11];
    let mut i = tmp.len();
    let mut v = v;
    loop {
        i -= 1;
        tmp[i] = DIGITS[(v % 62) as usize];
        v /= 62;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn read_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 11 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(sender: u32, seq: u64, sent_us: u64) -> Stamp {
        Stamp {
            kind: Kind::Data,
            sender,
            seq,
            sent_us,
        }
    }

    fn text(stamp: &Stamp, size: usize) -> Vec<u8> {
        let mut v = Vec::new();
        encode_into(stamp, size, &mut v);
        v
    }

    #[test]
    fn round_trips_at_the_requested_size() {
        for s in [
            data(0, 0, 0),
            data(9_999, 1_000_000, 120_000_000),
            data(u32::MAX, u64::MAX, u64::MAX),
        ] {
            let size = header_len(&s) + 7;
            let t = text(&s, size);
            assert_eq!(t.len(), size);
            assert_eq!(find(&t, size), Found::Message(s));
        }
    }

    #[test]
    fn a_header_filling_the_size_exactly_has_no_padding() {
        let s = data(61, 62, 3_843);
        let size = header_len(&s);
        let t = text(&s, size);
        assert_eq!(&t[..10], b"~@z.10.zz.");
        assert_eq!(t.len(), 12);
        assert_eq!(find(&t, size), Found::Message(s));
    }

    #[test]
    fn a_splice_of_two_messages_fails_the_check() {
        // The chapter's server can put sender 1's "~@1" before the rest of
        // sender 3's message, which has the same sequence and time.
        let a = text(&data(1, 62, 5_000), 32);
        let b = text(&data(3, 62, 5_000), 32);
        let mut splice = a[..3].to_vec();
        splice.extend_from_slice(&b[3..]);
        assert_eq!(splice.len(), 32);
        assert_eq!(find(&splice, 32), Found::Garbled);
    }

    #[test]
    fn found_behind_an_ncat_prefix_and_before_a_cr() {
        let s = data(3, 17, 123_456);
        let mut line = b"<user4> ".to_vec();
        line.extend(text(&s, 32));
        line.push(b'\r');
        assert_eq!(find(&line, 32), Found::Message(s));
    }

    #[test]
    fn probes_are_told_from_data() {
        let p = Stamp {
            kind: Kind::Probe,
            ..data(0, 2, 5)
        };
        assert_eq!(find(&text(&p, 20), 20), Found::Message(p));
    }

    #[test]
    fn a_torn_message_followed_by_a_whole_one_yields_the_whole_one() {
        let a = text(&data(1, 5, 99), 32);
        let b = data(2, 6, 100);
        let mut line = a[..13].to_vec();
        line.extend(text(&b, 32));
        assert_eq!(find(&line, 32), Found::Message(b));
    }

    #[test]
    fn torn_or_resized_messages_are_garbled() {
        let t = text(&data(1, 5, 99), 32);
        assert_eq!(find(&t[..20], 32), Found::Garbled);
        assert_eq!(find(&t, 33), Found::Garbled);
        let mut bad = t.clone();
        bad[30] = b'x';
        assert_eq!(find(&bad, 32), Found::Garbled);
        assert_eq!(find(b"~@1.2", 5), Found::Garbled);
        assert_eq!(find(b"~@1.2.3.4", 9), Found::Garbled);
        assert_eq!(find(b"~@1.2.3.4.5", 11), Found::Garbled);
        assert_eq!(find(b"~@..3", 5), Found::Garbled);
    }

    #[test]
    fn lines_without_a_marker_are_other() {
        assert_eq!(
            find(b"<announce> 127.0.0.1 is connected as <user5>.", 32),
            Found::Other
        );
        assert_eq!(find(b"", 32), Found::Other);
        assert_eq!(find(b"~", 32), Found::Other);
        assert_eq!(
            find(
                b"* welcome, guest-1! you are in lobby; mail me @ home ~",
                32
            ),
            Found::Other
        );
    }

    #[test]
    fn digits_overflowing_u64_are_garbled() {
        assert_eq!(read_digits(b"zzzzzzzzzzz"), None);
        assert_eq!(read_digits(b"LygHa16AHYF"), Some(u64::MAX));
    }
}
