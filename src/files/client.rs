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
}

/// Connects to a native file server at `addr`.
pub async fn connect(addr: &str, secure: &PassphraseArgs) -> anyhow::Result<Conn> {
    let opts = secure.resolve(Role::Client)?;
    let tcp = connect_tcp(addr, CONNECT_TIMEOUT).await?;
    let _ = tcp.set_nodelay(true);
    let stream: BoxedStream = match &opts {
        None => Box::new(tcp),
        Some(o) => {
            let (tls, connected) = connect_secure(tcp, addr, &o.client()).await?;
            report_pinning(addr, &connected);
            if o.show_fingerprint {
                println!("{}", connected.fingerprint);
            }
            Box::new(tls)
        }
    };
    handshake(stream, addr).await
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
        }),
        other => bail!("{addr} sent {other:?} instead of a welcome"),
    }
}

/// Reads replies off a stream, with clear errors for a server that is not
/// a soquete file server or that ends the connection with an error.
pub struct Replies {
    codec: FrameCodec,
    addr: String,
    /// Whether a frame has been decoded yet (before that, text means the
    /// peer is not a soquete file server).
    seen_frame: bool,
}

impl Replies {
    pub fn new(addr: &str) -> Self {
        Self {
            codec: FrameCodec::new(MAX_FRAME),
            addr: addr.to_owned(),
            seen_frame: false,
        }
    }

    /// The next reply; a connection-level `Error` (id 0) is an `Err`.
    pub async fn next<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        r: &mut R,
        buf: &mut BytesMut,
    ) -> anyhow::Result<Reply> {
        let addr = self.addr.clone();
        loop {
            if !self.seen_frame && !buf.is_empty() && buf[0] != 0 {
                return Err(not_files(&addr, buf));
            }
            match self.codec.decode_frame(buf) {
                Ok(Some(frame)) => {
                    self.seen_frame = true;
                    let reply = Reply::decode(&frame)
                        .with_context(|| format!("{addr} sent a malformed reply"))?;
                    if let Reply::Error { id: 0, text, .. } = &reply {
                        bail!("{addr}: {}", for_terminal(text));
                    }
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(_) if !self.seen_frame => return Err(not_files(&addr, buf)),
                Err(e) => bail!("{addr} sent a bad frame: {e}"),
            }
            let n = tokio::time::timeout(IDLE_TIMEOUT, r.read_buf(buf))
                .await
                .map_err(|_| {
                    anyhow::anyhow!("{addr} sent nothing for {}s", IDLE_TIMEOUT.as_secs())
                })?
                .with_context(|| format!("connection to {addr} failed"))?;
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
    let mut conn = connect(&args.addr, &args.secure).await?;
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
