//! `soquete files put`: offers every file at once (`Put`); for each answer
//! (`PutReady`: nothing there, a partial upload, or an existing file)
//! decides locally -- resume after a verified prefix, skip an identical
//! file, refuse a different one without `--overwrite` -- and a writer task
//! streams the data (`Data`, raw bytes, `End` with the BLAKE3) while the
//! reader collects the answers. The server verifies, fsyncs and renames.

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::client::{Conn, IDLE_TIMEOUT, Replies, connect};
use super::datapath::KernelPath;
use super::get::finish;
use super::progress::{FileBar, Progress};
use super::resume::hash_prefix;
use super::store::mtime_ms;
use super::transfer::{Flow, RateLimit, send_file};
use crate::cli::FilesPutArgs;
use crate::net::Shutdown;
use crate::sanitize::for_terminal;
use crate::wire::files::{PutState, Reply, Request, check_path};

/// A local file to upload.
struct Upload {
    local: PathBuf,
    remote: String,
    size: u64,
    mtime_ms: u64,
}

/// What the writer task sends next.
enum Send {
    /// A file's data from `offset`, hashing from `hasher`.
    File {
        id: u32,
        local: PathBuf,
        offset: u64,
        len: u64,
        hasher: Box<blake3::Hasher>,
        bar: FileBar,
    },
    /// No more: send `Done`.
    Finish,
}

/// The `files put` subcommand.
pub async fn run(args: FilesPutArgs, quiet: bool, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    let sources = args.files.clone();
    let (uploads, errs) = tokio::task::spawn_blocking(move || expand(&sources)).await?;
    failures.extend(errs);
    let conn = connect(&args.addr, &args.secure, args.data_path).await?;
    if !conn.uploads {
        bail!(
            "{} does not accept uploads (the server needs --uploads DIR)",
            args.addr
        );
    }
    let total = uploads.iter().map(|u| u.size).sum();
    let mut progress = Progress::new(quiet, total);
    let result = tokio::select! {
        r = upload_all(conn, &uploads, &args, &mut progress, &mut failures) => r,
        _ = shutdown.cancelled() => Ok(()),
    };
    progress.summary("sent", true, result.is_err() || !failures.is_empty());
    result?;
    finish(failures)
}

/// The files under each argument, with their names on the server
/// (a folder keeps its own name: `put dir` stores `dir/...`).
fn expand(sources: &[PathBuf]) -> (Vec<Upload>, Vec<String>) {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for src in sources {
        let Some(name) = src
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
        else {
            errs.push(format!(
                "cannot upload {}: no such file or folder",
                src.display()
            ));
            continue;
        };
        let Some(name) = name.to_str() else {
            errs.push(format!(
                "cannot upload {}: the name is not UTF-8",
                src.display()
            ));
            continue;
        };
        walk(src, name, 0, &mut out, &mut errs);
    }
    (out, errs)
}

fn walk(path: &Path, remote: &str, depth: usize, out: &mut Vec<Upload>, errs: &mut Vec<String>) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return errs.push(format!("cannot upload {}: {e}", path.display())),
    };
    if check_path(remote, false).is_err() {
        return errs.push(format!(
            "cannot upload {}: a name the server refuses",
            path.display()
        ));
    }
    if meta.is_file() {
        return out.push(Upload {
            local: path.to_path_buf(),
            remote: remote.to_owned(),
            size: meta.len(),
            mtime_ms: mtime_ms(&meta),
        });
    }
    if !meta.is_dir() || depth > super::store::MAX_DEPTH {
        return errs.push(format!("skipped {}: not a regular file", path.display()));
    }
    let mut items: Vec<_> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) => return errs.push(format!("cannot read {}: {e}", path.display())),
    };
    items.sort_by_key(|i| i.file_name());
    for item in items {
        match item.file_name().to_str() {
            Some(n) => walk(&item.path(), &format!("{remote}/{n}"), depth + 1, out, errs),
            None => errs.push(format!(
                "skipped {}: the name is not UTF-8",
                item.path().display()
            )),
        }
    }
}

async fn upload_all(
    conn: Conn,
    uploads: &[Upload],
    args: &FilesPutArgs,
    progress: &mut Progress,
    failures: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut offers = BytesMut::new();
    for (i, u) in uploads.iter().enumerate() {
        Request::Put {
            id: i as u32 + 1,
            path: u.remote.clone(),
            size: u.size,
            mtime_ms: u.mtime_ms,
            overwrite: args.overwrite,
        }
        .encode(&mut offers)?;
    }
    let Conn {
        stream,
        mut buf,
        addr,
        kernel,
        ..
    } = conn;
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel();
    let rate = args.limit_rate.map(RateLimit::new);
    let writer = tokio::spawn(write_all(wr, offers, rx, rate, kernel));
    let mut replies = Replies::new(&addr);
    let mut sent = Vec::new();
    for (i, u) in uploads.iter().enumerate() {
        let id = i as u32 + 1;
        let shown = for_terminal(&u.remote);
        match replies.next(&mut rd, &mut buf).await? {
            Reply::PutReady {
                state,
                have,
                have_hash,
                ..
            } => match decide(u, state, have, have_hash, args.overwrite).await? {
                Decision::Skip => progress.skip(u.size),
                Decision::Refuse(msg) => failures.push(msg),
                Decision::Send { offset, hasher } => {
                    if offset > 0 {
                        progress.note(&format!("resuming {shown} from {offset} bytes"));
                    }
                    let bar = progress.file(&u.remote, u.size, offset);
                    let job = Send::File {
                        id,
                        local: u.local.clone(),
                        offset,
                        len: u.size - offset,
                        hasher,
                        bar,
                    };
                    if tx.send(job).is_err() {
                        break;
                    }
                    sent.push((u.size - offset, shown));
                }
            },
            Reply::Error { text, .. } => failures.push(for_terminal(&text)),
            other => bail!("{addr} sent {other:?} to an upload offer"),
        }
    }
    let _ = tx.send(Send::Finish);
    for (len, shown) in sent {
        match replies.next(&mut rd, &mut buf).await {
            Ok(Reply::Stored { .. }) => progress.count_file(len),
            Ok(Reply::Error { text, .. }) => failures.push(for_terminal(&text)),
            Ok(other) => bail!("{addr} sent {other:?} after {shown}"),
            Err(e) => {
                if let Ok(Err(w)) = writer.await {
                    return Err(w.context(format!("sending {shown}")));
                }
                return Err(e);
            }
        }
    }
    writer.await??;
    Ok(())
}

