//! What every benchmark client shares with the others and with the run
//! ([`Shared`]), what one client keeps while receiving ([`Inbox`]: which
//! messages it has seen, latencies waiting to be recorded), and how its
//! life ended ([`Tally`]). The read loops themselves live in `native` and
//! `raw`; this is the bookkeeping both use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::payload::{Found, Kind, Stamp};
use super::plan::Plan;
use super::stats::new_histogram;

/// The receiving half of a client's connection, plain or secure.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The sending half of a client's connection, plain or secure. Secure
/// streams buffer inside TLS: every write is followed by a flush.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A client's sending half, shared by its sender task and its reader (for
/// pongs and probes). Holding it keeps the connection open.
pub(crate) type Writer = Arc<tokio::sync::Mutex<WriteHalf>>;

/// Latency histograms, sharded so thousands of clients rarely contend.
const LATENCY_SHARDS: usize = 16;
/// Latencies a client buffers before taking a shard's lock.
const LATENCY_BATCH: usize = 1024;
/// Longest wait for a TCP connect.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client tells the run when its connection is usable or not.
pub(crate) enum Joined {
    Ready { idx: u32, writer: Writer },
    Failed,
}

/// State every task of a run reads or bumps.
pub(crate) struct Shared {
    pub plan: Plan,
    /// Native protocol (else raw lines).
    pub native: bool,
    /// Zero of every time stamp in the messages.
    pub epoch: Instant,
    /// Cancelled when the run ends, for any reason.
    pub stop: CancellationToken,
    /// Whether the server delivers to the sender too; set before sending.
    pub echo: AtomicBool,
    /// Deliveries a complete run makes; set before sending.
    pub expected: AtomicU64,
    /// Distinct data messages received, over all clients.
    pub delivered: AtomicU64,
    /// Signalled once `delivered` reaches `expected`.
    pub done: Notify,
    /// Time of the latest delivery, µs since `epoch`.
    pub last_delivery_us: AtomicU64,
    /// Reads that returned bytes, over all clients: shows the server is alive.
    pub reads: AtomicU64,
    /// Data messages written.
    pub sent: AtomicU64,
    /// Clients connected and not yet gone.
    pub alive: AtomicUsize,
    /// Clients whose connection dropped (or was closed on them).
    pub dropped: AtomicUsize,
    /// Per sender: its messages up to this sequence number were seen by its
    /// witness, which opens its window.
    pub acked: Box<[AtomicU64]>,
    /// Per sender: woken when `acked` moves.
    pub wake: Box<[Notify]>,
    /// Per client: has it received a probe.
    pub probe_seen: Box<[AtomicBool]>,
    pub probes_seen: AtomicUsize,
    /// Raw, per client: connect again (the server never accepted this one).
    pub rejoin: Box<[Notify]>,
    /// Raw: the server sent a new client something before it spoke.
    pub greets: AtomicBool,
    /// Wakes the run when a client becomes ready, fails, drops or is probed.
    pub events: Notify,
    latency: Box<[Mutex<Histogram<u64>>]>,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(plan: Plan, native: bool, stop: CancellationToken) -> Self {
        let clients = plan.clients as usize;
        let senders = plan.senders as usize;
        Shared {
            native,
            epoch: Instant::now(),
            stop,
            echo: AtomicBool::new(native),
            expected: AtomicU64::new(u64::MAX),
            delivered: AtomicU64::new(0),
            done: Notify::new(),
            last_delivery_us: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            alive: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            acked: (0..senders).map(|_| AtomicU64::new(0)).collect(),
            wake: (0..senders).map(|_| Notify::new()).collect(),
            probe_seen: (0..clients).map(|_| AtomicBool::new(false)).collect(),
            probes_seen: AtomicUsize::new(0),
            rejoin: (0..clients).map(|_| Notify::new()).collect(),
            greets: AtomicBool::new(false),
            events: Notify::new(),
            latency: (0..LATENCY_SHARDS)
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
            first_error: Mutex::new(None),
            plan,
        }
    }

