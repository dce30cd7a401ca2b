//! Fuzzes the secure channel's handshake codec and state machines
//! (`secure::handshake`).
//!
//! Input: the bytes a peer sends inside TLS. Checks that decoding never
//! panics; that reading the way `channel` reads (at most `bytes_needed` at a
//! time) never takes a byte past a frame and never asks for more than the
//! largest frame; that the stream decodes to the same messages and error
//! whether it comes whole or one byte at a time; that every decoded message
//! re-encodes to exactly its bytes; and that neither state machine, fed the
//! input as the peer, panics or accepts it (that would need a forged MAC).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use soquete::secure::handshake::{
    ClientHandshake, FrameError, MAX_FRAME_LEN, Message, ServerHandshake, Step, bytes_needed,
};

/// Messages decoded, the error that stopped decoding, bytes consumed.
type Outcome = (Vec<Message>, Option<FrameError>, usize);

/// Decodes everything from one buffer.
fn decode_whole(input: &[u8]) -> Outcome {
    let mut buf = BytesMut::from(input);
    let mut msgs = Vec::new();
    // Each message consumes at least 5 bytes: bounded.
    loop {
        match Message::decode(&mut buf) {
            Ok(Some(m)) => msgs.push(m),
            Ok(None) => return (msgs, None, input.len() - buf.len()),
            Err(e) => return (msgs, Some(e), input.len() - buf.len()),
        }
    }
}

/// Reads as `channel` does: never more than `bytes_needed`, here one byte
/// at a time, decoding whenever a frame is whole.
fn decode_as_channel(input: &[u8]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut msgs = Vec::new();
    let mut fed = 0;
    loop {
        match bytes_needed(&buf) {
            Err(e) => return (msgs, Some(e), fed - buf.len()),
            Ok(0) => {
                let before = buf.len();
                let m = Message::decode(&mut buf)
                    .expect("whole frame")
                    .expect("decodes");
                assert_eq!(
                    m.encode(),
                    input[fed - before..fed],
                    "re-encodes to its bytes"
                );
                assert!(buf.is_empty(), "a frame read never takes a byte more");
                msgs.push(m);
            }
            Ok(n) => {
                assert!(buf.len() + n <= MAX_FRAME_LEN, "asks for at most one frame");
                let Some(&b) = input.get(fed) else {
                    return (msgs, None, fed - buf.len());
                };
                buf.extend_from_slice(&[b]);
                fed += 1;
            }
        }
    }
}

/// Feeds the input to a state machine as its peer; it must never succeed.
fn never_accepts(input: &[u8], mut on_bytes: impl FnMut(&mut BytesMut) -> Step) {
    let mut buf = BytesMut::from(input);
    for _ in 0..8 {
        match on_bytes(&mut buf) {
            Step::NeedMore | Step::Fail(..) => return,
            Step::Reply(_) => {}
            Step::Done(_) => panic!("accepted forged handshake bytes"),
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let whole = decode_whole(input);
    assert_eq!(whole, decode_as_channel(input));
    let exporter = [7u8; 32];
    let mut server = ServerHandshake::new(b"fuzz passphrase", exporter);
    never_accepts(input, |b| server.on_bytes(b));
    let (mut client, _) = ClientHandshake::start(b"fuzz passphrase", exporter);
    never_accepts(input, |b| client.on_bytes(b));
});
