//! The native protocol spoken by hand (soquete's own codec) against the
//! real server: requests a well-behaved client never sends -- traversal,
//! absolute paths, symlinks out, folders, NUL and newline in names -- are
//! refused with clear errors, and the server keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use soquete::wire::files::{ErrorCode, GetMode, MAX_FRAME, PREAMBLE, Reply, Request};
use soquete::wire::frame::FrameCodec;

use crate::support::{Tree, serve};

struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&PREAMBLE).unwrap();
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
            codec: FrameCodec::new(MAX_FRAME),
        };
        assert!(matches!(raw.next(), Reply::Welcome { .. }));
        raw
    }

    fn send(&mut self, r: &Request) {
        self.stream.write_all(&r.to_bytes().unwrap()).unwrap();
    }

    fn next(&mut self) -> Reply {
        loop {
            if let Some(f) = self.codec.decode_frame(&mut self.buf).unwrap() {
                return Reply::decode(&f).unwrap();
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn get(&mut self, id: u32, path: &str) -> Reply {
        self.send(&Request::Get {
            id,
            path: path.into(),
            mode: GetMode::Resume,
            have: 0,
            have_hash: [0; 32],
        });
        self.next()
    }
}

fn refused(reply: Reply, code: ErrorCode, needle: &str) {
    match reply {
        Reply::Error { code: c, text, .. } => {
            assert_eq!(c, code as u16, "{text}");
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn traversal_attempts_are_refused_and_the_server_keeps_serving() {
    let t = Tree::new();
    std::fs::write(t.dir.path().join("secret"), b"s3cr3t").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(t.dir.path().join("secret"), t.root.join("out")).unwrap();
        std::os::unix::fs::symlink(t.dir.path(), t.root.join("outdir")).unwrap();
    }
    let server = serve(&t, &[]);
    let mut c = Raw::connect(&server.addr_str());
    refused(c.get(1, "../secret"), ErrorCode::BadPath, "'..'");
    refused(c.get(2, "fotos/../../secret"), ErrorCode::BadPath, "'..'");
    refused(c.get(3, "/etc/passwd"), ErrorCode::BadPath, "absolute");
    refused(c.get(4, "a\0b"), ErrorCode::BadPath, "control");
    refused(c.get(5, "a.txt\nGET x"), ErrorCode::BadPath, "control");
    refused(c.get(6, "fotos"), ErrorCode::NotAFile, "is a folder");
    refused(c.get(7, "nope"), ErrorCode::NotFound, "no such file");
    #[cfg(unix)]
    {
        refused(c.get(8, "out"), ErrorCode::BadPath, "outside");
        refused(c.get(9, "outdir/secret"), ErrorCode::BadPath, "outside");
    }
    c.send(&Request::List {
        id: 10,
        path: "../".into(),
    });
    refused(c.next(), ErrorCode::BadPath, "");
    // Still serving, on this connection and others.
    match c.get(11, "a.txt") {
        Reply::Data { len: 5, .. } => {}
        other => panic!("{other:?}"),
    }
    let mut other = Raw::connect(&server.addr_str());
    other.send(&Request::List {
        id: 1,
        path: String::new(),
    });
    match other.next() {
        Reply::Entries { entries, .. } => {
            assert!(entries.iter().all(|e| !e.path.starts_with("out")));
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_bad_frame_ends_only_that_connection() {
    let t = Tree::new();
    let server = serve(&t, &[]);
    let mut c = Raw::connect(&server.addr_str());
    c.stream.write_all(&[0, 0, 0, 2, 0x7E, 0]).unwrap();
    refused(c.next(), ErrorCode::Protocol, "unknown message type");
    let mut d = Raw::connect(&server.addr_str());
    assert!(matches!(d.get(1, "a.txt"), Reply::Data { .. }));
}

impl Raw {
    /// The `len` raw bytes that follow a `Data` reply.
    fn raw_bytes(&mut self, len: usize) -> Vec<u8> {
        while self.buf.len() < len {
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
        self.buf.split_to(len).to_vec()
    }

    /// A whole file: `Data`, its bytes, `End` with its hash.
    fn file(&mut self, id: u32) -> Vec<u8> {
        let len = match self.next() {
            Reply::Data { id: i, len, .. } if i == id => len as usize,
            other => panic!("expected data for {id}, got {other:?}"),
        };
        let bytes = self.raw_bytes(len);
        match self.next() {
            Reply::End { id: i, hash } if i == id => {
                assert_eq!(hash, *blake3::hash(&bytes).as_bytes());
            }
            other => panic!("expected the end of {id}, got {other:?}"),
        }
        bytes
    }
}

/// The server reads pipelined `Get`s ahead and prepares them together;
/// the answers still come strictly in order, whatever each one is.
#[test]
fn pipelined_requests_of_every_kind_are_answered_in_order() {
    let t = Tree::new();
    let big = std::fs::read(t.root.join("big.bin")).unwrap();
    assert!(big.len() > 64 * 1024, "big.bin must stream, not go inline");
    let server = serve(&t, &[]);
    let mut c = Raw::connect(&server.addr_str());
    let get = |id: u32, path: &str| Request::Get {
        id,
        path: path.into(),
        mode: GetMode::Resume,
        have: 0,
        have_hash: [0; 32],
    };
    let mut all = Vec::new();
    for r in [
        get(1, "a.txt"),
        get(2, "nope"),
        get(3, "big.bin"),
        get(4, "../x"),
        get(5, "a.txt"),
        Request::List {
            id: 6,
            path: "a.txt".into(),
        },
        get(7, "big.bin"),
    ] {
        all.extend_from_slice(&r.to_bytes().unwrap());
    }
    // Then a frame that is not a request at all.
    all.extend_from_slice(&[0, 0, 0, 2, 0x7E, 0]);
    c.stream.write_all(&all).unwrap();
    assert_eq!(c.file(1), b"hello");
    refused(c.next(), ErrorCode::NotFound, "no such file");
    assert_eq!(c.file(3), big);
    refused(c.next(), ErrorCode::BadPath, "'..'");
    assert_eq!(c.file(5), b"hello");
    assert!(matches!(c.next(), Reply::Entries { id: 6, .. }));
    assert!(matches!(c.next(), Reply::ListEnd { id: 6 }));
    assert_eq!(c.file(7), big);
    refused(c.next(), ErrorCode::Protocol, "unknown message type");
}
