//! Makes [`Batch`]es durable while the next files are being created: a
//! thread runs each batch's `syncfs` (an I/O wait), and the thread that
//! creates the files renames a batch once its `syncfs` is done. For 10,000
//! files of 4 KiB the one flush at the end was a third of a download
//! (syncfs about 50 ms, renames about 80 ms, after 250 ms of receiving and
//! creating); now the waits overlap the creating and only the last batch
//! is flushed at the end. The renames stay on the creating thread: renames
//! and creates in one folder take the folder's lock, and a second thread
//! renaming spent more time spinning on that lock (15% of the client's
//! CPU) than it saved.
//!
//! A batch goes to the `syncfs` thread as soon as it holds [`OFFER_FILES`]
//! and the previous one is renamed; while a `syncfs` runs, files gather in
//! the next batch (so batches grow to what one `syncfs` takes to come
//! round), and a batch that reaches [`Batch::full`] waits for it.
//! Durability is the batch's own: a file is renamed only after a `syncfs`
//! that began after its last write. Blocking (std threads): run it from a
//! blocking thread.

use std::fs::File;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use super::batch::{Batch, sync_filesystem};

/// Files a batch holds before its `syncfs` starts: fewer would spend a
/// journal commit on a handful of files.
const OFFER_FILES: usize = 256;

/// The `syncfs` thread: a file in, whether its filesystem synced out.
struct Syncer {
    files: SyncSender<File>,
    done: Receiver<bool>,
    thread: JoinHandle<()>,
}

/// Batches made durable in the background; failures are gathered until
/// [`finish`](Self::finish).
pub struct Committer {
    /// `None` when the thread could not be started (or stopped): batches
    /// are then flushed whole where they are offered, as before.
    syncer: Option<Syncer>,
    /// The batch whose `syncfs` is running (only while `syncer` is).
    in_flight: Option<Batch>,
    failures: Vec<String>,
}

impl Committer {
    pub fn start() -> Self {
        let (files, requests) = mpsc::sync_channel::<File>(1);
        let (answers, done) = mpsc::sync_channel::<bool>(1);
        let thread = std::thread::Builder::new()
            .name("soquete-syncfs".into())
            .spawn(move || {
                for f in requests {
                    if answers.send(sync_filesystem(&f)).is_err() {
                        break;
                    }
                }
            });
        Self {
            syncer: thread.ok().map(|thread| Syncer {
                files,
                done,
                thread,
            }),
            in_flight: None,
            failures: Vec::new(),
        }
    }

    /// Called after each file joins `batch`: renames the batch in flight
    /// if its `syncfs` is done, and starts one for `batch` when it is
    /// large enough and nothing is in flight.
    pub fn offer(&mut self, batch: &mut Batch) {
        if !self.settle(batch.full()) || (batch.len() < OFFER_FILES && !batch.full()) {
            return;
        }
        let mut batch = std::mem::take(batch);
        let started = match (&self.syncer, batch.sync_handle()) {
            (Some(s), Some(f)) => s.files.send(f).is_ok(),
            _ => false,
        };
        if started {
            self.in_flight = Some(batch);
        } else {
            self.syncer = None;
            self.failures.extend(flush(&mut batch));
        }
    }

    /// Renames the batch in flight once its `syncfs` is done (waiting for
    /// it if `wait`); whether nothing is in flight any more.
    fn settle(&mut self, wait: bool) -> bool {
        let Some(s) = &self.syncer else {
            return true;
        };
        if self.in_flight.is_none() {
            return true;
        }
        let synced = if wait {
            s.done.recv().unwrap_or(false)
        } else {
            match s.done.try_recv() {
                Ok(synced) => synced,
                Err(TryRecvError::Empty) => return false,
                // The thread is gone: each file is fsynced on its own.
                Err(TryRecvError::Disconnected) => false,
            }
        };
        let mut batch = self.in_flight.take().expect("checked above");
        self.failures.extend(rename(&mut batch, synced));
        true
    }

    /// Flushes what is left and waits for every batch: the failures, one
    /// message per file not stored.
    pub fn finish(mut self, mut last: Batch) -> Vec<String> {
        self.settle(true);
        self.failures.extend(flush(&mut last));
        if let Some(s) = self.syncer.take() {
            drop(s.files);
            if s.thread.join().is_err() {
                self.failures.push("the syncfs thread failed".into());
            }
        }
        self.failures
    }
}

fn flush(batch: &mut Batch) -> impl Iterator<Item = String> + use<> {
    batch.flush().into_iter().map(|(_, e)| e.to_string())
}

fn rename(batch: &mut Batch, synced: bool) -> impl Iterator<Item = String> + use<> {
    batch
        .rename_all(synced)
        .into_iter()
        .map(|(_, e)| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::resume::PartFile;
    use std::io::Write;

    fn part(dir: &std::path::Path, name: &str, body: &[u8]) -> PartFile {
        let mut p = PartFile::create(&dir.join(name)).unwrap();
        p.file.write_all(body).unwrap();
        p
    }

    #[test]
    fn every_file_offered_or_left_is_committed_once() {
        let d = tempfile::tempdir().unwrap();
        let mut c = Committer::start();
        let mut batch = Batch::default();
        let n = OFFER_FILES * 5 + 17;
        for i in 0..n {
            let body = format!("file {i}");
            batch.push(
                part(d.path(), &format!("f{i}"), body.as_bytes()),
                body.len() as u64,
                false,
                format!("f{i}"),
            );
            c.offer(&mut batch);
        }
        // One name already taken: its failure comes back, the rest land.
        std::fs::write(d.path().join("taken"), b"old").unwrap();
        batch.push(part(d.path(), "taken", b"new"), 3, false, "taken".into());
        let failures = c.finish(batch);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("taken"), "{failures:?}");
        for i in 0..n {
            let got = std::fs::read(d.path().join(format!("f{i}"))).unwrap();
            assert_eq!(got, format!("file {i}").as_bytes());
        }
        assert_eq!(std::fs::read(d.path().join("taken")).unwrap(), b"old");
        let others = std::fs::read_dir(d.path())
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("taken")
            })
            .count();
        assert_eq!(others, n, "no temporary file left behind");
    }

    #[test]
    fn a_small_batch_is_not_offered() {
        let d = tempfile::tempdir().unwrap();
        let mut c = Committer::start();
        let mut batch = Batch::default();
        batch.push(part(d.path(), "a", b"a"), 1, false, "a".into());
        c.offer(&mut batch);
        assert_eq!(batch.len(), 1, "kept for more files");
        assert!(c.finish(batch).is_empty());
        assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"a");
    }
}
