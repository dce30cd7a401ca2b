//! Tests of the token splitter and the key parser, against tokens the
//! `fernet` crate makes.

use super::*;
use fernet::Fernet;

const MAX: usize = 4096;

fn keyed() -> (Fernet, [u8; 32]) {
    let text = Fernet::generate_key();
    let key = parse_key(text.as_bytes()).unwrap().unwrap();
    (Fernet::new(&text).unwrap(), key)
}

/// Everything `decode` gives for `buf` until it needs more.
fn drain(s: &mut TokenSplitter, buf: &mut BytesMut) -> Vec<Result<Bytes, TokenError>> {
    let mut out = Vec::new();
    while let Some(r) = s.decode(buf).transpose() {
        out.push(r);
    }
    out
}

fn tokens_of(results: Vec<Result<Bytes, TokenError>>) -> Vec<Bytes> {
    results.into_iter().map(|r| r.unwrap()).collect()
}

/// Texts whose tokens have 1 to 5 blocks, so every padding (2, 1, 0 `=`).
fn sample_tokens(f: &Fernet) -> Vec<String> {
    [
        "OK",
        "Olá turma de redes",
        &"x".repeat(40),
        &"y".repeat(48),
        "",
        &"z".repeat(70),
    ]
    .iter()
    .map(|t| f.encrypt(t.as_bytes()))
    .collect()
}

#[test]
fn token_lengths_follow_the_chapter_formula() {
    assert_eq!(token_len(2), 100);
    assert_eq!(token_len("Olá turma de redes".len()), 120);
    let (f, _) = keyed();
    for n in 0..100 {
        let token = f.encrypt(&vec![b'a'; n]);
        assert_eq!(token.len(), token_len(n), "text of {n} bytes");
        let pads = token.bytes().filter(|&c| c == b'=').count();
        assert_eq!(pads, padding_of_blocks(n / 16 + 1), "text of {n} bytes");
    }
}

#[test]
fn coalesced_tokens_come_out_one_by_one() {
    let (f, key) = keyed();
    let sent = sample_tokens(&f);
    let mut buf = BytesMut::from(sent.concat().as_bytes());
    let got = tokens_of(drain(&mut TokenSplitter::new(&key, MAX), &mut buf));
    assert_eq!(got, sent);
    assert!(buf.is_empty());
}

#[test]
fn tokens_split_at_every_byte_boundary_are_put_back_together() {
    let (f, key) = keyed();
    let sent = sample_tokens(&f);
    let stream = sent.concat().into_bytes();
    for cut in 0..=stream.len() {
        let mut s = TokenSplitter::new(&key, MAX);
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut got = tokens_of(drain(&mut s, &mut buf));
        buf.extend_from_slice(&stream[cut..]);
        got.extend(tokens_of(drain(&mut s, &mut buf)));
        assert_eq!(got, sent, "cut at {cut}");
    }
}

#[test]
fn tokens_fed_a_byte_at_a_time_are_whole() {
    let (f, key) = keyed();
    let sent = sample_tokens(&f);
    let mut s = TokenSplitter::new(&key, MAX);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in sent.concat().as_bytes() {
        buf.extend_from_slice(&[b]);
        got.extend(tokens_of(drain(&mut s, &mut buf)));
    }
    assert_eq!(got, sent);
}

#[test]
fn a_token_made_with_another_key_does_not_verify() {
    let (f, _) = keyed();
    let (_, other) = keyed();
    let mut buf = BytesMut::from(f.encrypt(b"OK").as_bytes());
    let got = drain(&mut TokenSplitter::new(&other, MAX), &mut buf);
    let Some(Err(e)) = got.first() else {
        panic!("{got:?}")
    };
    assert_eq!(e.reason, Reason::Unverified(token_len(MAX)));
}

#[test]
fn plain_text_is_skipped_up_to_the_next_token() {
    let (f, key) = keyed();
    let token = f.encrypt(b"depois");
    let mut buf = BytesMut::from(format!("hello\n{token}").as_bytes());
    let got = drain(&mut TokenSplitter::new(&key, MAX), &mut buf);
    assert_eq!(
        got[0],
        Err(TokenError {
            reason: Reason::NotAToken,
            skipped: 6
        })
    );
    assert_eq!(got[1].as_ref().unwrap(), token.as_bytes());
    assert_eq!(got.len(), 2);
}

#[test]
fn text_starting_like_a_token_fails_at_its_first_non_base64_byte() {
    let (_, key) = keyed();
    let mut s = TokenSplitter::new(&key, MAX);
    let mut buf = BytesMut::from(&b"gAAAAAoi\n"[..]);
    let err = |reason, skipped| Err(TokenError { reason, skipped });
    assert_eq!(drain(&mut s, &mut buf), [err(Reason::NotBase64(b'\n'), 9)]);
    // The first 4 characters decode to the version byte, or it is no token.
    buf.extend_from_slice(b"gato");
    assert_eq!(drain(&mut s, &mut buf), [err(Reason::NotAToken, 4)]);
}

