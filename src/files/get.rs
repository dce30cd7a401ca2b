//! `soquete files get`: lists every name asked for (one round trip for
//! all), plans each file against what is already on disk (a partial
//! download to resume, an identical file to skip, a different one that
//! needs `--overwrite`), then sends every `Get` at once while a reader
//! receives the replies in order -- so many small files cost no round trip
//! each. Each file lands under a temporary name, is verified against the
//! server's BLAKE3, fsynced and renamed -- or, in a folder new here, the
//! whole folder lands under a staging name and is renamed once
//! ([`super::staging`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::batch::{Batch, SMALL_FILE};
use super::client::{Conn, Replies, connect};
use super::datapath::{DataPath, KernelPath};
use super::progress::Progress;
use super::resume::{CommitError, PartFile, hash_prefix, partial_len};
use super::sink::{SMALL_READ, Sink, SmallFile};
use super::staging::Staged;
use super::store::part_path;
use super::transfer::{Flow, Received, Tally, recv_file};
use crate::cli::FilesGetArgs;
use crate::net::Shutdown;
use crate::sanitize::for_terminal;
use crate::wire::files::{Entry, EntryKind, GetMode, Hash, Reply, Request, check_path, zero_hash};

/// One file to download.
struct Job {
    id: u32,
    /// Path on the server.
    remote: String,
    /// Where it goes.
    target: PathBuf,
    size: u64,
    mode: GetMode,
    /// Bytes already here (partial or complete), and their hash state.
    have: Option<(u64, blake3::Hasher)>,
    /// In a staging folder: a small file is written under its own name
    /// there (the folder's rename publishes it).
    staged: bool,
}

