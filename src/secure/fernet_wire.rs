//! The chapter's Fernet chat (Exemplo 2) on the wire, without I/O: the key
//! the server sends in clear, and [`TokenSplitter`], which cuts a byte stream
//! of back-to-back Fernet tokens into whole tokens, however the reads split
//! or glued them.
//!
//! Fernet tokens carry no length and no terminator. A token is the padded
//! base64url text of `0x80 | timestamp(8) | IV(16) | ciphertext(16k) |
//! HMAC(32)`, so its length is one of `4*ceil((57+16k)/3)` bytes (k >= 1
//! AES blocks: 100, 120, 140, 164, ...). Whoever knows the key finds the
//! end of a token by checking the HMAC at each of those lengths in turn: a
//! shorter prefix verifies only by forging HMAC-SHA256. The splitter decodes
//! and MACs each byte once (the HMAC state is cloned at each candidate
//! length), so a token costs time linear in its size.
//!
//! After bytes that are no token, the splitter starts again at the next `g`
//! (the first character of every token). Junk that starts with `g` and runs
//! on in base64url characters is only known to be junk at its first `=` or
//! other byte, or at the longest token's length: tokens glued right after
//! it wait until then (any padded token, 2 lengths in 3, ends the wait).
//!
//! Not here: sockets, and cryptography beyond the HMAC check (the `fernet`
//! crate encrypts and decrypts; [`open_token`] only calls it the way the
//! chapter's scripts do).

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the key as the server sends it: base64url of 32 bytes, padded.
pub const KEY_LEN: usize = 44;
/// The text a client encrypts to say it has the key.
pub const SYNC_TEXT: &[u8] = b"OK";
/// Raw bytes of a token around its ciphertext: version, timestamp, IV, HMAC.
const OVERHEAD: usize = 1 + 8 + 16 + 32;
/// The HMAC at the end of a token.
const MAC_LEN: usize = 32;
/// The first byte of every token's text: base64url of the version byte 0x80.
const TOKEN_START: u8 = b'g';

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of the token of an `n`-byte text:
/// `4*ceil((57+16*(n//16+1))/3)`.
pub const fn token_len(n: usize) -> usize {
    len_of_blocks(n / 16 + 1)
}

/// Length of a token holding `k` AES blocks.
const fn len_of_blocks(k: usize) -> usize {
    4 * (OVERHEAD + 16 * k).div_ceil(3)
}

/// `=` characters at the end of a token holding `k` AES blocks.
const fn padding_of_blocks(k: usize) -> usize {
    (3 - (OVERHEAD + 16 * k) % 3) % 3
}

/// The value of a base64url character (`A-Z a-z 0-9 - _`), `None` for
/// anything else, `=` included.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Decodes 2 to 4 base64url characters (all valid) into 1 to 3 bytes,
/// appended to `out`. `false` if the unused low bits of a short group are
/// not zero (not the canonical encoding, which the `fernet` crate rejects).
fn decode_group(chars: &[u8], out: &mut Vec<u8>) -> bool {
    let mut acc: u32 = 0;
    for (i, &c) in chars.iter().enumerate() {
        acc |= u32::from(sextet(c).unwrap_or(0)) << (18 - 6 * i);
    }
    let bytes = acc.to_be_bytes();
    let n = chars.len() - 1;
    out.extend_from_slice(&bytes[1..1 + n]);
    bytes[1 + n..].iter().all(|&b| b == 0)
}

/// Why the first bytes from a server are not a Fernet key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("byte {index} of the key is {byte:#04x}, not base64url")]
    NotBase64 { index: usize, byte: u8 },
    #[error("the key does not decode to 32 bytes")]
    BadLength,
}

