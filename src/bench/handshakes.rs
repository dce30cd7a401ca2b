//! `soquete bench handshakes`: how many secure-channel handshakes (TCP
//! connect, TLS 1.3, SPAKE2 passphrase check with key confirmation) this
//! machine completes per second, client and server in this process on
//! loopback, with a fresh server key in a temporary state directory.
//! Bounded in time; every handshake must succeed on both sides.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::BenchHandshakesArgs;
use crate::net::Shutdown;
use crate::secure::{ClientSecurity, Passphrase, ServerSecurity, accept, connect};

const PASSPHRASE: &str = "soquete bench handshakes";

/// A state directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("soquete-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(args: BenchHandshakesArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let server_dir = TempDir::new()?;
    let client_dir = TempDir::new()?;
    let passphrase = || Passphrase::new(PASSPHRASE.to_owned(), "the benchmark");
    let server = Arc::new(ServerSecurity::load_or_create(
        &server_dir.0,
        passphrase()?,
    )?);
    let client = Arc::new(ClientSecurity::new(&client_dir.0, passphrase()?, None));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let label = addr.to_string();

    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (acc, fail, srv) = (accepted.clone(), failed.clone(), server.clone());
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let (acc, fail, srv) = (acc.clone(), fail.clone(), srv.clone());
            tokio::spawn(async move {
                match accept(stream, &srv, peer).await {
                    Ok(_) => acc.fetch_add(1, Ordering::Relaxed),
                    Err(_) => fail.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
    });

    let length = args.seconds;
    let start = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, done, label, stop) = (
            client.clone(),
            done.clone(),
            label.clone(),
            shutdown.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < length && !stop.is_cancelled() {
                let tcp = TcpStream::connect(addr).await?;
                connect(tcp, &label, &client).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        tokio::time::timeout(length + Duration::from_secs(20), t)
            .await
            .context("a handshake hung")???;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    // The server side finishes each handshake just after the client.
    let deadline = Instant::now() + Duration::from_secs(2);
    while accepted.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    acceptor.abort();
    let (ok, bad) = (
        accepted.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    let rate = n as f64 / elapsed;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "handshakes": n, "server_ok": ok, "server_failed": bad,
                "seconds": elapsed, "per_second": rate, "concurrency": args.concurrency,
            })
        );
    } else {
        eprintln!(
            "secure handshakes: {n} in {elapsed:.2} s = {rate:.0}/s ({} at once; server: {ok} ok, {bad} failed)",
            args.concurrency
        );
    }
    if bad > 0 || ok < n {
        bail!(
            "{} handshakes did not complete on the server side",
            n - ok.min(n)
        );
    }
    Ok(())
}
