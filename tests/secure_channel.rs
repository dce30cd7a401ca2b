//! The secure channel as a library over real loopback TCP, in-process: right
//! and wrong passphrases, a man in the middle on first contact, pinning,
//! `--fingerprint`, plain peers on either side, what a wiretap sees, key
//! persistence and the rate limit. Every wait is bounded.

#[path = "secure_channel/support.rs"]
mod support;
#[path = "common/tls.rs"]
mod tls;

use std::time::Duration;

use soquete::secure::{Pinning, SecureError, connect};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn right_passphrase_gives_a_working_stream_both_ways_and_pins_on_first_contact() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("open sesame")).await;
    let client = dirs.client_security("open sesame", None);
    let (mut c, connected) = bounded(connect(tcp(server.addr).await, &server.label(), &client))
        .await
        .unwrap();
    assert_eq!(connected.fingerprint, server.sec.fingerprint());
    assert_eq!(
        connected.pinning,
        Pinning::NewlyPinned {
            file: client.known_servers_path()
        }
    );
    // Written at once after the handshake: nothing may be lost by the server.
    c.write_all(b"hello from the client").await.unwrap();
    c.flush().await.unwrap();
    let mut s = server.next().await.unwrap();
    let mut buf = [0u8; 21];
    bounded(s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"hello from the client");
    s.write_all(b"and back").await.unwrap();
    s.flush().await.unwrap();
    let mut back = [0u8; 8];
    bounded(c.read_exact(&mut back)).await.unwrap();
    assert_eq!(&back, b"and back");

    let known = std::fs::read_to_string(client.known_servers_path()).unwrap();
    assert!(
        known.contains(&format!("{} {}", server.label(), server.sec.fingerprint())),
        "{known}"
    );
    let (_c2, again) = bounded(connect(tcp(server.addr).await, &server.label(), &client))
        .await
        .unwrap();
    assert_eq!(again.pinning, Pinning::AlreadyPinned);
    server.next().await.unwrap();
}

#[tokio::test]
async fn wrong_passphrase_fails_on_both_sides_and_pins_nothing() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("open sesame")).await;
    let client = dirs.client_security("open sesamE", None);
    let err = bounded(connect(tcp(server.addr).await, &server.label(), &client))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("wrong passphrase for {}", server.label())
    );
    let server_err = server.next().await.unwrap_err();
    assert!(
        matches!(server_err, SecureError::PeerWrongPassphrase { .. }),
        "{server_err}"
    );
    assert!(
        server_err.to_string().contains("127.0.0.1:"),
        "names the peer: {server_err}"
    );
    assert!(!client.known_servers_path().exists());
}

#[tokio::test]
async fn man_in_the_middle_is_refused_on_first_contact_and_nothing_is_pinned() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("open sesame")).await;
    let mitm = Mitm::start(server.addr).await;
    let client = dirs.client_security("open sesame", None);
    let err = bounded(connect(tcp(mitm.addr).await, &server.label(), &client))
        .await
        .unwrap_err();
    assert!(matches!(err, SecureError::Intercepted { .. }), "{err}");
    assert!(err.to_string().contains("man in the middle"), "{err}");
    let server_err = server.next().await.unwrap_err();
    assert!(
        matches!(server_err, SecureError::PeerIntercepted { .. }),
        "{server_err}"
    );
    assert!(!client.known_servers_path().exists(), "nothing pinned");
    assert!(
        mitm.relayed_pake().await,
        "the relay really carried the passphrase check"
    );
}

#[tokio::test]
async fn man_in_the_middle_with_a_wrong_guess_learns_only_that_it_was_wrong() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("open sesame")).await;
    let mitm = Mitm::start(server.addr).await;
    let client = dirs.client_security("not it", None);
    let err = bounded(connect(tcp(mitm.addr).await, &server.label(), &client))
        .await
        .unwrap_err();
    assert!(matches!(err, SecureError::WrongPassphrase { .. }), "{err}");
    assert!(server.next().await.is_err());
    assert!(!client.known_servers_path().exists());
}

#[tokio::test]
async fn changed_server_identity_is_refused_naming_both_fingerprints_and_the_line() {
    let dirs = Dirs::new();
    let first = Srv::start(dirs.server_security("pw for this test")).await;
    let client = dirs.client_security("pw for this test", None);
    bounded(connect(tcp(first.addr).await, &first.label(), &client))
        .await
        .unwrap();
    first.next().await.unwrap();
    let old = first.sec.fingerprint();

    // Same address label, regenerated state directory: a new key.
    std::fs::remove_dir_all(&dirs.server).unwrap();
    let second = Srv::start(dirs.server_security("pw for this test")).await;
    assert_ne!(second.sec.fingerprint(), old);
    let err = bounded(connect(tcp(second.addr).await, &first.label(), &client))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("server identity changed for {}", first.label())),
        "{msg}"
    );
    assert!(
        msg.contains(&old.to_string()) && msg.contains(&second.sec.fingerprint().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{} line 2", client.known_servers_path().display())),
        "{msg}"
    );
    let server_err = second.next().await.unwrap_err();
    assert!(
        matches!(server_err, SecureError::IdentityRefusedByPeer { .. }),
        "{server_err}"
    );
}

