//! `soquete files`: the real binary on 127.0.0.1:0. Files and folders
//! listed, downloaded and uploaded byte for byte; resume after the server
//! or the client dies; a corrupt partial file; identical files skipped and
//! different ones kept without --overwrite; a full disk (simulated) leaves
//! no file under the final name.

#[path = "files/chapter.rs"]
mod chapter;
mod common;
#[path = "files/datapath.rs"]
mod datapath;
#[path = "files/large.rs"]
mod large;
#[path = "files/raw.rs"]
mod raw;
#[path = "files/secure.rs"]
mod secure;
#[path = "files/support.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, bin, run_with_input, wait_timeout};
use support::{Tree, pattern, serve};

const LIMIT: Duration = Duration::from_secs(30);

fn files(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["files"];
    all.extend_from_slice(args);
    let (status, out, err) = run_with_input(&all, b"", LIMIT);
    (status.success(), out, err)
}

/// `files get` of `names` from `server` into `out`, then `extra` flags.
fn get(server: &Server, names: &[&str], out: &Path, extra: &[&str]) -> (bool, String, String) {
    let addr = server.addr_str();
    let mut args = vec!["get", &addr];
    args.extend_from_slice(names);
    args.extend(["-o", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    files(&args)
}

#[test]
fn list_shows_everything_sorted_with_sizes_and_json() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let (ok, out, err) = files(&["list", &server.addr_str()]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines[0].trim_start().starts_with("5 ") && lines[0].ends_with("  a.txt"));
    assert!(lines[2].ends_with("  fotos/"), "{out}");
    assert!(lines[5].ends_with("  fotos/velhas/"), "{out}");
    assert!(lines[6].ends_with("  fotos/velhas/x.bin"), "{out}");
    let (ok, out, _) = files(&["list", &server.addr_str(), "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[1]["path"], "big.bin");
    assert_eq!(v[1]["size"], 300_000);
    assert_eq!(v[2]["kind"], "dir");
}

#[test]
fn files_and_folders_download_byte_for_byte() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    let (ok, _, err) = get(&server, &["big.bin", "fotos", "a.txt"], &out, &[]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        pattern(300_000)
    );
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(out.join("fotos/velhas/x.bin")).unwrap(), b"x");
    assert!(err.contains("5 files received"), "{err}");
    assert!(err.contains("verified (BLAKE3)"), "{err}");
    assert!(!support::has_part_files(&out));
    // Again: everything identical is skipped.
    let (ok, _, err) = get(&server, &["fotos"], &out, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("3 identical skipped"), "{err}");
}

#[test]
fn a_different_local_file_is_kept_unless_overwrite() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("a.txt"), b"HELLO").unwrap();
    let (ok, _, err) = get(&server, &["a.txt"], &out, &[]);
    assert!(!ok);
    assert!(err.contains("already exists and differs"), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"HELLO");
    let (ok, _, err) = get(&server, &["a.txt"], &out, &["--overwrite"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"hello");
}

