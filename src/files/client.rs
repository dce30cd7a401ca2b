//! Opening a files connection for `list`, `get` and `put`: resolve and
//! connect (`chat::client::conn::connect_tcp`), in secure mode run the
//! secure channel (TLS 1.3, pinned key, passphrase), send the preamble and
//! wait for the server's `Welcome` -- each failure one clear line (refused,
//! wrong passphrase, the chapter's repositorio.py: `use --seed`). Also the
//! `files list` command and the reply reader the others share.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::datapath::{DataPath, KernelPath};
use crate::chat::client::conn::{BoxedStream, connect_secure, connect_tcp, report_pinning};
use crate::cli::FilesListArgs;
use crate::sanitize::for_terminal;
use crate::secure::{PassphraseArgs, Role};
use crate::wire::files::{Entry, EntryKind, FLAG_UPLOADS, MAX_FRAME, PREAMBLE, Reply, Request};
use crate::wire::frame::FrameCodec;

/// Time to connect, and to get the server's welcome.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence from the server that ends a transfer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A welcomed connection.
pub struct Conn {
    pub stream: BoxedStream,
    /// Bytes read past the welcome.
    pub buf: BytesMut,
    /// The server accepts uploads.
    pub uploads: bool,
    /// The address as the user typed it (for messages).
    pub addr: String,
    /// The kernel data path on the plain socket (`--data-path`).
    pub kernel: Option<KernelPath>,
}

/// Connects to a native file server at `addr`, moving file bytes on
/// `path` (read-write on the secure channel, whatever `path` says).
pub async fn connect(addr: &str, secure: &PassphraseArgs, path: DataPath) -> anyhow::Result<Conn> {
    let opts = secure.resolve(Role::Client)?;
    let tcp = connect_tcp(addr, CONNECT_TIMEOUT).await?;
    let _ = tcp.set_nodelay(true);
    let mut kernel = None;
    let stream: BoxedStream = match &opts {
        None => {
            kernel = KernelPath::new(&tcp, path);
            Box::new(tcp)
        }
        Some(o) => {
            let (tls, connected) = connect_secure(tcp, addr, &o.client()).await?;
            report_pinning(addr, &connected);
            if o.show_fingerprint {
                println!("{}", connected.fingerprint);
            }
            Box::new(tls)
        }
    };
    let mut conn = handshake(stream, addr).await?;
    conn.kernel = kernel;
    Ok(conn)
}

async fn handshake(mut stream: BoxedStream, addr: &str) -> anyhow::Result<Conn> {
    stream
        .write_all(&PREAMBLE)
        .await
        .with_context(|| format!("cannot talk to {addr}"))?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut reader = Replies::new(addr);
    let first = tokio::time::timeout(CONNECT_TIMEOUT, reader.next(&mut stream, &mut buf))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "{addr} did not answer the files handshake within {}s (not a soquete file server? for the chapter's repositorio.py use --seed)",
                CONNECT_TIMEOUT.as_secs()
            )
        })??;
    match first {
        Reply::Welcome { flags, .. } => Ok(Conn {
            stream,
            buf,
            uploads: flags & FLAG_UPLOADS != 0,
            addr: addr.to_owned(),
            kernel: None,
        }),
        other => bail!("{addr} sent {other:?} instead of a welcome"),
    }
}

/// Reads replies off a stream, with clear errors for a server that is not
/// a soquete file server or that ends the connection with an error.
pub struct Replies {
    codec: FrameCodec,
    addr: String,
    /// Whether a frame has been decoded yet (before that, text lines are a
    /// chapter listing to skip: see [`skip_listing`]).
    seen_frame: bool,
    /// The start of the text skipped before the first frame (for messages).
    skipped: Vec<u8>,
    /// How many bytes were skipped.
    skipped_len: usize,
}

/// Most chapter-listing bytes skipped before the first frame.
const MAX_SKIPPED: usize = 16 << 20;

/// What [`skip_listing`] found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
enum Skip {
    /// A frame starts here (or the buffer is empty).
    Frame,
    /// Part of a text line: read more.
    NeedMore,
    /// Not a listing line.
    NotText,
}

/// Drops whole text lines (a chapter listing: a server that took us for
/// the chapter's client because our hello came late sends one before its
/// native reply; `docs/protocol.md`) from the front of `buf`, keeping
/// the first bytes in `sample`.
fn skip_listing(buf: &mut BytesMut, sample: &mut Vec<u8>, total: &mut usize) -> Skip {
    while !buf.is_empty() && buf[0] != 0 {
        let Some(end) = buf.iter().position(|b| *b == b'\n' || *b == 0) else {
            return Skip::NeedMore;
        };
        if buf[end] == 0 {
            return Skip::NotText;
        }
        let line = buf.split_to(end + 1);
        let room = 40usize.saturating_sub(sample.len());
        sample.extend_from_slice(&line[..line.len().min(room)]);
        *total += line.len();
    }
    Skip::Frame
}

impl Replies {
    pub fn new(addr: &str) -> Self {
        Self {
            codec: FrameCodec::new(MAX_FRAME),
            addr: addr.to_owned(),
            seen_frame: false,
            skipped: Vec::new(),
            skipped_len: 0,
        }
    }

