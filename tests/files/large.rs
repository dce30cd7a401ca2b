//! Files large enough for direct I/O on the receiver (8 MiB and more, on a
//! file system that takes it; /tmp here): byte for byte both ways, resumed
//! from an aligned and from an unaligned partial file, and a full disk in
//! the middle. Their lengths are not multiples of 4 KiB, so the last bytes
//! take the other path.

use crate::common::Server;
use crate::support::{get_on_full_disk, has_part_files, part_of, pattern};
use crate::{files, get};

/// 9 MiB and a bit.
const LARGE: usize = (9 << 20) + 4097;

/// A published folder holding `large.bin` ([`LARGE`] bytes of [`pattern`]).
fn published() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pub");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("large.bin"), pattern(LARGE)).unwrap();
    (dir, root)
}

fn serve(root: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["files", "serve", root.to_str().unwrap()];
    args.extend(["--listen", "127.0.0.1:0"]);
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn a_large_file_goes_both_ways_byte_for_byte() {
    let (dir, root) = published();
    let up = dir.path().join("up");
    let server = serve(&root, &["--uploads", up.to_str().unwrap()]);
    let out = dir.path().join("dl");
    let (ok, _, err) = get(&server, &["large.bin"], &out, &["-v"]);
    assert!(ok, "{err}");
    assert!(std::fs::read(out.join("large.bin")).unwrap() == pattern(LARGE));
    // CI runs where the temporary folder is on a disk (ext4): the direct
    // path must have been the one taken there.
    if std::env::var_os("SOQUETE_REQUIRE_DIRECT_IO").is_some() {
        assert!(err.contains("with direct I/O"), "{err}");
    }
    let local = root.join("large.bin");
    let (ok, _, err) = files(&["put", &server.addr_str(), local.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(std::fs::read(up.join("large.bin")).unwrap() == pattern(LARGE));
    assert!(!has_part_files(&out) && !has_part_files(&up));
}

#[test]
fn a_large_download_resumes_from_aligned_and_unaligned_partial_files() {
    let (dir, root) = published();
    let server = serve(&root, &[]);
    for (i, kept) in [4 << 20, 5_000_001].into_iter().enumerate() {
        let out = dir.path().join(format!("dl{i}"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(part_of(&out.join("large.bin")), &pattern(LARGE)[..kept]).unwrap();
        let (ok, _, err) = get(&server, &["large.bin"], &out, &[]);
        assert!(ok, "{err}");
        assert!(
            err.contains(&format!("resuming large.bin from {kept} bytes")),
            "{err}"
        );
        assert!(std::fs::read(out.join("large.bin")).unwrap() == pattern(LARGE));
        assert!(!has_part_files(&out));
    }
}

#[test]
fn a_full_disk_in_a_large_download_leaves_no_file_under_the_final_name() {
    let (dir, root) = published();
    let server = serve(&root, &[]);
    let out = dir.path().join("dl");
    get_on_full_disk(&server, &["large.bin"], &out, 5_000_000);
    assert!(!out.join("large.bin").exists());
    // What was written before is kept for a resume, and is what was sent.
    let kept = std::fs::read(part_of(&out.join("large.bin"))).unwrap_or_default();
    assert!(kept.len() < 5_000_000, "{}", kept.len());
    assert!(kept[..] == pattern(LARGE)[..kept.len()]);
}
