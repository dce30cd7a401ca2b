use super::*;

fn samples() -> Vec<Message> {
    vec![
        Message::ClientPake {
            pake: [1; PAKE_MSG_LEN],
        },
        Message::ServerPake {
            pake: [2; PAKE_MSG_LEN],
            key_tag: [3; MAC_LEN],
            confirm: [4; MAC_LEN],
        },
        Message::ClientConfirm {
            confirm: [5; MAC_LEN],
        },
        Message::Refused {
            retry_after_secs: 0x0102_0304,
        },
        Message::Abort {
            reason: AbortReason::WrongPassphrase,
        },
        Message::Abort {
            reason: AbortReason::Intercepted,
        },
        Message::Abort {
            reason: AbortReason::Protocol,
        },
        Message::Abort {
            reason: AbortReason::Other(200),
        },
    ]
}

#[test]
fn worked_examples_match_the_documented_bytes() {
    assert_eq!(
        Message::Refused {
            retry_after_secs: 30
        }
        .encode(),
        [1, 4, 0, 4, 0, 0, 0, 30]
    );
    assert_eq!(
        Message::Abort {
            reason: AbortReason::WrongPassphrase
        }
        .encode(),
        [1, 5, 0, 1, 1]
    );
    let confirm = Message::ClientConfirm {
        confirm: [0xaa; 32],
    }
    .encode();
    assert_eq!(&confirm[..4], [1, 3, 0, 32]);
    let server = Message::ServerPake {
        pake: [0; 33],
        key_tag: [0; 32],
        confirm: [0; 32],
    }
    .encode();
    assert_eq!(&server[..4], [1, 2, 0, 97]);
    assert_eq!(server.len(), MAX_FRAME_LEN);
}

