//! Whole-file BLAKE3 hashes a file server has already computed, so serving
//! the same large file again (or telling a client that its copy is the
//! same) does not read it through the hasher again: a third of the
//! server's CPU for a 1 GiB download here.
//!
//! A hash is remembered under what changes whenever a file's bytes do:
//! device, inode, size, modification time and change time (the change
//! time cannot be set back from user space, and every `write` moves it).
//! Like git's index, it refuses "racy" entries: a file changed within
//! [`SETTLE`] of being hashed could change again within the same clock
//! tick without its times moving, so it is not remembered. A hash is only
//! stored when the file's key was the same before and after it was read.
//! In memory only, bounded ([`CAPACITY`] entries, oldest forgotten first),
//! and only for files larger than [`MIN_SIZE`]: hashing a small file costs
//! less than looking it up would save. Whatever the cache says, the client
//! still checks every byte it receives against the hash.

use std::collections::{HashMap, VecDeque};
use std::fs::Metadata;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wire::files::Hash;

/// Entries remembered at most (about 100 bytes each).
pub const CAPACITY: usize = 16_384;
/// Files this size or smaller are not remembered.
pub const MIN_SIZE: u64 = 64 * 1024;
/// How long a file must have been left alone before its hash is kept.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What identifies one version of a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    /// Nanoseconds since the epoch.
    mtime: i128,
    ctime: i128,
}

impl FileKey {
    /// The key of an open file's metadata; `None` where the platform has no
    /// inode numbers and change times (nothing is cached there).
    pub fn of(meta: &Metadata) -> Option<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
            Some(Self {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
                mtime: ns(meta.mtime(), meta.mtime_nsec()),
                ctime: ns(meta.ctime(), meta.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }

    /// Whether the file was last changed at least [`SETTLE`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(_) => return false,
        };
        let settle = SETTLE.as_nanos() as i128;
        self.mtime.max(self.ctime) + settle <= now
    }
}

#[derive(Debug, Default)]
struct Entries {
    hashes: HashMap<FileKey, Hash>,
    /// Keys in the order they were added, for forgetting the oldest.
    order: VecDeque<FileKey>,
}

/// The server's remembered hashes, shared by its connections.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: Mutex<Entries>,
}

impl HashCache {
    /// The hash of the file with this key, if known.
    pub fn get(&self, key: Option<FileKey>) -> Option<Hash> {
        let key = key?;
        if key.size <= MIN_SIZE {
            return None;
        }
        self.lock().hashes.get(&key).copied()
    }

    /// Remembers `hash` for a file that had key `before` when its reading
    /// started and `after` when it ended, if the two agree and the file
    /// had settled by `hashed_at` (when its reading started). Returns
    /// whether it was kept.
    pub fn put(
        &self,
        before: Option<FileKey>,
        after: Option<FileKey>,
        hash: Hash,
        hashed_at: SystemTime,
    ) -> bool {
        let (Some(key), Some(after)) = (before, after) else {
            return false;
        };
        if key != after || key.size <= MIN_SIZE || !key.settled(hashed_at) {
            return false;
        }
        let mut e = self.lock();
        if e.hashes.insert(key, hash).is_none() {
            e.order.push_back(key);
            while e.order.len() > CAPACITY {
                if let Some(old) = e.order.pop_front() {
                    e.hashes.remove(&old);
                }
            }
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64, size: u64, mtime_s: i128) -> FileKey {
        FileKey {
            dev: 1,
            ino,
            size,
            mtime: mtime_s * 1_000_000_000,
            ctime: mtime_s * 1_000_000_000,
        }
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn a_settled_unchanged_file_is_remembered() {
        let c = HashCache::default();
        let k = key(7, 1 << 20, 1000);
        assert!(c.put(Some(k), Some(k), [9; 32], at(1010)));
        assert_eq!(c.get(Some(k)), Some([9; 32]));
    }

    #[test]
    fn any_change_of_size_or_times_or_inode_misses() {
        let c = HashCache::default();
        let k = key(7, 1 << 20, 1000);
        c.put(Some(k), Some(k), [9; 32], at(1010));
        assert_eq!(c.get(Some(key(8, 1 << 20, 1000))), None);
        assert_eq!(c.get(Some(key(7, (1 << 20) + 1, 1000))), None);
        assert_eq!(c.get(Some(key(7, 1 << 20, 1001))), None);
        let mut touched = k;
        touched.ctime += 1;
        assert_eq!(c.get(Some(touched)), None);
    }

    #[test]
    fn racy_changed_during_reading_or_small_files_are_not_kept() {
        let c = HashCache::default();
        let k = key(7, 1 << 20, 1000);
        assert!(
            !c.put(Some(k), Some(k), [1; 32], at(1001)),
            "changed 1 s before"
        );
        let mut later = k;
        later.mtime += 5;
        assert!(
            !c.put(Some(k), Some(later), [1; 32], at(1010)),
            "changed while read"
        );
        let small = key(7, MIN_SIZE, 1000);
        assert!(!c.put(Some(small), Some(small), [1; 32], at(1010)));
        assert!(!c.put(None, None, [1; 32], at(1010)));
        assert_eq!(c.get(Some(k)), None);
    }

    #[test]
    fn the_oldest_entries_are_forgotten_first() {
        let c = HashCache::default();
        for ino in 0..(CAPACITY as u64 + 10) {
            let k = key(ino, 1 << 20, 1000);
            assert!(c.put(Some(k), Some(k), [1; 32], at(1010)));
        }
        assert_eq!(c.get(Some(key(0, 1 << 20, 1000))), None);
        assert_eq!(c.get(Some(key(9, 1 << 20, 1000))), None);
        assert_eq!(c.get(Some(key(10, 1 << 20, 1000))), Some([1; 32]));
        assert_eq!(c.lock().hashes.len(), CAPACITY);
    }

    #[test]
    fn a_real_file_changes_key_when_written() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        let before = FileKey::of(&std::fs::metadata(&p).unwrap());
        assert_eq!(before, FileKey::of(&std::fs::metadata(&p).unwrap()));
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"two").unwrap();
        assert_ne!(before, FileKey::of(&std::fs::metadata(&p).unwrap()));
    }
}
