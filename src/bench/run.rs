//! One benchmark run, phase by phase: connect every client (bounded number
//! of connects in flight), wait for the server's join chatter to settle,
//! (raw) probe until every client hears client 0 and learn whether the
//! server echoes, then send and wait until every expected delivery arrived
//! or there is a reason to stop: the timeout, a stall, every client gone,
//! Ctrl-C. Always ends by itself; the report says why it ended.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{End, Joined, Shared, Tally, Writer};
use super::plan::Plan;
use super::procstat::ServerProcess;
use super::report::{Errors, Report, ServerUsage};
use super::secure::{HANDSHAKES_IN_FLIGHT, SecureTarget};
use super::stats::{latency_ms, per_million, per_second, thousands};
use super::{native, raw, sender};

mod probe;
use crate::net::Shutdown;

/// TCP connects (and native handshakes) in progress at once.
const CONNECTS_IN_FLIGHT: usize = 200;
/// Raw: connects in progress at once. A raw server gives no sign that it
/// accepted a client, and one with a tiny listen backlog (the chapter's
/// `listen(5)`) answers a burst of connects with SYN cookies, then silently
/// drops the handshakes its accept queue has no room for: the client thinks
/// it is connected and never hears a thing. Fewer connects in flight than
/// that backlog never trigger the cookies (a full queue then only delays a
/// connect by a SYN retransmission).
const RAW_CONNECTS_IN_FLIGHT: usize = 4;
/// The server counts as settled after this long without a byte to anyone.
const SETTLE_QUIET: Duration = Duration::from_millis(200);
/// Longest wait for it to settle; the run goes on regardless after that.
const SETTLE_MAX: Duration = Duration::from_secs(30);
/// No byte to any client for this long while sending: the run is stuck.
const STALL: Duration = Duration::from_secs(5);
/// How often the run checks on itself while sending.
const TICK: Duration = Duration::from_millis(100);
/// Time given to the client tasks to finish once the run stops.
const JOIN_LIMIT: Duration = Duration::from_secs(5);

/// What to run.
pub(crate) struct Config {
    pub addr: SocketAddr,
    pub plan: Plan,
    pub native: bool,
    /// Native clients open the secure channel first (`None`: plain TCP).
    pub secure: Option<Arc<SecureTarget>>,
    /// Bounds the whole run, connecting included.
    pub timeout: Duration,
    pub server: Option<ServerProcess>,
}

/// A finished run: its report, and the one-line failure if it failed.
pub(crate) struct Outcome {
    pub report: Report,
    pub failure: Option<String>,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Complete,
    Timeout,
    Stalled,
    AllGone,
    Interrupted,
    /// Clients could not connect, or dropped before sending began.
    NotConnected,
    /// Raw: not every client heard the probes.
    NotListening,
}

impl Stop {
    fn text(&self, timeout: Duration) -> String {
        match self {
            Stop::Complete => "complete".into(),
            Stop::Timeout => format!("timeout after {:?}", timeout),
            Stop::Stalled => format!("stalled: nothing received for {} s", STALL.as_secs()),
            Stop::AllGone => "every client was disconnected".into(),
            Stop::Interrupted => "interrupted".into(),
            Stop::NotConnected => "clients could not connect".into(),
            Stop::NotListening => "not every client heard the probes".into(),
        }
    }
}

struct Run {
    cfg: Config,
    shared: Arc<Shared>,
    shutdown: Shutdown,
    deadline: Instant,
    /// Clients that became ready.
    connected: u32,
    /// How long connecting them took (secure handshakes included).
    connect_time: Option<Duration>,
    echo: Option<bool>,
}

