//! A file being received, under its temporary name until verified: what
//! is already there (a partial transfer to resume, or a complete file to
//! compare), hashed rather than trusted; then fsync, check the hash, and
//! rename onto the final name atomically -- or delete the temporary file
//! when the hash differs. Used by `files get` (client) and uploads (server).
//!
//! Blocking (std::fs): callers run it on a blocking thread.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::wire::files::Hash;

use super::store::part_path;
use super::transfer::CHUNK;

/// Why a received file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(
        "{name}: the hash of the received bytes differs from the sender's; the partial file was deleted"
    )]
    HashMismatch { name: String },
    #[error("{name} already exists and differs; use --overwrite to replace it")]
    Exists { name: String },
    #[error("{name}: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

/// Hashes the first `len` bytes of `path` (all of it if shorter; `None`
/// if it does not exist). Returns the hasher, to continue with the rest,
/// and how many bytes it saw.
pub fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Option<(blake3::Hasher, u64)>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    hash_open(&file, len).map(Some)
}

/// Hashes up to `len` bytes of an open file from its current position.
pub fn hash_open(file: &File, len: u64) -> std::io::Result<(blake3::Hasher, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut reader = file.take(len);
    let mut buf = vec![0u8; CHUNK.min(len as usize).max(1)];
    let mut seen = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        seen += n as u64;
    }
    Ok((hasher, seen))
}

/// The BLAKE3 of the whole of `path`, with its size.
pub fn hash_file(path: &Path) -> std::io::Result<Option<(Hash, u64)>> {
    Ok(hash_prefix(path, u64::MAX)?.map(|(h, n)| (*h.finalize().as_bytes(), n)))
}

/// Size of the temporary file for `target`, if there is one.
pub fn partial_len(target: &Path) -> Option<u64> {
    std::fs::symlink_metadata(part_path(target))
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// A temporary file receiving the bytes of `target`.
#[derive(Debug)]
pub struct PartFile {
    /// The temporary file, positioned where the next bytes go.
    pub file: File,
    /// Its path (`.NAME.soquete-part`).
    pub path: PathBuf,
    /// The final name.
    pub target: PathBuf,
}

impl PartFile {
    /// Opens (or creates) the temporary file, keeping its first `keep`
    /// bytes (already verified) and dropping the rest.
    pub fn open(target: &Path, keep: u64) -> std::io::Result<Self> {
        let path = part_path(target);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        file.set_len(keep)?;
        file.seek(SeekFrom::Start(keep))?;
        Ok(Self {
            file,
            path,
            target: target.to_path_buf(),
        })
    }

    /// Creates the temporary file empty (no partial to keep: one syscall
    /// fewer per file than `open(target, 0)`).
    pub fn create(target: &Path) -> std::io::Result<Self> {
        let path = part_path(target);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(Self {
            file,
            path,
            target: target.to_path_buf(),
        })
    }

    /// Verifies `got` against `expected`, then fsyncs and renames onto the
    /// final name (refusing to replace an existing file unless `overwrite`).
    /// A mismatch deletes the temporary file. `name` is for messages.
    pub fn commit(
        self,
        got: &Hash,
        expected: &Hash,
        overwrite: bool,
        name: &str,
    ) -> Result<(), CommitError> {
        let io = |source| CommitError::Io {
            name: name.to_owned(),
            source,
        };
        if got != expected {
            drop(self.file);
            let _ = std::fs::remove_file(&self.path);
            return Err(CommitError::HashMismatch {
                name: name.to_owned(),
            });
        }
        let mut file = self.file;
        file.flush().map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        if !overwrite && std::fs::symlink_metadata(&self.target).is_ok() {
            return Err(CommitError::Exists {
                name: name.to_owned(),
            });
        }
        std::fs::rename(&self.path, &self.target).map_err(io)?;
        sync_parent(&self.target);
        Ok(())
    }
}

/// Makes the rename durable (Unix: fsync the folder; elsewhere a no-op).
fn sync_parent(target: &Path) {
    #[cfg(unix)]
    if let Some(dir) = target.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = target;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: &[u8]) -> Hash {
        *blake3::hash(b).as_bytes()
    }

    #[test]
    fn prefix_hash_continues_to_the_whole_hash() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello world").unwrap();
        let (mut h, n) = hash_prefix(&p, 5).unwrap().unwrap();
        assert_eq!(n, 5);
        assert_eq!(*h.clone().finalize().as_bytes(), hash(b"hello"));
        h.update(b" world");
        assert_eq!(*h.finalize().as_bytes(), hash(b"hello world"));
        assert_eq!(hash_file(&p).unwrap(), Some((hash(b"hello world"), 11)));
        assert!(hash_prefix(&d.path().join("none"), 1).unwrap().is_none());
    }

    #[test]
    fn verified_part_is_renamed_and_mismatch_is_deleted() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out.bin");
        let mut part = PartFile::open(&target, 0).unwrap();
        part.file.write_all(b"data").unwrap();
        assert_eq!(partial_len(&target), Some(4));
        part.commit(&hash(b"data"), &hash(b"data"), false, "out.bin")
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        assert_eq!(partial_len(&target), None);

        let other = d.path().join("bad.bin");
        let mut part = PartFile::open(&other, 0).unwrap();
        part.file.write_all(b"xxxx").unwrap();
        let err = part
            .commit(&hash(b"xxxx"), &hash(b"data"), false, "bad.bin")
            .unwrap_err();
        assert!(matches!(err, CommitError::HashMismatch { .. }));
        assert!(!other.exists());
        assert_eq!(partial_len(&other), None);
    }

    #[test]
    fn resume_keeps_only_the_verified_prefix() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("r.bin");
        std::fs::write(part_path(&target), b"abcdefgh").unwrap();
        let mut part = PartFile::open(&target, 3).unwrap();
        part.file.write_all(b"XYZ").unwrap();
        drop(part);
        assert_eq!(std::fs::read(part_path(&target)).unwrap(), b"abcXYZ");
    }

    #[test]
    fn an_existing_file_is_not_replaced_without_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("e.txt");
        std::fs::write(&target, b"old").unwrap();
        let mut part = PartFile::open(&target, 0).unwrap();
        part.file.write_all(b"new").unwrap();
        let h = hash(b"new");
        assert!(matches!(
            part.commit(&h, &h, false, "e.txt"),
            Err(CommitError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        let part = PartFile::open(&target, 3).unwrap();
        part.commit(&h, &h, true, "e.txt").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }
}
