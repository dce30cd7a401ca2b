//! Encrypted chat done right: a secure channel (TLS 1.3 with a pinned,
//! self-signed server key, then a passphrase check by SPAKE2 bound to the
//! TLS session) that the chat server and client run before their native
//! protocol. See `docs/security.md` for the threat model and the bytes.
//!
//! - `channel`: `accept` / `connect`, the public entry points
//! - `handshake`, `pake`: the passphrase check (pure, no I/O); `drive`
//!   moves its bytes
//! - `identity`, `known`, `verify`: server key, client pins, certificate check
//! - `limiter`: per-address limit on passphrase guesses (pure)
//! - `passphrase`: the command-line options and passphrase sources
//! - `fernet_server`, `fernet_client`, `fernet_wire`: the chapter's Fernet
//!   chat (Exemplo 2), kept for compatibility: its key crosses the network
//!   in clear

pub mod channel;
mod drive;
pub mod error;
pub mod fernet_client;
pub mod fernet_server;
pub mod fernet_wire;
mod front;
pub mod handshake;
pub mod identity;
pub mod known;
pub mod limiter;
pub mod pake;
pub mod passphrase;
mod verify;

pub use channel::{
    ALPN, ClientSecurity, ClientStream, Connected, FirstBytes, HANDSHAKE_TIMEOUT, Pinning,
    ServerSecurity, ServerStream, accept, classify_first_bytes, connect, peek_first_bytes,
};
pub use error::SecureError;
pub use front::{FrontDoor, front_door};
pub use identity::Fingerprint;
pub use limiter::LimiterPolicy;
pub use pake::Role;
pub use passphrase::{Passphrase, PassphraseArgs, SecureOptions};
