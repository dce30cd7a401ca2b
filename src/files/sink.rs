//! Where small received files go: one blocking thread takes whole small
//! files (bytes already read from the network, the sender's hash) from a
//! bounded queue, writes each under its temporary name, hashes and checks
//! it, and puts it in a [`Batch`] for its durable rename (a [`Committer`]
//! thread makes each batch durable while the next files are written). The network side
//! never waits for the disk per file (no blocking-thread round trip per
//! file), and the disk side never waits for the network. Files cross to
//! the thread in groups (up to [`GROUP_FILES`] files or [`GROUP_BYTES`]),
//! and a group leaves early whenever the network side is about to wait
//! ([`Sink::flush`]): a thread woken per 4 KiB file cost two futex calls
//! per file, a third of the client's kernel time for 10,000 files. Used by
//! `files get` (the server's uploads batch their small files in
//! `session_upload`).
//!
//! A write failure (a full disk) stops the thread: the next `send` fails
//! and [`Sink::finish`] returns that failure, so the caller stops too.

use std::io::Write;
use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::batch::Batch;
use super::committer::Committer;
use super::resume::{CommitError, PartFile};
use super::transfer::simulated_full_disk;
use crate::wire::files::Hash;

/// Largest file sent whole through a sink.
pub const SMALL_READ: u64 = 64 * 1024;
/// Files handed to the thread at once, at most...
pub const GROUP_FILES: usize = 64;
/// ...or this many bytes (plus one file).
pub const GROUP_BYTES: usize = 1 << 20;
/// Groups queued at most (about `QUEUE * GROUP_BYTES` in memory).
const QUEUE: usize = 8;

/// A small file received whole, still to be written and checked.
pub struct SmallFile {
    pub target: PathBuf,
    /// Written straight under `target`, no temporary name: `target` is in
    /// a staging folder, made durable and renamed as a whole
    /// ([`super::staging`]). Only with `offset` 0.
    pub direct: bool,
    /// Bytes already in the temporary file (verified), kept before `bytes`.
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// Hash state of the first `offset` bytes.
    pub hasher: blake3::Hasher,
    /// The sender's hash of the whole file.
    pub expected: Hash,
    pub overwrite: bool,
    /// For messages.
    pub name: String,
}

/// What the thread did: one message per file not stored, or the write
/// failure that stopped it.
pub struct Outcome {
    pub failures: Vec<String>,
    pub fatal: Option<String>,
}

/// The queue to the writing thread.
pub struct Sink {
    tx: mpsc::Sender<Vec<SmallFile>>,
    /// The group being gathered.
    group: Vec<SmallFile>,
    group_bytes: usize,
    thread: JoinHandle<Outcome>,
}

impl Sink {
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = tokio::task::spawn_blocking(move || run(rx));
        Self {
            tx,
            group: Vec::new(),
            group_bytes: 0,
            thread,
        }
    }

    /// Queues a file; `false` if the thread stopped (call [`Sink::finish`]).
    pub async fn send(&mut self, f: SmallFile) -> bool {
        self.group_bytes += f.bytes.len();
        self.group.push(f);
        if self.group.len() >= GROUP_FILES || self.group_bytes >= GROUP_BYTES {
            return self.flush().await;
        }
        true
    }

    /// Hands the files gathered so far to the thread. Call it before
    /// waiting for the network, so files are written while it waits.
    pub async fn flush(&mut self) -> bool {
        if self.group.is_empty() {
            return true;
        }
        self.group_bytes = 0;
        self.tx.send(std::mem::take(&mut self.group)).await.is_ok()
    }

    /// Waits for every queued file to be stored and made durable.
    pub async fn finish(mut self) -> Outcome {
        // A failed hand-over means the thread stopped: its outcome says why.
        self.flush().await;
        drop(self.tx);
        self.thread.await.unwrap_or_else(|e| Outcome {
            failures: Vec::new(),
            fatal: Some(format!("file thread failed: {e}")),
        })
    }
}

fn run(mut rx: mpsc::Receiver<Vec<SmallFile>>) -> Outcome {
    let mut batch = Batch::default();
    let mut committer = Committer::start();
    let mut failures = Vec::new();
    let mut fatal = None;
    'groups: while let Some(group) = rx.blocking_recv() {
        for f in group {
            let stored = if f.direct {
                store_direct(f).map(|()| None)
            } else {
                store(f).map(Some)
            };
            match stored {
                Ok(Some((part, size, overwrite, name))) => {
                    batch.push(part, size, overwrite, name);
                    committer.offer(&mut batch);
                }
                Ok(None) => {}
                Err(Stored::Failed(msg)) => failures.push(msg),
                Err(Stored::Fatal(msg)) => {
                    fatal = Some(msg);
                    break 'groups;
                }
            }
        }
    }
    rx.close();
    failures.extend(committer.finish(batch));
    Outcome { failures, fatal }
}

enum Stored {
    /// This file was not stored.
    Failed(String),
    /// Nothing more can be stored.
    Fatal(String),
}

type Verified = (PartFile, u64, bool, String);