#[test]
fn a_large_file_is_hashed_once_until_it_changes_even_with_its_old_mtime() {
    let t = Tree::new();
    let big = t.root.join("big.bin");
    // The server only remembers hashes of files left alone for 2 s.
    std::thread::sleep(Duration::from_millis(2100));
    let server = Server::start(&[
        "-v",
        "files",
        "serve",
        t.root.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let sent = |server: &Server| server.wait_for_log("sent big.bin", LIMIT).unwrap();
    let (ok, _, err) = get(&server, &["big.bin"], &t.dir.path().join("1"), &[]);
    assert!(ok, "{err}");
    assert!(sent(&server).contains("hashed"));
    let (ok, _, err) = get(&server, &["big.bin"], &t.dir.path().join("2"), &[]);
    assert!(ok, "{err}");
    assert!(sent(&server).contains("hash known"));
    assert_eq!(
        std::fs::read(t.dir.path().join("2/big.bin")).unwrap(),
        pattern(300_000)
    );

    // Same size, same modification time, other bytes: only the change
    // time says so, and that is enough.
    let mtime = std::fs::metadata(&big).unwrap().modified().unwrap();
    let mut changed = pattern(300_000);
    changed[150_000] ^= 0xff;
    std::fs::write(&big, &changed).unwrap();
    let f = std::fs::File::options().write(true).open(&big).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let (ok, _, err) = get(&server, &["big.bin"], &t.dir.path().join("3"), &[]);
    assert!(ok, "{err}");
    assert!(sent(&server).contains("hashed"));
    assert_eq!(
        std::fs::read(t.dir.path().join("3/big.bin")).unwrap(),
        changed
    );
}

#[test]
fn files_and_folders_upload_and_are_not_replaced_silently() {
    let t = Tree::new();
    let uploads = t.dir.path().join("up");
    let server = serve(&t, &["--uploads", uploads.to_str().unwrap()]);
    let src = t.root.join("fotos");
    let big = t.root.join("big.bin");
    let (ok, _, err) = files(&[
        "put",
        &server.addr_str(),
        src.to_str().unwrap(),
        big.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("4 files sent"), "{err}");
    assert_eq!(
        std::fs::read(uploads.join("big.bin")).unwrap(),
        pattern(300_000)
    );
    assert_eq!(
        std::fs::read(uploads.join("fotos/velhas/x.bin")).unwrap(),
        b"x"
    );
    let (ok, _, err) = files(&["put", &server.addr_str(), big.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("1 identical skipped"), "{err}");
    let other = t.dir.path().join("big.bin");
    std::fs::write(&other, b"another big.bin").unwrap();
    let (ok, _, err) = files(&["put", &server.addr_str(), other.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("already exists on the server and differs"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(uploads.join("big.bin")).unwrap(),
        pattern(300_000)
    );
    let (ok, _, err) = files(&[
        "put",
        &server.addr_str(),
        other.to_str().unwrap(),
        "--overwrite",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(uploads.join("big.bin")).unwrap(),
        b"another big.bin"
    );
    assert!(!support::has_part_files(&uploads));
}

#[test]
fn a_read_only_server_refuses_uploads_clearly() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let (ok, _, err) = files(&[
        "put",
        &server.addr_str(),
        t.root.join("a.txt").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("does not accept uploads"), "{err}");
}

/// Starts `soquete files get` in the background.
fn get_in_background(addr: &str, name: &str, out: &Path, extra: &[&str]) -> std::process::Child {
    Command::new(bin())
        .args(["files", "get", addr, name, "-o", out.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the partial file of `target` holds some bytes.
fn wait_for_partial(target: &Path) {
    let part = support::part_of(target);
    let deadline = Instant::now() + LIMIT;
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < 10_000 {
        assert!(Instant::now() < deadline, "no partial file appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn download_resumes_after_the_server_is_killed() {
    let t = Tree::new();
    let mut server = serve(&t, &["--limit-rate", "200K"]);
    let out = t.dir.path().join("dl");
    let mut client = get_in_background(&server.addr_str(), "big.bin", &out, &[]);
    wait_for_partial(&out.join("big.bin"));
    let _ = server.child.kill();
    let status = wait_timeout(&mut client, LIMIT).expect("client exits");
    assert!(!status.success());
    assert!(!out.join("big.bin").exists());
    let kept = std::fs::metadata(support::part_of(&out.join("big.bin")))
        .unwrap()
        .len();
    assert!(kept > 0 && kept < 300_000, "{kept}");
    let again = serve(&t, &[]);
    let (ok, _, err) = get(&again, &["big.bin"], &out, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("resuming big.bin from"), "{err}");
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        pattern(300_000)
    );
    assert!(!support::has_part_files(&out));
}

#[test]
fn an_interrupted_folder_is_not_under_its_name_and_resumes() {
    let t = Tree::new();
    // A folder with small files first, then a large one to be cut in.
    std::fs::copy(t.root.join("big.bin"), t.root.join("fotos/velhas/y.bin")).unwrap();
    let mut server = serve(&t, &["--limit-rate", "200K"]);
    let out = t.dir.path().join("dl");
    let mut client = get_in_background(&server.addr_str(), "fotos", &out, &[]);
    let staging = support::part_of(&out.join("fotos"));
    wait_for_partial(&staging.join("velhas/y.bin"));
    let _ = server.child.kill();
    let status = wait_timeout(&mut client, LIMIT).expect("client exits");
    assert!(!status.success());
    assert!(
        !out.join("fotos").exists(),
        "nothing under the folder's name"
    );
    assert_eq!(std::fs::read(staging.join("1.jpg")).unwrap(), pattern(1000));
    // Damage one file already received: it is compared, not trusted.
    std::fs::write(staging.join("2.jpg"), b"damaged").unwrap();
    let again = serve(&t, &[]);
    let (ok, _, err) = get(&again, &["fotos"], &out, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("resuming fotos/velhas/y.bin from"), "{err}");
    assert!(
        err.contains("1 identical skipped") || err.contains("2 identical skipped"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("fotos/1.jpg")).unwrap(),
        pattern(1000)
    );
    assert_eq!(
        std::fs::read(out.join("fotos/2.jpg")).unwrap(),
        pattern(2000)
    );
    assert_eq!(std::fs::read(out.join("fotos/velhas/x.bin")).unwrap(), b"x");
    assert_eq!(
        std::fs::read(out.join("fotos/velhas/y.bin")).unwrap(),
        pattern(300_000)
    );
    assert!(!staging.exists());
    assert!(!support::has_part_files(&out));
}

#[test]
fn a_folder_goes_into_one_that_exists_file_by_file() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    std::fs::create_dir_all(out.join("fotos")).unwrap();
    std::fs::write(out.join("fotos/mine.txt"), b"mine").unwrap();
    let (ok, _, err) = get(&server, &["fotos"], &out, &[]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(out.join("fotos/mine.txt")).unwrap(), b"mine");
    assert_eq!(
        std::fs::read(out.join("fotos/2.jpg")).unwrap(),
        pattern(2000)
    );
    assert_eq!(std::fs::read(out.join("fotos/velhas/x.bin")).unwrap(), b"x");
    assert!(!support::has_part_files(&out));
}

#[test]
fn download_resumes_after_the_client_is_killed() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    let mut client = get_in_background(
        &server.addr_str(),
        "big.bin",
        &out,
        &["--limit-rate", "100K"],
    );
    wait_for_partial(&out.join("big.bin"));
    let _ = client.kill();
    let _ = client.wait();
    assert!(!out.join("big.bin").exists());
    let (ok, _, err) = get(&server, &["big.bin"], &out, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("resuming big.bin from"), "{err}");
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        pattern(300_000)
    );
}

#[test]
fn a_corrupted_partial_file_is_detected_and_replaced() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(support::part_of(&out.join("big.bin")), vec![0xEE; 50_000]).unwrap();
    let (ok, _, err) = get(&server, &["big.bin"], &out, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("did not match"), "{err}");
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        pattern(300_000)
    );
}

#[test]
fn upload_resumes_from_a_verified_partial_file() {
    let t = Tree::new();
    let uploads = t.dir.path().join("up");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(
        support::part_of(&uploads.join("big.bin")),
        &pattern(300_000)[..120_000],
    )
    .unwrap();
    let server = serve(&t, &["--uploads", uploads.to_str().unwrap()]);
    let big = t.root.join("big.bin");
    let (ok, _, err) = files(&["put", &server.addr_str(), big.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("resuming big.bin from 120000 bytes"), "{err}");
    assert_eq!(
        std::fs::read(uploads.join("big.bin")).unwrap(),
        pattern(300_000)
    );
}

#[test]
fn a_full_disk_on_the_receiver_leaves_no_file_under_the_final_name() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    let err = support::get_on_full_disk(&server, &["big.bin", "a.txt"], &out, 100_000);
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(!out.join("big.bin").exists());
}

#[test]
fn a_full_disk_in_a_folder_download_leaves_no_folder_under_its_name() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let out = t.dir.path().join("dl");
    // 1.jpg (1,000 bytes) fits, 2.jpg (2,000) does not.
    let err = support::get_on_full_disk(&server, &["fotos"], &out, 1500);
    assert!(!out.join("fotos").exists(), "{err}");
}

#[test]
fn a_full_disk_on_the_server_fails_the_upload_cleanly() {
    let t = Tree::new();
    let uploads = t.dir.path().join("up");
    let mut cmd = Command::new(bin());
    cmd.args([
        "files",
        "serve",
        t.root.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .args(["--uploads", uploads.to_str().unwrap()])
    .env("SOQUETE_TEST_FAIL_WRITES_AFTER", "100000");
    let server = Server::spawn(cmd);
    let big = t.root.join("big.bin");
    let small = t.root.join("a.txt");
    let (ok, _, err) = files(&[
        "put",
        &server.addr_str(),
        big.to_str().unwrap(),
        small.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("no space left on device"), "{err}");
    assert!(!uploads.join("big.bin").exists());
    // The connection stayed in step: the next file still went through.
    assert_eq!(std::fs::read(uploads.join("a.txt")).unwrap(), b"hello");
}