/// Runs the benchmark described by `cfg`.
pub(crate) async fn run(cfg: Config, shutdown: Shutdown) -> Outcome {
    let stop = shutdown.token.child_token();
    let shared = Arc::new(Shared::new(cfg.plan.clone(), cfg.native, stop));
    let mut run = Run {
        deadline: Instant::now() + cfg.timeout,
        echo: cfg.native.then_some(true),
        cfg,
        shared,
        shutdown,
        connected: 0,
        connect_time: None,
    };
    let mut clients = run.spawn_clients();
    let mut senders = JoinSet::new();
    let (stop, window) = match run.prepare(&mut clients).await {
        Ok(writers) => run.send_and_wait(writers, &mut senders).await,
        Err(stop) => (stop, None),
    };
    run.shared.stop.cancel();
    let tallies = collect(&mut clients, &mut senders, &run.shared).await;
    run.outcome(stop, window, &tallies)
}

/// What the sending phase measured on the server.
struct Window {
    start_us: u64,
    end_us: u64,
    usage: Option<ServerUsage>,
}

impl Run {
    fn spawn_clients(&self) -> (JoinSet<Tally>, mpsc::UnboundedReceiver<Joined>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(match (self.cfg.native, &self.cfg.secure) {
            (false, _) => RAW_CONNECTS_IN_FLIGHT,
            (true, Some(_)) => HANDSHAKES_IN_FLIGHT,
            (true, None) => CONNECTS_IN_FLIGHT,
        }));
        let mut set = JoinSet::new();
        tracing::info!(
            "connecting {} clients to {}",
            thousands(self.cfg.plan.clients.into()),
            self.cfg.addr
        );
        for idx in 0..self.cfg.plan.clients {
            let (shared, permits, tx) = (self.shared.clone(), permits.clone(), tx.clone());
            let (addr, native, secure) = (self.cfg.addr, self.cfg.native, self.cfg.secure.clone());
            set.spawn(async move {
                if !native {
                    return raw::run(shared, idx, addr, permits, tx).await;
                }
                let permit = tokio::select! {
                    _ = shared.stop.cancelled() => return Tally::default(),
                    p = permits.acquire_owned() => p.expect("semaphore never closed"),
                };
                native::run(shared, idx, addr, secure, permit, tx).await
            });
        }
        (set, rx)
    }

    /// Everything before sending; returns the senders' writers.
    async fn prepare(
        &mut self,
        clients: &mut (JoinSet<Tally>, mpsc::UnboundedReceiver<Joined>),
    ) -> Result<Vec<Writer>, Stop> {
        let mut writers = self.connect_all(&mut clients.1).await?;
        self.settle().await?;
        if !self.cfg.native {
            let echo = self.find_echo(&writers).await?;
            tracing::info!(
                "the server {} to the sender",
                if echo { "echoes" } else { "does not echo" }
            );
            self.echo = Some(echo);
            self.settle().await?;
        }
        writers.truncate(self.cfg.plan.senders as usize);
        Ok(writers)
    }

    /// Waits for every client to be ready; returns their writers by index.
    async fn connect_all(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Joined>,
    ) -> Result<Vec<Writer>, Stop> {
        let plan = &self.cfg.plan;
        let began = Instant::now();
        let mut writers: Vec<Option<Writer>> = vec![None; plan.clients as usize];
        let mut failed = 0u32;
        while self.connected + failed < plan.clients {
            let joined = tokio::select! {
                j = rx.recv() => j,
                _ = tokio::time::sleep_until(self.deadline) => return Err(Stop::Timeout),
                _ = self.shutdown.cancelled() => return Err(Stop::Interrupted),
            };
            match joined {
                Some(Joined::Ready { idx, writer }) => {
                    self.connected += 1;
                    if let Some(slot) = writers.get_mut(idx as usize) {
                        *slot = Some(writer);
                    }
                }
                Some(Joined::Failed) => failed += 1,
                None => break,
            }
        }
        if failed > 0 || self.shared.dropped.load(Ordering::SeqCst) > 0 {
            return Err(Stop::NotConnected);
        }
        self.connect_time = Some(began.elapsed());
        tracing::info!(
            "{} clients connected in {:.2} s{}",
            thousands(self.connected.into()),
            began.elapsed().as_secs_f64(),
            if self.cfg.secure.is_some() {
                " (secure channel)"
            } else {
                ""
            }
        );
        writers
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(Stop::NotConnected)
    }

    /// Waits until no client has received anything for [`SETTLE_QUIET`] (join
    /// announcements to thousands of clients take a while to drain).
    async fn settle(&self) -> Result<(), Stop> {
        let began = Instant::now();
        loop {
            let before = self.shared.reads.load(Ordering::Relaxed);
            self.pause(SETTLE_QUIET).await?;
            if self.shared.dropped.load(Ordering::SeqCst) > 0 {
                return Err(Stop::NotConnected);
            }
            if self.shared.reads.load(Ordering::Relaxed) == before || began.elapsed() > SETTLE_MAX {
                return Ok(());
            }
        }
    }

    /// Sleeps `d`, or fails on the deadline or Ctrl-C.
    async fn pause(&self, d: Duration) -> Result<(), Stop> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = tokio::time::sleep_until(self.deadline) => Err(Stop::Timeout),
            _ = self.shutdown.cancelled() => Err(Stop::Interrupted),
        }
    }

    /// Sends, waits for the deliveries, and measures the server meanwhile.
    async fn send_and_wait(
        &mut self,
        writers: Vec<Writer>,
        senders: &mut JoinSet<Result<(), String>>,
    ) -> (Stop, Option<Window>) {
        let sh = &self.shared;
        let echo = self.echo.unwrap_or(true);
        sh.echo.store(echo, Ordering::SeqCst);
        sh.expected
            .store(self.cfg.plan.expected(echo), Ordering::SeqCst);
        let cpu_before = self.cfg.server.and_then(|s| s.cpu());
        let start_us = sh.now_us();
        tracing::info!("sending {} messages", thousands(self.cfg.plan.messages));
        for (s, writer) in writers.into_iter().enumerate() {
            senders.spawn(sender::run(sh.clone(), s as u32, writer));
        }
        let stop = self.wait_for_deliveries(senders).await;
        let end_us = sh.now_us();
        let usage = self.cfg.server.map(|p| {
            let cpu_s = cpu_before
                .as_ref()
                .zip(p.cpu())
                .map(|(a, b)| a.seconds_until(&b, ServerProcess::ticks_per_second()));
            let mem = p.memory();
            ServerUsage {
                pid: p.pid,
                cpu_s,
                cpu_s_per_million: cpu_s
                    .and_then(|c| per_million(c, sh.delivered.load(Ordering::SeqCst))),
                peak_rss_kib: mem.map(|m| m.peak_kib),
                rss_kib: mem.map(|m| m.rss_kib),
            }
        });
        (
            stop,
            Some(Window {
                start_us,
                end_us,
                usage,
            }),
        )
    }

    async fn wait_for_deliveries(&self, senders: &mut JoinSet<Result<(), String>>) -> Stop {
        let sh = &self.shared;
        let expected = sh.expected.load(Ordering::SeqCst);
        let stall = match self.cfg.plan.rate_per_sender {
            Some(r) => STALL.max(Duration::from_secs_f64((10.0 / r).min(3600.0))),
            None => STALL,
        };
        let mut reads = sh.reads.load(Ordering::Relaxed);
        let mut progress_at = Instant::now();
        loop {
            if sh.delivered.load(Ordering::SeqCst) >= expected {
                return Stop::Complete;
            }
            if sh.alive.load(Ordering::SeqCst) == 0 {
                return Stop::AllGone;
            }
            if Instant::now() >= self.deadline {
                return Stop::Timeout;
            }
            let now_reads = sh.reads.load(Ordering::Relaxed);
            if now_reads != reads {
                (reads, progress_at) = (now_reads, Instant::now());
            } else if progress_at.elapsed() > stall {
                return Stop::Stalled;
            }
            tokio::select! {
                _ = sh.done.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
                Some(Ok(Err(why))) = senders.join_next() => sh.note_error(why),
                _ = tokio::time::sleep_until(self.deadline) => {}
                _ = self.shutdown.cancelled() => return Stop::Interrupted,
            }
        }
    }

    fn outcome(&self, stop: Stop, window: Option<Window>, tallies: &[Tally]) -> Outcome {
        let sh = &self.shared;
        let plan = &self.cfg.plan;
        let mut errors = Errors::default();
        let mut other_lines = 0;
        for t in tallies {
            errors.duplicates += t.duplicates;
            errors.garbled += t.garbled;
            other_lines += t.other;
            match t.end {
                End::Stopped => {}
                End::ConnectFailed => errors.connect_failures += 1,
                End::Disconnected => errors.disconnects += 1,
                End::Kicked => errors.kicked += 1,
                End::DecodeError => errors.decode_errors += 1,
            }
        }
        let delivered = sh.delivered.load(Ordering::SeqCst);
        let expected = plan.expected(self.echo.unwrap_or(true));
        let elapsed = window.as_ref().map_or(Duration::ZERO, |w| {
            let last = sh.last_delivery_us.load(Ordering::SeqCst);
            let end = if last > w.start_us { last } else { w.end_us };
            Duration::from_micros(end - w.start_us)
        });
        let report = Report {
            mode: if self.cfg.native { "native" } else { "raw" },
            secure: self.cfg.secure.is_some(),
            connect_s: self.connect_time.map(|d| d.as_secs_f64()),
            server_echoes: self.echo,
            load: if plan.rate_per_sender.is_some() {
                "open"
            } else {
                "closed"
            },
            window_per_sender: plan.rate_per_sender.is_none().then_some(plan.window),
            rate: plan.rate_per_sender.map(|r| r * f64::from(plan.senders)),
            clients: plan.clients,
            connected: self.connected,
            senders: plan.senders,
            messages: plan.messages,
            size: plan.size,
            sent: sh.sent.load(Ordering::SeqCst),
            delivered,
            expected,
            elapsed_s: elapsed.as_secs_f64(),
            deliveries_per_s: per_second(delivered, elapsed),
            latency_ms: latency_ms(&sh.latency()),
            errors,
            other_lines,
            stopped: stop.text(self.cfg.timeout),
            server: window.and_then(|w| w.usage),
        };
        let failure = self.failure(&stop, &report);
        Outcome { report, failure }
    }

    fn failure(&self, stop: &Stop, r: &Report) -> Option<String> {
        let first = self
            .shared
            .first_error()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default();
        match stop {
            Stop::Interrupted => None,
            Stop::Complete if r.errors.total() == 0 => None,
            Stop::Complete => Some(format!(
                "{} errors during the run{first}",
                thousands(r.errors.total())
            )),
            Stop::NotConnected => Some(format!(
                "{} of {} clients could not connect or were dropped before sending{first}",
                thousands(r.clients as u64 - r.connected as u64 + r.errors.disconnects),
                thousands(r.clients.into())
            )),
            other => Some(format!(
                "only {} of {} deliveries arrived: {}{first}",
                thousands(r.delivered),
                thousands(r.expected),
                other.text(self.cfg.timeout)
            )),
        }
    }
}

/// Waits (bounded) for every task to end and returns the clients' tallies.
async fn collect(
    clients: &mut (JoinSet<Tally>, mpsc::UnboundedReceiver<Joined>),
    senders: &mut JoinSet<Result<(), String>>,
    shared: &Shared,
) -> Vec<Tally> {
    // Drop writers still queued for the run so connections can close.
    clients.1.close();
    while clients.1.try_recv().is_ok() {}
    let mut tallies = Vec::with_capacity(clients.0.len());
    let gather = async {
        while let Some(r) = senders.join_next().await {
            if let Ok(Err(why)) = r {
                shared.note_error(why);
            }
        }
        while let Some(r) = clients.0.join_next().await {
            if let Ok(t) = r {
                tallies.push(t);
            }
        }
    };
    if tokio::time::timeout(JOIN_LIMIT, gather).await.is_err() {
        tracing::warn!(
            "some clients did not stop within {} s",
            JOIN_LIMIT.as_secs()
        );
        senders.abort_all();
        clients.0.abort_all();
    }
    tallies
}
