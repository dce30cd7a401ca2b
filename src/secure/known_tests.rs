use super::*;

fn fp(byte: u8) -> Fingerprint {
    Fingerprint([byte; 32])
}

fn parse(text: &str) -> Result<KnownServers, KnownError> {
    KnownServers::parse(Path::new("/x/known_servers"), text)
}

#[test]
fn comments_blank_lines_and_spacing_are_ignored() {
    let text = format!(
        "# pins\n\n   \n  localhost:8000   {}  \n\t# indented comment\n[::1]:9000\t{}\n",
        fp(1),
        fp(2)
    );
    let known = parse(&text).unwrap();
    assert_eq!(known.pins.len(), 2);
    let pin = known.lookup("localhost:8000").unwrap();
    assert_eq!((pin.fingerprint, pin.line), (fp(1), 4));
    assert_eq!(known.lookup("[::1]:9000").unwrap().fingerprint, fp(2));
    assert!(known.lookup("localhost:8001").is_none());
}

#[test]
fn host_is_compared_without_case() {
    let known = parse(&format!("LocalHost:8000 {}\n", fp(1))).unwrap();
    assert_eq!(known.lookup("localhost:8000").unwrap().fingerprint, fp(1));
    assert_eq!(known.lookup("LOCALHOST:8000").unwrap().fingerprint, fp(1));
}

#[test]
fn crlf_line_endings_are_accepted() {
    let known = parse(&format!("# c\r\nh:1 {}\r\n", fp(3))).unwrap();
    assert_eq!(known.lookup("h:1").unwrap().line, 2);
}

#[test]
fn malformed_lines_are_errors_naming_the_line() {
    let good = format!("h:1 {}\n", fp(1));
    let cases = [
        format!("{good}h:2\n"),
        format!("{good}h:2 {} extra\n", fp(2)),
        format!("{good}h:2 SHA256:abc\n"),
        format!("{good}h {}\n", fp(2)),
        format!("{good}h:0 {}\n", fp(2)),
        format!("{good}h:70000 {}\n", fp(2)),
        format!("{good}:80 {}\n", fp(2)),
        format!("{good}[::1:80 {}\n", fp(2)),
    ];
    for text in cases {
        let err = parse(&text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("/x/known_servers line 2: "),
            "{text:?} -> {msg}"
        );
    }
}

#[test]
fn conflicting_duplicates_are_an_error_agreeing_ones_are_not() {
    let same = format!("h:1 {}\nh:1 {}\n", fp(1), fp(1));
    assert_eq!(parse(&same).unwrap().pins.len(), 1);
    let conflict = format!("h:1 {}\n# x\nH:1 {}\n", fp(1), fp(2));
    let msg = parse(&conflict).unwrap_err().to_string();
    assert!(
        msg.contains("line 3") && msg.contains("also on line 1"),
        "{msg}"
    );
}

#[test]
fn missing_file_is_empty_and_append_creates_it_with_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KNOWN_FILE);
    assert!(KnownServers::load(&path).unwrap().pins.is_empty());
    append_pin(&path, "Host:8000", &fp(7)).unwrap();
    append_pin(&path, "other:8000", &fp(8)).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# soquete known servers"), "{text}");
    assert_eq!(text.matches('#').count(), 1, "one header: {text}");
    let known = KnownServers::load(&path).unwrap();
    assert_eq!(known.lookup("host:8000").unwrap().fingerprint, fp(7));
    assert_eq!(known.lookup("other:8000").unwrap().line, 3);
}

#[test]
fn non_utf8_file_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KNOWN_FILE);
    fs::write(&path, b"# ok\n# ok\nh:1 \xff\n").unwrap();
    let msg = KnownServers::load(&path).unwrap_err().to_string();
    assert!(msg.contains("line 3: not UTF-8"), "{msg}");
}

#[test]
fn every_formatted_line_parses_back() {
    for server in ["localhost:8000", "[::1]:1", "10.0.0.1:65535", "a.b.c:42"] {
        let text = format_line(server, &fp(9));
        let known = parse(&text).unwrap();
        assert_eq!(known.lookup(server).unwrap().fingerprint, fp(9), "{server}");
    }
}

#[test]
fn labels_that_would_not_parse_back_are_refused() {
    for good in ["localhost:8000", "[::1]:8000", " h:1 "] {
        assert!(check_label(good).is_ok(), "{good}");
    }
    for bad in ["localhost", "a b:1", "h:1#x", "h:0", "", ":1", "h\n:1"] {
        assert!(
            matches!(check_label(bad), Err(KnownError::BadServer(_))),
            "{bad:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(append_pin(&dir.path().join(KNOWN_FILE), "no port", &fp(1)).is_err());
}
