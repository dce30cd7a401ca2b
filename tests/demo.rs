//! `soquete demo`, the README's first command, run as a newcomer would.

mod common;

use std::time::Duration;

#[test]
fn demo_exchanges_the_chapter_message_and_exits_cleanly() {
    let (status, out, err) = common::run_with_input(&["demo"], b"", Duration::from_secs(20));
    assert!(
        status.success(),
        "exit {status:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        out.contains("[lobby] ana: Olá turma de redes industriais"),
        "{out}"
    );
    assert!(
        out.contains("guest-1: Olá turma de redes industriais"),
        "{out}"
    );
    assert!(out.contains(" 31 bytes: the chapter's segment"), "{out}");
    assert!(out.contains("shut down cleanly"), "{out}");
    assert!(
        out.contains("files get iguana.jpg: 100116 bytes, BLAKE3-verified"),
        "{out}"
    );
    assert!(
        out.contains("then 100118 bytes: the file + \"OK\""),
        "{out}"
    );
    assert!(err.starts_with("listening on 127.0.0.1:"), "{err}");
}