/// Checks the start of what a server sent against the key's shape.
/// `Ok(None)`: fine so far, need more; `Ok(Some(key))` once [`KEY_LEN`]
/// bytes are a valid key (bytes after them are not looked at).
pub fn parse_key(buf: &[u8]) -> Result<Option<[u8; 32]>, KeyError> {
    let seen = &buf[..buf.len().min(KEY_LEN)];
    for (index, &byte) in seen.iter().enumerate() {
        let ok = if index == KEY_LEN - 1 {
            byte == b'='
        } else {
            sextet(byte).is_some()
        };
        if !ok {
            return Err(KeyError::NotBase64 { index, byte });
        }
    }
    if seen.len() < KEY_LEN {
        return Ok(None);
    }
    let mut key = Vec::with_capacity(33);
    let mut canonical = true;
    for group in seen[..KEY_LEN - 1].chunks(4) {
        canonical &= decode_group(group, &mut key);
    }
    match <[u8; 32]>::try_from(key.as_slice()) {
        Ok(k) if canonical => Ok(Some(k)),
        _ => Err(KeyError::BadLength),
    }
}

/// Decrypts a token the way the chapter's scripts do (`f.decrypt(token)`,
/// no TTL): whatever its timestamp, even one from a clock far ahead. The
/// `fernet` crate always refuses tokens more than 60 s in the future; a
/// `current_time` this late turns that check off without overflowing it.
pub fn open_token(f: &fernet::Fernet, token: &[u8]) -> Option<Vec<u8>> {
    const NO_CLOCK_CHECK: u64 = u64::MAX - 60;
    let text = std::str::from_utf8(token).ok()?;
    f.decrypt_at_time(text, None, NO_CLOCK_CHECK).ok()
}

/// Why the bytes at the head of the stream are no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("not a Fernet token (does not start with 'g', the version byte)")]
    NotAToken,
    #[error("not base64url (byte {0:#04x})")]
    NotBase64(u8),
    #[error("does not verify with the key at any length up to {0} bytes")]
    Unverified(usize),
}

/// Bytes at the head of the stream that are no token; they were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad token: {reason} ({skipped} bytes skipped)")]
pub struct TokenError {
    pub reason: Reason,
    /// Bytes removed from the buffer: up to the next `g`, where the next
    /// token may start, or all of it.
    pub skipped: usize,
}

/// Progress on the token that starts at the head of the buffer.
#[derive(Clone)]
struct Head {
    /// Leading base64url characters of the buffer (capped at the longest
    /// token).
    run: usize,
    /// The byte that ended `run` (`=`, or one that is not base64url).
    stop: Option<u8>,
    /// Decoded bytes of `run`: its complete 4-character groups, plus the
    /// short last group once `run` has ended at a `=`.
    raw: Vec<u8>,
    /// Whether the short last group's unused bits are zero.
    canonical: bool,
    /// HMAC state over `raw[..fed]`.
    mac: HmacSha256,
    /// Bytes of `raw` fed to `mac`.
    fed: usize,
    /// Next candidate: the token holding this many AES blocks.
    blocks: usize,
}

/// Cuts a stream of back-to-back Fernet tokens into tokens, verifying each
/// one's HMAC with the key. Call [`decode`](Self::decode) on the read
/// buffer after every read until it returns `Ok(None)`; the buffer must not
/// be changed between calls except by appending.
pub struct TokenSplitter {
    /// A fresh HMAC-SHA256 keyed with the signing half of the key.
    fresh_mac: HmacSha256,
    /// Most AES blocks a token may hold.
    max_blocks: usize,
    head: Head,
}

impl TokenSplitter {
    /// A splitter for tokens made with `key` whose texts are at most
    /// `max_text` bytes (longer tokens are errors).
    pub fn new(key: &[u8; 32], max_text: usize) -> Self {
        // HMAC takes keys of any length; this cannot fail.
        let fresh_mac = HmacSha256::new_from_slice(&key[..16]).expect("HMAC accepts a 16-byte key");
        let head = Head {
            run: 0,
            stop: None,
            raw: Vec::new(),
            canonical: true,
            mac: fresh_mac.clone(),
            fed: 0,
            blocks: 1,
        };
        Self {
            fresh_mac,
            max_blocks: max_text / 16 + 1,
            head,
        }
    }

