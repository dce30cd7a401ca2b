//! The kernel paths over a real loopback connection: bytes and hashes as
//! sent, a pipe filled by small fragments before its capacity, a stalled
//! peer, and a transfer dropped while its thread waits.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::super::pagebuf::PageBuf;
use super::{DataPath, KernelPath, Link, Pipe, recv_block, send_block};

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// Both ends of a loopback connection, non-blocking as tokio leaves them.
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn file_with(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

/// Runs `f` on a thread, failing the test if it takes over 20 s.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the kernel path got stuck")
}

/// Receives `len` bytes on the splice path into a new file: the file's
/// bytes, the hash of what was written, and how many blocks it took.
fn receive(socket: TcpStream, len: usize, block: usize) -> (Vec<u8>, blake3::Hash, usize) {
    let k = KernelPath::new(&socket, DataPath::Splice).unwrap();
    let link = Link::new(&k, Duration::from_secs(10));
    let mut file = tempfile::tempfile().unwrap();
    let (mut buf, mut pipe) = (PageBuf::default(), Pipe::new().unwrap());
    let mut hasher = blake3::Hasher::new();
    let (mut got, mut blocks) = (0, 0);
    while got < len {
        let want = block.min(len - got);
        let moved = recv_block(
            &link,
            &file,
            want,
            &mut buf,
            &mut pipe,
            &mut hasher,
            got as u64,
        )
        .unwrap();
        moved.write.unwrap();
        assert!(moved.got > 0 && moved.got <= want);
        got += moved.got;
        blocks += 1;
        assert!(blocks < 100_000, "no end to the blocks");
    }
    let mut bytes = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut bytes).unwrap();
    (bytes, hasher.finalize(), blocks)
}

fn round_trip(path: DataPath) {
    let len = (3 << 20) + 4099;
    let data = pattern(len);
    let (tx, rx) = pair();
    let src = file_with(&data);
    let sender = std::thread::spawn(move || {
        let k = KernelPath::new(&tx, path).unwrap();
        let link = Link::new(&k, Duration::from_secs(10));
        let (mut buf, mut pipe) = (PageBuf::default(), None);
        let mut hasher = blake3::Hasher::new();
        let mut at = 0;
        while at < len {
            let n = (1 << 20).min(len - at);
            send_block(
                &link,
                &src,
                at as u64,
                n,
                Some(&mut hasher),
                &mut buf,
                &mut pipe,
            )
            .unwrap();
            at += n;
        }
        hasher.finalize()
    });
    let (got, hash, _) = bounded(move || receive(rx, len, 1 << 20));
    let sent_hash = sender.join().unwrap();
    assert!(got == data, "the received file differs");
    assert_eq!(hash, blake3::hash(&data));
    assert_eq!(sent_hash, blake3::hash(&data));
}

#[test]
fn splice_moves_a_file_both_ways_with_its_hash() {
    round_trip(DataPath::Splice);
}

#[test]
fn sendfile_moves_a_file_to_a_splicing_receiver_with_its_hash() {
    round_trip(DataPath::Sendfile);
}

#[test]
fn read_write_takes_no_kernel_path() {
    let (a, _b) = pair();
    assert!(KernelPath::new(&a, DataPath::ReadWrite).is_none());
    let k = KernelPath::new(&a, DataPath::Sendfile).unwrap();
    assert!(!k.receives());
    assert!(KernelPath::new(&a, DataPath::Splice).unwrap().receives());
}

#[test]
fn a_pipe_full_of_small_fragments_is_written_out_not_waited_on() {
    // A pipe holds a fixed number of pieces: spliced from a socket whose
    // segments are made of many small page fragments (1,000 bytes from
    // each of 3,000 pages, which nothing can merge), it fills long before
    // its capacity in bytes, while the socket stays readable.
    let (tx, rx) = pair();
    let pages = 3000;
    let all = pattern(pages * 4096);
    let src = file_with(&all);
    let sender = std::thread::spawn(move || {
        let k = KernelPath::new(&tx, DataPath::Splice).unwrap();
        let link = Link::new(&k, Duration::from_secs(10));
        let (mut buf, mut pipe) = (PageBuf::default(), None);
        for i in 0..pages {
            let at = (i * 4096) as u64;
            send_block(&link, &src, at, 1000, None, &mut buf, &mut pipe).unwrap();
        }
    });
    let expected: Vec<u8> = (0..pages)
        .flat_map(|i| all[i * 4096..i * 4096 + 1000].iter().copied())
        .collect();
    // Let the segments queue up (as many as the socket's buffer holds).
    std::thread::sleep(Duration::from_millis(200));
    let len = expected.len();
    let (got, hash, blocks) = bounded(move || receive(rx, len, 1 << 20));
    assert!(got == expected, "the received file differs");
    assert_eq!(hash, blake3::hash(&expected));
    sender.join().unwrap();
    assert!(blocks >= 3, "{blocks} blocks: the pipe never filled");
}

#[test]
fn a_silent_peer_is_no_progress_after_the_stall_time() {
    let (_tx, rx) = pair();
    let err = bounded(move || {
        let k = KernelPath::new(&rx, DataPath::Splice).unwrap();
        let link = Link::new(&k, Duration::from_millis(300));
        let file = tempfile::tempfile().unwrap();
        let (mut buf, mut pipe) = (PageBuf::default(), Pipe::new().unwrap());
        let mut hasher = blake3::Hasher::new();
        recv_block(&link, &file, 1000, &mut buf, &mut pipe, &mut hasher, 0)
            .err()
            .expect("nothing arrived, yet a block did")
    });
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("no progress"), "{err}");
}

#[test]
fn dropping_the_transfer_frees_a_waiting_thread() {
    let (_tx, rx) = pair();
    let k = KernelPath::new(&rx, DataPath::Splice).unwrap();
    let link = Link::new(&k, Duration::from_secs(60));
    let worker = link.worker();
    let waiting = std::thread::spawn(move || {
        let file = tempfile::tempfile().unwrap();
        let (mut buf, mut pipe) = (PageBuf::default(), Pipe::new().unwrap());
        let mut hasher = blake3::Hasher::new();
        let started = Instant::now();
        let r = recv_block(&worker, &file, 1000, &mut buf, &mut pipe, &mut hasher, 0);
        (r.err().map(|e| e.kind()), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(link);
    let (kind, waited) = bounded(move || waiting.join().unwrap());
    assert_eq!(kind, Some(std::io::ErrorKind::Interrupted));
    assert!(waited < Duration::from_secs(30), "{waited:?}");
}

#[test]
fn a_file_shorter_than_announced_is_an_error_not_a_hang() {
    let (tx, _rx) = pair();
    let src = file_with(&pattern(1000));
    for path in [DataPath::Splice, DataPath::Sendfile] {
        let k = KernelPath::new(&tx, path).unwrap();
        let link = Link::new(&k, Duration::from_secs(5));
        let (mut buf, mut pipe) = (PageBuf::default(), None);
        let err = send_block(&link, &src, 0, 5000, None, &mut buf, &mut pipe).unwrap_err();
        assert!(err.to_string().contains("shrank"), "{path:?}: {err}");
    }
}
