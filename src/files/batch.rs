//! Durable renames for many small files at once: verified temporary files
//! wait here, then one `syncfs` (Linux) makes all their bytes durable, each
//! is renamed onto its final name, and each folder is fsynced once. Two
//! fsyncs per 4 KiB file would cost far more than the transfer; this costs
//! one flush per batch. Elsewhere (and if `syncfs` fails) every file is
//! fsynced on its own before its rename, as `PartFile::commit` does.
//!
//! Blocking (std::fs): callers run it on a blocking thread.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::resume::{CommitError, PartFile};

/// Files below this size go through a batch; larger ones commit alone.
pub const SMALL_FILE: u64 = 4 << 20;
/// A batch is flushed at this many files (they are closed while they wait:
/// no descriptor is held per file)...
const MAX_FILES: usize = 16384;
/// ...or this many bytes.
const MAX_BYTES: u64 = 64 << 20;

/// A verified file waiting for its durable rename.
struct Waiting {
    /// The temporary file.
    path: PathBuf,
    /// The final name.
    target: PathBuf,
    overwrite: bool,
    /// For messages.
    name: String,
}

/// Verified files waiting to be made durable and renamed.
#[derive(Default)]
pub struct Batch {
    items: Vec<Waiting>,
    bytes: u64,
}

impl Batch {
    /// Adds a file whose hash was already checked.
    pub fn push(&mut self, part: PartFile, size: u64, overwrite: bool, name: String) {
        self.bytes += size;
        let PartFile { path, target, .. } = part;
        self.items.push(Waiting {
            path,
            target,
            overwrite,
            name,
        });
    }

    /// Whether it should be flushed now.
    pub fn full(&self) -> bool {
        self.items.len() >= MAX_FILES || self.bytes >= MAX_BYTES
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Makes every waiting file durable and renames it; one error per
    /// file that could not be stored, with its place in the batch (in the
    /// order pushed).
    pub fn flush(&mut self) -> Vec<(usize, CommitError)> {
        let synced = self.sync_handle().is_some_and(|f| sync_filesystem(&f));
        self.rename_all(synced)
    }

    /// A file to `syncfs` through (the first waiting one), for a caller
    /// that makes the batch durable on another thread before
    /// [`rename_all`](Self::rename_all).
    pub fn sync_handle(&self) -> Option<std::fs::File> {
        self.items
            .first()
            .and_then(|w| std::fs::File::open(&w.path).ok())
    }

    /// The second half of [`flush`](Self::flush): renames every waiting
    /// file, after fsyncing each on its own unless `synced` says one
    /// [`sync_filesystem`] on [`sync_handle`](Self::sync_handle) returned
    /// true after the last of them was written.
    pub fn rename_all(&mut self, synced: bool) -> Vec<(usize, CommitError)> {
        let items = std::mem::take(&mut self.items);
        self.bytes = 0;
        let mut errors = Vec::new();
        let mut dirs = BTreeSet::<PathBuf>::new();
        for (i, w) in items.into_iter().enumerate() {
            let io = |source| CommitError::Io {
                name: w.name.clone(),
                source,
            };
            let fsync = || std::fs::File::open(&w.path)?.sync_all();
            if !synced && let Err(e) = fsync() {
                errors.push((i, io(e)));
                continue;
            }
            let renamed = if w.overwrite {
                std::fs::rename(&w.path, &w.target)
            } else {
                rename_new(&w.path, &w.target)
            };
            match renamed {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    errors.push((i, CommitError::Exists { name: w.name }));
                }
                Ok(()) => {
                    if let Some(d) = w.target.parent() {
                        dirs.insert(d.to_path_buf());
                    }
                }
                Err(e) => errors.push((i, io(e))),
            }
        }
        #[cfg(unix)]
        for d in dirs {
            if let Ok(f) = std::fs::File::open(d) {
                let _ = f.sync_all();
            }
        }
        errors
    }
}

/// Renames `from` onto `to` unless `to` exists (`AlreadyExists` then).
/// Linux: one atomic `renameat2(RENAME_NOREPLACE)`, falling back to a
/// check then a rename where the filesystem does not support it.
pub fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            other => return other.map_err(Into::into),
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    std::fs::rename(from, to)
}

/// One flush of the whole filesystem holding `file` (Linux `syncfs`);
/// false where there is none or it failed.
#[cfg(target_os = "linux")]
pub fn sync_filesystem(file: &std::fs::File) -> bool {
    rustix::fs::syncfs(file).is_ok()
}

#[cfg(not(target_os = "linux"))]
pub fn sync_filesystem(_: &std::fs::File) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_batch_renames_every_file_and_keeps_existing_ones() {
        let d = tempfile::tempdir().unwrap();
        let mut batch = Batch::default();
        for i in 0..3 {
            let target = d.path().join(format!("f{i}"));
            let mut part = PartFile::open(&target, 0).unwrap();
            part.file.write_all(b"data").unwrap();
            batch.push(part, 4, false, format!("f{i}"));
        }
        std::fs::write(d.path().join("f2"), b"old").unwrap();
        assert!(!batch.full());
        let errors = batch.flush();
        assert_eq!(errors.len(), 1);
        assert!(matches!(errors[0], (2, CommitError::Exists { .. })));
        assert_eq!(std::fs::read(d.path().join("f0")).unwrap(), b"data");
        assert_eq!(std::fs::read(d.path().join("f1")).unwrap(), b"data");
        assert_eq!(std::fs::read(d.path().join("f2")).unwrap(), b"old");
        assert!(batch.is_empty());
    }
}
