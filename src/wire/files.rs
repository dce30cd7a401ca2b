//! The native file-transfer protocol's messages (see `docs/protocol.md`,
//! "Files"): the preamble, client requests, server replies, and the check
//! every path from the network passes. No I/O, no file system.
//!
//! Control messages are frames of `wire::frame` (`u32` length, type byte,
//! fields of `wire::fields`). File contents are not framed: a `Data` frame
//! announces `len`, and exactly `len` raw bytes follow it on the stream, so
//! the data path can move them in large reads and writes (or splice) with
//! no per-chunk header. An `End` frame with the BLAKE3 hash of the whole
//! file follows the raw bytes.

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::{FieldError, FieldReader, put_str};
use super::frame::{Frame, encode_frame};

/// First four bytes a native files client sends.
pub const MAGIC: [u8; 4] = [0x00, b'S', b'Q', b'F'];
/// Protocol version after the magic.
pub const VERSION: u8 = 1;
/// What a native client sends first: magic + version.
pub const PREAMBLE: [u8; 5] = [0x00, b'S', b'Q', b'F', VERSION];
/// Largest control frame either side sends or accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest relative path accepted, in bytes.
pub const MAX_PATH: usize = 4096;
/// Suffix of the temporary name a file has while it is being received.
pub const PART_SUFFIX: &str = ".soquete-part";
/// Bytes of a BLAKE3 hash.
pub const HASH_LEN: usize = 32;
/// A BLAKE3 hash.
pub type Hash = [u8; HASH_LEN];

/// `Welcome` flag: the server accepts uploads.
pub const FLAG_UPLOADS: u8 = 0x01;

/// Frame type bytes; clients use < 0x80, servers >= 0x80.
pub mod t {
    pub const LIST: u8 = 0x01;
    pub const GET: u8 = 0x02;
    pub const PUT: u8 = 0x03;
    pub const C_DATA: u8 = 0x04;
    pub const C_END: u8 = 0x05;
    pub const DONE: u8 = 0x06;
    pub const WELCOME: u8 = 0x81;
    pub const ENTRIES: u8 = 0x82;
    pub const LIST_END: u8 = 0x83;
    pub const S_DATA: u8 = 0x84;
    pub const S_END: u8 = 0x85;
    pub const SAME: u8 = 0x86;
    pub const DIFFERS: u8 = 0x87;
    pub const PUT_READY: u8 = 0x88;
    pub const STORED: u8 = 0x89;
    pub const ERROR: u8 = 0x8F;
}

/// How a `Get` treats the bytes the client already has (`have`, `have_hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMode {
    /// `have` bytes of a partial download: send the rest if they match the
    /// file's start, else the whole file from 0.
    Resume = 0,
    /// The client has a complete file: `Same` if identical, else `Differs`.
    Compare = 1,
    /// Like `Compare`, but a different file is sent whole (`--overwrite`).
    Replace = 2,
}

/// What the server has under an offered upload's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutState {
    /// Nothing: send from 0.
    New = 0,
    /// A partial upload of `have` bytes: resume if it matches.
    Partial = 1,
    /// A complete file of `have` bytes.
    Existing = 2,
}

/// Kind of a listing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File = 0,
    Dir = 1,
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Path relative to the published folder, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

