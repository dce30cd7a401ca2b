//! `files serve|get` with the secure channel: the right passphrase moves
//! files, a wrong one gets the same clear error as chat, and a plain
//! client of a secure server is told why. Both ends ask for the splice
//! path, which the secure channel must decline (it encrypts in user space):
//! spliced plaintext would fail the download.

use crate::common::{Server, run_with_input};
use crate::support::{Tree, pattern};

struct Secure {
    t: Tree,
    server: Server,
}

fn write_private(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn start() -> Secure {
    let t = Tree::new();
    let pass = t.dir.path().join("pass");
    write_private(&pass, "correct horse battery\n");
    let state = t.dir.path().join("server-state");
    let server = Server::start(&[
        "files",
        "serve",
        t.root.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--passphrase-file",
        pass.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--data-path",
        "splice",
    ]);
    Secure { t, server }
}

fn get(s: &Secure, passphrase: Option<&str>, name: &str) -> (bool, String) {
    let out = s.t.dir.path().join("dl");
    let client_state = s.t.dir.path().join("client-state");
    let pass = s.t.dir.path().join("client-pass");
    let addr = s.server.addr_str();
    let mut args = vec!["files", "get", &addr, name, "-o", out.to_str().unwrap()];
    let (pass_s, state_s);
    if let Some(p) = passphrase {
        write_private(&pass, p);
        pass_s = pass.to_str().unwrap().to_owned();
        state_s = client_state.to_str().unwrap().to_owned();
        args.extend(["--passphrase-file", &pass_s, "--state-dir", &state_s]);
        args.extend(["--data-path", "splice"]);
    }
    let (status, _, err) = run_with_input(&args, b"", crate::LIMIT);
    (status.success(), err)
}

#[test]
fn the_right_passphrase_moves_files_over_the_secure_channel() {
    let s = start();
    let (ok, err) = get(&s, Some("correct horse battery"), "big.bin");
    assert!(ok, "{err}");
    assert!(err.contains("pinned server identity"), "{err}");
    let got = std::fs::read(s.t.dir.path().join("dl/big.bin")).unwrap();
    assert!(got == pattern(300_000));
}

#[test]
fn a_wrong_passphrase_is_one_clear_error() {
    let s = start();
    let (ok, err) = get(&s, Some("wrong horse"), "a.txt");
    assert!(!ok);
    assert!(err.contains("wrong passphrase for"), "{err}");
    assert!(!s.t.dir.path().join("dl/a.txt").exists());
}

#[test]
fn a_plain_client_of_a_secure_server_is_told_why() {
    let s = start();
    let (ok, err) = get(&s, None, "a.txt");
    assert!(!ok);
    assert!(err.contains("encrypted"), "{err}");
}
