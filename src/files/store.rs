//! The published folder on disk, and the only way the file server touches
//! it: paths from the network are checked (`wire::files::check_path`),
//! resolved with symlinks followed only while they stay inside the folder,
//! and only regular files are opened (never a device, FIFO or socket, and
//! without blocking if one is swapped in). The listing is read live, sorted.
//! Uploads get their final path here; `resume` writes them.
//!
//! Blocking (std::fs): callers run it on a blocking thread.

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::wire::files::{Entry, EntryKind, PART_SUFFIX, PathError, check_path};

/// Most entries one listing returns.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Deepest folder nesting listed.
pub const MAX_DEPTH: usize = 64;

/// Why a request on the store failed; the text is sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("bad name '{name}': {source}")]
    BadPath { name: String, source: PathError },
    #[error("no such file or folder: {0}")]
    NotFound(String),
    #[error("{0} is a folder, not a file")]
    IsDir(String),
    #[error("{0} is not a regular file (device, FIFO or socket)")]
    Special(String),
    #[error("{0} leads outside the published folder")]
    Outside(String),
    #[error("{0} has more than {MAX_ENTRIES} entries or {MAX_DEPTH} levels")]
    TooLarge(String),
    #[error("{name}: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

/// A published (or upload) folder.
#[derive(Debug, Clone)]
pub struct Store {
    /// The folder, canonical (symlinks resolved), so containment is a
    /// prefix check on canonical paths.
    root: PathBuf,
    /// The folder, open (`O_PATH`), for opening files beneath it in one
    /// step (Linux; see [`Store::open_beneath`]).
    #[cfg(target_os = "linux")]
    dir: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

/// A file opened for reading, with what the listing says of it.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub size: u64,
    pub mtime_ms: u64,
    /// What identifies this version of its bytes (see `hashcache`).
    pub key: Option<super::hashcache::FileKey>,
}

