//! Framing and codecs, with no I/O: the native frame codec, the native chat
//! and file-transfer messages, and the parsers for the chapter's unframed byte streams.

pub mod chat;
pub mod fields;
pub mod files;
pub mod files_chapter;
pub mod frame;
pub mod raw;
