//! Fuzzes the native frame codec (`wire::frame::FrameCodec::decode_frame`).
//!
//! Input: two bytes choosing a split point, then the stream. For a small
//! limit (4096) and the default one, checks that decoding never panics,
//! never yields a frame whose body exceeds the limit, gives the same frames,
//! the same error and the same leftover bytes whether the stream arrives
//! whole or in two parts, and that the frames re-encode to exactly the bytes
//! they were decoded from.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use soquete::wire::frame::{DEFAULT_MAX_FRAME, Frame, FrameCodec, FrameError, encode_frame};

/// Everything one decoding run produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    /// The error that stopped decoding, if any.
    error: Option<FrameError>,
    /// Bytes not consumed: left in the buffer, plus parts never fed.
    leftover: Vec<u8>,
}

/// Feeds `parts` one after the other, decoding all it can after each part,
/// and stops at the first error as a connection would.
fn decode_parts(codec: &FrameCodec, parts: &[&[u8]]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        buf.extend_from_slice(part);
        // Each frame consumes at least 5 bytes, so this loop is bounded.
        loop {
            match codec.decode_frame(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => {
                    let mut leftover = buf.to_vec();
                    leftover.extend(parts[i + 1..].concat());
                    return Outcome {
                        frames,
                        error: Some(error),
                        leftover,
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        error: None,
        leftover: buf.to_vec(),
    }
}

fn check(max_frame: usize, stream: &[u8], split: usize) {
    let codec = FrameCodec::new(max_frame);
    let whole = decode_parts(&codec, &[stream]);
    let halves = decode_parts(&codec, &[&stream[..split], &stream[split..]]);
    assert_eq!(whole, halves, "split at {split} changed the result");

    let mut reencoded = BytesMut::new();
    for frame in &whole.frames {
        assert!(
            frame.payload.len() < max_frame,
            "frame body of {} bytes over the limit {max_frame}",
            frame.payload.len() + 1
        );
        encode_frame(frame.kind, &frame.payload, &mut reencoded);
    }
    // Frames + leftover are exactly the input: nothing skipped, nothing made up.
    reencoded.extend_from_slice(&whole.leftover);
    assert_eq!(&reencoded[..], stream);

    match &whole.error {
        Some(FrameError::Empty) => assert_eq!(&whole.leftover[..4], &[0, 0, 0, 0]),
        Some(FrameError::TooLong { len, max }) => {
            assert_eq!(*max, max_frame);
            assert!(*len > max_frame);
        }
        // Without an error, what is left is an incomplete frame.
        None => assert!(incomplete(&whole.leftover, max_frame)),
    }
}

/// Whether `rest` is the start of a valid frame that needs more bytes.
fn incomplete(rest: &[u8], max_frame: usize) -> bool {
    if rest.len() < 4 {
        return true;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    len >= 1 && len <= max_frame && rest.len() < 4 + len
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let stream = &data[2..];
    let split = usize::from(u16::from_be_bytes([data[0], data[1]])) % (stream.len() + 1);
    check(4096, stream, split);
    check(DEFAULT_MAX_FRAME, stream, split);
});
