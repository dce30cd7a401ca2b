//! Fuzzes what a files client parses: `wire::files::Reply::decode` (the
//! listing's `Entries` and every other reply) on a stream of frames, and
//! the chapter's side -- `parse_listing` and `SeedReply`, which reads
//! `repositorio.py`'s reply to EOF.
//!
//! Every reply that decodes re-encodes to the frame's bytes. `SeedReply`
//! gives the same content and outcome whether the input arrives whole or
//! cut at the position the first byte picks, and the content is always
//! the input without its last two bytes when the input ends with `OK`.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use soquete::wire::files::{MAX_FRAME, Reply};
use soquete::wire::files_chapter::{SeedReply, parse_listing};
use soquete::wire::frame::{FrameCodec, encode_frame};

fn seed(parts: &[&[u8]]) -> (Vec<u8>, Result<(), String>) {
    let mut r = SeedReply::new();
    let mut out = Vec::new();
    for p in parts {
        r.push(p, &mut out);
    }
    let end = r.finish(&mut out).map_err(|e| e.to_string());
    (out, end)
}

fuzz_target!(|data: &[u8]| {
    for name in parse_listing(data) {
        assert!(!name.is_empty() && !name.contains('\n'));
    }
    let cut = data.first().map_or(0, |b| *b as usize).min(data.len());
    let whole = seed(&[data]);
    let split = seed(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split);
    if let Some(content) = data.strip_suffix(b"OK") {
        assert_eq!(whole.0, content);
        assert!(whole.1.is_ok());
    }
    let codec = FrameCodec::new(MAX_FRAME);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode_frame(&mut buf) {
        let Ok(reply) = Reply::decode(&frame) else {
            continue;
        };
        let bytes = reply.to_bytes().expect("a decoded reply encodes");
        let mut original = BytesMut::new();
        encode_frame(frame.kind, &frame.payload, &mut original);
        assert_eq!(
            &bytes[..],
            &original[..],
            "{reply:?} re-encoded differently"
        );
    }
});