/// The `files get` subcommand.
pub async fn run(args: FilesGetArgs, quiet: bool, shutdown: Shutdown) -> anyhow::Result<()> {
    if args.seed {
        return super::seed::get(&args, quiet).await;
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot make {}", args.output.display()))?;
    if args.data_path == DataPath::Sendfile {
        bail!("--data-path sendfile only sends; files get receives: use splice or read-write");
    }
    let mut conn = connect(&args.addr, &args.secure, args.data_path).await?;
    let mut failures = Vec::new();
    let listed = list_all(&mut conn, &args.names, &mut failures).await?;
    let (jobs, staged) = plan(&args, listed, &mut failures).await?;
    let total: u64 = jobs.iter().map(|j| j.size).sum();
    let mut progress = Progress::new(quiet, total);
    if jobs.is_empty() {
        let _ = conn.stream.write_all(&Request::Done.to_bytes()?).await;
    }
    let mut completed = false;
    let result = tokio::select! {
        r = receive_all(conn, &jobs, &args, &mut progress, &mut failures) => {
            completed = r.is_ok();
            r
        }
        _ = shutdown.cancelled() => Ok(()),
    };
    if completed && !staged.is_empty() {
        let published = tokio::task::spawn_blocking(move || {
            staged
                .iter()
                .filter_map(|s| s.publish().err())
                .collect::<Vec<_>>()
        });
        failures.extend(published.await?);
    }
    progress.summary("received", true, result.is_err() || !failures.is_empty());
    result?;
    finish(failures)
}

/// One line per failure; the last is the command's error.
pub fn finish(mut failures: Vec<String>) -> anyhow::Result<()> {
    let Some(last) = failures.pop() else {
        return Ok(());
    };
    for f in &failures {
        eprintln!("error: {f}");
    }
    if failures.is_empty() {
        bail!("{last}")
    }
    bail!("{last} ({} files failed)", failures.len() + 1)
}

/// Lists every name (all requests sent at once); a name the server refuses
/// becomes a failure.
async fn list_all(
    conn: &mut Conn,
    names: &[String],
    failures: &mut Vec<String>,
) -> anyhow::Result<Vec<(String, Vec<Entry>)>> {
    let mut out = BytesMut::new();
    for (i, name) in names.iter().enumerate() {
        let name = name.trim_end_matches('/');
        Request::List {
            id: i as u32 + 1,
            path: name.to_owned(),
        }
        .encode(&mut out)?;
    }
    conn.stream.write_all(&out).await?;
    conn.stream.flush().await?;
    let mut replies = Replies::new(&conn.addr);
    let mut listed = Vec::new();
    for name in names {
        let name = name.trim_end_matches('/').to_owned();
        let mut entries = Vec::new();
        loop {
            match replies.next(&mut conn.stream, &mut conn.buf).await? {
                Reply::Entries { entries: e, .. } => entries.extend(e),
                Reply::ListEnd { .. } => {
                    listed.push((name, entries));
                    break;
                }
                Reply::Error { text, .. } => {
                    failures.push(for_terminal(&text));
                    break;
                }
                other => bail!("{} sent {other:?} in a listing", conn.addr),
            }
        }
    }
    Ok(listed)
}

/// Where `entry` (listed under `name`) goes below `output`, refusing any
/// path the server should not have sent.
fn local_path(output: &Path, name: &str, entry: &Entry) -> Option<PathBuf> {
    check_path(&entry.path, false).ok()?;
    let inside = entry.path == name || entry.path.starts_with(&format!("{name}/"));
    if !inside {
        return None;
    }
    let base = name.rsplit_once('/').map_or("", |(dir, _)| dir);
    let rel = if base.is_empty() {
        entry.path.as_str()
    } else {
        entry.path.strip_prefix(&format!("{base}/"))?
    };
    Some(rel.split('/').fold(output.to_path_buf(), |p, c| p.join(c)))
}

/// Turns listings into jobs (on a blocking thread: it hashes local files),
/// and says which folders are received under a staging name.
async fn plan(
    args: &FilesGetArgs,
    listed: Vec<(String, Vec<Entry>)>,
    failures: &mut Vec<String>,
) -> anyhow::Result<(Vec<Job>, Vec<Staged>)> {
    let output = args.output.clone();
    let overwrite = args.overwrite;
    let (jobs, staged, errs) = tokio::task::spawn_blocking(move || {
        let mut jobs = Vec::new();
        let mut all_staged: Vec<Staged> = Vec::new();
        let mut errs = Vec::new();
        let mut made = HashMap::new();
        for (name, entries) in listed {
            let staged = staging_for(&output, &name, &entries)
                .filter(|s| !all_staged.iter().any(|o| o.root == s.root));
            for e in entries {
                let Some(mut target) = local_path(&output, &name, &e) else {
                    errs.push(format!(
                        "the server sent a bad path: {}",
                        for_terminal(&e.path)
                    ));
                    continue;
                };
                // Below a staged folder: received in its staging folder,
                // where any file already there is this tool's partial work.
                let placed = staged.as_ref().and_then(|s| s.place(&target));
                let in_staging = placed.is_some();
                if let Some(p) = placed {
                    target = p;
                }
                let id = jobs.len() as u32 + 1;
                match plan_one(id, e, target, overwrite || in_staging, &mut made) {
                    Ok(Some(mut job)) => {
                        job.staged = in_staging;
                        jobs.push(job);
                    }
                    Ok(None) => {}
                    Err(msg) => errs.push(msg),
                }
            }
            all_staged.extend(staged);
        }
        (jobs, all_staged, errs)
    })
    .await?;
    failures.extend(errs);
    Ok((jobs, staged))
}

/// The staging for `name` if it is a folder (its listing holds something
/// below it) and nothing has its local name yet.
fn staging_for(output: &Path, name: &str, entries: &[Entry]) -> Option<Staged> {
    let below = format!("{name}/");
    let first = entries.iter().find(|e| e.path.starts_with(&below))?;
    let inside = local_path(output, name, first)?;
    let depth = first.path[below.len()..].split('/').count();
    let root = inside.ancestors().nth(depth)?;
    Staged::for_root(root)
}

/// `made`: folders already made, and whether this run created them (then
/// they held nothing: no file or partial file to look for, no `stat`).
fn plan_one(
    id: u32,
    e: Entry,
    target: PathBuf,
    overwrite: bool,
    made: &mut HashMap<PathBuf, bool>,
) -> Result<Option<Job>, String> {
    let io = |err: std::io::Error| format!("{}: {err}", target.display());
    let dir = if e.kind == EntryKind::Dir {
        Some(target.as_path())
    } else {
        target.parent()
    };
    let mut fresh = false;
    if let Some(dir) = dir {
        fresh = match made.get(dir) {
            Some(f) => *f,
            None => {
                let existed = std::fs::symlink_metadata(dir).is_ok();
                std::fs::create_dir_all(dir).map_err(io)?;
                made.insert(dir.to_path_buf(), !existed);
                !existed
            }
        };
    }
    if e.kind == EntryKind::Dir {
        return Ok(None);
    }
    let job = |mode, have| Job {
        id,
        remote: e.path.clone(),
        target: target.clone(),
        size: e.size,
        mode,
        have,
        staged: false,
    };
    if fresh {
        return Ok(Some(job(GetMode::Resume, None)));
    }
    match std::fs::symlink_metadata(&target) {
        Ok(m) if !m.is_file() => Err(format!("{} exists and is not a file", target.display())),
        Ok(m) if m.len() != e.size && !overwrite => Err(format!(
            "{} already exists and differs ({} bytes here, {} on the server); use --overwrite to replace it",
            target.display(),
            m.len(),
            e.size
        )),
        Ok(m) if m.len() != e.size => Ok(Some(job(GetMode::Replace, None))),
        Ok(_) => {
            let have = hash_prefix(&target, u64::MAX)
                .map_err(io)?
                .map(|(h, n)| (n, h));
            let mode = if overwrite {
                GetMode::Replace
            } else {
                GetMode::Compare
            };
            Ok(Some(job(mode, have)))
        }
        Err(_) => {
            let have = match partial_len(&target) {
                Some(n) if n > 0 && n <= e.size => hash_prefix(&part_path(&target), n)
                    .map_err(io)?
                    .map(|(h, n)| (n, h)),
                _ => None,
            };
            Ok(Some(job(GetMode::Resume, have)))
        }
    }
}

/// Sends every request, then receives the replies in order.
async fn receive_all(
    conn: Conn,
    jobs: &[Job],
    args: &FilesGetArgs,
    progress: &mut Progress,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    for j in jobs {
        let (have, have_hash) = match &j.have {
            Some((n, h)) => (*n, *h.clone().finalize().as_bytes()),
            None => (0, zero_hash()),
        };
        Request::Get {
            id: j.id,
            path: j.remote.clone(),
            mode: j.mode,
            have,
            have_hash,
        }
        .encode(&mut out)?;
    }
    Request::Done.encode(&mut out)?;
    let Conn {
        stream,
        mut buf,
        addr,
        kernel,
        ..
    } = conn;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        wr.write_all(&out).await?;
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let mut replies = Replies::new(&addr);
    let mut batch = Batch::default();
    let mut sink = Sink::start();
    let mut result = Ok(());
    for job in jobs {
        // Nothing read ahead: the next reply means waiting for the network.
        if buf.is_empty() && !sink.flush().await {
            break; // `finish` says why the file thread stopped.
        }
        let io = (&mut rd, &mut buf, &mut replies, kernel.as_ref());
        result = receive_one(io, &mut batch, &mut sink, job, args, progress, failures).await;
        if result.is_err() {
            break;
        }
    }
    let outcome = sink.finish().await;
    failures.extend(outcome.failures);
    if let Some(fatal) = outcome.fatal {
        bail!("{fatal}");
    }
    result?;
    flush(&mut batch, failures).await?;
    let _ = writer.await;
    Ok(())
}

async fn receive_one<R: AsyncRead + Unpin>(
    (rd, buf, replies, kernel): (&mut R, &mut BytesMut, &mut Replies, Option<&KernelPath>),
    batch: &mut Batch,
    sink: &mut Sink,
    job: &Job,
    args: &FilesGetArgs,
    progress: &mut Progress,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let shown = for_terminal(&job.remote);
    let (offset, len) = match replies.next(rd, buf).await? {
        Reply::Same { .. } => {
            progress.skip(job.size);
            return Ok(());
        }
        Reply::Differs { .. } => {
            failures.push(format!(
                "{} already exists and differs from the server's {shown}; use --overwrite to replace it",
                job.target.display()
            ));
            return Ok(());
        }
        Reply::Error { text, .. } => {
            failures.push(for_terminal(&text));
            return Ok(());
        }
        Reply::Data { offset, len, .. } => (offset, len),
        other => bail!("unexpected reply {other:?}"),
    };
    let resumed = job
        .have
        .as_ref()
        .filter(|(n, _)| *n == offset && offset > 0);
    if job.mode == GetMode::Resume {
        if resumed.is_some() {
            progress.note(&format!("resuming {shown} from {offset} bytes"));
        } else if job.have.is_some() {
            progress.note(&format!(
                "the partial {shown} did not match the server's file; starting over"
            ));
        }
    }
    let hasher = resumed.map_or_else(blake3::Hasher::new, |(_, h)| h.clone());
    let mut bar = progress.file(&job.remote, offset + len, offset);
    let overwrite = args.overwrite || job.mode == GetMode::Replace;
    if len <= SMALL_READ && args.limit_rate.is_none() {
        let bytes = read_small(rd, buf, len).await.with_context(|| {
            format!("receiving {shown} (the partial file is kept: get it again to resume)")
        })?;
        bar.add(len);
        let expected = match replies.next(rd, buf).await? {
            Reply::End { hash, .. } => hash,
            other => bail!("expected the end of {shown}, got {other:?}"),
        };
        let small = SmallFile {
            target: job.target.clone(),
            direct: job.staged && offset == 0,
            offset,
            bytes,
            hasher,
            expected,
            overwrite,
            name: shown,
        };
        if !sink.send(small).await {
            bail!("the file writer stopped");
        }
        progress.finish_file(bar);
        return Ok(());
    }
    let at = (job.target.as_path(), offset, len);
    let received = receive_large(rd, buf, at, hasher, args, kernel, &mut bar).await;
    let (part, got) = received.with_context(|| {
        format!("receiving {shown} (the partial file is kept: get it again to resume)")
    })?;
    let expected = match replies.next(rd, buf).await? {
        Reply::End { hash, .. } => hash,
        other => bail!("expected the end of {shown}, got {other:?}"),
    };
    let hasher = match got {
        Received::Done(_, h) => h,
        Received::WriteFailed(e) => {
            bail!("cannot write {}: {e}", part.path.display());
        }
    };
    let size = offset + len;
    if size < SMALL_FILE {
        if *hasher.finalize().as_bytes() != expected {
            let _ = std::fs::remove_file(&part.path);
            failures.push(CommitError::HashMismatch { name: shown }.to_string());
            return Ok(());
        }
        batch.push(part, size, overwrite, shown);
        progress.finish_file(bar);
        if batch.full() {
            flush(batch, failures).await?;
        }
        return Ok(());
    }
    commit(part, *hasher, expected, overwrite, &shown)
        .await
        .map_or_else(
            |e| failures.push(e.to_string()),
            |()| progress.finish_file(bar),
        );
    Ok(())
}

/// Reads a small rest whole (its bytes may already be in `buf`).
async fn read_small<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    len: u64,
) -> anyhow::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let n = len as usize;
    let take = buf.len().min(n);
    let mut bytes = buf.split_to(take).to_vec();
    if bytes.len() < n {
        let start = bytes.len();
        bytes.resize(n, 0);
        tokio::time::timeout(
            super::client::IDLE_TIMEOUT,
            rd.read_exact(&mut bytes[start..]),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no progress for {:?}", super::client::IDLE_TIMEOUT))??;
    }
    Ok(bytes)
}