#[tokio::test]
async fn fingerprint_override_must_match_even_on_first_contact() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("pw for this test")).await;
    let wrong = soquete::secure::Fingerprint([0x42; 32]);
    let client = dirs.client_security("pw for this test", Some(wrong));
    let err = bounded(connect(tcp(server.addr).await, &server.label(), &client))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SecureError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&wrong.to_string()), "{err}");
    assert!(server.next().await.is_err());
    assert!(!client.known_servers_path().exists());

    let right = dirs.client_security("pw for this test", Some(server.sec.fingerprint()));
    let (_s, ok) = bounded(connect(tcp(server.addr).await, &server.label(), &right))
        .await
        .unwrap();
    assert!(matches!(ok.pinning, Pinning::NewlyPinned { .. }));
    server.next().await.unwrap();
}

#[tokio::test]
async fn fingerprint_override_wins_over_a_stale_pin_and_leaves_the_file_alone() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("pw for this test")).await;
    std::fs::create_dir_all(&dirs.client).unwrap();
    let stale = format!("{} SHA256:{}\n", server.label(), "00".repeat(32));
    std::fs::write(dirs.client.join("known_servers"), &stale).unwrap();
    let client = dirs.client_security("pw for this test", Some(server.sec.fingerprint()));
    let (_s, ok) = bounded(connect(tcp(server.addr).await, &server.label(), &client))
        .await
        .unwrap();
    assert_eq!(
        ok.pinning,
        Pinning::OverrodeKnown {
            file: client.known_servers_path(),
            line: 1
        }
    );
    assert_eq!(
        std::fs::read_to_string(client.known_servers_path()).unwrap(),
        stale
    );
    server.next().await.unwrap();
}

#[tokio::test]
async fn impostor_with_the_real_certificate_but_another_key_fails_the_tls_signature_check() {
    let dirs = Dirs::new();
    let real = Srv::start(dirs.server_security("pw for this test")).await;
    let client = dirs.client_security("pw for this test", None);
    bounded(connect(tcp(real.addr).await, &real.label(), &client))
        .await
        .unwrap();
    real.next().await.unwrap();
    let impostor = Impostor::start(&dirs.server).await;
    let err = bounded(connect(tcp(impostor.addr).await, &real.label(), &client))
        .await
        .unwrap_err();
    assert!(matches!(err, SecureError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");
}

#[tokio::test]
async fn plain_client_against_accept_is_a_clear_error_not_a_hang() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("pw for this test")).await;
    let mut plain = tcp(server.addr).await;
    plain
        .write_all(b"\0SQC\x01\0\0\0\x05\x01\0\0\0\0")
        .await
        .unwrap();
    let err = server.next().await.unwrap_err();
    assert!(matches!(err, SecureError::NotSecureClient { .. }), "{err}");
    assert!(
        err.to_string().contains("is not a secure soquete client"),
        "{err}"
    );
    let mut rest = Vec::new();
    let n = bounded(plain.read_to_end(&mut rest)).await.unwrap_or(0);
    assert_eq!(n, 0, "the server hangs up");

    let mut typed = tcp(server.addr).await;
    typed.write_all(b"hello everyone\n").await.unwrap();
    assert!(matches!(
        server.next().await,
        Err(SecureError::NotSecureClient { .. })
    ));
}

