//! Fuzzes what a file server parses: `wire::files::Request::decode` on a
//! stream of native frames, `check_path` on every path in them, and the
//! chapter's `GET <name>` parser (`wire::files_chapter::parse_request`) on
//! the raw input.
//!
//! Every request that decodes must encode again to exactly the frame's
//! bytes (the encoding is canonical) and decode to an equal request; a
//! path `check_path` accepts never holds `..`, a control character or a
//! leading `/`.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use soquete::wire::files::{MAX_FRAME, Request, check_path};
use soquete::wire::files_chapter::{ChapterRequest, parse_request};
use soquete::wire::frame::{FrameCodec, encode_frame};

fn path_of(r: &Request) -> Option<&str> {
    match r {
        Request::List { path, .. } | Request::Get { path, .. } | Request::Put { path, .. } => {
            Some(path)
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    if let ChapterRequest::Get(name) = parse_request(data) {
        assert!(!name.is_empty() && !name.contains(' '));
    }
    let codec = FrameCodec::new(MAX_FRAME);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode_frame(&mut buf) {
        let Ok(req) = Request::decode(&frame) else {
            continue;
        };
        let bytes = req.to_bytes().expect("a decoded request encodes");
        let mut original = BytesMut::new();
        encode_frame(frame.kind, &frame.payload, &mut original);
        assert_eq!(&bytes[..], &original[..], "{req:?} re-encoded differently");
        let mut again = BytesMut::from(&bytes[..]);
        let frame2 = codec.decode_frame(&mut again).unwrap().unwrap();
        assert_eq!(Request::decode(&frame2).as_ref(), Ok(&req));
        if let Some(p) = path_of(&req)
            && check_path(p, true).is_ok()
        {
            assert!(!p.starts_with('/'));
            assert!(!p.split('/').any(|c| c == ".." || c == "."));
            assert!(!p.chars().any(char::is_control));
        }
    }
});