#[test]
fn every_message_round_trips_split_at_every_byte() {
    for msg in samples() {
        let bytes = msg.encode();
        for cut in 0..=bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            if cut < bytes.len() {
                assert_eq!(Message::decode(&mut buf), Ok(None), "{msg:?} cut {cut}");
                assert_eq!(buf.len(), cut, "nothing consumed before a whole frame");
                let need = bytes_needed(&buf).unwrap();
                assert!(
                    need > 0 && need <= bytes.len() - cut,
                    "{msg:?} cut {cut}: {need}"
                );
                if cut >= HEADER_LEN {
                    assert_eq!(need, bytes.len() - cut);
                }
                buf.extend_from_slice(&bytes[cut..]);
            }
            assert_eq!(Message::decode(&mut buf), Ok(Some(msg.clone())));
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn bytes_after_a_frame_are_left_for_the_application() {
    let mut buf = BytesMut::from(&Message::ClientConfirm { confirm: [9; 32] }.encode()[..]);
    buf.extend_from_slice(b"\0SQC\x01");
    assert_eq!(bytes_needed(&buf), Ok(0));
    assert!(Message::decode(&mut buf).unwrap().is_some());
    assert_eq!(&buf[..], b"\0SQC\x01");
}

#[test]
fn bad_headers_fail_on_the_first_wrong_byte() {
    assert_eq!(bytes_needed(&[2]), Err(FrameError::Version(2)));
    assert_eq!(bytes_needed(&[0x16, 0x03]), Err(FrameError::Version(0x16)));
    assert_eq!(bytes_needed(&[1, 0]), Err(FrameError::Type(0)));
    assert_eq!(bytes_needed(&[1, 6]), Err(FrameError::Type(6)));
    assert_eq!(
        bytes_needed(&[1, 3, 0xff, 0xff]),
        Err(FrameError::Length {
            kind: 3,
            len: 65535,
            want: 32
        })
    );
    assert_eq!(
        bytes_needed(&[1, 5, 0, 0]),
        Err(FrameError::Length {
            kind: 5,
            len: 0,
            want: 1
        })
    );
    assert_eq!(bytes_needed(&[]), Ok(HEADER_LEN));
    let mut buf = BytesMut::from(&[1u8, 1, 0x10, 0][..]);
    assert!(Message::decode(&mut buf).is_err());
}

/// Runs both machines against each other; returns their final steps.
fn exchange(
    client_pass: &[u8],
    server_pass: &[u8],
    client_ex: Exporter,
    server_ex: Exporter,
) -> (Step, Step) {
    let (mut client, first) = ClientHandshake::start(client_pass, client_ex);
    let mut server = ServerHandshake::new(server_pass, server_ex);
    let reply = match server.on_bytes(&mut BytesMut::from(&first[..])) {
        Step::Reply(r) => r,
        other => panic!("server: {other:?}"),
    };
    let client_step = client.on_bytes(&mut BytesMut::from(&reply[..]));
    let to_server = match &client_step {
        Step::Done(b) | Step::Fail(b, _) => b.clone(),
        other => panic!("client: {other:?}"),
    };
    let server_step = server.on_bytes(&mut BytesMut::from(&to_server[..]));
    (client_step, server_step)
}

#[test]
fn same_passphrase_same_session_succeeds_on_both_sides() {
    let (c, s) = exchange(b"open sesame", b"open sesame", [1; 32], [1; 32]);
    assert!(matches!(c, Step::Done(ref b) if !b.is_empty()), "{c:?}");
    assert!(matches!(s, Step::Done(ref b) if b.is_empty()), "{s:?}");
}

#[test]
fn wrong_passphrase_fails_on_both_sides_and_the_server_learns_why() {
    let (c, s) = exchange(b"open sesame", b"open sesamE", [1; 32], [1; 32]);
    assert!(
        matches!(c, Step::Fail(_, HandshakeError::WrongPassphrase)),
        "{c:?}"
    );
    let want = HandshakeError::PeerAborted(AbortReason::WrongPassphrase);
    assert!(
        matches!(s, Step::Fail(ref b, ref e) if b.is_empty() && *e == want),
        "{s:?}"
    );
}

#[test]
fn different_tls_sessions_are_reported_as_interception() {
    let (c, s) = exchange(b"pw", b"pw", [1; 32], [2; 32]);
    assert!(
        matches!(c, Step::Fail(_, HandshakeError::Intercepted)),
        "{c:?}"
    );
    let want = HandshakeError::PeerAborted(AbortReason::Intercepted);
    assert!(matches!(s, Step::Fail(_, ref e) if *e == want), "{s:?}");
}

#[test]
fn server_refuses_a_forged_client_confirmation() {
    let (_, first) = ClientHandshake::start(b"guess", [1; 32]);
    let mut server = ServerHandshake::new(b"secret", [1; 32]);
    assert!(matches!(
        server.on_bytes(&mut BytesMut::from(&first[..])),
        Step::Reply(_)
    ));
    let forged = Message::ClientConfirm { confirm: [0; 32] }.encode();
    let step = server.on_bytes(&mut BytesMut::from(&forged[..]));
    assert!(
        matches!(step, Step::Fail(_, HandshakeError::WrongPassphrase)),
        "{step:?}"
    );
}

#[test]
fn client_reports_a_refusal() {
    let (mut client, _) = ClientHandshake::start(b"pw", [1; 32]);
    let step = client.on_bytes(&mut BytesMut::from(&ServerHandshake::refusal(45)[..]));
    assert!(
        matches!(step, Step::Fail(ref b, HandshakeError::Refused(45)) if b.is_empty()),
        "{step:?}"
    );
}

#[test]
fn messages_out_of_order_are_protocol_errors_answered_with_abort() {
    let mut server = ServerHandshake::new(b"pw", [1; 32]);
    let early = Message::ClientConfirm { confirm: [0; 32] }.encode();
    match server.on_bytes(&mut BytesMut::from(&early[..])) {
        Step::Fail(
            bytes,
            HandshakeError::Unexpected {
                got: "ClientConfirm",
                want: "ClientPake",
            },
        ) => {
            assert_eq!(
                bytes,
                Message::Abort {
                    reason: AbortReason::Protocol
                }
                .encode()
            );
        }
        other => panic!("{other:?}"),
    }
    let (mut client, first) = ClientHandshake::start(b"pw", [1; 32]);
    let step = client.on_bytes(&mut BytesMut::from(&first[..]));
    assert!(
        matches!(step, Step::Fail(_, HandshakeError::Unexpected { .. })),
        "{step:?}"
    );
}

#[test]
fn a_reflected_client_pake_is_refused_by_the_server() {
    // A ServerPake-shaped reply built from a client message must not verify;
    // and a server given a server-side message refuses it.
    let (_, server_side) = super::super::pake::PakeStart::new(Role::Server, b"pw");
    let mut server = ServerHandshake::new(b"pw", [1; 32]);
    let bytes = Message::ClientPake { pake: server_side }.encode();
    let step = server.on_bytes(&mut BytesMut::from(&bytes[..]));
    assert!(
        matches!(step, Step::Fail(_, HandshakeError::BadPake(_))),
        "{step:?}"
    );
}

#[test]
fn garbage_instead_of_a_frame_fails_without_reading_on() {
    let mut server = ServerHandshake::new(b"pw", [1; 32]);
    let step = server.on_bytes(&mut BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]));
    assert!(
        matches!(
            step,
            Step::Fail(_, HandshakeError::Frame(FrameError::Version(b'G')))
        ),
        "{step:?}"
    );
}