    /// Microseconds since the epoch.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Keeps the first error of the run for the one-line summary.
    pub(crate) fn note_error(&self, what: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(what);
        }
    }

    pub(crate) fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// All latencies recorded so far, merged.
    pub(crate) fn latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in self.latency.iter() {
            let h = shard.lock().unwrap_or_else(|p| p.into_inner());
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(&*h);
        }
        all
    }

    fn record_latencies(&self, shard: usize, batch: &mut Vec<u64>) {
        let mut h = self.latency[shard % LATENCY_SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for &us in batch.iter() {
            h.saturating_record(us.max(1));
        }
        batch.clear();
    }

    /// A client is connected (native: welcomed into the lobby).
    pub(crate) fn client_ready(&self) {
        self.alive.fetch_add(1, Ordering::SeqCst);
        self.events.notify_one();
    }

    /// A ready client's connection is gone.
    pub(crate) fn client_gone(&self, dropped: bool) {
        if dropped {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
        self.alive.fetch_sub(1, Ordering::SeqCst);
        self.events.notify_one();
    }
}

/// How a client's connection ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum End {
    /// The run stopped it.
    #[default]
    Stopped,
    /// Never became ready.
    ConnectFailed,
    /// The server closed it or it broke.
    Disconnected,
    /// The server said why it was closing it (native `Error`/`Bye`).
    Kicked,
    /// The bytes stopped making sense; the client hung up.
    DecodeError,
}

/// One client's counts at the end.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub unique: u64,
    pub duplicates: u64,
    pub garbled: u64,
    pub other: u64,
    pub end: End,
}

/// What one client has received.
pub(crate) struct Inbox {
    idx: u32,
    /// One bit per message of the run: seen by this client.
    seen: Vec<u64>,
    /// Latencies (µs) not yet in a shared histogram.
    batch: Vec<u64>,
    /// Distinct deliveries since the last flush.
    fresh: u64,
    /// Receipt time of the latest of those.
    latest_us: u64,
    pub tally: Tally,
}

impl Inbox {
    pub(crate) fn new(idx: u32, messages: u64) -> Self {
        Inbox {
            idx,
            seen: vec![0; messages.div_ceil(64) as usize],
            batch: Vec::new(),
            fresh: 0,
            latest_us: 0,
            tally: Tally::default(),
        }
    }

    /// Handles what a line or chat text turned out to hold.
    pub(crate) fn on_found(&mut self, shared: &Shared, found: Found, now_us: u64) {
        match found {
            Found::Message(s) if s.kind == Kind::Probe => self.on_probe(shared),
            Found::Message(s) => self.on_data(shared, s, now_us),
            Found::Other => self.tally.other += 1,
            Found::Garbled => self.tally.garbled += 1,
        }
    }

    fn on_probe(&mut self, shared: &Shared) {
        if !shared.probe_seen[self.idx as usize].swap(true, Ordering::SeqCst) {
            shared.probes_seen.fetch_add(1, Ordering::SeqCst);
            shared.events.notify_one();
        }
    }

