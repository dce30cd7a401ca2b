//! Ping statistics: what happened to each probe, folded into the counts and
//! round-trip figures `ping` users expect (sent, received, loss,
//! min/avg/max/mdev) plus percentiles, and the text and JSON that show them.
//!
//! Pure: probe outcomes in, numbers and strings out; no clock, no sockets.
//! Memory is bounded: aggregates are kept for every probe, the per-probe
//! list only for the first [`MAX_RECORDED`] probes.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Per-probe round trips kept for `--json` (16 bytes each: 16 MB at most).
pub const MAX_RECORDED: usize = 1_000_000;

/// Longest round trip the percentile histogram tells apart (an hour, in ns);
/// longer ones count as this.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

/// What became of one probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The same bytes came back after this long.
    Reply(Duration),
    /// Nothing (or not all of it) came back in time.
    Lost,
    /// Bytes came back but are not the probe's.
    Differs,
    /// The peer said nothing listens there (ICMP port unreachable, UDP).
    Unreachable,
}

/// Counts and round-trip aggregates over the probes of one run.
#[derive(Debug)]
pub struct PingStats {
    /// Probes whose outcome is known.
    sent: u64,
    /// Probes answered with their own bytes.
    received: u64,
    /// Probes answered with other bytes.
    differed: u64,
    /// Probes the peer reported unreachable.
    unreachable: u64,
    /// Smallest round trip, ms.
    min_ms: f64,
    /// Largest round trip, ms.
    max_ms: f64,
    /// Sum of round trips, ms (for the mean).
    sum_ms: f64,
    /// Sum of squared round trips, ms² (for mdev, as ping computes it).
    sum_sq_ms: f64,
    /// Round trip per probe in order (`None` = no valid reply), capped.
    rtts_ms: Vec<Option<f64>>,
    /// Round trips in ns, for percentiles in constant memory.
    histogram: Histogram<u64>,
}

/// The figures of a run, as `--json` prints them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub sent: u64,
    pub received: u64,
    pub differed: u64,
    pub unreachable: u64,
    pub loss_percent: f64,
    pub min_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mdev_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Round trip of each probe in order; `null` for a probe without a
    /// valid reply.
    pub rtts_ms: Vec<Option<f64>>,
    /// Whether `rtts_ms` stops before the last probe (see [`MAX_RECORDED`]).
    pub rtts_truncated: bool,
}

impl Default for PingStats {
    fn default() -> Self {
        Self::new()
    }
}

impl PingStats {
    pub fn new() -> Self {
        PingStats {
            sent: 0,
            received: 0,
            differed: 0,
            unreachable: 0,
            min_ms: f64::INFINITY,
            max_ms: 0.0,
            sum_ms: 0.0,
            sum_sq_ms: 0.0,
            rtts_ms: Vec::new(),
            histogram: Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3)
                .expect("constant histogram bounds are valid"),
        }
    }

    /// Counts one probe's outcome.
    pub fn record(&mut self, outcome: Outcome) {
        self.sent += 1;
        let rtt = match outcome {
            Outcome::Reply(rtt) => Some(rtt),
            Outcome::Lost => None,
            Outcome::Differs => {
                self.differed += 1;
                None
            }
            Outcome::Unreachable => {
                self.unreachable += 1;
                None
            }
        };
        let ms = rtt.map(duration_ms);
        if let (Some(d), Some(ms)) = (rtt, ms) {
            self.received += 1;
            self.min_ms = self.min_ms.min(ms);
            self.max_ms = self.max_ms.max(ms);
            self.sum_ms += ms;
            self.sum_sq_ms += ms * ms;
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            self.histogram.saturating_record(ns.max(1));
        }
        if self.rtts_ms.len() < MAX_RECORDED {
            self.rtts_ms.push(ms);
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn differed(&self) -> u64 {
        self.differed
    }

    /// Lost share of the probes sent, in percent (0 when none was sent).
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        (self.sent - self.received) as f64 * 100.0 / self.sent as f64
    }

    /// The figures so far.
    pub fn summary(&self) -> Summary {
        let some = |v: f64| (self.received > 0).then_some(round_us(v));
        let n = self.received as f64;
        let avg = self.sum_ms / n;
        let mdev = (self.sum_sq_ms / n - avg * avg).max(0.0).sqrt();
        let quantile = |q: f64| some(self.histogram.value_at_quantile(q) as f64 / 1e6);
        Summary {
            sent: self.sent,
            received: self.received,
            differed: self.differed,
            unreachable: self.unreachable,
            loss_percent: round_us(self.loss_percent()),
            min_ms: some(self.min_ms),
            avg_ms: some(avg),
            max_ms: some(self.max_ms),
            mdev_ms: some(mdev),
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            rtts_ms: self.rtts_ms.clone(),
            rtts_truncated: self.sent > self.rtts_ms.len() as u64,
        }
    }

    /// The ping-style closing lines for `target`, the run having taken
    /// `elapsed`.
    pub fn summary_text(&self, target: &str, elapsed: Duration) -> String {
        let mut counts = format!("{} probes sent, {} received", self.sent, self.received);
        if self.differed > 0 {
            counts.push_str(&format!(", {} differed", self.differed));
        }
        if self.unreachable > 0 {
            counts.push_str(&format!(", {} unreachable", self.unreachable));
        }
        let mut out = format!(
            "--- {target} echo ping statistics ---\n{counts}, {} loss, time {}ms\n",
            format_percent(self.loss_percent()),
            elapsed.as_millis()
        );
        let s = self.summary();
        if let (Some(min), Some(avg), Some(max), Some(mdev)) =
            (s.min_ms, s.avg_ms, s.max_ms, s.mdev_ms)
        {
            out.push_str(&format!(
                "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms\n"
            ));
        }
        out
    }
}

