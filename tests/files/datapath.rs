//! `--data-path splice|sendfile`: the kernel paths move the same bytes as
//! read-write, both ways, files and folders, resumed and on a full disk;
//! the server's log says which path each transfer took, so a silent
//! fallback to read-write fails these tests. `get --data-path sendfile`
//! (a path that only sends) is one clear error.

use std::time::Duration;

use crate::common::Server;
use crate::support::{Tree, get_on_full_disk, has_part_files, part_of, pattern, serve};
use crate::{files, get};

/// 3 MiB and a bit: several blocks, the last one short.
const LARGE: usize = (3 << 20) + 12_345;

fn tree_with_large() -> Tree {
    let t = Tree::new();
    std::fs::write(t.root.join("large.bin"), pattern(LARGE)).unwrap();
    t
}

fn logged(server: &Server, needle: &str) {
    assert!(
        server
            .wait_for_log(needle, Duration::from_secs(10))
            .is_some(),
        "the server never logged {needle:?}"
    );
}

#[test]
fn every_kernel_path_downloads_files_and_folders_byte_for_byte() {
    let t = tree_with_large();
    for server_path in ["splice", "sendfile"] {
        let server = serve(&t, &["-v", "--data-path", server_path]);
        for client_path in ["read-write", "splice"] {
            let out = t.dir.path().join(format!("dl-{server_path}-{client_path}"));
            let args = ["-v", "--data-path", client_path];
            let (ok, _, err) = get(&server, &["large.bin", "fotos", "big.bin"], &out, &args);
            assert!(ok, "{server_path}/{client_path}: {err}");
            assert!(err.contains("verified (BLAKE3)"), "{err}");
            assert!(std::fs::read(out.join("large.bin")).unwrap() == pattern(LARGE));
            assert!(std::fs::read(out.join("big.bin")).unwrap() == pattern(300_000));
            assert_eq!(std::fs::read(out.join("fotos/velhas/x.bin")).unwrap(), b"x");
            assert!(!has_part_files(&out));
            logged(&server, &format!("sending {LARGE} bytes by {server_path}"));
            if client_path == "splice" {
                assert!(
                    err.contains(&format!("receiving {LARGE} bytes by splice")),
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn every_kernel_path_uploads_byte_for_byte() {
    let t = tree_with_large();
    let up = t.dir.path().join("up");
    let server = serve(
        &t,
        &[
            "-v",
            "--uploads",
            up.to_str().unwrap(),
            "--data-path",
            "splice",
        ],
    );
    let local = t.root.join("large.bin");
    for (i, client_path) in ["splice", "sendfile", "read-write"].into_iter().enumerate() {
        let (ok, _, err) = files(&[
            "put",
            &server.addr_str(),
            local.to_str().unwrap(),
            "-v",
            "--data-path",
            client_path,
        ]);
        assert!(ok, "{client_path}: {err}");
        assert!(std::fs::read(up.join("large.bin")).unwrap() == pattern(LARGE));
        if client_path != "read-write" {
            assert!(
                err.contains(&format!("sending {LARGE} bytes by {client_path}")),
                "{err}"
            );
        }
        logged(&server, &format!("receiving {LARGE} bytes by splice"));
        assert!(!has_part_files(&up));
        if i < 2 {
            std::fs::remove_file(up.join("large.bin")).unwrap();
        }
    }
}

#[test]
fn a_spliced_download_resumes_from_a_partial_file_and_catches_a_corrupt_one() {
    let t = tree_with_large();
    let server = serve(&t, &["--data-path", "splice"]);
    let out = t.dir.path().join("dl");
    std::fs::create_dir_all(&out).unwrap();
    let kept = 1_500_001;
    std::fs::write(part_of(&out.join("large.bin")), &pattern(LARGE)[..kept]).unwrap();
    let (ok, _, err) = get(&server, &["large.bin"], &out, &["--data-path", "splice"]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("resuming large.bin from {kept} bytes")),
        "{err}"
    );
    assert!(std::fs::read(out.join("large.bin")).unwrap() == pattern(LARGE));

    // A partial file whose bytes differ from the server's is not trusted.
    let out = t.dir.path().join("dl2");
    std::fs::create_dir_all(&out).unwrap();
    let mut bad = pattern(LARGE)[..kept].to_vec();
    bad[1000] ^= 0xff;
    std::fs::write(part_of(&out.join("large.bin")), &bad).unwrap();
    let (ok, _, err) = get(&server, &["large.bin"], &out, &["--data-path", "splice"]);
    assert!(ok, "{err}");
    assert!(err.contains("did not match"), "{err}");
    assert!(std::fs::read(out.join("large.bin")).unwrap() == pattern(LARGE));
}

#[test]
fn a_full_disk_in_a_spliced_download_keeps_only_what_was_written() {
    let t = tree_with_large();
    let server = serve(&t, &["--data-path", "sendfile"]);
    let out = t.dir.path().join("dl");
    get_on_full_disk(
        &server,
        &["large.bin", "--data-path", "splice"],
        &out,
        2_000_000,
    );
    assert!(!out.join("large.bin").exists());
    let kept = std::fs::read(part_of(&out.join("large.bin"))).unwrap_or_default();
    assert!(kept.len() < 2_000_000, "{}", kept.len());
    assert!(kept[..] == pattern(LARGE)[..kept.len()]);
    // The server shrugs it off and serves the next client.
    let again = t.dir.path().join("dl-again");
    let (ok, _, err) = get(&server, &["large.bin"], &again, &["--data-path", "splice"]);
    assert!(ok, "{err}");
    assert!(std::fs::read(again.join("large.bin")).unwrap() == pattern(LARGE));
}

#[test]
fn get_with_sendfile_is_one_clear_error() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    let (ok, _, err) = get(&server, &["a.txt"], &out, &["--data-path", "sendfile"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--data-path sendfile only sends"), "{err}");
    assert!(!out.join("a.txt").exists());
}
