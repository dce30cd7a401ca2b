//! The bytes of one ping probe: printable ASCII that any plain echo server
//! (the chapter's, `ncat -e /bin/cat`, ours) returns unchanged, carrying the
//! probe's sequence number so a UDP reply can be matched to its probe.
//!
//! Layout: the sequence number as ten decimal digits, a space, then letters
//! `a..z` cycling from an offset that depends on the sequence number, cut to
//! the probe size. A probe shorter than eleven bytes keeps the *last* digits
//! of the number, so consecutive probes still differ. No I/O here.

/// Digits of the sequence-number field (`u32::MAX` has ten).
const SEQ_DIGITS: usize = 10;

/// Bytes before the filler: the digits and one space.
const HEADER_LEN: usize = SEQ_DIGITS + 1;

/// Builds the payload of probe `seq`, exactly `size` bytes long.
pub fn payload(seq: u32, size: usize) -> Vec<u8> {
    let digits = format!("{seq:0SEQ_DIGITS$}");
    if size < HEADER_LEN {
        return digits.as_bytes()[SEQ_DIGITS - size.min(SEQ_DIGITS)..].to_vec();
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(digits.as_bytes());
    out.push(b' ');
    let offset = (seq % 26) as usize;
    out.extend((0..size - HEADER_LEN).map(|i| b'a' + ((offset + i) % 26) as u8));
    out
}

/// The sequence number a reply claims to answer, when it is long enough to
/// carry the whole field and the field is well formed.
pub fn seq_of(reply: &[u8]) -> Option<u32> {
    let field = reply.get(..HEADER_LEN)?;
    if field[SEQ_DIGITS] != b' ' || !field[..SEQ_DIGITS].iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&field[..SEQ_DIGITS]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_the_requested_size_and_is_printable_ascii() {
        for size in [1, 5, 10, 11, 12, 56, 1000, 65_000] {
            let p = payload(7, size);
            assert_eq!(p.len(), size);
            assert!(p.iter().all(|b| b.is_ascii_graphic() || *b == b' '));
        }
    }

    #[test]
    fn payload_starts_with_the_sequence_number() {
        assert_eq!(&payload(42, 16), b"0000000042 qrstu");
        assert_eq!(seq_of(&payload(42, 16)), Some(42));
        assert_eq!(seq_of(&payload(u32::MAX, 11)), Some(u32::MAX));
    }

    #[test]
    fn short_probes_keep_the_last_digits() {
        assert_eq!(payload(123, 2), b"23");
        assert_eq!(payload(123, 10), b"0000000123");
        assert_ne!(payload(1, 1), payload(2, 1));
    }

    #[test]
    fn consecutive_probes_differ_throughout_the_filler() {
        let (a, b) = (payload(1, 100), payload(2, 100));
        assert!(
            a[HEADER_LEN..]
                .iter()
                .zip(&b[HEADER_LEN..])
                .all(|(x, y)| x != y)
        );
    }

    #[test]
    fn seq_of_rejects_short_or_foreign_replies() {
        assert_eq!(seq_of(b"0000000042"), None);
        assert_eq!(seq_of(b"hello world, this is not a probe"), None);
        assert_eq!(seq_of(b"00000000x2 abc"), None);
        assert_eq!(seq_of(b"9999999999 abc"), None); // above u32::MAX
    }
}
