//! soquete: the socket applications of an industrial-networks course chapter
//! (chat, echo, file repository, load generators), done for real, as a library the `soquete`
//! binary drives. The binary is thin: `cli` parses, each subcommand's module
//! has a `run` that takes its arguments and a [`net::Shutdown`].

pub mod bench;
pub mod chat;
pub mod cli;
pub mod demo;
pub mod echo;
pub mod files;
pub mod net;
pub mod sanitize;
pub mod secure;
pub mod wire;

/// Name and version announced in hellos and `--version`.
pub const SOFTWARE: &str = concat!("soquete ", env!("CARGO_PKG_VERSION"));
