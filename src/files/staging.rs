//! A folder downloaded where nothing has its name yet is received into a
//! hidden staging folder beside it (`.NAME.soquete-part`, the temporary
//! name files get) and renamed onto its name once everything in it is
//! durable: one `syncfs`, one `renameat2(RENAME_NOREPLACE)`, one fsync of
//! the folder above. Inside it, small files are written straight under
//! their own names -- no temporary name and rename per file, which was
//! half of the client's kernel time for 10,000 files of 4 KiB (each
//! rename is two more lookups and edits of a folder holding thousands of
//! names). Nothing appears under the final name before it is complete and
//! durable, as for a single file. An interrupted download leaves the
//! staging folder; the next `get` of the folder continues in it (its files
//! are compared by hash, never trusted, and replaced when they differ:
//! they are this tool's own partial work).
//!
//! Linux only (elsewhere there is no `syncfs`: folders download file by
//! file, each fsynced and renamed).

use std::path::{Path, PathBuf};

use super::batch::{rename_new, sync_filesystem};
use super::store::part_path;

/// A folder being received under a staging name.
#[derive(Debug, Clone, PartialEq)]
pub struct Staged {
    /// Where the folder goes.
    pub root: PathBuf,
    /// Where it is received.
    pub staging: PathBuf,
}

impl Staged {
    /// Staging for the folder that goes to `root`, if nothing is there.
    pub fn for_root(root: &Path) -> Option<Self> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        match std::fs::symlink_metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Self {
                root: root.to_path_buf(),
                staging: part_path(root),
            }),
            _ => None,
        }
    }

    /// Where a path below `root` is received (`None` if it is not below).
    pub fn place(&self, target: &Path) -> Option<PathBuf> {
        let rel = target.strip_prefix(&self.root).ok()?;
        Some(if rel.as_os_str().is_empty() {
            self.staging.clone()
        } else {
            self.staging.join(rel)
        })
    }

    /// Makes everything received durable and gives the folder its name.
    /// Blocking. The error says what is left where.
    pub fn publish(&self) -> Result<(), String> {
        let left = |what: &str, e: std::io::Error| {
            format!(
                "{what} {}: {e} (everything received is in {})",
                self.root.display(),
                self.staging.display()
            )
        };
        let dir = std::fs::File::open(&self.staging).map_err(|e| left("cannot finish", e))?;
        if !sync_filesystem(&dir) {
            // No syncfs after all: every file, then every folder, on its own.
            sync_tree(&self.staging).map_err(|e| left("cannot make durable", e))?;
        }
        rename_new(&self.staging, &self.root).map_err(|e| left("cannot rename onto", e))?;
        if let Some(parent) = self.root.parent()
            && let Ok(d) = std::fs::File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// fsyncs every file and folder below `dir`, then `dir`.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_new_folder_is_staged_then_published_and_an_existing_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("fotos");
        let s = Staged::for_root(&root).expect("nothing there yet");
        assert_eq!(s.staging, d.path().join(".fotos.soquete-part"));
        assert_eq!(s.place(&root).unwrap(), s.staging);
        assert_eq!(
            s.place(&root.join("a/b.jpg")).unwrap(),
            s.staging.join("a/b.jpg")
        );
        assert_eq!(s.place(&d.path().join("other")), None);
        std::fs::create_dir_all(s.staging.join("a")).unwrap();
        std::fs::write(s.staging.join("a/b.jpg"), b"jpg").unwrap();
        s.publish().unwrap();
        assert_eq!(std::fs::read(root.join("a/b.jpg")).unwrap(), b"jpg");
        assert!(!s.staging.exists());
        assert_eq!(Staged::for_root(&root), None, "it exists now");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn publishing_never_replaces_what_appeared_meanwhile() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("fotos");
        let s = Staged::for_root(&root).unwrap();
        std::fs::create_dir_all(&s.staging).unwrap();
        std::fs::write(s.staging.join("x"), b"new").unwrap();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("mine"), b"mine").unwrap();
        let err = s.publish().unwrap_err();
        assert!(err.contains("everything received is in"), "{err}");
        assert_eq!(std::fs::read(root.join("mine")).unwrap(), b"mine");
        assert_eq!(std::fs::read(s.staging.join("x")).unwrap(), b"new");
    }
}
