//! Fuzzes `wire::chat::ServerMsg::decode`, what a chat client reads.
//!
//! Input: a stream of native frames. Each frame that decodes as a server
//! message must encode again and decode to an equal message. The encoding is
//! canonical except for one documented leniency: the flags byte of a chat
//! line keeps only its `history` bit, so reserved bits set by a (future) peer
//! are dropped; the re-encoded bytes must equal the frame's bytes with those
//! bits cleared.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use soquete::wire::chat::ServerMsg;
use soquete::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec, encode_frame};

/// Frame type of a chat line, and the offset of its flags byte in the
/// payload (after id: u64, ts_ms: u64, kind: u8).
const CHAT: u8 = 0x82;
const CHAT_FLAGS_AT: usize = 17;

fuzz_target!(|data: &[u8]| {
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::from(data);
    // Each frame consumes at least 5 bytes: bounded by the input length.
    while let Ok(Some(frame)) = codec.decode_frame(&mut buf) {
        let Ok(msg) = ServerMsg::decode(&frame) else {
            continue;
        };
        let bytes = msg.to_bytes().expect("a decoded message encodes");
        let mut payload = frame.payload.to_vec();
        if frame.kind == CHAT {
            payload[CHAT_FLAGS_AT] &= 1;
        }
        let mut original = BytesMut::new();
        encode_frame(frame.kind, &payload, &mut original);
        assert_eq!(&bytes[..], &original[..], "{msg:?} re-encoded differently");

        let mut again = BytesMut::from(&bytes[..]);
        let frame2 = codec
            .decode_frame(&mut again)
            .expect("re-encoded frame is valid")
            .expect("re-encoded frame is complete");
        assert!(again.is_empty());
        assert_eq!(ServerMsg::decode(&frame2).as_ref(), Ok(&msg));
    }
});