    /// The longest token accepted, in bytes.
    pub fn max_token_len(&self) -> usize {
        len_of_blocks(self.max_blocks)
    }

    /// Takes the next whole, verified token off the front of `buf`.
    /// `Ok(None)`: need more bytes. `Err`: the head of `buf` is no token;
    /// the bad bytes were removed, so calling again goes on after them.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, TokenError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != TOKEN_START {
            return Err(self.skip(buf, Reason::NotAToken));
        }
        self.scan(buf);
        if self.head.raw.first().is_some_and(|&v| v != 0x80) {
            return Err(self.skip(buf, Reason::NotAToken));
        }
        while self.head.blocks <= self.max_blocks {
            let k = self.head.blocks;
            let (len, pad) = (len_of_blocks(k), padding_of_blocks(k));
            let data = len - pad;
            if data > self.head.run {
                return match self.head.stop {
                    None => Ok(None),
                    Some(b'=') => Err(self.skip(buf, self.unverified())),
                    Some(b) => Err(self.skip(buf, Reason::NotBase64(b))),
                };
            }
            if pad > 0 {
                if data < self.head.run || !self.head.canonical {
                    self.head.blocks += 1;
                    continue;
                }
                let tail = &buf[data..buf.len().min(len)];
                if tail.iter().any(|&c| c != b'=') {
                    self.head.blocks += 1;
                    continue;
                }
                if tail.len() < pad {
                    return Ok(None);
                }
            }
            if self.verifies(k) {
                self.reset();
                return Ok(Some(buf.split_to(len).freeze()));
            }
            self.head.blocks += 1;
        }
        Err(self.skip(buf, self.unverified()))
    }

    fn unverified(&self) -> Reason {
        Reason::Unverified(self.max_token_len())
    }

    /// Extends the head's base64url run over newly arrived bytes and
    /// decodes its complete groups.
    fn scan(&mut self, buf: &[u8]) {
        let cap = self.max_token_len();
        let h = &mut self.head;
        while h.stop.is_none() && h.run < cap && h.run < buf.len() {
            let c = buf[h.run];
            if sextet(c).is_none() {
                h.stop = Some(c);
                let short = h.run % 4;
                if c == b'=' && short >= 2 {
                    h.canonical = decode_group(&buf[h.run - short..h.run], &mut h.raw);
                }
                break;
            }
            h.run += 1;
            if h.run.is_multiple_of(4) {
                decode_group(&buf[h.run - 4..h.run], &mut h.raw);
            }
        }
    }

    /// Whether the first `k` blocks' worth of decoded bytes carry a valid
    /// HMAC. Needs `raw` to hold the whole candidate.
    fn verifies(&mut self, k: usize) -> bool {
        let h = &mut self.head;
        let signed = OVERHEAD - MAC_LEN + 16 * k;
        let Some(tag) = h.raw.get(signed..signed + MAC_LEN) else {
            return false;
        };
        if h.raw[0] != 0x80 {
            return false;
        }
        h.mac.update(&h.raw[h.fed..signed]);
        h.fed = signed;
        h.mac.clone().verify_slice(tag).is_ok()
    }

    /// Drops the bad head of `buf`, up to where a token may start next.
    fn skip(&mut self, buf: &mut BytesMut, reason: Reason) -> TokenError {
        let next = buf[1..]
            .iter()
            .position(|&c| c == TOKEN_START)
            .map_or(buf.len(), |i| i + 1);
        let _ = buf.split_to(next);
        self.reset();
        TokenError {
            reason,
            skipped: next,
        }
    }

    fn reset(&mut self) {
        let h = &mut self.head;
        h.run = 0;
        h.stop = None;
        h.raw.clear();
        h.canonical = true;
        h.mac = self.fresh_mac.clone();
        h.fed = 0;
        h.blocks = 1;
    }
}

#[cfg(test)]
#[path = "fernet_wire_tests.rs"]
mod tests;