/// Per-request and connection errors, as sent in `Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound = 1,
    NotAFile = 2,
    BadPath = 3,
    NoUploads = 4,
    Io = 5,
    HashMismatch = 6,
    Exists = 7,
    Busy = 8,
    Protocol = 9,
    ServerFull = 10,
    Encrypted = 11,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Option<Self> {
        use ErrorCode::*;
        [
            NotFound,
            NotAFile,
            BadPath,
            NoUploads,
            Io,
            HashMismatch,
            Exists,
            Busy,
            Protocol,
            ServerFull,
            Encrypted,
        ]
        .into_iter()
        .find(|c| *c as u16 == v)
    }
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// List `path` ("" = everything) recursively.
    List { id: u32, path: String },
    /// Send file `path`, given what the client already has.
    Get {
        id: u32,
        path: String,
        mode: GetMode,
        have: u64,
        have_hash: Hash,
    },
    /// Offer an upload of `size` bytes to `path`.
    Put {
        id: u32,
        path: String,
        size: u64,
        mtime_ms: u64,
        overwrite: bool,
    },
    /// `len` raw bytes of upload `id` from `offset` follow this frame.
    Data { id: u32, offset: u64, len: u64 },
    /// Upload `id` is complete; `hash` is its whole content's BLAKE3.
    End { id: u32, hash: Hash },
    /// No more requests: answer the ones sent, then close.
    Done,
}

/// A server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Welcome {
        software: String,
        flags: u8,
    },
    Entries {
        id: u32,
        entries: Vec<Entry>,
    },
    ListEnd {
        id: u32,
    },
    /// `len` raw bytes of `path`'s content from `offset` follow this frame.
    Data {
        id: u32,
        size: u64,
        mtime_ms: u64,
        offset: u64,
        len: u64,
    },
    /// The file's whole content hashes to `hash`.
    End {
        id: u32,
        hash: Hash,
    },
    /// The client's copy is identical.
    Same {
        id: u32,
    },
    /// The client's copy differs; the server's is `size` bytes.
    Differs {
        id: u32,
        size: u64,
    },
    /// Upload `id` may start: what the server already has.
    PutReady {
        id: u32,
        state: PutState,
        have: u64,
        have_hash: Hash,
    },
    /// Upload `id` was verified and stored under its name.
    Stored {
        id: u32,
    },
    /// Request `id` failed (id 0: the connection).
    Error {
        id: u32,
        code: u16,
        text: String,
    },
}

/// Why a frame is not a valid message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilesWireError {
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    #[error("bad {kind} message: {source}")]
    Fields {
        kind: &'static str,
        source: FieldError,
    },
    #[error("bad value {value} in {kind} message")]
    BadValue { kind: &'static str, value: u64 },
}

/// Why a relative path from the network is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PathError {
    #[error("empty name")]
    Empty,
    #[error("name longer than {MAX_PATH} bytes")]
    TooLong,
    #[error("absolute paths are not allowed")]
    Absolute,
    #[error("'..' and '.' are not allowed")]
    DotComponent,
    #[error("control characters (NUL, newline, ...) are not allowed in names")]
    Control,
    #[error("backslashes and drive letters are not allowed in names")]
    Windows,
    #[error("empty path component ('//' or trailing '/')")]
    EmptyComponent,
    #[error("temporary '{PART_SUFFIX}' files are not served")]
    PartFile,
}

/// Checks a relative `/`-separated path from the network: no absolute
/// path, no `.`/`..`, no empty component, no control character, no
/// backslash or drive letter, no temporary file. `""` (the root) only
/// where `allow_root`.
pub fn check_path(path: &str, allow_root: bool) -> Result<(), PathError> {
    if path.is_empty() {
        return if allow_root {
            Ok(())
        } else {
            Err(PathError::Empty)
        };
    }
    if path.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if path.contains('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Err(PathError::Windows);
    }
    for part in path.split('/') {
        match part {
            "" => return Err(PathError::EmptyComponent),
            "." | ".." => return Err(PathError::DotComponent),
            p if p.ends_with(PART_SUFFIX) => return Err(PathError::PartFile),
            _ => {}
        }
    }
    Ok(())
}

fn put_hash(p: &mut BytesMut, h: &Hash) {
    p.put_slice(h);
}

fn read_hash(r: &mut FieldReader<'_>) -> Result<Hash, FieldError> {
    let mut h = [0u8; HASH_LEN];
    for b in &mut h {
        *b = r.u8()?;
    }
    Ok(h)
}

