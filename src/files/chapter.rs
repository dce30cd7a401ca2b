//! The chapter's `cliente.py` (or anyone at `nc`) on the file server's
//! port: exactly the bytes `repositorio.py` sends -- the top-level file
//! names each followed by `\n` in one write, then for `GET <name>` the
//! file's bytes and `OK`, or `ERROR "O arquivo <name> não existe"`, then
//! close. The request is parsed robustly (`wire::files_chapter`), the
//! listing is live and sorted, and only files inside the folder are sent.
//! A native hello that arrives instead of the `GET` (a native client that
//! was slower than the detection window) hands the connection to the
//! native session: the client skips the listing it got first.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::datapath::KernelPath;
use super::server::Ctx;
use super::transfer::{Flow, RateLimit, send_file};
use crate::sanitize::for_terminal;
use crate::wire::files::{MAGIC, PREAMBLE};
use crate::wire::files_chapter::{
    ChapterRequest, MAX_REQUEST, OK, listing, not_found, parse_request,
};

/// Serves one chapter client; `early` holds bytes it sent before the listing.
pub(crate) async fn run(ctx: Arc<Ctx>, mut stream: TcpStream, peer: SocketAddr, early: BytesMut) {
    let shutdown = ctx.shutdown.clone();
    let result = tokio::select! {
        _ = shutdown.cancelled() => Ok(None),
        r = serve(&ctx, &mut stream, peer, early) => r,
    };
    match result {
        Ok(Some(native)) => {
            tracing::debug!("{peer}: a late native hello; the listing was sent already");
            return super::server::native(ctx, stream, peer, native).await;
        }
        Ok(None) => {}
        Err(e) => tracing::info!("{peer} (chapter client): {e}"),
    }
    let _ = stream.shutdown().await;
}

/// Whether `buf` starts like the native hello: `Some(true)` if it holds the
/// whole preamble, `Some(false)` if it may still become one.
fn native_hello(buf: &[u8]) -> Option<bool> {
    let n = buf.len().min(MAGIC.len());
    (n > 0 && buf[..n] == MAGIC[..n]).then_some(buf.len() >= PREAMBLE.len())
}

/// Serves the chapter's exchange; `Some(bytes)` if what came instead of a
/// `GET` was the native hello (a native client whose hello arrived after the
/// detection window: it skips the listing and the native session goes on).
async fn serve(
    ctx: &Ctx,
    stream: &mut TcpStream,
    peer: SocketAddr,
    mut buf: BytesMut,
) -> std::io::Result<Option<BytesMut>> {
    let store = ctx.cfg.store.clone();
    let names = tokio::task::spawn_blocking(move || store.top_level_files())
        .await
        .map_err(std::io::Error::other)?;
    let idle = ctx.cfg.idle_timeout;
    let timed = |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_owned());
    tokio::time::timeout(idle, stream.write_all(&listing(&names)))
        .await
        .map_err(|_| timed("not reading the listing"))??;
    let name = loop {
        match native_hello(&buf) {
            Some(true) => return Ok(Some(buf)),
            Some(false) => {}
            None => match parse_request(&buf) {
                ChapterRequest::Get(name) => break name,
                ChapterRequest::NeedMore if buf.len() < MAX_REQUEST => {}
                other => {
                    tracing::info!("{peer} (chapter client): not a GET ({other:?}); closed");
                    return Ok(None);
                }
            },
        }
        let n = tokio::time::timeout(idle, stream.read_buf(&mut buf))
            .await
            .map_err(|_| timed("no request"))??;
        if n == 0 {
            return Ok(None);
        }
    };
    tracing::info!("{peer} (chapter client) asks for {}", for_terminal(&name));
    if !names.contains(&name) {
        return stream.write_all(&not_found(&name)).await.map(|()| None);
    }
    let store = ctx.cfg.store.clone();
    let wanted = name.clone();
    let opened = tokio::task::spawn_blocking(move || store.open_file(&wanted))
        .await
        .map_err(std::io::Error::other)?;
    let Ok(opened) = opened else {
        return stream.write_all(&not_found(&name)).await.map(|()| None);
    };
    let _permit = ctx.transfers.acquire().await;
    let mut rate = ctx.cfg.limit_rate.map(RateLimit::new);
    // The chapter's protocol carries no hash: none is computed.
    send_file(
        stream,
        opened.file,
        opened.size,
        None,
        Flow {
            rate: rate.as_mut(),
            tally: &mut (),
            stall: idle,
            budget: Some(&ctx.transfers),
            kernel: KernelPath::new(&*stream, ctx.cfg.data_path),
        },
    )
    .await?;
    stream.write_all(OK).await?;
    tracing::info!(
        "{peer} (chapter client): sent {} ({} bytes)",
        for_terminal(&name),
        opened.size
    );
    Ok(None)
}