    fn on_data(&mut self, shared: &Shared, s: Stamp, now_us: u64) {
        let plan = &shared.plan;
        if s.sender >= plan.senders || s.seq >= plan.count(s.sender) {
            self.tally.garbled += 1;
            return;
        }
        let echo = shared.echo.load(Ordering::Relaxed);
        if !echo && s.sender == self.idx {
            // Not expected from a server that was found not to echo.
            self.tally.other += 1;
            return;
        }
        let n = plan.offset(s.sender) + s.seq;
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if self.seen[word] & bit != 0 {
            if self.tally.duplicates < 3 {
                tracing::debug!("client {}: duplicate {s:?}", self.idx);
            }
            self.tally.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.tally.unique += 1;
        self.fresh += 1;
        self.latest_us = now_us;
        self.batch.push(now_us.saturating_sub(s.sent_us));
        if self.batch.len() >= LATENCY_BATCH {
            shared.record_latencies(self.idx as usize, &mut self.batch);
        }
        if plan.witness(s.sender, echo) == Some(self.idx) {
            shared.acked[s.sender as usize].fetch_max(s.seq + 1, Ordering::SeqCst);
            shared.wake[s.sender as usize].notify_one();
        }
    }

    /// Publishes what the last read brought (once per read, not per message).
    pub(crate) fn flush(&mut self, shared: &Shared) {
        shared.reads.fetch_add(1, Ordering::Relaxed);
        if self.fresh == 0 {
            return;
        }
        shared
            .last_delivery_us
            .fetch_max(self.latest_us, Ordering::SeqCst);
        let before = shared.delivered.fetch_add(self.fresh, Ordering::SeqCst);
        let expected = shared.expected.load(Ordering::SeqCst);
        if before < expected && before + self.fresh >= expected {
            shared.done.notify_one();
        }
        self.fresh = 0;
    }

    /// Records the latencies still buffered; call when the client ends.
    pub(crate) fn finish(&mut self, shared: &Shared) -> Tally {
        self.flush(shared);
        if !self.batch.is_empty() {
            shared.record_latencies(self.idx as usize, &mut self.batch);
        }
        self.tally
    }
}

/// Connects with [`CONNECT_TIMEOUT`], no Nagle delay.
pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("cannot connect to {addr}: {e}")),
        Err(_) => return Err(format!("cannot connect to {addr}: no answer within 10 s")),
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Writes `bytes` and flushes (a secure stream holds them in TLS until
/// flushed; for TCP the flush does nothing).
pub(crate) async fn send(writer: &Writer, bytes: &[u8]) -> std::io::Result<()> {
    let mut w = writer.lock().await;
    w.write_all(bytes).await?;
    w.flush().await
}

/// Tells the run a client could not connect.
pub(crate) fn report_failure(
    shared: &Shared,
    ready: &mpsc::UnboundedSender<Joined>,
    why: String,
) -> Tally {
    shared.note_error(why);
    let _ = ready.send(Joined::Failed);
    shared.events.notify_one();
    Tally {
        end: End::ConnectFailed,
        ..Tally::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn shared(clients: u32, senders: u32, messages: u64, echo: bool) -> Shared {
        let plan = Plan::new(
            clients,
            senders,
            messages,
            32,
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        let s = Shared::new(plan, true, CancellationToken::new());
        s.echo.store(echo, Ordering::SeqCst);
        s.expected.store(s.plan.expected(echo), Ordering::SeqCst);
        s
    }

    fn data(sender: u32, seq: u64) -> Found {
        Found::Message(Stamp {
            kind: Kind::Data,
            sender,
            seq,
            sent_us: 100,
        })
    }

    #[test]
    fn duplicates_are_counted_once_and_latency_is_recorded() {
        let sh = shared(2, 1, 10, true);
        let mut inbox = Inbox::new(1, 10);
        inbox.on_found(&sh, data(0, 3), 600);
        inbox.on_found(&sh, data(0, 3), 700);
        let t = inbox.finish(&sh);
        assert_eq!((t.unique, t.duplicates), (1, 1));
        assert_eq!(sh.delivered.load(Ordering::SeqCst), 1);
        assert_eq!(sh.latency().max(), 500);
    }

    #[test]
    fn out_of_plan_stamps_are_garbled() {
        let sh = shared(2, 1, 10, true);
        let mut inbox = Inbox::new(1, 10);
        inbox.on_found(&sh, data(1, 0), 1);
        inbox.on_found(&sh, data(0, 10), 1);
        assert_eq!(inbox.finish(&sh).garbled, 2);
    }

    #[test]
    fn the_witness_opens_its_senders_window() {
        let sh = shared(3, 1, 10, false);
        // Without echo sender 0's witness is client 1.
        let mut not_witness = Inbox::new(2, 10);
        not_witness.on_found(&sh, data(0, 4), 1);
        assert_eq!(sh.acked[0].load(Ordering::SeqCst), 0);
        let mut witness = Inbox::new(1, 10);
        witness.on_found(&sh, data(0, 4), 1);
        assert_eq!(sh.acked[0].load(Ordering::SeqCst), 5);
    }

    #[test]
    fn own_message_from_a_non_echoing_server_is_not_a_delivery() {
        let sh = shared(3, 1, 10, false);
        let mut sender = Inbox::new(0, 10);
        sender.on_found(&sh, data(0, 0), 1);
        let t = sender.finish(&sh);
        assert_eq!((t.unique, t.other), (0, 1));
    }

    #[tokio::test]
    async fn done_is_signalled_when_the_last_expected_delivery_lands() {
        let sh = shared(1, 1, 2, true);
        let mut inbox = Inbox::new(0, 2);
        inbox.on_found(&sh, data(0, 0), 1);
        inbox.flush(&sh);
        inbox.on_found(&sh, data(0, 1), 1);
        inbox.flush(&sh);
        assert_eq!(sh.delivered.load(Ordering::SeqCst), 2);
        // The permit stored by notify_one makes this return at once.
        tokio::time::timeout(Duration::from_secs(1), sh.done.notified())
            .await
            .expect("done signalled");
    }

    #[test]
    fn probes_count_each_client_once() {
        let sh = shared(3, 1, 10, true);
        let probe = Found::Message(Stamp {
            kind: Kind::Probe,
            sender: 0,
            seq: 0,
            sent_us: 0,
        });
        let mut a = Inbox::new(1, 10);
        a.on_found(&sh, probe, 1);
        a.on_found(&sh, probe, 2);
        assert_eq!(sh.probes_seen.load(Ordering::SeqCst), 1);
        assert!(sh.probe_seen[1].load(Ordering::SeqCst));
    }
}