/// A duration in milliseconds, to the microsecond.
fn duration_ms(d: Duration) -> f64 {
    round_us(d.as_secs_f64() * 1e3)
}

/// Rounds to three decimals (for milliseconds: what ping and its users
/// resolve), so JSON shows `0.123`, not `0.12300000000000001`.
fn round_us(ms: f64) -> f64 {
    (ms * 1e3).round() / 1e3
}

/// `0%`, `20%`, `33.3%`: whole percentages without decimals.
pub fn format_percent(p: f64) -> String {
    if (p - p.round()).abs() < 1e-9 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

/// A round trip the way ping prints one: three significant decimals below
/// 1 ms, fewer as it grows (`0.123`, `1.23`, `12.3`, `123`).
pub fn format_rtt(rtt: Duration) -> String {
    let ms = rtt.as_secs_f64() * 1e3;
    let decimals = match ms {
        m if m < 1.0 => 3,
        m if m < 10.0 => 2,
        m if m < 100.0 => 1,
        _ => 0,
    };
    format!("{ms:.decimals$} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Outcome {
        Outcome::Reply(Duration::from_secs_f64(v / 1e3))
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 5e-4)
    }

    #[test]
    fn aggregates_match_ping_definitions() {
        let mut s = PingStats::new();
        for v in [1.0, 2.0, 3.0, 4.0] {
            s.record(ms(v));
        }
        let sum = s.summary();
        assert_eq!((sum.sent, sum.received), (4, 4));
        assert!(close(sum.min_ms, 1.0));
        assert!(close(sum.avg_ms, 2.5));
        assert!(close(sum.max_ms, 4.0));
        // population standard deviation: sqrt(mean(x²) - mean(x)²)
        assert!(close(sum.mdev_ms, 1.25f64.sqrt()));
        assert_eq!(sum.loss_percent, 0.0);
    }

    #[test]
    fn lost_and_differing_probes_count_as_loss_without_a_time() {
        let mut s = PingStats::new();
        s.record(ms(1.0));
        s.record(Outcome::Lost);
        s.record(Outcome::Differs);
        s.record(Outcome::Unreachable);
        s.record(ms(3.0));
        let sum = s.summary();
        assert_eq!(
            (sum.sent, sum.received, sum.differed, sum.unreachable),
            (5, 2, 1, 1)
        );
        assert_eq!(sum.loss_percent, 60.0);
        assert!(close(sum.avg_ms, 2.0));
        assert_eq!(sum.rtts_ms.len(), 5);
        assert_eq!(&sum.rtts_ms[1..4], &[None, None, None]);
    }

    #[test]
    fn no_reply_gives_no_round_trip_figures() {
        let mut s = PingStats::new();
        s.record(Outcome::Lost);
        let sum = s.summary();
        assert_eq!(sum.loss_percent, 100.0);
        assert_eq!((sum.min_ms, sum.avg_ms, sum.p99_ms), (None, None, None));
        let text = s.summary_text("h:1", Duration::from_millis(2001));
        assert_eq!(
            text,
            "--- h:1 echo ping statistics ---\n1 probes sent, 0 received, 100% loss, time 2001ms\n"
        );
    }

    #[test]
    fn nothing_sent_is_not_loss() {
        let s = PingStats::new();
        assert_eq!(s.loss_percent(), 0.0);
        assert_eq!(s.summary().avg_ms, None);
    }

    #[test]
    fn summary_text_reads_like_ping() {
        let mut s = PingStats::new();
        for v in [0.081, 0.144, 0.09] {
            s.record(ms(v));
        }
        s.record(Outcome::Differs);
        let text = s.summary_text("127.0.0.1:50505", Duration::from_millis(3004));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "--- 127.0.0.1:50505 echo ping statistics ---");
        assert_eq!(
            lines[1],
            "4 probes sent, 3 received, 1 differed, 25% loss, time 3004ms"
        );
        assert!(lines[2].starts_with("rtt min/avg/max/mdev = 0.081/0.105/0.144/"));
    }

    #[test]
    fn percentiles_come_from_the_replies() {
        let mut s = PingStats::new();
        for i in 1..=100 {
            s.record(ms(i as f64));
        }
        let sum = s.summary();
        assert!((sum.p50_ms.unwrap() - 50.0).abs() < 0.1);
        assert!((sum.p99_ms.unwrap() - 99.0).abs() < 0.1);
    }

    #[test]
    fn round_trips_print_with_ping_precision() {
        assert_eq!(format_rtt(Duration::from_micros(123)), "0.123 ms");
        assert_eq!(format_rtt(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(format_rtt(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(format_rtt(Duration::from_micros(123_456)), "123 ms");
    }

    #[test]
    fn percentages_drop_needless_decimals() {
        assert_eq!(format_percent(0.0), "0%");
        assert_eq!(format_percent(100.0), "100%");
        assert_eq!(format_percent(100.0 / 3.0), "33.3%");
    }
}
