//! Load generators. `soquete bench chat` connects N clients to a chat
//! server (soquete's native protocol, or any raw line server with `--raw`:
//! the chapter's `Servidor.py`, `ncat --chat`), has S of them send M
//! stamped messages, and measures every delivery end to end: count,
//! duplicates, loss, latency percentiles, and optionally the server's CPU
//! and memory. It always ends by itself and says why. Given a passphrase
//! (as `chat join`), every native client opens the secure channel first, so
//! a secure server can be compared with a plain one under the same load.
//!
//! Layout: `plan` (what a run does, pure), `payload` and `lines` (message
//! text and raw line splitting, pure), `client`/`native`/`raw`/`sender`
//! (the tasks), `secure` (the secure channel's set-up), `run` (the
//! phases), `stats`/`report`/`procstat` (numbers).

mod client;
pub mod handshakes;
mod lines;
mod native;
mod payload;
mod plan;
mod procstat;
mod raw;
mod report;
mod run;
mod secure;
mod sender;
mod stats;

use std::sync::Arc;

use anyhow::Context;

use crate::cli::BenchChatArgs;
use crate::net::Shutdown;
use crate::secure::Role;

/// File descriptors the benchmark needs beyond one per client.
const SPARE_FDS: u64 = 64;

/// `soquete bench chat`.
pub async fn chat(args: BenchChatArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let plan = plan::Plan::new(
        args.clients,
        args.senders,
        args.messages,
        args.size as usize,
        args.rate,
        args.timeout,
    )?;
    let addr = crate::net::resolve(&args.addr)
        .await
        .context("cannot use the server address")?[0];
    if args.secure.show_fingerprint {
        anyhow::bail!("--show-fingerprint is for chat join and chat serve, not the bench");
    }
    let secure = match args.secure.resolve(Role::Client)? {
        None => None,
        Some(opts) => {
            let target = secure::SecureTarget {
                security: opts.client(),
                label: args.addr.clone(),
            };
            secure::preflight(&target).await?;
            Some(Arc::new(target))
        }
    };
    raise_fd_limit(u64::from(args.clients) + SPARE_FDS);
    let config = run::Config {
        addr,
        plan,
        native: !args.raw,
        secure,
        timeout: args.timeout,
        server: args.server_pid.map(|pid| procstat::ServerProcess { pid }),
    };
    let outcome = run::run(config, shutdown).await;
    if args.json {
        println!("{}", serde_json::to_string(&outcome.report)?);
    } else {
        eprint!("{}", outcome.report.human());
    }
    match outcome.failure {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}

/// Raises the soft limit on open files towards `needed` (up to the hard
/// limit): many systems start at 1024, fewer than a 10,000-client run needs.
#[cfg(unix)]
fn raise_fd_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let current = lim.current.unwrap_or(u64::MAX);
    if current >= needed {
        return;
    }
    let target = lim
        .maximum
        .map_or(needed, |max| max.min(needed.max(current)));
    let raised = Rlimit {
        current: Some(target),
        maximum: lim.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) if target >= needed => {}
        Ok(()) => {
            tracing::warn!("open files limited to {target}; {needed} wanted (raise the hard limit)")
        }
        Err(e) => tracing::warn!("cannot raise the open-file limit from {current}: {e}"),
    }
}

#[cfg(not(unix))]
fn raise_fd_limit(_needed: u64) {}
