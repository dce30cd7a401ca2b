//! The chat: the server (hub, native and raw sessions), the client core,
//! `chat join`'s line mode and full-screen terminal chat, with the
//! typed-command parser and name rules they share.

pub mod client;
pub mod command;
pub mod join;
pub mod names;
pub mod server;
pub mod tui;
