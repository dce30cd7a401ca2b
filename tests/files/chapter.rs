//! The chapter's file repository pair against soquete: `cliente.py`'s
//! bytes against `files serve` (the listing, `GET` -> the file then `OK`,
//! the exact `ERROR` reply), and `files get --seed` against a server that
//! behaves exactly like `repositorio.py`, `OK` glued to the data.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::common::Server;
use crate::support::{Tree, pattern, serve};

/// What the chapter's client gets: (listing, reply to `GET name`).
fn chapter_exchange(addr: &str, name: &str) -> (Vec<u8>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut listing = vec![0u8; 1024];
    let n = s.read(&mut listing).unwrap();
    listing.truncate(n);
    s.write_all(format!("GET {name}").as_bytes()).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    (listing, reply)
}

#[test]
fn the_chapter_client_gets_the_listing_then_the_file_and_ok() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let (listing, reply) = chapter_exchange(&server.addr_str(), "big.bin");
    assert_eq!(listing, b"a.txt\nbig.bin\n");
    let mut want = pattern(300_000);
    want.extend_from_slice(b"OK");
    assert_eq!(reply.len(), want.len());
    assert!(reply == want);
}

#[test]
fn the_chapter_client_gets_the_chapter_error_for_missing_names_and_folders() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let (_, reply) = chapter_exchange(&server.addr_str(), "nope.jpg");
    assert_eq!(reply, "ERROR \"O arquivo nope.jpg não existe\"".as_bytes());
    let (_, reply) = chapter_exchange(&server.addr_str(), "fotos");
    assert_eq!(reply, "ERROR \"O arquivo fotos não existe\"".as_bytes());
    let (_, reply) = chapter_exchange(&server.addr_str(), "../pub/a.txt");
    assert_eq!(
        reply,
        "ERROR \"O arquivo ../pub/a.txt não existe\"".as_bytes()
    );
}

#[test]
fn the_chapter_script_downloads_from_files_serve() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let dl = t.dir.path().join("downloads");
    std::fs::create_dir_all(&dl).unwrap();
    let script = format!(
        "{}/tests/peers/cliente_arquivos.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new("python3")
        .args([
            &script,
            &server.addr.port().to_string(),
            "a.txt",
            dl.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.starts_with("a.txt\nbig.bin\n"), "{printed}");
    // The script's own bug may write the glued `OK` too; our bytes are right.
    let got = std::fs::read(dl.join("a.txt")).unwrap();
    assert!(got == b"hello" || got == b"helloOK", "{got:?}");
}

fn repositorio(t: &Tree) -> Server {
    Server::python("repositorio.py", &[t.root.to_str().unwrap(), "0"])
}

#[test]
fn get_seed_strips_the_glued_ok_from_repositorio_py() {
    let t = Tree::new();
    let server = repositorio(&t);
    let out = t.dir.path().join("dl");
    let (status, _, err) = crate::common::run_with_input(
        &[
            "files",
            "get",
            "--seed",
            &server.addr_str(),
            "big.bin",
            "a.txt",
            "-o",
            out.to_str().unwrap(),
        ],
        b"",
        crate::LIMIT,
    );
    assert!(status.success(), "{err}");
    assert!(std::fs::read(out.join("big.bin")).unwrap() == pattern(300_000));
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"hello");
    assert!(err.contains("2 files received"), "{err}");
    assert!(err.contains("not verified"), "{err}");
}

#[test]
fn get_seed_reports_the_servers_error_and_writes_nothing() {
    let t = Tree::new();
    let server = repositorio(&t);
    let out = t.dir.path().join("dl");
    let (status, _, err) = crate::common::run_with_input(
        &[
            "files",
            "get",
            "--seed",
            &server.addr_str(),
            "nope.txt",
            "-o",
            out.to_str().unwrap(),
        ],
        b"",
        crate::LIMIT,
    );
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("O arquivo nope.txt não existe"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn list_seed_prints_the_names_repositorio_py_sends() {
    let t = Tree::new();
    let server = repositorio(&t);
    let (status, out, err) = crate::common::run_with_input(
        &["files", "list", "--seed", &server.addr_str()],
        b"",
        crate::LIMIT,
    );
    assert!(status.success(), "{err}");
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(names, ["a.txt", "big.bin", "fotos"]);
}

#[test]
fn a_native_client_against_repositorio_py_is_told_to_use_seed() {
    let t = Tree::new();
    let server = repositorio(&t);
    let (status, _, err) =
        crate::common::run_with_input(&["files", "list", &server.addr_str()], b"", crate::LIMIT);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("use --seed"), "{err}");
}

#[test]
fn a_native_hello_after_the_detection_window_still_gets_a_native_session() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let mut s = TcpStream::connect(server.addr_str()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    // Preamble (version 1), then List { id 1, path "" }.
    s.write_all(b"\0SQF\x01\0\0\0\x07\x01\0\0\0\x01\0\0")
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let listing = b"a.txt\nbig.bin\n";
    while got.len() < listing.len() + 4 {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(got.starts_with(listing), "{got:?}");
    assert_eq!(
        got[listing.len()],
        0,
        "a frame follows the listing: {got:?}"
    );
}

#[test]
fn native_clients_skip_the_listing_of_a_server_that_took_them_for_the_chapters() {
    let t = Tree::new();
    let server = serve(&t, &["--detect-window", "1ms"]);
    let (status, out, err) =
        crate::common::run_with_input(&["files", "list", &server.addr_str()], b"", crate::LIMIT);
    assert!(status.success(), "{err}");
    assert!(out.contains("big.bin"), "{out}");
    let dl = t.dir.path().join("late");
    let (status, _, err) = crate::common::run_with_input(
        &[
            "files",
            "get",
            &server.addr_str(),
            "big.bin",
            "-o",
            dl.to_str().unwrap(),
        ],
        b"",
        crate::LIMIT,
    );
    assert!(status.success(), "{err}");
    assert!(std::fs::read(dl.join("big.bin")).unwrap() == pattern(300_000));
}
