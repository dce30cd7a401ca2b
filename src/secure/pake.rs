//! The passphrase check's cryptography, with no I/O: SPAKE2 over the Ed25519
//! group (RustCrypto `spake2`) with identities naming the roles, and key
//! confirmation MACs bound to the TLS session through its exporter.
//!
//! Both sides run SPAKE2 with the passphrase and get a 32-byte key `K`; an
//! eavesdropper, or a peer that does not know the passphrase, gets nothing
//! that lets it test passphrase guesses offline. `K` is then used only as an
//! HMAC-SHA256 key:
//!
//! - server confirmation: `HMAC(K, "soquete server confirm" || exporter)`
//! - client confirmation: `HMAC(K, "soquete client confirm" || exporter)`
//! - server key tag: `HMAC(K, "soquete server key")`, which lets a client
//!   whose confirmation failed tell "wrong passphrase" from "right
//!   passphrase, different TLS session" (someone terminated TLS in between).
//!
//! `exporter` is 32 bytes of TLS keying material ([`EXPORTER_LABEL`], no
//! context): a man in the middle that terminates TLS has a different
//! exporter on each side, so the confirmations fail even on a first contact.
//! Tags are compared in constant time (`ring::hmac::verify`).

use ring::hmac;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::Zeroizing;

/// Label for `export_keying_material` (RFC 8446 §7.5; RFC 5705 wants the
/// `EXPORTER-` prefix for labels not in the IANA registry).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-soquete-pake-v1";
/// Bytes taken from the TLS exporter.
pub const EXPORTER_LEN: usize = 32;
/// TLS keying material both sides of one TLS session share.
pub type Exporter = [u8; EXPORTER_LEN];
/// A SPAKE2 Ed25519 message: a side byte (`A`/`B`) and a 32-byte point.
pub const PAKE_MSG_LEN: usize = 33;
/// An HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// One MAC.
pub type Mac = [u8; MAC_LEN];

/// SPAKE2 identity of the client (side A).
const CLIENT_ID: &[u8] = b"soquete-v1 client";
/// SPAKE2 identity of the server (side B).
const SERVER_ID: &[u8] = b"soquete-v1 server";
const SERVER_CONFIRM: &[u8] = b"soquete server confirm";
const CLIENT_CONFIRM: &[u8] = b"soquete client confirm";
const SERVER_KEY_TAG: &[u8] = b"soquete server key";

/// Which side of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connects; SPAKE2 side A.
    Client,
    /// Accepts; SPAKE2 side B.
    Server,
}

/// A started SPAKE2 exchange: the secret scalar waiting for the peer's
/// message.
pub struct PakeStart {
    /// The secret half of the exchange.
    state: Spake2<Ed25519Group>,
}

/// The peer's PAKE message was not a valid SPAKE2 message for our side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pake message: {0}")]
pub struct BadPakeMessage(String);

impl PakeStart {
    /// Starts the exchange; returns the message to send to the peer.
    pub fn new(role: Role, passphrase: &[u8]) -> (Self, [u8; PAKE_MSG_LEN]) {
        let password = Password::new(passphrase);
        let (client, server) = (Identity::new(CLIENT_ID), Identity::new(SERVER_ID));
        let (state, msg) = match role {
            Role::Client => Spake2::<Ed25519Group>::start_a(&password, &client, &server),
            Role::Server => Spake2::<Ed25519Group>::start_b(&password, &client, &server),
        };
        let msg: [u8; PAKE_MSG_LEN] = msg.try_into().expect("spake2 ed25519 message is 33 bytes");
        (Self { state }, msg)
    }

    /// Finishes with the peer's message. Succeeds whatever passphrase the
    /// peer used: only the confirmations tell whether the keys agree.
    pub fn finish(self, peer_msg: &[u8; PAKE_MSG_LEN]) -> Result<SessionKey, BadPakeMessage> {
        let key = self
            .state
            .finish(peer_msg)
            .map_err(|e| BadPakeMessage(e.to_string()))?;
        Ok(SessionKey {
            key: Zeroizing::new(key),
        })
    }
}

/// The SPAKE2 output `K`, wiped on drop.
pub struct SessionKey {
    /// 32 bytes; the same on both sides only if the passphrases matched.
    key: Zeroizing<Vec<u8>>,
}

impl SessionKey {
    /// `HMAC(K, "soquete server confirm" || exporter)`.
    pub fn server_confirm(&self, exporter: &Exporter) -> Mac {
        self.mac(SERVER_CONFIRM, exporter)
    }

    /// `HMAC(K, "soquete client confirm" || exporter)`.
    pub fn client_confirm(&self, exporter: &Exporter) -> Mac {
        self.mac(CLIENT_CONFIRM, exporter)
    }

