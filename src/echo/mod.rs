//! Echo: `soquete echo serve`, a TCP or UDP echo server for many clients at
//! once (the chapter's Pratica 2 "loopback" servers serve one at a time), and
//! `soquete echo ping`, which measures round trips to any echo server — ours,
//! the chapter's scripts, `ncat -e /bin/cat` — and reports them like `ping`.
//!
//! Layout: [`probe`] (probe bytes) and [`stats`] (figures) are pure;
//! [`transport`] moves probes over TCP or UDP; [`ping`] drives a run;
//! [`server`] serves.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{EchoPingArgs, EchoServeArgs};
use crate::net::{AcceptLimits, Shutdown};

pub mod ping;
pub mod probe;
pub mod server;
pub mod stats;
pub mod transport;

/// What stops a ping run, in words a user reads as one line.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("connection refused by {0}")]
    Refused(String),
    #[error("cannot connect to {peer}: {error}")]
    Connect {
        peer: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot connect to {peer}: no answer within {timeout:?}")]
    ConnectTimeout { peer: SocketAddr, timeout: Duration },
    #[error("{0} closed the connection")]
    Closed(SocketAddr),
    #[error("connection to {peer} failed: {error}")]
    Io {
        peer: SocketAddr,
        error: std::io::Error,
    },
    #[error("no reply from {0}")]
    NoReply(String),
    #[error("no reply from {0} matched its probe")]
    OnlyDiffering(String),
}

/// `soquete echo serve`: binds, then serves TCP or UDP echo until Ctrl-C.
pub async fn serve(args: EchoServeArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let addr = crate::net::addr::resolve_one(&args.listen).await?;
    if args.udp {
        let socket = crate::net::bind_udp(addr).await?;
        tracing::info!(
            "echoing UDP datagrams (up to {} bytes)",
            server::MAX_DATAGRAM
        );
        return server::run_udp(socket, shutdown).await;
    }
    let listener = crate::net::bind_tcp(addr)?;
    let config = server::TcpConfig {
        limits: AcceptLimits {
            max_clients: usize::try_from(args.max_clients).context("--max-clients is too large")?,
            max_per_ip: usize::try_from(args.max_per_ip).context("--max-per-ip is too large")?,
        },
        idle_timeout: args.idle_timeout,
    };
    tracing::info!(
        "echoing TCP (up to {} clients, {} per address)",
        args.max_clients,
        args.max_per_ip
    );
    server::run_tcp(listener, config, shutdown).await;
    Ok(())
}

/// `soquete echo ping`: probes an echo server and prints ping-style results.
pub async fn ping(args: EchoPingArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let config = ping::PingConfig {
        target: args.addr,
        udp: args.udp,
        count: args.count,
        size: args.size as usize,
        interval: args.interval,
        timeout: args.timeout,
        json: args.json,
    };
    ping::run(config, shutdown).await
}