#[test]
fn a_tampered_token_is_skipped_and_the_next_one_still_found() {
    let (f, key) = keyed();
    let mut bad = f.encrypt(&[b'a'; 40]).into_bytes(); // 3 blocks, no padding
    bad[50] = if bad[50] == b'A' { b'B' } else { b'A' };
    let good = f.encrypt(b"ainda aqui");
    let mut buf = BytesMut::from(&bad[..]);
    buf.extend_from_slice(good.as_bytes());
    let got = drain(&mut TokenSplitter::new(&key, MAX), &mut buf);
    assert!(got[..got.len() - 1].iter().all(|r| r.is_err()), "{got:?}");
    assert_eq!(got.last().unwrap().as_ref().unwrap(), good.as_bytes());
}

#[test]
fn a_token_longer_than_the_limit_is_an_error_not_a_wait() {
    let (f, key) = keyed();
    let mut buf = BytesMut::from(f.encrypt(&[b'a'; 40]).as_bytes());
    let mut s = TokenSplitter::new(&key, 16); // at most 2 blocks
    assert_eq!(s.max_token_len(), 120);
    let got = drain(&mut s, &mut buf);
    assert_eq!(got[0].as_ref().unwrap_err().reason, Reason::Unverified(120));
}

#[test]
fn key_is_checked_as_it_arrives() {
    let text = Fernet::generate_key();
    let key = text.as_bytes();
    assert_eq!(parse_key(&key[..10]), Ok(None));
    assert!(matches!(parse_key(key), Ok(Some(_))));
    let mut glued = key.to_vec();
    glued.extend_from_slice(b"gAAAA");
    assert_eq!(parse_key(&glued), parse_key(key));
    assert_eq!(
        parse_key(b"* welcome"),
        Err(KeyError::NotBase64 {
            index: 0,
            byte: b'*'
        })
    );
    let mut unpadded = key.to_vec();
    unpadded[43] = b'A';
    assert!(matches!(
        parse_key(&unpadded),
        Err(KeyError::NotBase64 { index: 43, .. })
    ));
    let mut loose_bits = key.to_vec();
    loose_bits[42] = b'B'; // 43 characters carry 258 bits: the last 2 must be 0
    assert_eq!(parse_key(&loose_bits), Err(KeyError::BadLength));
}

#[test]
fn tokens_open_whatever_their_timestamp() {
    let (f, _) = keyed();
    for ts in [0, 1_700_000_000, u64::MAX / 2, u64::MAX] {
        let token = f.encrypt_at_time(b"OK", ts);
        assert_eq!(open_token(&f, token.as_bytes()).as_deref(), Some(SYNC_TEXT));
    }
    assert_eq!(open_token(&f, b"gAAAAA"), None);
}

/// A tiny deterministic generator, so the test needs no extra crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

#[test]
fn random_streams_give_the_same_tokens_however_they_are_read() {
    let (f, key) = keyed();
    let mut rng = Lcg(7);
    for round in 0..40 {
        let mut stream = Vec::new();
        let mut sent = Vec::new();
        let count = rng.next(6) + 2;
        for i in 0..count {
            if rng.next(4) == 0 {
                let junk = b"g=A\n-_zOK \xff";
                stream.extend((0..rng.next(30)).map(|_| junk[rng.next(junk.len())]));
            }
            // Junk starting with `g` holds up the tokens after it until a
            // `=` (or the longest token) shows it is no token: end on a
            // padded one.
            let len = if i + 1 == count { 0 } else { rng.next(100) };
            let token = f.encrypt(&vec![b'm'; len]);
            stream.extend_from_slice(token.as_bytes());
            sent.push(token);
        }
        let mut whole = BytesMut::from(&stream[..]);
        let all = drain(&mut TokenSplitter::new(&key, MAX), &mut whole);
        let mut s = TokenSplitter::new(&key, MAX);
        let mut buf = BytesMut::new();
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let n = (rng.next(150) + 1).min(stream.len() - at);
            buf.extend_from_slice(&stream[at..at + n]);
            at += n;
            pieces.extend(drain(&mut s, &mut buf));
        }
        let ok = |v: &[Result<Bytes, TokenError>]| -> Vec<Bytes> {
            v.iter().filter_map(|r| r.as_ref().ok().cloned()).collect()
        };
        let skipped = |v: &[Result<Bytes, TokenError>]| -> usize {
            v.iter()
                .filter_map(|r| r.as_ref().err())
                .map(|e| e.skipped)
                .sum()
        };
        assert_eq!(ok(&all), sent, "round {round}");
        assert_eq!(ok(&pieces), sent, "round {round}");
        assert_eq!(skipped(&all), skipped(&pieces), "round {round}");
        assert!(whole.is_empty() && buf.is_empty(), "round {round}");
    }
}
