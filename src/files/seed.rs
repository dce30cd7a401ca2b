//! `files get --seed` and `files list --seed`: the chapter's unmodified
//! `repositorio.py` as the server. It sends its listing at connect (no
//! end marker: we wait until it stops arriving), takes `GET <name>`, and
//! sends the file then `OK` -- glued to the data -- or `ERROR "…"`, then
//! closes. We read to EOF (`wire::files_chapter::SeedReply`), so the `OK`
//! never lands in the file and the error text never becomes one; the file
//! still goes through a temporary name, fsync and rename. The chapter
//! sends no hash, so nothing can be verified beyond the trailing `OK`.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{CONNECT_TIMEOUT, IDLE_TIMEOUT};
use super::progress::Progress;
use super::resume::{PartFile, hash_file};
use crate::chat::client::conn::connect_tcp;
use crate::cli::FilesGetArgs;
use crate::sanitize::for_terminal;
use crate::wire::files::check_path;
use crate::wire::files_chapter::{SeedError, SeedReply, parse_listing};

/// How long to wait for the listing to start (an empty folder sends none).
const LISTING_START: Duration = Duration::from_secs(1);
/// Silence that ends the listing once it has started.
const LISTING_QUIET: Duration = Duration::from_millis(200);
/// Largest listing read.
const MAX_LISTING: usize = 1 << 20;
/// Bytes gathered before a write to the file.
const WRITE_BLOCK: usize = 1 << 20;

/// Reads the listing the chapter's server sends at connect. It has no end
/// marker, so the first time we wait until it stops arriving; but the
/// server sends the same bytes on every connection (it lists its folder
/// once, at start-up), so once `known` holds them, a listing that matches
/// them byte for byte is complete at once -- no quiet wait per file.
/// Returns the raw bytes.
async fn read_listing(stream: &mut TcpStream, known: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    let mut buf = BytesMut::with_capacity(known.map_or(8192, |k| k.len().max(1)));
    let mut wait = LISTING_START;
    while buf.len() < MAX_LISTING {
        if let Some(k) = known
            && !k.is_empty()
            && buf[..] == k[..]
        {
            break;
        }
        match tokio::time::timeout(wait, stream.read_buf(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => wait = LISTING_QUIET,
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    Ok(buf.to_vec())
}

/// `files list --seed`: prints the names the server sends.
pub async fn list(addr: &str) -> anyhow::Result<()> {
    let mut stream = connect_tcp(addr, CONNECT_TIMEOUT).await?;
    for name in parse_listing(&read_listing(&mut stream, None).await?) {
        println!("{}", for_terminal(&name));
    }
    let _ = stream.shutdown().await;
    Ok(())
}

/// `files get --seed`: one connection per name, as the chapter's client does.
pub async fn get(args: &FilesGetArgs, quiet: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot make {}", args.output.display()))?;
    let mut progress = Progress::new(quiet, 0);
    let mut failures = Vec::new();
    let mut listing = None;
    for name in &args.names {
        match get_one(args, name, &mut listing, &mut progress).await {
            Ok(()) => {}
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    progress.summary("received", false, !failures.is_empty());
    super::get::finish(failures)
}

/// `listing`: the listing bytes the server sent last time.
async fn get_one(
    args: &FilesGetArgs,
    name: &str,
    listing: &mut Option<Vec<u8>>,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let shown = for_terminal(name);
    if check_path(name, false).is_err() || name.contains('/') || name.contains(char::is_whitespace)
    {
        bail!("'{shown}' is not a name the chapter's server can send");
    }
    let target = args.output.join(name);
    let mut stream = connect_tcp(&args.addr, CONNECT_TIMEOUT).await?;
    let raw = read_listing(&mut stream, listing.as_deref()).await?;
    let listed = parse_listing(&raw);
    *listing = Some(raw);
    if !listed.iter().any(|n| n == name) {
        tracing::debug!("{shown} is not in the listing; asking anyway");
    }
    stream.write_all(format!("GET {name}").as_bytes()).await?;
    let t = target.clone();
    let part = tokio::task::spawn_blocking(move || PartFile::open(&t, 0))
        .await?
        .with_context(|| format!("cannot write {}", target.display()))?;
    let (part, result) = receive(&mut stream, part, &args.addr).await?;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part.path);
        return Err(match e {
            SeedError::Server(text) => anyhow::anyhow!("{}: {}", args.addr, for_terminal(&text)),
            other => anyhow::anyhow!("{shown}: {other}"),
        });
    }
    let path = part.path.clone();
    let overwrite = args.overwrite;
    let t = target.clone();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let (got, size) = hash_file(&path)?.context("the temporary file vanished")?;
        if let Some((existing, _)) = hash_file(&t)? {
            if existing == got {
                drop(part);
                std::fs::remove_file(&path)?;
                return Ok(false);
            }
            if !overwrite {
                drop(part);
                std::fs::remove_file(&path)?;
                bail!(
                    "{} already exists and differs; use --overwrite to replace it",
                    t.display()
                );
            }
        }
        part.commit(&got, &got, true, &t.display().to_string())?;
        let _ = size;
        Ok(true)
    })
    .await??;
    if outcome {
        let size = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
        progress.count_file(size);
    } else {
        progress.skip(0);
    }
    Ok(())
}

/// Reads the reply to EOF into the temporary file.
async fn receive(
    stream: &mut TcpStream,
    part: PartFile,
    addr: &str,
) -> anyhow::Result<(PartFile, Result<(), SeedError>)> {
    let mut reply = SeedReply::new();
    let mut out = Vec::with_capacity(WRITE_BLOCK);
    let mut buf = vec![0u8; 256 * 1024];
    let mut part = part;
    loop {
        let n = tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("{addr} sent nothing for {}s", IDLE_TIMEOUT.as_secs()))?
            .with_context(|| format!("connection to {addr} failed"))?;
        if n == 0 {
            break;
        }
        reply.push(&buf[..n], &mut out);
        if out.len() >= WRITE_BLOCK {
            (part, out) = write_out(part, out).await?;
        }
    }
    let result = reply.finish(&mut out);
    let (part, _) = write_out(part, out).await?;
    Ok((part, result))
}

async fn write_out(mut part: PartFile, mut out: Vec<u8>) -> anyhow::Result<(PartFile, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        part.file.write_all(&out)?;
        out.clear();
        Ok((part, out))
    })
    .await?
}