/// Whether a failure to create a file will fail every file after it too
/// (a full disk, no inodes left, a quota, a read-only file system): then
/// the download stops with one message, not one per remaining file.
fn stops_everything(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{QuotaExceeded, ReadOnlyFilesystem, StorageFull};
    matches!(e.kind(), StorageFull | QuotaExceeded | ReadOnlyFilesystem)
}

/// Checks one file, then writes it under its own name (in a staging
/// folder: see [`SmallFile::direct`]).
fn store_direct(f: SmallFile) -> Result<(), Stored> {
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", f.target.display());
    let mut hasher = f.hasher;
    hasher.update(&f.bytes);
    if *hasher.finalize().as_bytes() != f.expected {
        // What a resumed staging folder held under this name is not it.
        let _ = std::fs::remove_file(&f.target);
        return Err(Stored::Failed(
            CommitError::HashMismatch { name: f.name }.to_string(),
        ));
    }
    let mut file = std::fs::File::create(&f.target).map_err(|e| {
        if stops_everything(&e) {
            Stored::Fatal(cannot(e))
        } else {
            Stored::Failed(cannot(e))
        }
    })?;
    let written = simulated_full_disk(0, f.bytes.len()).and_then(|()| file.write_all(&f.bytes));
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&f.target);
        return Err(Stored::Fatal(cannot(e)));
    }
    Ok(())
}

/// Writes and checks one file.
fn store(f: SmallFile) -> Result<Verified, Stored> {
    let open = if f.offset == 0 {
        PartFile::create(&f.target)
    } else {
        PartFile::open(&f.target, f.offset)
    };
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", f.target.display());
    let mut part = open.map_err(|e| {
        if stops_everything(&e) {
            Stored::Fatal(cannot(e))
        } else {
            Stored::Failed(cannot(e))
        }
    })?;
    let written =
        simulated_full_disk(0, f.bytes.len()).and_then(|()| part.file.write_all(&f.bytes));
    if let Err(e) = written {
        return Err(Stored::Fatal(cannot(e)));
    }
    let mut hasher = f.hasher;
    hasher.update(&f.bytes);
    if *hasher.finalize().as_bytes() != f.expected {
        drop(part.file);
        let _ = std::fs::remove_file(&part.path);
        return Err(Stored::Failed(
            CommitError::HashMismatch { name: f.name }.to_string(),
        ));
    }
    let size = f.offset + f.bytes.len() as u64;
    Ok((part, size, f.overwrite, f.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(dir: &std::path::Path, name: &str, bytes: &[u8], expected: &[u8]) -> SmallFile {
        SmallFile {
            target: dir.join(name),
            direct: false,
            offset: 0,
            bytes: bytes.to_vec(),
            hasher: blake3::Hasher::new(),
            expected: *blake3::hash(expected).as_bytes(),
            overwrite: false,
            name: name.into(),
        }
    }

    #[test]
    fn a_full_disk_stops_everything_a_missing_folder_does_not() {
        use std::io::{Error, ErrorKind};
        assert!(stops_everything(&Error::from(ErrorKind::StorageFull)));
        assert!(stops_everything(&Error::from(ErrorKind::QuotaExceeded)));
        assert!(stops_everything(&Error::from(
            ErrorKind::ReadOnlyFilesystem
        )));
        #[cfg(target_os = "linux")]
        for errno in [28, 122, 30] {
            // ENOSPC (also no inodes left), EDQUOT, EROFS as the OS gives them.
            assert!(stops_everything(&Error::from_raw_os_error(errno)));
        }
        assert!(!stops_everything(&Error::from(ErrorKind::NotFound)));
        assert!(!stops_everything(&Error::from(ErrorKind::PermissionDenied)));
    }

    #[tokio::test]
    async fn a_sink_stores_verified_files_and_drops_bad_ones() {
        let d = tempfile::tempdir().unwrap();
        let mut sink = Sink::start();
        assert!(sink.send(small(d.path(), "a", b"aaa", b"aaa")).await);
        assert!(sink.send(small(d.path(), "b", b"bbb", b"xxx")).await);
        let out = sink.finish().await;
        assert!(out.fatal.is_none());
        assert_eq!(out.failures.len(), 1, "{:?}", out.failures);
        assert!(out.failures[0].contains("hash"));
        assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"aaa");
        assert!(!d.path().join("b").exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn files_cross_in_groups_and_none_is_lost() {
        let d = tempfile::tempdir().unwrap();
        let mut sink = Sink::start();
        let n = GROUP_FILES * 3 + 5;
        for i in 0..n {
            let body = format!("file {i}");
            let f = small(d.path(), &format!("f{i}"), body.as_bytes(), body.as_bytes());
            assert!(sink.send(f).await);
            if i == 10 {
                assert!(sink.flush().await, "an early hand-over");
            }
        }
        let out = sink.finish().await;
        assert!(out.fatal.is_none() && out.failures.is_empty());
        for i in 0..n {
            let got = std::fs::read(d.path().join(format!("f{i}"))).unwrap();
            assert_eq!(got, format!("file {i}").as_bytes());
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), n);
    }
}
