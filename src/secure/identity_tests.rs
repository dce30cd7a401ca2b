use super::*;

#[test]
fn first_start_creates_key_and_cert_later_starts_reuse_them() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerIdentity::load_or_create(dir.path()).unwrap();
    assert!(first.created);
    assert!(dir.path().join(KEY_FILE).exists());
    assert!(dir.path().join(CERT_FILE).exists());
    let again = ServerIdentity::load_or_create(dir.path()).unwrap();
    assert!(!again.created);
    assert_eq!(first.fingerprint, again.fingerprint);
    assert_eq!(first.cert, again.cert);
}

#[test]
fn two_state_dirs_have_different_fingerprints() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let fa = ServerIdentity::load_or_create(a.path())
        .unwrap()
        .fingerprint;
    let fb = ServerIdentity::load_or_create(b.path())
        .unwrap()
        .fingerprint;
    assert_ne!(fa, fb);
}

#[cfg(unix)]
#[test]
fn key_file_is_private_and_a_readable_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    ServerIdentity::load_or_create(dir.path()).unwrap();
    let key = dir.path().join(KEY_FILE);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = ServerIdentity::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn lost_certificate_is_remade_with_the_same_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerIdentity::load_or_create(dir.path()).unwrap();
    fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
    let again = ServerIdentity::load_or_create(dir.path()).unwrap();
    assert_eq!(first.fingerprint, again.fingerprint);
}

#[test]
fn certificate_without_its_key_is_an_error_not_a_new_identity() {
    let dir = tempfile::tempdir().unwrap();
    ServerIdentity::load_or_create(dir.path()).unwrap();
    fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = ServerIdentity::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("without its key"), "{err}");
}

#[test]
fn certificate_of_another_key_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ServerIdentity::load_or_create(a.path()).unwrap();
    ServerIdentity::load_or_create(b.path()).unwrap();
    fs::copy(b.path().join(CERT_FILE), a.path().join(CERT_FILE)).unwrap();
    let err = ServerIdentity::load_or_create(a.path()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn garbage_key_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join(KEY_FILE);
    write_new_file(&key, b"not a key\n", true).unwrap();
    let err = ServerIdentity::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains(KEY_FILE), "{err}");
}

#[test]
fn fingerprint_is_sha256_of_the_spki() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let pem = self_signed(&key).unwrap();
    let cert = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let expected = ring::digest::digest(&ring::digest::SHA256, &spki);
    assert_eq!(Fingerprint::of_cert(&cert).unwrap().0, expected.as_ref());
}

#[test]
fn fingerprint_displays_and_parses_back() {
    let fp = Fingerprint([0xab; 32]);
    let text = fp.to_string();
    assert_eq!(text, format!("SHA256:{}", "ab".repeat(32)));
    assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
    assert_eq!("ab".repeat(32).parse::<Fingerprint>().unwrap(), fp);
    assert_eq!(
        format!("sha256:{}", "AB".repeat(32))
            .parse::<Fingerprint>()
            .unwrap(),
        fp
    );
    let colons = vec!["ab"; 32].join(":");
    assert_eq!(colons.parse::<Fingerprint>().unwrap(), fp);
}

#[test]
fn bad_fingerprints_are_rejected() {
    for bad in [
        "",
        "SHA256:",
        "ab",
        &"ab".repeat(33),
        &"zz".repeat(32),
        &format!("MD5:{}", "ab".repeat(32)),
    ] {
        assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?} accepted");
    }
}
