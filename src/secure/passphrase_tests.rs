use super::*;
use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    secure: PassphraseArgs,
}

fn parse(args: &[&str]) -> Result<PassphraseArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|c| c.secure)
}

fn write(dir: &tempfile::TempDir, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join("pass");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn file_gives_its_first_line_without_the_line_ending() {
    let dir = tempfile::tempdir().unwrap();
    for (content, want) in [
        (&b"s3cret\n"[..], "s3cret"),
        (b"s3cret", "s3cret"),
        (b"s3cret\r\nsecond line\n", "s3cret"),
        (b"  spaces kept  \n", "  spaces kept  "),
    ] {
        let p = from_file(&write(&dir, content)).unwrap();
        assert_eq!(p.as_bytes(), want.as_bytes(), "{content:?}");
    }
}

#[test]
fn empty_file_or_empty_first_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for content in [&b""[..], b"\n", b"\r\nsecond\n"] {
        let err = from_file(&write(&dir, content)).unwrap_err();
        assert!(
            matches!(err, PassphraseError::Empty(_)),
            "{content:?}: {err}"
        );
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}

#[test]
fn unreadable_non_text_and_overlong_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = from_file(&dir.path().join("missing")).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read passphrase file "),
        "{err}"
    );
    assert!(matches!(
        from_file(&write(&dir, b"\xff\xfe\n")),
        Err(PassphraseError::NotText(_))
    ));
    let long = vec![b'a'; MAX_PASSPHRASE_LEN + 1];
    assert!(matches!(
        from_file(&write(&dir, &long)),
        Err(PassphraseError::TooLong(_))
    ));
    let max = vec![b'a'; MAX_PASSPHRASE_LEN];
    assert_eq!(
        from_file(&write(&dir, &max)).unwrap().as_bytes().len(),
        MAX_PASSPHRASE_LEN
    );
}

#[test]
fn env_var_is_read_and_a_missing_one_is_named() {
    let path = std::env::var("PATH").expect("PATH is set in tests");
    if !path.is_empty() {
        assert_eq!(from_env("PATH").unwrap().as_bytes(), path.as_bytes());
    }
    let err = from_env("SOQUETE_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable SOQUETE_TEST_SURELY_UNSET_VARIABLE is not set"
    );
}

#[test]
fn debug_never_shows_the_passphrase() {
    let p = Passphrase::new("hunter2".to_string(), "test").unwrap();
    assert_eq!(format!("{p:?}"), "Passphrase(..)");
}

#[test]
fn no_passphrase_option_is_plain_mode() {
    let args = parse(&["--state-dir", "/tmp/x", "--show-fingerprint"]).unwrap();
    assert_eq!(args.source(), None);
    assert!(args.resolve(Role::Client).unwrap().is_none());
}

#[test]
fn the_three_sources_are_exclusive() {
    assert!(parse(&["--passphrase", "--passphrase-env", "X"]).is_err());
    assert!(parse(&["--passphrase-file", "f", "--passphrase-env", "X"]).is_err());
    assert!(parse(&["--passphrase", "--passphrase-file", "f"]).is_err());
    let args = parse(&["--passphrase-env", "X"]).unwrap();
    assert_eq!(args.source(), Some(PassphraseSource::Env("X".into())));
    assert_eq!(
        parse(&["--passphrase"]).unwrap().source(),
        Some(PassphraseSource::Prompt)
    );
}

#[test]
fn a_passphrase_value_on_the_command_line_is_a_usage_error() {
    let err = parse(&["--passphrase", "hunter2"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
}

#[test]
fn fingerprint_is_checked_at_parse_time_and_needs_a_passphrase() {
    let fp = format!("SHA256:{}", "0f".repeat(32));
    let args = parse(&["--passphrase-env", "X", "--fingerprint", &fp]).unwrap();
    assert_eq!(args.fingerprint.unwrap().to_string(), fp);
    assert!(parse(&["--passphrase-env", "X", "--fingerprint", "SHA256:abc"]).is_err());
    let err = parse(&["--fingerprint", &fp]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
}

#[test]
fn resolve_reads_the_file_and_keeps_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, b"correct horse battery\n");
    let state = dir.path().join("state");
    let args = parse(&[
        "--passphrase-file",
        file.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--show-fingerprint",
    ])
    .unwrap();
    let opts = args.resolve(Role::Server).unwrap().unwrap();
    assert_eq!(opts.passphrase.as_bytes(), b"correct horse battery");
    assert_eq!(opts.state_dir, state);
    assert!(opts.show_fingerprint);
    assert!(opts.fingerprint.is_none());
}

#[test]
fn default_state_dir_is_per_user() {
    if let Some(dir) = default_state_dir() {
        assert!(
            dir.ends_with("soquete") || dir.to_string_lossy().contains("soquete"),
            "{dir:?}"
        );
    }
}

#[test]
fn fingerprint_is_refused_on_a_server() {
    let fp = format!("SHA256:{}", "0f".repeat(32));
    let args = parse(&["--passphrase-env", "X", "--fingerprint", &fp]).unwrap();
    let err = args.resolve(Role::Server).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--fingerprint is for chat join, not chat serve"
    );
}