impl Request {
    /// Appends this request as one frame.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FieldError> {
        let mut p = BytesMut::new();
        let kind = match self {
            Request::List { id, path } => {
                p.put_u32(*id);
                put_str(&mut p, path)?;
                t::LIST
            }
            Request::Get {
                id,
                path,
                mode,
                have,
                have_hash,
            } => {
                p.put_u32(*id);
                put_str(&mut p, path)?;
                p.put_u8(*mode as u8);
                p.put_u64(*have);
                put_hash(&mut p, have_hash);
                t::GET
            }
            Request::Put {
                id,
                path,
                size,
                mtime_ms,
                overwrite,
            } => {
                p.put_u32(*id);
                put_str(&mut p, path)?;
                p.put_u64(*size);
                p.put_u64(*mtime_ms);
                p.put_u8(u8::from(*overwrite));
                t::PUT
            }
            Request::Data { id, offset, len } => {
                p.put_u32(*id);
                p.put_u64(*offset);
                p.put_u64(*len);
                t::C_DATA
            }
            Request::End { id, hash } => {
                p.put_u32(*id);
                put_hash(&mut p, hash);
                t::C_END
            }
            Request::Done => t::DONE,
        };
        encode_frame(kind, &p, dst);
        Ok(())
    }

    /// This request as encoded bytes.
    pub fn to_bytes(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        Ok(b.freeze())
    }

    /// Reads a request from a frame.
    pub fn decode(frame: &Frame) -> Result<Self, FilesWireError> {
        let (name, kind) = match frame.kind {
            t::LIST => ("list", frame.kind),
            t::GET => ("get", frame.kind),
            t::PUT => ("put", frame.kind),
            t::C_DATA => ("data", frame.kind),
            t::C_END => ("end", frame.kind),
            t::DONE => ("done", frame.kind),
            other => return Err(FilesWireError::UnknownType(other)),
        };
        let f = |source| FilesWireError::Fields { kind: name, source };
        let mut r = FieldReader::new(&frame.payload);
        let msg = match kind {
            t::LIST => Request::List {
                id: r.u32().map_err(f)?,
                path: r.str().map_err(f)?,
            },
            t::GET => {
                let id = r.u32().map_err(f)?;
                let path = r.str().map_err(f)?;
                let mode = match r.u8().map_err(f)? {
                    0 => GetMode::Resume,
                    1 => GetMode::Compare,
                    2 => GetMode::Replace,
                    v => return Err(bad(name, v.into())),
                };
                Request::Get {
                    id,
                    path,
                    mode,
                    have: r.u64().map_err(f)?,
                    have_hash: read_hash(&mut r).map_err(f)?,
                }
            }
            t::PUT => Request::Put {
                id: r.u32().map_err(f)?,
                path: r.str().map_err(f)?,
                size: r.u64().map_err(f)?,
                mtime_ms: r.u64().map_err(f)?,
                overwrite: read_bool(&mut r, name)?,
            },
            t::C_DATA => Request::Data {
                id: r.u32().map_err(f)?,
                offset: r.u64().map_err(f)?,
                len: r.u64().map_err(f)?,
            },
            t::C_END => Request::End {
                id: r.u32().map_err(f)?,
                hash: read_hash(&mut r).map_err(f)?,
            },
            _ => Request::Done,
        };
        r.finish().map_err(f)?;
        Ok(msg)
    }
}

fn bad(kind: &'static str, value: u64) -> FilesWireError {
    FilesWireError::BadValue { kind, value }
}

fn read_bool(r: &mut FieldReader<'_>, kind: &'static str) -> Result<bool, FilesWireError> {
    match r.u8() {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        Ok(v) => Err(bad(kind, v.into())),
        Err(source) => Err(FilesWireError::Fields { kind, source }),
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;

#[path = "files_reply.rs"]
mod reply;
pub use reply::{entries_frames, zero_hash};
