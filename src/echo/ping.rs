//! `soquete echo ping`: round trips to an echo server, printed like `ping`.
//!
//! One probe at a time: send, wait for its echo (or the timeout), then wait
//! out the rest of the interval measured from that probe's send. A slow
//! reply therefore delays the next probe rather than overlapping it, which
//! keeps a TCP stream in step and needs no reordering logic for UDP. With
//! `-i 0` probes go back to back. Ctrl-C ends the run early with the summary
//! of the probes completed (a probe cut short is not counted).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::EchoError;
use super::stats::{Outcome, PingStats, Summary, format_rtt};
use super::transport::{Answer, TcpProber, UdpProber};
use crate::net::Shutdown;

/// Settings of one ping run.
#[derive(Debug, Clone)]
pub struct PingConfig {
    /// The address as the user wrote it (shown in the summary).
    pub target: String,
    /// UDP datagrams instead of one TCP connection.
    pub udp: bool,
    /// Probes to send.
    pub count: u32,
    /// Bytes per probe.
    pub size: usize,
    /// Time from one probe's send to the next's.
    pub interval: Duration,
    /// Wait for each reply (and for the TCP connection).
    pub timeout: Duration,
    /// Summary as one JSON object instead of text lines.
    pub json: bool,
}

/// The `--json` output.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    target: &'a str,
    peer: String,
    transport: &'static str,
    size: usize,
    time_ms: u128,
    #[serde(flatten)]
    summary: Summary,
}

enum Prober {
    Tcp(TcpProber),
    Udp(UdpProber),
}

impl Prober {
    async fn probe(
        &mut self,
        seq: u32,
        size: usize,
        timeout: Duration,
    ) -> Result<Answer, EchoError> {
        match self {
            Prober::Tcp(p) => p.probe(seq, size, timeout).await,
            Prober::Udp(p) => p.probe(seq, size, timeout).await,
        }
    }
}

/// Runs the probes, prints each and the summary. Fails when no reply came
/// (unless interrupted) or the server ended the connection.
pub async fn run(config: PingConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let addrs = crate::net::resolve(&config.target).await?;
    let connected = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        c = open(&config, &addrs) => c?,
    };
    let (mut prober, peer) = connected;
    tracing::debug!("probing {peer} over {}", transport_name(&config));

    let mut stats = PingStats::new();
    let started = Instant::now();
    let mut failure = None;
    for seq in 1..=config.count {
        let sent_at = Instant::now();
        let answer = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = prober.probe(seq, config.size, config.timeout) => a,
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        stats.record(answer.outcome);
        if !config.json {
            print_probe(&config, peer, seq, answer)?;
        }
        if seq == config.count {
            break;
        }
        // A timer rounds up to the next millisecond even when already due,
        // so back-to-back probes (`-i 0`, or a reply slower than the
        // interval) skip it.
        let next = sent_at + config.interval;
        if next <= Instant::now() {
            if shutdown.is_cancelled() {
                break;
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
    print_summary(&config, peer, &stats, started.elapsed())?;

    if let Some(e) = failure {
        return Err(e.into());
    }
    if stats.received() == 0 && !shutdown.is_cancelled() {
        let target = config.target.clone();
        return Err(if stats.differed() > 0 {
            EchoError::OnlyDiffering(target)
        } else {
            EchoError::NoReply(target)
        }
        .into());
    }
    Ok(())
}

/// Connects (TCP: each resolved address in turn) or binds (UDP: the first
/// IPv4 address, as the chapter's servers are IPv4-only, else the first).
async fn open(
    config: &PingConfig,
    addrs: &[SocketAddr],
) -> Result<(Prober, SocketAddr), EchoError> {
    if config.udp {
        let peer = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| EchoError::Refused(config.target.clone()))?;
        return Ok((Prober::Udp(UdpProber::connect(peer).await?), peer));
    }
    let mut last = None;
    for &peer in addrs {
        match tokio::time::timeout(config.timeout, TcpStream::connect(peer)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((Prober::Tcp(TcpProber::new(stream, peer)), peer));
            }
            Ok(Err(error)) => last = Some((peer, Some(error))),
            Err(_) => last = Some((peer, None)),
        }
    }
    Err(match last {
        Some((_, Some(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            EchoError::Refused(config.target.clone())
        }
        Some((peer, Some(error))) => EchoError::Connect { peer, error },
        Some((peer, None)) => EchoError::ConnectTimeout {
            peer,
            timeout: config.timeout,
        },
        None => EchoError::Refused(config.target.clone()),
    })
}

fn transport_name(config: &PingConfig) -> &'static str {
    if config.udp { "udp" } else { "tcp" }
}

/// One line per probe on stdout, like ping's.
fn print_probe(
    config: &PingConfig,
    peer: SocketAddr,
    seq: u32,
    answer: Answer,
) -> std::io::Result<()> {
    let line = match answer.outcome {
        Outcome::Reply(rtt) => format!(
            "{} bytes from {peer}: seq={seq} time={}",
            answer.reply_len,
            format_rtt(rtt)
        ),
        Outcome::Differs => format!(
            "{} bytes from {peer}: seq={seq} reply differs from probe",
            answer.reply_len
        ),
        Outcome::Lost => format!("seq={seq} no reply within {:?}", config.timeout),
        Outcome::Unreachable => format!("from {peer}: seq={seq} port unreachable"),
    };
    writeln!(std::io::stdout().lock(), "{line}")
}

fn print_summary(
    config: &PingConfig,
    peer: SocketAddr,
    stats: &PingStats,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if config.json {
        let report = JsonReport {
            target: &config.target,
            peer: peer.to_string(),
            transport: transport_name(config),
            size: config.size,
            time_ms: elapsed.as_millis(),
            summary: stats.summary(),
        };
        let json = serde_json::to_string(&report)?;
        writeln!(out, "{json}")?;
    } else {
        writeln!(out)?;
        write!(out, "{}", stats.summary_text(&config.target, elapsed))?;
    }
    out.flush()?;
    Ok(())
}
