//! Encoding and decoding of the file server's replies ([`Reply`]), and the
//! split of a long listing into `Entries` frames that each fit
//! [`MAX_FRAME`]. No I/O.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    Entry, EntryKind, FilesWireError, Hash, MAX_FRAME, PutState, Reply, bad, put_hash, read_hash, t,
};
use crate::wire::fields::{FieldError, FieldReader, put_str};
use crate::wire::frame::{Frame, encode_frame};

/// Bytes of an entry besides its path: kind, size, mtime, path length.
const ENTRY_FIXED: usize = 1 + 8 + 8 + 2;
/// Room for the `Entries` header (id, count) and the type byte.
const ENTRIES_HEADER: usize = 4 + 2 + 1;

impl Reply {
    /// Appends this reply as one frame.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), FieldError> {
        let mut p = BytesMut::new();
        let kind = match self {
            Reply::Welcome { software, flags } => {
                put_str(&mut p, software)?;
                p.put_u8(*flags);
                t::WELCOME
            }
            Reply::Entries { id, entries } => {
                p.put_u32(*id);
                let n = u16::try_from(entries.len())
                    .map_err(|_| FieldError::StringTooLong(entries.len()))?;
                p.put_u16(n);
                for e in entries {
                    p.put_u8(e.kind as u8);
                    p.put_u64(e.size);
                    p.put_u64(e.mtime_ms);
                    put_str(&mut p, &e.path)?;
                }
                t::ENTRIES
            }
            Reply::ListEnd { id } => {
                p.put_u32(*id);
                t::LIST_END
            }
            Reply::Data {
                id,
                size,
                mtime_ms,
                offset,
                len,
            } => {
                p.put_u32(*id);
                p.put_u64(*size);
                p.put_u64(*mtime_ms);
                p.put_u64(*offset);
                p.put_u64(*len);
                t::S_DATA
            }
            Reply::End { id, hash } => {
                p.put_u32(*id);
                put_hash(&mut p, hash);
                t::S_END
            }
            Reply::Same { id } => {
                p.put_u32(*id);
                t::SAME
            }
            Reply::Differs { id, size } => {
                p.put_u32(*id);
                p.put_u64(*size);
                t::DIFFERS
            }
            Reply::PutReady {
                id,
                state,
                have,
                have_hash,
            } => {
                p.put_u32(*id);
                p.put_u8(*state as u8);
                p.put_u64(*have);
                put_hash(&mut p, have_hash);
                t::PUT_READY
            }
            Reply::Stored { id } => {
                p.put_u32(*id);
                t::STORED
            }
            Reply::Error { id, code, text } => {
                p.put_u32(*id);
                p.put_u16(*code);
                put_str(&mut p, text)?;
                t::ERROR
            }
        };
        encode_frame(kind, &p, dst);
        Ok(())
    }

    /// This reply as encoded bytes.
    pub fn to_bytes(&self) -> Result<Bytes, FieldError> {
        let mut b = BytesMut::new();
        self.encode(&mut b)?;
        Ok(b.freeze())
    }

    /// Reads a reply from a frame.
    pub fn decode(frame: &Frame) -> Result<Self, FilesWireError> {
        let name = match frame.kind {
            t::WELCOME => "welcome",
            t::ENTRIES => "entries",
            t::LIST_END => "list end",
            t::S_DATA => "data",
            t::S_END => "end",
            t::SAME => "same",
            t::DIFFERS => "differs",
            t::PUT_READY => "put ready",
            t::STORED => "stored",
            t::ERROR => "error",
            other => return Err(FilesWireError::UnknownType(other)),
        };
        let f = |source| FilesWireError::Fields { kind: name, source };
        let mut r = FieldReader::new(&frame.payload);
        let msg = match frame.kind {
            t::WELCOME => Reply::Welcome {
                software: r.str().map_err(f)?,
                flags: r.u8().map_err(f)?,
            },
            t::ENTRIES => Reply::Entries {
                id: r.u32().map_err(f)?,
                entries: read_entries(&mut r).map_err(|e| match e {
                    EntryError::Fields(source) => FilesWireError::Fields { kind: name, source },
                    EntryError::Kind(v) => bad(name, v.into()),
                })?,
            },
            t::LIST_END => Reply::ListEnd {
                id: r.u32().map_err(f)?,
            },
            t::S_DATA => Reply::Data {
                id: r.u32().map_err(f)?,
                size: r.u64().map_err(f)?,
                mtime_ms: r.u64().map_err(f)?,
                offset: r.u64().map_err(f)?,
                len: r.u64().map_err(f)?,
            },
            t::S_END => Reply::End {
                id: r.u32().map_err(f)?,
                hash: read_hash(&mut r).map_err(f)?,
            },
            t::SAME => Reply::Same {
                id: r.u32().map_err(f)?,
            },
            t::DIFFERS => Reply::Differs {
                id: r.u32().map_err(f)?,
                size: r.u64().map_err(f)?,
            },
            t::PUT_READY => {
                let id = r.u32().map_err(f)?;
                let state = match r.u8().map_err(f)? {
                    0 => PutState::New,
                    1 => PutState::Partial,
                    2 => PutState::Existing,
                    v => return Err(bad(name, v.into())),
                };
                Reply::PutReady {
                    id,
                    state,
                    have: r.u64().map_err(f)?,
                    have_hash: read_hash(&mut r).map_err(f)?,
                }
            }
            t::STORED => Reply::Stored {
                id: r.u32().map_err(f)?,
            },
            _ => Reply::Error {
                id: r.u32().map_err(f)?,
                code: r.u16().map_err(f)?,
                text: r.str().map_err(f)?,
            },
        };
        r.finish().map_err(f)?;
        Ok(msg)
    }
}

enum EntryError {
    Fields(FieldError),
    Kind(u8),
}

impl From<FieldError> for EntryError {
    fn from(e: FieldError) -> Self {
        EntryError::Fields(e)
    }
}

/// A `u16` count, then entries; the count is checked against the bytes
/// left before anything is allocated.
fn read_entries(r: &mut FieldReader<'_>) -> Result<Vec<Entry>, EntryError> {
    let n = r.u16()? as usize;
    if n.saturating_mul(ENTRY_FIXED) > r.remaining() {
        return Err(FieldError::Truncated.into());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = match r.u8()? {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            v => return Err(EntryError::Kind(v)),
        };
        let size = r.u64()?;
        let mtime_ms = r.u64()?;
        let path = r.str()?;
        out.push(Entry {
            path,
            kind,
            size,
            mtime_ms,
        });
    }
    Ok(out)
}

/// Encodes `entries` as as many `Entries` frames as it takes for each to
/// fit [`MAX_FRAME`] (paths are at most `MAX_PATH` bytes, so one always
/// fits), appended to `dst`. No frame for an empty list.
pub fn entries_frames(id: u32, entries: &[Entry], dst: &mut BytesMut) -> Result<(), FieldError> {
    let mut start = 0;
    while start < entries.len() {
        let mut size = ENTRIES_HEADER;
        let mut end = start;
        while end < entries.len() && end - start < usize::from(u16::MAX) {
            let add = ENTRY_FIXED + entries[end].path.len();
            if size + add > MAX_FRAME && end > start {
                break;
            }
            size += add;
            end += 1;
        }
        Reply::Entries {
            id,
            entries: entries[start..end].to_vec(),
        }
        .encode(dst)?;
        start = end;
    }
    Ok(())
}

/// The hash of nothing, sent when there is no prefix to compare.
pub fn zero_hash() -> Hash {
    [0u8; super::HASH_LEN]
}