/// Receives a large rest through the data path (blocks, throttle).
#[allow(clippy::too_many_arguments)]
async fn receive_large<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    (target, offset, len): (&Path, u64, u64),
    hasher: blake3::Hasher,
    args: &FilesGetArgs,
    kernel: Option<&KernelPath>,
    bar: &mut super::progress::FileBar,
) -> anyhow::Result<(PartFile, Received)> {
    let t = target.to_path_buf();
    let part = tokio::task::spawn_blocking(move || PartFile::open(&t, offset))
        .await?
        .with_context(|| format!("cannot write {}", target.display()))?;
    let file = part.file.try_clone()?;
    let mut rate = args.limit_rate.map(super::transfer::RateLimit::new);
    let flow = Flow {
        rate: rate.as_mut(),
        tally: bar,
        stall: super::client::IDLE_TIMEOUT,
        budget: None,
        kernel: kernel.cloned(),
    };
    let got = recv_file(rd, buf, file, len, hasher, flow).await?;
    Ok((part, got))
}

/// Makes the small files received so far durable under their names.
async fn flush(batch: &mut Batch, failures: &mut Vec<String>) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut b = std::mem::take(batch);
    let errors = tokio::task::spawn_blocking(move || b.flush()).await?;
    failures.extend(errors.iter().map(|(_, e)| e.to_string()));
    Ok(())
}