/// What to do with one offered file, given what the server has.
enum Decision {
    Skip,
    Refuse(String),
    Send {
        offset: u64,
        hasher: Box<blake3::Hasher>,
    },
}

async fn decide(
    u: &Upload,
    state: PutState,
    have: u64,
    have_hash: [u8; 32],
    overwrite: bool,
) -> anyhow::Result<Decision> {
    let fresh = Decision::Send {
        offset: 0,
        hasher: Box::default(),
    };
    let compare = match state {
        PutState::New => return Ok(fresh),
        PutState::Partial => have > 0 && have <= u.size,
        PutState::Existing => have == u.size,
    };
    let matches = if compare {
        let local = u.local.clone();
        let prefix = tokio::task::spawn_blocking(move || hash_prefix(&local, have)).await??;
        prefix.filter(|(h, n)| *n == have && *h.clone().finalize().as_bytes() == have_hash)
    } else {
        None
    };
    Ok(match (state, matches) {
        (PutState::Existing, Some(_)) => Decision::Skip,
        (PutState::Existing, None) if !overwrite => Decision::Refuse(format!(
            "{} already exists on the server and differs; use --overwrite to replace it",
            for_terminal(&u.remote)
        )),
        (PutState::Partial, Some((hasher, n))) => Decision::Send {
            offset: n,
            hasher: Box::new(hasher),
        },
        _ => fresh,
    })
}

/// The writer task: the offers, then each file's data as the reader asks.
async fn write_all<W: AsyncWrite + Unpin + std::marker::Send>(
    mut wr: W,
    offers: BytesMut,
    mut rx: mpsc::UnboundedReceiver<Send>,
    mut rate: Option<RateLimit>,
    kernel: Option<KernelPath>,
) -> anyhow::Result<()> {
    wr.write_all(&offers).await?;
    wr.flush().await?;
    while let Some(job) = rx.recv().await {
        let Send::File {
            id,
            local,
            offset,
            len,
            hasher,
            mut bar,
        } = job
        else {
            break;
        };
        let path = local.clone();
        let file = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok::<_, std::io::Error>(f)
        })
        .await?
        .with_context(|| format!("cannot read {}", local.display()))?;
        let header = Request::Data { id, offset, len }.to_bytes()?;
        wr.write_all(&header).await?;
        let hasher = send_file(
            &mut wr,
            file,
            len,
            Some(*hasher),
            Flow {
                rate: rate.as_mut(),
                tally: &mut bar,
                stall: IDLE_TIMEOUT,
                budget: None,
                kernel: kernel.clone(),
            },
        )
        .await
        .with_context(|| format!("sending {}", local.display()))?
        .expect("a hasher was given");
        bar.done();
        let end = Request::End {
            id,
            hash: *hasher.finalize().as_bytes(),
        };
        wr.write_all(&end.to_bytes()?).await?;
    }
    wr.write_all(&Request::Done.to_bytes()?).await?;
    wr.flush().await?;
    let _ = wr.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::resume::hash_open;

    #[test]
    fn folders_upload_under_their_own_name_sorted() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("fotos");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("b.jpg"), b"b").unwrap();
        std::fs::write(dir.join("a.jpg"), b"aa").unwrap();
        std::fs::write(dir.join("sub/c.txt"), b"c").unwrap();
        let single = d.path().join("one.txt");
        std::fs::write(&single, b"1").unwrap();
        let (ups, errs) = expand(&[dir, single, d.path().join("missing")]);
        let names: Vec<_> = ups.iter().map(|u| u.remote.as_str()).collect();
        assert_eq!(
            names,
            ["fotos/a.jpg", "fotos/b.jpg", "fotos/sub/c.txt", "one.txt"]
        );
        assert_eq!(ups[0].size, 2);
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn hash_open_reads_from_the_current_position() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"abcdef").unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        f.seek(SeekFrom::Start(2)).unwrap();
        let (h, n) = hash_open(&f, 10).unwrap();
        assert_eq!(n, 4);
        assert_eq!(h.finalize(), blake3::hash(b"cdef"));
    }
}
