//! The chapter's file repository (Exemplo 3, `repositorio.py` and
//! `cliente.py`) on the wire, both ways, with no I/O: the listing and
//! replies a server sends, the `GET <name>` request it parses, and, for a
//! client, the listing parser and [`SeedReply`], which reads a reply to
//! EOF robustly -- the trailing `OK` stripped even when glued to the data,
//! the `ERROR "…"` reply recognised and never taken for file content.

/// What follows the file's bytes.
pub const OK: &[u8] = b"OK";
/// How an error reply starts.
pub const ERROR_PREFIX: &[u8] = b"ERROR \"";
/// Longest error reply recognised (the chapter's names come from one
/// 1024-byte read, so its error texts are shorter).
pub const MAX_ERROR: usize = 4096;
/// Longest request read (the chapter's server reads 1024 bytes once).
pub const MAX_REQUEST: usize = 1024;

/// The listing the chapter's server sends at connect: every name followed
/// by `\n` (nothing at all for an empty folder).
pub fn listing(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        out.extend_from_slice(n.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The chapter's exact reply for a missing file (UTF-8).
pub fn not_found(name: &str) -> Vec<u8> {
    format!("ERROR \"O arquivo {name} não existe\"").into_bytes()
}

/// What a request read so far asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChapterRequest {
    /// `GET` and a name.
    Get(String),
    /// Starts with `GET` but no name yet (the chapter's server waits
    /// forever here; we wait a bounded time).
    NeedMore,
    /// Does not start with `GET`: closed without a reply, as the chapter does.
    NotGet,
    /// The name is not UTF-8 (the chapter's server thread dies): closed.
    BadName,
}

/// Parses a request the way `repositorio.py` does: it must start with
/// `GET`; the name is the second whitespace-separated word.
pub fn parse_request(buf: &[u8]) -> ChapterRequest {
    let n = buf.len().min(3);
    if buf[..n] != b"GET"[..n] {
        return ChapterRequest::NotGet;
    }
    let mut words = buf
        .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .filter(|w| !w.is_empty());
    let (Some(_get), Some(name)) = (words.next(), words.next()) else {
        return ChapterRequest::NeedMore;
    };
    match std::str::from_utf8(name) {
        Ok(s) => ChapterRequest::Get(s.to_owned()),
        Err(_) => ChapterRequest::BadName,
    }
}

/// Names in a listing a chapter's server sent (lossy UTF-8, empty lines
/// dropped).
pub fn parse_listing(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// How a chapter server's reply ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The `ERROR "…"` reply; the text between the quotes.
    #[error("{0}")]
    Server(String),
    /// EOF before the trailing `OK`: the transfer was cut.
    #[error("the connection closed before the end of the file ({0} bytes, no trailing OK)")]
    Truncated(u64),
    /// EOF with nothing at all (the server refused the request).
    #[error("the server closed the connection without a reply")]
    Empty,
}

/// Reads a reply of the chapter's server to EOF: releases bytes as file
/// content once they cannot be the error reply or the trailing `OK`.
#[derive(Debug, Default)]
pub struct SeedReply {
    /// Bytes not yet released: the possible error reply at the start, and
    /// always the last two bytes (the possible `OK`).
    pending: Vec<u8>,
    /// Whether the reply is known to be file content (not an error).
    is_data: bool,
    /// Bytes received in total.
    total: u64,
}

impl SeedReply {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes received; appends to `out` those that are
    /// certainly file content.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.total += chunk.len() as u64;
        self.pending.extend_from_slice(chunk);
        if !self.is_data {
            let n = self.pending.len().min(ERROR_PREFIX.len());
            let maybe_error =
                self.pending[..n] == ERROR_PREFIX[..n] && self.pending.len() <= MAX_ERROR;
            if maybe_error {
                return;
            }
            self.is_data = true;
        }
        let keep = OK.len().min(self.pending.len());
        let release = self.pending.len() - keep;
        out.extend_from_slice(&self.pending[..release]);
        self.pending.drain(..release);
    }

    /// At EOF: appends the last content bytes to `out` when the reply ended
    /// with `OK`; otherwise says why it is not a file.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), SeedError> {
        if let Some(content) = self.pending.strip_suffix(OK) {
            out.extend_from_slice(content);
            return Ok(());
        }
        if self.total == 0 {
            return Err(SeedError::Empty);
        }
        if !self.is_data
            && let Some(rest) = self.pending.strip_prefix(ERROR_PREFIX)
        {
            let text = rest.strip_suffix(b"\"").unwrap_or(rest);
            return Err(SeedError::Server(
                String::from_utf8_lossy(text).into_owned(),
            ));
        }
        Err(SeedError::Truncated(self.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `reply` split at `cut` and returns what `SeedReply` made of it.
    fn read_split(reply: &[u8], cut: usize) -> Result<Vec<u8>, SeedError> {
        let mut r = SeedReply::new();
        let mut out = Vec::new();
        r.push(&reply[..cut], &mut out);
        r.push(&reply[cut..], &mut out);
        r.finish(&mut out).map(|()| out)
    }

    #[test]
    fn ok_glued_to_last_chunk_is_stripped() {
        let mut reply: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let content = reply.clone();
        reply.extend_from_slice(b"OK");
        for cut in 0..=reply.len() {
            assert_eq!(read_split(&reply, cut).unwrap(), content, "cut {cut}");
        }
    }

    #[test]
    fn error_reply_is_recognised_at_every_split() {
        let reply = not_found("gato.jpg");
        for cut in 0..=reply.len() {
            assert_eq!(
                read_split(&reply, cut),
                Err(SeedError::Server("O arquivo gato.jpg não existe".into())),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_file_that_starts_like_an_error_is_still_a_file() {
        let reply = b"ERROR \"not really\" a log line\nOK";
        for cut in 0..=reply.len() {
            assert_eq!(
                read_split(reply, cut).unwrap(),
                b"ERROR \"not really\" a log line\n".to_vec()
            );
        }
    }

    #[test]
    fn empty_file_and_missing_ok() {
        assert_eq!(read_split(b"OK", 1).unwrap(), Vec::<u8>::new());
        assert_eq!(read_split(b"", 0), Err(SeedError::Empty));
        assert_eq!(read_split(b"abcdO", 2), Err(SeedError::Truncated(5)));
    }

    #[test]
    fn requests_parse_like_the_chapter_server() {
        assert_eq!(
            parse_request(b"GET iguana.jpg"),
            ChapterRequest::Get("iguana.jpg".into())
        );
        assert_eq!(
            parse_request(b"GET  a.txt\r\n"),
            ChapterRequest::Get("a.txt".into())
        );
        assert_eq!(
            parse_request(b"GET my file.txt"),
            ChapterRequest::Get("my".into())
        );
        assert_eq!(parse_request(b"GE"), ChapterRequest::NeedMore);
        assert_eq!(parse_request(b"GET"), ChapterRequest::NeedMore);
        assert_eq!(parse_request(b"GET "), ChapterRequest::NeedMore);
        assert_eq!(parse_request(b"LIST"), ChapterRequest::NotGet);
        assert_eq!(parse_request(b"get x"), ChapterRequest::NotGet);
        assert_eq!(parse_request(b"GET \xff\xfe"), ChapterRequest::BadName);
    }

    #[test]
    fn listing_round_trips() {
        let names = vec!["cachorro.jpg".to_string(), "Olá.txt".to_string()];
        let bytes = listing(&names);
        assert_eq!(bytes, "cachorro.jpg\nOlá.txt\n".as_bytes());
        assert_eq!(parse_listing(&bytes), names);
        assert!(listing(&[]).is_empty());
    }

    #[test]
    fn not_found_is_the_chapter_bytes() {
        assert_eq!(
            not_found("x.png"),
            "ERROR \"O arquivo x.png não existe\"".as_bytes()
        );
    }
}
