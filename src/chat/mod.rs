//! The chat: native protocol sessions and raw TCP clients on one port, the
//! hub that fans messages out to rooms, and the client (line mode, `--raw`).

pub mod client;
pub mod command;
pub mod hub;
pub mod hub_render;
pub mod join;
pub mod names;
pub mod outbox;
pub mod pacer;
pub mod ratelimit;
pub mod server;
pub mod session_native;
pub mod session_raw;
