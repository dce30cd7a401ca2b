//! Fuzzes `secure::fernet_wire::TokenSplitter`, which cuts a stream of
//! back-to-back Fernet tokens apart by checking each one's HMAC.
//!
//! Input: a byte `m` (the splitter takes texts up to `4*m` bytes, so tokens
//! of 1 to 64 blocks), a count `c` (`byte % 17`) of chunk-size bytes, those
//! `c` bytes (reads of `byte + 1` bytes, used in turn, cycling; none: one
//! read), then a script of segments, each started by a byte `o`:
//! - `o < 0xC0`: a valid token (signed with a fixed key) of `o % 64 + 1`
//!   blocks, its timestamp, IV and ciphertext taken from the next input
//!   bytes (zeros once the input runs out);
//! - `o >= 0xC0`: `o - 0xC0` bytes of junk, copied from the input.
//!
//! After the script comes one more valid token of 1 block (it ends in `==`,
//! which settles any junk still undecided before it).
//!
//! Checked, for every input (unless it forges HMAC-SHA256):
//! 1. no panic;
//! 2. every token returned is a valid token: a length of the form
//!    `4*ceil((57+16k)/3)` with `k` no more than the limit allows, padded
//!    canonical base64url of bytes that start with 0x80 and end with the
//!    HMAC-SHA256 (first half of the key) of the rest;
//! 3. nothing invented or lost: the returned tokens and the skipped byte
//!    counts, in order, tile a prefix of the stream exactly (each token is
//!    the stream's bytes at that point), and the buffer holds the rest;
//!    at the end nothing is left;
//! 4. every valid token the script put in that fits the limit comes out, in
//!    order (others may too: junk can hold copies); with no junk and every
//!    token within the limit, exactly those tokens come out;
//! 5. the same tokens come out, and as many bytes are skipped in total,
//!    when the stream is read whole.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use soquete::secure::fernet_wire::{TokenError, TokenSplitter};

const KEY: [u8; 32] = [7; 32];

fn mac() -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(&KEY[..16]).unwrap()
}

/// Bytes of a token holding `k` blocks.
fn len_of_blocks(k: usize) -> usize {
    4 * (57 + 16 * k).div_ceil(3)
}

/// A valid token of `k` blocks; its fields come from `input` (zeros after).
fn make_token(k: usize, input: &mut &[u8]) -> Vec<u8> {
    let n = 8 + 16 + 16 * k;
    let take = n.min(input.len());
    let mut raw = vec![0x80];
    raw.extend_from_slice(&input[..take]);
    raw.resize(1 + n, 0);
    *input = &input[take..];
    let mut m = mac();
    m.update(&raw);
    raw.extend_from_slice(&m.finalize().into_bytes());
    URL_SAFE.encode(raw).into_bytes()
}

/// Check 2: `token` is a valid token of at most `max_blocks` blocks.
fn check_valid(token: &[u8], max_blocks: usize) {
    let k = (1..=max_blocks)
        .find(|&k| len_of_blocks(k) == token.len())
        .unwrap_or_else(|| panic!("token of {} bytes has no valid length", token.len()));
    let raw = URL_SAFE.decode(token).expect("padded canonical base64url");
    assert_eq!(raw.len(), 57 + 16 * k);
    assert_eq!(raw[0], 0x80);
    let (signed, tag) = raw.split_at(raw.len() - 32);
    let mut m = mac();
    m.update(signed);
    m.verify_slice(tag).expect("the HMAC verifies");
}

/// What the splitter gave, in order.
#[derive(Debug, PartialEq)]
enum Out {
    Token(Bytes),
    Skipped(usize),
}

/// Feeds `stream` in reads of the given sizes (cycling; empty: one read),
/// collecting everything `decode` gives; returns it and what is left.
fn run(stream: &[u8], sizes: &[u8], max_text: usize) -> (Vec<Out>, BytesMut) {
    let mut s = TokenSplitter::new(&KEY, max_text);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let n = match sizes {
            [] => stream.len(),
            _ => usize::from(sizes[i % sizes.len()]) + 1,
        };
        i += 1;
        let end = (at + n).min(stream.len());
        buf.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            match s.decode(&mut buf) {
                Ok(Some(t)) => out.push(Out::Token(t)),
                Ok(None) => break,
                Err(TokenError { skipped, .. }) => {
                    assert!(skipped > 0, "an error skips at least one byte");
                    out.push(Out::Skipped(skipped));
                }
            }
        }
    }
    (out, buf)
}

fn tokens(out: &[Out]) -> Vec<&Bytes> {
    out.iter()
        .filter_map(|o| match o {
            Out::Token(t) => Some(t),
            Out::Skipped(_) => None,
        })
        .collect()
}

fn skipped(out: &[Out]) -> usize {
    out.iter()
        .map(|o| match o {
            Out::Skipped(n) => *n,
            Out::Token(_) => 0,
        })
        .sum()
}

fuzz_target!(|data: &[u8]| {
    let [m, c, rest @ ..] = data else { return };
    let max_text = usize::from(*m) * 4;
    let max_blocks = max_text / 16 + 1;
    let c = usize::from(*c % 17).min(rest.len());
    let (sizes, mut script) = rest.split_at(c);

    let mut stream = Vec::new();
    let mut fitting = Vec::new();
    let mut clean = true;
    while let [o, tail @ ..] = script {
        script = tail;
        if *o < 0xC0 {
            let k = usize::from(*o % 64) + 1;
            let token = make_token(k, &mut script);
            stream.extend_from_slice(&token);
            if k <= max_blocks {
                fitting.push(token);
            } else {
                clean = false;
            }
        } else {
            let n = usize::from(*o - 0xC0).min(script.len());
            stream.extend_from_slice(&script[..n]);
            script = &script[n..];
            clean &= n == 0;
        }
    }
    let last = make_token(1, &mut &[][..]);
    stream.extend_from_slice(&last);
    fitting.push(last);

    let (out, left) = run(&stream, sizes, max_text);

    // 2 and 3.
    let mut at = 0;
    for o in &out {
        match o {
            Out::Token(t) => {
                check_valid(t, max_blocks);
                assert_eq!(&stream[at..at + t.len()], &t[..], "token at byte {at}");
                at += t.len();
            }
            Out::Skipped(n) => at += n,
        }
    }
    assert_eq!(&stream[at..], &left[..], "the buffer holds the rest");
    assert!(left.is_empty(), "the final padded token settles everything");

    // 4.
    let got = tokens(&out);
    let mut want = fitting.iter().peekable();
    for t in &got {
        if want.peek().is_some_and(|w| w[..] == t[..]) {
            want.next();
        }
    }
    assert!(want.peek().is_none(), "a valid token was lost");
    if clean {
        assert_eq!(got.len(), fitting.len(), "no junk: exactly the tokens");
    }

    // 5.
    let (whole, _) = run(&stream, &[], max_text);
    assert_eq!(tokens(&whole), got, "same tokens read whole");
    assert_eq!(
        skipped(&whole),
        skipped(&out),
        "same bytes skipped read whole"
    );
});
