//! A published folder to serve in tests, and file helpers.

use std::path::{Path, PathBuf};

use crate::common::{Server, bin};

/// Deterministic bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A temp dir with `pub/`: a.txt, big.bin (300,000 bytes), fotos/1.jpg,
/// fotos/2.jpg, fotos/velhas/x.bin.
pub struct Tree {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pub");
        std::fs::create_dir_all(root.join("fotos/velhas")).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::write(root.join("big.bin"), pattern(300_000)).unwrap();
        std::fs::write(root.join("fotos/1.jpg"), pattern(1000)).unwrap();
        std::fs::write(root.join("fotos/2.jpg"), pattern(2000)).unwrap();
        std::fs::write(root.join("fotos/velhas/x.bin"), b"x").unwrap();
        Tree { dir, root }
    }
}

/// `soquete files serve ROOT --listen 127.0.0.1:0 EXTRA…`.
pub fn serve(t: &Tree, extra: &[&str]) -> Server {
    let mut args = vec![
        "files",
        "serve",
        t.root.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The temporary name of `target` while it is received.
pub fn part_of(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap().to_str().unwrap();
    target.with_file_name(format!(".{name}.soquete-part"))
}

/// Whether any `.soquete-part` file is left under `dir`.
pub fn has_part_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        p.to_string_lossy().ends_with(".soquete-part") || (p.is_dir() && has_part_files(&p))
    })
}

/// `files get` of `args` (names, then flags) from `server` into `out`, on a
/// disk that is full (simulated) after `fail_after` bytes: it must fail
/// saying so. Its stderr.
pub fn get_on_full_disk(server: &Server, args: &[&str], out: &Path, fail_after: u64) -> String {
    let o = std::process::Command::new(bin())
        .args(["files", "get", &server.addr_str()])
        .args(args)
        .arg("-o")
        .arg(out)
        .env("SOQUETE_TEST_FAIL_WRITES_AFTER", fail_after.to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("no space left on device"), "{err}");
    err
}