    /// `HMAC(K, "soquete server key")`: proves the server derived the same
    /// `K`, whatever TLS session it is in.
    pub fn server_key_tag(&self) -> Mac {
        self.mac(SERVER_KEY_TAG, &[])
    }

    /// Constant-time check of a server confirmation.
    pub fn verify_server_confirm(&self, exporter: &Exporter, tag: &[u8]) -> bool {
        self.verify(SERVER_CONFIRM, exporter, tag)
    }

    /// Constant-time check of a client confirmation.
    pub fn verify_client_confirm(&self, exporter: &Exporter, tag: &[u8]) -> bool {
        self.verify(CLIENT_CONFIRM, exporter, tag)
    }

    /// Constant-time check of a server key tag.
    pub fn verify_server_key_tag(&self, tag: &[u8]) -> bool {
        self.verify(SERVER_KEY_TAG, &[], tag)
    }

    fn mac(&self, label: &[u8], exporter: &[u8]) -> Mac {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(label);
        ctx.update(exporter);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn verify(&self, label: &[u8], exporter: &[u8], tag: &[u8]) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let mut data = Vec::with_capacity(label.len() + exporter.len());
        data.extend_from_slice(label);
        data.extend_from_slice(exporter);
        hmac::verify(&key, &data, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(client_pass: &[u8], server_pass: &[u8]) -> (SessionKey, SessionKey) {
        let (c, c_msg) = PakeStart::new(Role::Client, client_pass);
        let (s, s_msg) = PakeStart::new(Role::Server, server_pass);
        (c.finish(&s_msg).unwrap(), s.finish(&c_msg).unwrap())
    }

    #[test]
    fn same_passphrase_and_session_confirms_both_ways() {
        let (c, s) = run(b"correct horse", b"correct horse");
        let ex = [7u8; 32];
        assert!(c.verify_server_confirm(&ex, &s.server_confirm(&ex)));
        assert!(s.verify_client_confirm(&ex, &c.client_confirm(&ex)));
        assert!(c.verify_server_key_tag(&s.server_key_tag()));
    }

    #[test]
    fn wrong_passphrase_fails_every_tag() {
        let (c, s) = run(b"correct horse", b"correct horsf");
        let ex = [7u8; 32];
        assert!(!c.verify_server_confirm(&ex, &s.server_confirm(&ex)));
        assert!(!s.verify_client_confirm(&ex, &c.client_confirm(&ex)));
        assert!(!c.verify_server_key_tag(&s.server_key_tag()));
    }

    #[test]
    fn other_tls_session_fails_confirmation_but_not_the_key_tag() {
        let (c, s) = run(b"pw", b"pw");
        let (client_side, server_side) = ([1u8; 32], [2u8; 32]);
        assert!(!c.verify_server_confirm(&client_side, &s.server_confirm(&server_side)));
        assert!(!s.verify_client_confirm(&server_side, &c.client_confirm(&client_side)));
        assert!(c.verify_server_key_tag(&s.server_key_tag()));
    }

    #[test]
    fn confirmations_are_direction_specific() {
        let (c, s) = run(b"pw", b"pw");
        let ex = [3u8; 32];
        // A reflected client tag is not a server confirmation.
        assert!(!c.verify_server_confirm(&ex, &c.client_confirm(&ex)));
        assert!(!s.verify_client_confirm(&ex, &s.server_confirm(&ex)));
        assert_ne!(s.server_key_tag(), s.server_confirm(&[0u8; 32]));
    }

    #[test]
    fn reflected_or_corrupt_pake_messages_are_refused() {
        let (c, c_msg) = PakeStart::new(Role::Client, b"pw");
        assert!(
            c.finish(&c_msg).is_err(),
            "a client must refuse its own side's message"
        );
        let (s, _) = PakeStart::new(Role::Server, b"pw");
        let mut symmetric = c_msg;
        symmetric[0] = b'S';
        assert!(s.finish(&symmetric).is_err(), "wrong side byte");
        // About half of all y coordinates are not on the curve.
        let off_curve = (2u8..60).filter(|&y| {
            let mut bad = [0u8; PAKE_MSG_LEN];
            (bad[0], bad[1]) = (b'A', y);
            PakeStart::new(Role::Server, b"pw").0.finish(&bad).is_err()
        });
        assert!(off_curve.count() > 5);
    }

    #[test]
    fn messages_are_fresh_each_time() {
        let (_, a) = PakeStart::new(Role::Client, b"pw");
        let (_, b) = PakeStart::new(Role::Client, b"pw");
        assert_ne!(a, b);
        assert_eq!(a[0], b'A');
    }

    #[test]
    fn short_tags_do_not_verify() {
        let (c, s) = run(b"pw", b"pw");
        let ex = [0u8; 32];
        let tag = s.server_confirm(&ex);
        assert!(!c.verify_server_confirm(&ex, &tag[..31]));
        assert!(!c.verify_server_confirm(&ex, &[]));
    }
}