    /// Decodes one frame off `buf`, if it holds a whole one.
    fn decode(&mut self, buf: &mut BytesMut) -> anyhow::Result<Option<Reply>> {
        let addr = &self.addr;
        match self.codec.decode_frame(buf) {
            Ok(Some(frame)) => {
                self.seen_frame = true;
                let reply = Reply::decode(&frame)
                    .with_context(|| format!("{addr} sent a malformed reply"))?;
                if let Reply::Error { id: 0, text, .. } = &reply {
                    bail!("{addr}: {}", for_terminal(text));
                }
                Ok(Some(reply))
            }
            Ok(None) => Ok(None),
            Err(_) if !self.seen_frame => Err(self.not_files(buf)),
            Err(e) => bail!("{addr} sent a bad frame: {e}"),
        }
    }

    fn not_files(&self, buf: &[u8]) -> anyhow::Error {
        let mut got = self.skipped.clone();
        got.extend_from_slice(&buf[..buf.len().min(40)]);
        not_files(&self.addr, &got)
    }

    /// The next reply; a connection-level `Error` (id 0) is an `Err`.
    pub async fn next<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        r: &mut R,
        buf: &mut BytesMut,
    ) -> anyhow::Result<Reply> {
        let addr = self.addr.clone();
        loop {
            if !self.seen_frame {
                match skip_listing(buf, &mut self.skipped, &mut self.skipped_len) {
                    _ if self.skipped_len > MAX_SKIPPED => return Err(self.not_files(buf)),
                    Skip::NotText => return Err(self.not_files(buf)),
                    Skip::NeedMore | Skip::Frame => {}
                }
            }
            let at_frame = self.seen_frame || buf.first() == Some(&0);
            if at_frame && let Some(reply) = self.decode(buf)? {
                return Ok(reply);
            }
            let n = tokio::time::timeout(IDLE_TIMEOUT, r.read_buf(buf))
                .await
                .map_err(|_| {
                    anyhow::anyhow!("{addr} sent nothing for {}s", IDLE_TIMEOUT.as_secs())
                })?
                .with_context(|| format!("connection to {addr} failed"))?;
            if n == 0 && !self.seen_frame && (self.skipped_len > 0 || !buf.is_empty()) {
                return Err(self.not_files(buf));
            }
            if n == 0 {
                bail!("{addr} closed the connection");
            }
        }
    }
}

fn not_files(addr: &str, got: &[u8]) -> anyhow::Error {
    let sample = String::from_utf8_lossy(&got[..got.len().min(40)]);
    anyhow::anyhow!(
        "{addr} is not a soquete file server (it sent \"{}\"); for the chapter's repositorio.py use --seed",
        for_terminal(&sample)
    )
}

/// Lists `path` ("" = all): entries in order, or the server's error text.
pub async fn list(conn: &mut Conn, path: &str) -> anyhow::Result<Vec<Entry>> {
    let req = Request::List {
        id: 1,
        path: path.to_owned(),
    };
    conn.stream.write_all(&req.to_bytes()?).await?;
    conn.stream.flush().await?;
    let mut replies = Replies::new(&conn.addr);
    replies.seen_frame = true;
    let mut out = Vec::new();
    loop {
        match replies.next(&mut conn.stream, &mut conn.buf).await? {
            Reply::Entries { entries, .. } => out.extend(entries),
            Reply::ListEnd { .. } => return Ok(out),
            Reply::Error { text, .. } => bail!("{}", for_terminal(&text)),
            other => bail!("{} sent {other:?} in a listing", conn.addr),
        }
    }
}

/// The `files list` subcommand.
pub async fn run_list(args: FilesListArgs) -> anyhow::Result<()> {
    if args.seed {
        return super::seed::list(&args.addr).await;
    }
    let mut conn = connect(&args.addr, &args.secure, DataPath::ReadWrite).await?;
    let entries = list(&mut conn, args.path.as_deref().unwrap_or("")).await?;
    let _ = conn.stream.write_all(&Request::Done.to_bytes()?).await;
    let _ = conn.stream.shutdown().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    let human = std::io::stdout().is_terminal();
    for e in &entries {
        let size = if e.kind == EntryKind::Dir {
            "-".to_owned()
        } else if human {
            super::progress::human_bytes(e.size)
        } else {
            e.size.to_string()
        };
        let slash = if e.kind == EntryKind::Dir { "/" } else { "" };
        println!(
            "{size:>10}  {}  {}{slash}",
            super::progress::timestamp(e.mtime_ms),
            for_terminal(&e.path)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_are_skipped_up_to_the_first_frame() {
        let mut sample = Vec::new();
        let mut total = 0;
        let mut buf = BytesMut::from(&b"a.txt\nbig.bin\n\0\0\0\x01\x81"[..]);
        assert_eq!(skip_listing(&mut buf, &mut sample, &mut total), Skip::Frame);
        assert_eq!(&buf[..], b"\0\0\0\x01\x81");
        assert_eq!(total, 14);
        assert_eq!(sample, b"a.txt\nbig.bin\n");
        let mut buf = BytesMut::from(&b"half"[..]);
        assert_eq!(
            skip_listing(&mut buf, &mut sample, &mut total),
            Skip::NeedMore
        );
        let mut buf = BytesMut::from(&b"HTTP\0"[..]);
        assert_eq!(
            skip_listing(&mut buf, &mut sample, &mut total),
            Skip::NotText
        );
    }
}
