//! Fuzzes `wire::chat::ClientMsg::decode`, what a chat server reads.
//!
//! Input: a stream of native frames. Each frame that decodes as a client
//! message must encode again, to exactly the frame's bytes (the client
//! encoding is canonical), and decode to an equal message.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use soquete::wire::chat::ClientMsg;
use soquete::wire::frame::{DEFAULT_MAX_FRAME, FrameCodec, encode_frame};

fuzz_target!(|data: &[u8]| {
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::from(data);
    // Each frame consumes at least 5 bytes: bounded by the input length.
    while let Ok(Some(frame)) = codec.decode_frame(&mut buf) {
        let Ok(msg) = ClientMsg::decode(&frame) else {
            continue;
        };
        let bytes = msg.to_bytes().expect("a decoded message encodes");
        let mut original = BytesMut::new();
        encode_frame(frame.kind, &frame.payload, &mut original);
        assert_eq!(&bytes[..], &original[..], "{msg:?} re-encoded differently");

        let mut again = BytesMut::from(&bytes[..]);
        let frame2 = codec
            .decode_frame(&mut again)
            .expect("re-encoded frame is valid")
            .expect("re-encoded frame is complete");
        assert!(again.is_empty());
        assert_eq!(ClientMsg::decode(&frame2).as_ref(), Ok(&msg));
    }
});
