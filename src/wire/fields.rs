//! Field encoding inside a frame payload: integers big-endian, strings as a
//! `u16` byte length plus UTF-8, lists as a `u16` count plus items.
//!
//! `FieldReader` never panics and never allocates more than the payload it
//! was given: every length is checked against the bytes that remain.

use bytes::{BufMut, BytesMut};

/// Why a payload could not be read as the fields its type promises.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldError {
    #[error("payload ends inside a field")]
    Truncated,
    #[error("string field is not valid UTF-8")]
    BadUtf8,
    #[error("{0} unexpected bytes after the last field")]
    Trailing(usize),
    #[error("string of {0} bytes does not fit a u16 length")]
    StringTooLong(usize),
}

/// Reads fields off the front of a payload.
pub struct FieldReader<'a> {
    /// What has not been read yet.
    rest: &'a [u8],
}

impl<'a> FieldReader<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Self { rest: payload }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FieldError> {
        if self.rest.len() < n {
            return Err(FieldError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, FieldError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, FieldError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, FieldError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, FieldError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn str(&mut self) -> Result<String, FieldError> {
        let len = self.u16()? as usize;
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| FieldError::BadUtf8)
    }

    /// A `u16` count followed by that many strings. Each string needs at least
    /// its two length bytes, so the count is checked against what remains
    /// before the list is allocated.
    pub fn str_list(&mut self) -> Result<Vec<String>, FieldError> {
        let n = self.u16()? as usize;
        if n.saturating_mul(2) > self.rest.len() {
            return Err(FieldError::Truncated);
        }
        (0..n).map(|_| self.str()).collect()
    }

    /// Ends reading; fails if bytes remain (a frame is exactly its fields).
    pub fn finish(self) -> Result<(), FieldError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(FieldError::Trailing(self.rest.len()))
        }
    }

    /// Bytes not read yet (for lists whose items are not plain strings).
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
}

/// Appends a string field. Callers keep strings far below 64 KiB (names and
/// rooms are at most 32 bytes, texts at most the frame limit); a longer one is
/// a bug in the caller and is reported rather than silently cut.
pub fn put_str(dst: &mut BytesMut, s: &str) -> Result<(), FieldError> {
    let len = u16::try_from(s.len()).map_err(|_| FieldError::StringTooLong(s.len()))?;
    dst.put_u16(len);
    dst.put_slice(s.as_bytes());
    Ok(())
}

/// Appends a `u16` count and the strings.
pub fn put_str_list(dst: &mut BytesMut, items: &[String]) -> Result<(), FieldError> {
    let n = u16::try_from(items.len()).map_err(|_| FieldError::StringTooLong(items.len()))?;
    dst.put_u16(n);
    for s in items {
        put_str(dst, s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_round_trip_and_truncation() {
        let mut b = BytesMut::new();
        put_str(&mut b, "Olá").unwrap();
        let mut r = FieldReader::new(&b);
        assert_eq!(r.str().unwrap(), "Olá");
        r.finish().unwrap();
        for cut in 0..b.len() {
            assert_eq!(
                FieldReader::new(&b[..cut]).str(),
                Err(FieldError::Truncated)
            );
        }
    }

    #[test]
    fn huge_list_count_is_rejected_without_allocating() {
        let b = [0xFF, 0xFF, 0, 0];
        assert_eq!(FieldReader::new(&b).str_list(), Err(FieldError::Truncated));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let b = [0, 2, 0xC3, 0x28];
        assert_eq!(FieldReader::new(&b).str(), Err(FieldError::BadUtf8));
    }
}
