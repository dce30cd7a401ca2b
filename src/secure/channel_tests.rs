use super::*;

#[test]
fn client_hellos_are_told_from_plain_openings() {
    let hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00];
    assert_eq!(classify_first_bytes(&hello), FirstBytes::TlsClientHello);
    assert_eq!(
        classify_first_bytes(&[0x16, 0x03, 0x03, 0, 5, 0x01]),
        FirstBytes::TlsClientHello
    );
    for cut in 0..6 {
        assert_eq!(
            classify_first_bytes(&hello[..cut]),
            FirstBytes::NeedMore,
            "cut {cut}"
        );
    }
    assert_eq!(
        classify_first_bytes(b"\0SQC\x01"),
        FirstBytes::NotTls,
        "native chat preamble"
    );
    assert_eq!(classify_first_bytes(b"hello\n"), FirstBytes::NotTls);
    assert_eq!(
        classify_first_bytes(&[0x16, 0x03, 0x05]),
        FirstBytes::NotTls
    );
    assert_eq!(
        classify_first_bytes(&[0x16, 0x02]),
        FirstBytes::NotTls,
        "SSL 2/3-style"
    );
    assert_eq!(
        classify_first_bytes(&[0x16, 0x03, 0x03, 0, 5, 0x02]),
        FirstBytes::NotTls,
        "a ServerHello"
    );
    assert_eq!(
        classify_first_bytes(&[0x17, 0x03, 0x03]),
        FirstBytes::NotTls,
        "application data"
    );
}
