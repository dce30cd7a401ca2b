//! Framing and codecs, with no I/O: the native frame codec, the native chat
//! messages, and the parsers for the chapter's unframed byte streams.

pub mod chat;
pub mod fields;
pub mod frame;
pub mod raw;
