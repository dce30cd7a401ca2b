//! Raw mode's check before sending: client 0 sends probes until every
//! other client has heard one (so every client is really accepted and
//! listening), and the server counts as echoing if client 0 heard its own.
//! Clients that hear nothing are asked to connect again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::{Run, Stop};
use crate::bench::client::Writer;
use crate::bench::payload::{Kind, Stamp};
use crate::bench::sender;

/// A probe from client 0 this often until every client heard one.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Once all others heard a probe, how long client 0 may take to hear its
/// own before the server counts as not echoing.
const ECHO_GRACE: Duration = Duration::from_millis(500);
/// A client that heard no probe for this long connects again (see
/// [`super::RAW_CONNECTS_IN_FLIGHT`] for how a server can drop a connect silently).
const REJOIN_EVERY: Duration = Duration::from_secs(2);

impl Run {
    /// Raw: probes from client 0 until every other client heard one; the
    /// server echoes if client 0 heard one too.
    pub(super) async fn find_echo(&self, writers: &[Writer]) -> Result<bool, Stop> {
        let sh = &self.shared;
        let others = self.cfg.plan.clients as usize - 1;
        let mut all_heard_at = None;
        let mut next_probe = Instant::now();
        let mut next_rejoin = Instant::now() + REJOIN_EVERY;
        for seq in 0.. {
            let own = sh.probe_seen[0].load(Ordering::SeqCst);
            let heard = sh.probes_seen.load(Ordering::SeqCst) - usize::from(own);
            if heard >= others {
                if own {
                    return Ok(true);
                }
                let at = *all_heard_at.get_or_insert_with(Instant::now);
                if at.elapsed() >= ECHO_GRACE {
                    return Ok(false);
                }
            }
            if sh.dropped.load(Ordering::SeqCst) > 0 {
                return Err(Stop::NotConnected);
            }
            if Instant::now() >= self.deadline {
                sh.note_error(format!(
                    "only {heard} of {others} clients heard client 0's probes"
                ));
                return Err(Stop::NotListening);
            }
            if Instant::now() >= next_probe {
                self.send_probe(&writers[0], seq).await;
                next_probe = Instant::now() + PROBE_EVERY;
            }
            if Instant::now() >= next_rejoin {
                self.rejoin_the_deaf(heard == 0);
                next_rejoin = Instant::now() + REJOIN_EVERY;
            }
            tokio::select! {
                _ = sh.events.notified() => {}
                _ = tokio::time::sleep_until(next_probe.min(self.deadline)) => {}
                _ = self.shutdown.cancelled() => return Err(Stop::Interrupted),
            }
        }
        unreachable!("the probe loop returns")
    }

    /// Has every client that heard no probe connect again; client 0 too
    /// when nobody heard its probes (then it may be the one not accepted).
    fn rejoin_the_deaf(&self, prober_too: bool) {
        let sh = &self.shared;
        let skip = usize::from(!prober_too);
        let mut deaf = 0;
        for idx in skip..self.cfg.plan.clients as usize {
            if !sh.probe_seen[idx].load(Ordering::SeqCst) {
                sh.rejoin[idx].notify_one();
                deaf += 1;
            }
        }
        tracing::info!(
            "{deaf} clients heard no probe: connecting them again (the server may have dropped their handshakes)"
        );
    }

    async fn send_probe(&self, writer: &Writer, seq: u64) {
        let stamp = Stamp {
            kind: Kind::Probe,
            sender: 0,
            seq,
            sent_us: self.shared.now_us(),
        };
        let mut out = BytesMut::new();
        if sender::put_message(&self.shared, &stamp, &mut out).is_ok() {
            // A failed write shows up as client 0 dropping.
            let _ = writer.lock().await.write_all(&out).await;
        }
    }
}