async fn commit(
    part: PartFile,
    hasher: blake3::Hasher,
    expected: Hash,
    overwrite: bool,
    shown: &str,
) -> Result<(), CommitError> {
    let got = *hasher.finalize().as_bytes();
    let name = shown.to_owned();
    tokio::task::spawn_blocking(move || part.commit(&got, &expected, overwrite, &name))
        .await
        .unwrap_or_else(|e| {
            Err(CommitError::Io {
                name: shown.to_owned(),
                source: std::io::Error::other(e),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            size: 1,
            mtime_ms: 0,
        }
    }

    #[test]
    fn local_paths_keep_the_asked_folder_and_refuse_escapes() {
        let out = Path::new("/dl");
        assert_eq!(
            local_path(out, "fotos", &entry("fotos/a/b.jpg")),
            Some(PathBuf::from("/dl/fotos/a/b.jpg"))
        );
        assert_eq!(
            local_path(out, "fotos/a", &entry("fotos/a/b.jpg")),
            Some(PathBuf::from("/dl/a/b.jpg"))
        );
        assert_eq!(
            local_path(out, "x.txt", &entry("x.txt")),
            Some(PathBuf::from("/dl/x.txt"))
        );
        assert_eq!(local_path(out, "fotos", &entry("other/x")), None);
        assert_eq!(local_path(out, "fotos", &entry("fotos/../../etc")), None);
        assert_eq!(local_path(out, "fotos", &entry("fotosx/y")), None);
    }
}