#[tokio::test]
async fn silent_client_times_out() {
    let dirs = Dirs::new();
    let sec = dirs
        .server_security("pw for this test")
        .with_timeout(Duration::from_millis(300));
    let server = Srv::start(sec).await;
    let _silent = tcp(server.addr).await;
    let err = server.next().await.unwrap_err();
    assert!(matches!(err, SecureError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn generic_tls_client_without_the_soquete_protocol_is_refused() {
    let dirs = Dirs::new();
    let server = Srv::start(dirs.server_security("pw for this test")).await;
    let _tls = generic_tls_client(server.addr).await;
    let err = server.next().await.unwrap_err();
    assert!(matches!(err, SecureError::NotSecureClient { .. }), "{err}");
    assert!(err.to_string().contains("alpn"), "{err}");
}

#[tokio::test]
async fn connect_against_plain_servers_is_a_clear_error_not_a_hang() {
    let dirs = Dirs::new();
    let client = dirs
        .client_security("pw for this test", None)
        .with_timeout(Duration::from_secs(2));
    for plain in [
        PlainServer::Echo,
        PlainServer::Greeter,
        PlainServer::Closer,
        PlainServer::NativeChatError,
    ] {
        let addr = plain.start().await;
        let label = addr.to_string();
        let err = bounded(connect(tcp(addr).await, &label, &client))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SecureError::NotSecureServer { .. }),
            "{plain:?}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("{label} is not a secure soquete server")),
            "{err}"
        );
    }
    let silent = PlainServer::Silent.start().await;
    let quick = dirs
        .client_security("pw for this test", None)
        .with_timeout(Duration::from_millis(300));
    let err = bounded(connect(tcp(silent).await, &silent.to_string(), &quick))
        .await
        .unwrap_err();
    assert!(matches!(err, SecureError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("is it a secure soquete server"),
        "{err}"
    );
    assert!(!client.known_servers_path().exists());
}

#[tokio::test]
async fn a_wiretap_sees_neither_the_passphrase_nor_messages_nor_the_server_key() {
    let dirs = Dirs::new();
    let passphrase = "correct horse battery staple";
    let server = Srv::start(dirs.server_security(passphrase)).await;
    let tap = Wiretap::start(server.addr).await;
    let client = dirs.client_security(passphrase, None);
    let (mut c, _) = bounded(connect(tcp(tap.addr).await, &server.label(), &client))
        .await
        .unwrap();
    let mut s = server.next().await.unwrap();
    let secret_msg = b"the launch code is 0000 and the meeting is at noon";
    c.write_all(secret_msg).await.unwrap();
    c.flush().await.unwrap();
    let mut got = vec![0u8; secret_msg.len()];
    bounded(s.read_exact(&mut got)).await.unwrap();
    s.write_all(b"reply: understood, see you at noon")
        .await
        .unwrap();
    s.flush().await.unwrap();
    let mut reply = vec![0u8; 34];
    bounded(c.read_exact(&mut reply)).await.unwrap();
    drop((c, s));
    let seen = tap.captured().await;
    assert!(
        seen.len() > 500,
        "the tap saw the traffic ({} bytes)",
        seen.len()
    );
    let cert_der = cert_der(&dirs.server);
    for (what, needle) in [
        ("passphrase", passphrase.as_bytes()),
        ("message", &secret_msg[..]),
        ("a word of the message", b"launch"),
        ("reply", b"understood"),
        ("server certificate", &cert_der[..]),
        ("server public key", &server.sec.fingerprint().0[..]),
    ] {
        assert!(!contains(&seen, needle), "the wiretap saw the {what}");
    }
}

#[tokio::test]
async fn server_key_persists_across_restarts() {
    let dirs = Dirs::new();
    let first = dirs.server_security("pw for this test");
    assert!(first.created());
    let fp = first.fingerprint();
    drop(first);
    let second = dirs.server_security("pw for this test");
    assert!(!second.created());
    assert_eq!(second.fingerprint(), fp);

    let server = Srv::start(second).await;
    let client = dirs.client_security("pw for this test", Some(fp));
    let (_c, ok) = bounded(connect(tcp(server.addr).await, &server.label(), &client))
        .await
        .unwrap();
    assert_eq!(ok.fingerprint, fp);
    server.next().await.unwrap();
}

#[tokio::test]
async fn rate_limit_refuses_an_address_after_n_failures_even_with_the_right_passphrase() {
    let dirs = Dirs::new();
    let policy = soquete::secure::LimiterPolicy {
        free_attempts: 3,
        ..Default::default()
    };
    let server = Srv::start(dirs.server_security("the real one").with_limiter(policy)).await;
    let wrong = dirs.client_security("a guess", None);
    for _ in 0..3 {
        let err = bounded(connect(tcp(server.addr).await, &server.label(), &wrong))
            .await
            .unwrap_err();
        assert!(matches!(err, SecureError::WrongPassphrase { .. }), "{err}");
        assert!(server.next().await.is_err());
    }
    let right = dirs.client_security("the real one", None);
    let err = bounded(connect(tcp(server.addr).await, &server.label(), &right))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SecureError::TooManyAttempts {
                retry_after_secs: 30,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("refuses this address for 30 s"),
        "{err}"
    );
    let server_err = server.next().await.unwrap_err();
    assert!(
        matches!(server_err, SecureError::RateLimited { .. }),
        "{server_err}"
    );
    assert!(!right.known_servers_path().exists());
}

#[tokio::test]
async fn parallel_guesses_from_one_address_are_all_counted() {
    let dirs = Dirs::new();
    let policy = soquete::secure::LimiterPolicy {
        free_attempts: 4,
        ..Default::default()
    };
    let server = Srv::start(dirs.server_security("the real one").with_limiter(policy)).await;
    let wrong = std::sync::Arc::new(dirs.client_security("a guess", None));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (wrong, addr, label) = (wrong.clone(), server.addr, server.label());
        tasks.push(tokio::spawn(async move {
            connect(tcp(addr).await, &label, &wrong).await.map(|_| ())
        }));
    }
    let (mut guesses, mut refused) = (0, 0);
    for t in tasks {
        match bounded(t).await.unwrap() {
            Err(SecureError::WrongPassphrase { .. }) => guesses += 1,
            Err(SecureError::TooManyAttempts { .. }) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((guesses, refused), (4, 6));
}