/// Milliseconds since the epoch of a file's modification time (0 if unknown).
pub fn mtime_ms(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// Opens `root`, which must be an existing folder.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a folder", root.display()),
            ));
        }
        #[cfg(target_os = "linux")]
        let dir = {
            use rustix::fs::{Mode, OFlags};
            rustix::fs::open(
                &root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
            .map(std::sync::Arc::new)
        };
        Ok(Self {
            root,
            #[cfg(target_os = "linux")]
            dir,
        })
    }

    /// The canonical folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The canonical path of existing `rel`, refused if it is outside.
    fn resolve(&self, rel: &str, allow_root: bool) -> Result<PathBuf, StoreError> {
        check_path(rel, allow_root).map_err(|source| StoreError::BadPath {
            name: rel.to_owned(),
            source,
        })?;
        let joined = self.root.join(rel);
        let real = joined.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(rel.to_owned()),
            _ => StoreError::Io {
                name: rel.to_owned(),
                source: e,
            },
        })?;
        if !real.starts_with(&self.root) {
            return Err(StoreError::Outside(rel.to_owned()));
        }
        Ok(real)
    }

    /// Opens regular file `rel` for reading.
    pub fn open_file(&self, rel: &str) -> Result<OpenFile, StoreError> {
        #[cfg(target_os = "linux")]
        if let Some(opened) = self.open_beneath(rel) {
            return opened;
        }
        let real = self.resolve(rel, false)?;
        let io = |source| StoreError::Io {
            name: rel.to_owned(),
            source,
        };
        let meta = std::fs::metadata(&real).map_err(io)?;
        if meta.is_dir() {
            return Err(StoreError::IsDir(rel.to_owned()));
        }
        if !meta.is_file() {
            return Err(StoreError::Special(rel.to_owned()));
        }
        let file = open_regular(&real).map_err(io)?;
        let opened = file.metadata().map_err(io)?;
        if !opened.is_file() || !same_file(&meta, &opened) {
            return Err(StoreError::Special(rel.to_owned()));
        }
        Ok(OpenFile {
            file,
            size: opened.len(),
            mtime_ms: mtime_ms(&opened),
            key: super::hashcache::FileKey::of(&opened),
        })
    }

    /// [`open_file`](Self::open_file) in a few system calls (a stat, an
    /// `openat2` that the kernel keeps beneath the folder, an fstat) where
    /// resolving the path by hand takes a dozen: the cost of each of 10,000
    /// small files served. `None` whenever this path cannot answer as the
    /// portable one would (no `openat2`, an absolute symlink, anything but
    /// a regular file, any error but "not found"): that one then does.
    #[cfg(target_os = "linux")]
    fn open_beneath(&self, rel: &str) -> Option<Result<OpenFile, StoreError>> {
        use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
        use std::os::unix::fs::MetadataExt;
        let dir = self.dir.as_deref()?;
        if let Err(source) = check_path(rel, false) {
            return Some(Err(StoreError::BadPath {
                name: rel.to_owned(),
                source,
            }));
        }
        // Looked at before opening, so no device or FIFO is ever opened.
        let before = match rustix::fs::statat(dir, rel, AtFlags::empty()) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => st,
            Err(rustix::io::Errno::NOENT) => {
                return Some(Err(StoreError::NotFound(rel.to_owned())));
            }
            _ => return None,
        };
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let fd = rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve).ok()?;
        let file = File::from(fd);
        let opened = file.metadata().ok()?;
        if !opened.is_file() || opened.dev() != before.st_dev || opened.ino() != before.st_ino {
            return None;
        }
        Some(Ok(OpenFile {
            size: opened.len(),
            mtime_ms: mtime_ms(&opened),
            key: super::hashcache::FileKey::of(&opened),
            file,
        }))
    }

    /// Everything under `rel` ("" = the whole folder), recursively, sorted
    /// by path; a file gives itself. Temporary files, names that are not
    /// UTF-8 or hold control characters, special files and symlinks that
    /// leave the folder are left out; symlinked folders are listed but not
    /// entered.
    pub fn list(&self, rel: &str) -> Result<Vec<Entry>, StoreError> {
        let real = self.resolve(rel, true)?;
        let io = |source| StoreError::Io {
            name: rel.to_owned(),
            source,
        };
        let meta = std::fs::metadata(&real).map_err(io)?;
        if meta.is_file() {
            return Ok(vec![entry(rel, EntryKind::File, &meta)]);
        }
        if !meta.is_dir() {
            return Err(StoreError::Special(rel.to_owned()));
        }
        let mut out = Vec::new();
        self.walk(&real, rel, 0, &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn walk(
        &self,
        dir: &Path,
        rel: &str,
        depth: usize,
        out: &mut Vec<Entry>,
    ) -> Result<(), StoreError> {
        if depth > MAX_DEPTH {
            return Err(StoreError::TooLarge(rel.to_owned()));
        }
        let io = |source| StoreError::Io {
            name: rel.to_owned(),
            source,
        };
        for item in std::fs::read_dir(dir).map_err(io)? {
            let item = item.map_err(io)?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if check_path(&path, false).is_err() {
                continue;
            }
            let Some((kind, meta, enter)) = self.classify(&item.path()) else {
                continue;
            };
            if out.len() >= MAX_ENTRIES {
                return Err(StoreError::TooLarge(rel.to_owned()));
            }
            out.push(entry(&path, kind, &meta));
            if enter {
                self.walk(&item.path(), &path, depth + 1, out)?;
            }
        }
        Ok(())
    }

    /// What a folder item is: (kind, metadata, whether to enter it), or
    /// `None` to leave it out.
    fn classify(&self, path: &Path) -> Option<(EntryKind, Metadata, bool)> {
        let lmeta = std::fs::symlink_metadata(path).ok()?;
        if lmeta.file_type().is_symlink() {
            let real = path.canonicalize().ok()?;
            if !real.starts_with(&self.root) {
                return None;
            }
            let meta = std::fs::metadata(&real).ok()?;
            return if meta.is_file() {
                Some((EntryKind::File, meta, false))
            } else if meta.is_dir() {
                Some((EntryKind::Dir, meta, false))
            } else {
                None
            };
        }
        if lmeta.is_file() {
            Some((EntryKind::File, lmeta, false))
        } else if lmeta.is_dir() {
            Some((EntryKind::Dir, lmeta, true))
        } else {
            None
        }
    }

    /// The top-level regular files, sorted: the chapter's listing.
    pub fn top_level_files(&self) -> Vec<String> {
        self.list("")
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.kind == EntryKind::File && !e.path.contains('/'))
            .map(|e| e.path)
            .collect()
    }

    /// Where upload `rel` goes: its folders are made inside this store
    /// (refusing any that is a symlink or not a folder), and the final name
    /// must not be a folder, symlink or special file.
    pub fn upload_target(&self, rel: &str) -> Result<PathBuf, StoreError> {
        check_path(rel, false).map_err(|source| StoreError::BadPath {
            name: rel.to_owned(),
            source,
        })?;
        let io = |source| StoreError::Io {
            name: rel.to_owned(),
            source,
        };
        let mut dir = self.root.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        let (last, folders) = parts.split_last().expect("checked non-empty");
        for part in folders {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(StoreError::Outside(rel.to_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir(&dir).map_err(io)?
                }
                Err(e) => return Err(io(e)),
            }
        }
        let target = dir.join(last);
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => Err(StoreError::IsDir(rel.to_owned())),
            Ok(m) if !m.is_file() => Err(StoreError::Special(rel.to_owned())),
            Ok(_) => Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(target),
            Err(e) => Err(io(e)),
        }
    }
}

fn entry(path: &str, kind: EntryKind, meta: &Metadata) -> Entry {
    Entry {
        path: path.to_owned(),
        kind,
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        mtime_ms: mtime_ms(meta),
    }
}

/// The temporary name a file has while being received: `.NAME.soquete-part`
/// beside it.
pub fn part_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}{PART_SUFFIX}"))
}

/// Opens for reading without following a final symlink and without
/// blocking on a FIFO swapped in after the check.
#[cfg(unix)]
fn open_regular(path: &Path) -> std::io::Result<File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
}

#[cfg(not(unix))]
fn open_regular(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &Metadata, _: &Metadata) -> bool {
    true
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
