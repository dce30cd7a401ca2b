use super::*;
use crate::wire::frame::FrameCodec;

fn frames_of(bytes: &[u8]) -> Vec<Frame> {
    let codec = FrameCodec::new(MAX_FRAME);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = codec.decode_frame(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

fn requests() -> Vec<Request> {
    vec![
        Request::List {
            id: 1,
            path: String::new(),
        },
        Request::Get {
            id: 2,
            path: "fotos/iguana.jpg".into(),
            mode: GetMode::Resume,
            have: 4096,
            have_hash: [7; 32],
        },
        Request::Put {
            id: 3,
            path: "a/b.txt".into(),
            size: 100_116,
            mtime_ms: 1_700_000_000_000,
            overwrite: true,
        },
        Request::Data {
            id: 3,
            offset: 0,
            len: 100_116,
        },
        Request::End {
            id: 3,
            hash: [9; 32],
        },
        Request::Done,
    ]
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::Welcome {
            software: "soquete 0.1.0".into(),
            flags: FLAG_UPLOADS,
        },
        Reply::Entries {
            id: 1,
            entries: vec![Entry {
                path: "fotos".into(),
                kind: EntryKind::Dir,
                size: 0,
                mtime_ms: 5,
            }],
        },
        Reply::ListEnd { id: 1 },
        Reply::Data {
            id: 2,
            size: 10,
            mtime_ms: 6,
            offset: 4,
            len: 6,
        },
        Reply::End {
            id: 2,
            hash: [1; 32],
        },
        Reply::Same { id: 2 },
        Reply::Differs { id: 2, size: 11 },
        Reply::PutReady {
            id: 3,
            state: PutState::Partial,
            have: 10,
            have_hash: [2; 32],
        },
        Reply::Stored { id: 3 },
        Reply::Error {
            id: 0,
            code: ErrorCode::NotFound as u16,
            text: "no such file: x".into(),
        },
    ]
}

#[test]
fn every_request_round_trips_at_every_split() {
    for req in requests() {
        let bytes = req.to_bytes().unwrap();
        let codec = FrameCodec::new(MAX_FRAME);
        for cut in 0..bytes.len() {
            let mut part = BytesMut::from(&bytes[..cut]);
            assert_eq!(
                codec.decode_frame(&mut part).unwrap(),
                None,
                "{req:?} {cut}"
            );
        }
        let frames = frames_of(&bytes);
        assert_eq!(Request::decode(&frames[0]).unwrap(), req);
    }
}

#[test]
fn every_reply_round_trips() {
    for rep in replies() {
        let frames = frames_of(&rep.to_bytes().unwrap());
        assert_eq!(Reply::decode(&frames[0]).unwrap(), rep);
    }
}

#[test]
fn truncated_payloads_are_errors_not_panics() {
    for req in requests() {
        let f = &frames_of(&req.to_bytes().unwrap())[0];
        for cut in 0..f.payload.len() {
            let short = Frame {
                kind: f.kind,
                payload: f.payload.slice(..cut),
            };
            assert!(Request::decode(&short).is_err(), "{req:?} cut {cut}");
        }
    }
    for rep in replies() {
        let f = &frames_of(&rep.to_bytes().unwrap())[0];
        for cut in 0..f.payload.len() {
            let short = Frame {
                kind: f.kind,
                payload: f.payload.slice(..cut),
            };
            assert!(Reply::decode(&short).is_err(), "{rep:?} cut {cut}");
        }
    }
}

#[test]
fn bad_mode_and_unknown_types_are_refused() {
    let mut bytes = BytesMut::new();
    Request::Get {
        id: 1,
        path: "x".into(),
        mode: GetMode::Compare,
        have: 0,
        have_hash: [0; 32],
    }
    .encode(&mut bytes)
    .unwrap();
    let mut f = frames_of(&bytes).remove(0);
    let mut p = f.payload.to_vec();
    p[4 + 2 + 1] = 9;
    f.payload = p.into();
    assert!(matches!(
        Request::decode(&f),
        Err(FilesWireError::BadValue { .. })
    ));
    let f = Frame {
        kind: 0x7E,
        payload: Bytes::new(),
    };
    assert_eq!(Request::decode(&f), Err(FilesWireError::UnknownType(0x7E)));
    let f = Frame {
        kind: t::LIST,
        payload: Bytes::new(),
    };
    assert!(Reply::decode(&f).is_err());
}

#[test]
fn huge_entry_count_is_refused_before_allocating() {
    let f = Frame {
        kind: t::ENTRIES,
        payload: Bytes::from_static(&[0, 0, 0, 1, 0xFF, 0xFF, 0]),
    };
    assert!(Reply::decode(&f).is_err());
}

#[test]
fn long_listings_split_into_frames_that_fit() {
    let entries: Vec<Entry> = (0..5000)
        .map(|i| Entry {
            path: format!("{i:0>40}"),
            kind: EntryKind::File,
            size: i,
            mtime_ms: i,
        })
        .collect();
    let mut out = BytesMut::new();
    entries_frames(4, &entries, &mut out).unwrap();
    let frames = frames_of(&out);
    assert!(frames.len() > 1);
    let mut back = Vec::new();
    for f in &frames {
        assert!(f.payload.len() < MAX_FRAME);
        match Reply::decode(f).unwrap() {
            Reply::Entries { id: 4, entries } => back.extend(entries),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(back, entries);
}

#[test]
fn paths_from_the_network_are_checked() {
    assert_eq!(check_path("a/b.txt", false), Ok(()));
    assert_eq!(check_path("Olá mundo.txt", false), Ok(()));
    assert_eq!(check_path("", true), Ok(()));
    assert_eq!(check_path("", false), Err(PathError::Empty));
    assert_eq!(
        check_path("../etc/passwd", false),
        Err(PathError::DotComponent)
    );
    assert_eq!(check_path("a/../../b", false), Err(PathError::DotComponent));
    assert_eq!(check_path("./a", false), Err(PathError::DotComponent));
    assert_eq!(check_path("/etc/passwd", false), Err(PathError::Absolute));
    assert_eq!(check_path("a//b", false), Err(PathError::EmptyComponent));
    assert_eq!(check_path("a/", false), Err(PathError::EmptyComponent));
    assert_eq!(check_path("a\0b", false), Err(PathError::Control));
    assert_eq!(check_path("a\nb", false), Err(PathError::Control));
    assert_eq!(check_path("a\\..\\b", false), Err(PathError::Windows));
    assert_eq!(check_path("C:x", false), Err(PathError::Windows));
    assert_eq!(
        check_path(".x.soquete-part", false),
        Err(PathError::PartFile)
    );
    assert_eq!(
        check_path(&"a".repeat(MAX_PATH + 1), false),
        Err(PathError::TooLong)
    );
}

#[test]
fn error_codes_round_trip() {
    for v in 0..20u16 {
        if let Some(c) = ErrorCode::from_u16(v) {
            assert_eq!(c as u16, v);
        }
    }
    assert_eq!(ErrorCode::from_u16(6), Some(ErrorCode::HashMismatch));
}

#[test]
fn the_worked_example_in_docs_protocol_md_holds() {
    // docs/protocol.md, "Files", worked example: a.txt holds "hello".
    assert_eq!(
        blake3::hash(b"hello").to_hex().as_str(),
        "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
    );
    let get = Request::Get {
        id: 2,
        path: "a.txt".into(),
        mode: GetMode::Resume,
        have: 0,
        have_hash: [0; 32],
    };
    let b = get.to_bytes().unwrap();
    assert_eq!(&b[..12], &[0, 0, 0, 0x35, 0x02, 0, 0, 0, 2, 0, 5, b'a']);
    assert_eq!(b.len(), 4 + 0x35);
}
