//! What a benchmark run will do, worked out before any socket opens: how
//! many messages each sender sends, how many may be in flight, when each is
//! due in open loop, how many deliveries to expect, and whether the sizes
//! asked for can carry the stamps. Pure arithmetic, unit tested.

use std::time::Duration;

use super::payload::{Kind, Stamp, header_len};

/// Messages in flight across all senders in closed loop. Small against the
/// per-client queues of any server here (soquete queues 4096 frames), so a
/// closed-loop run measures delivery, not queue overflow.
pub(crate) const WINDOW_TOTAL: u64 = 256;

/// Most expected deliveries (clients × messages): each costs one bit of
/// bookkeeping, so this caps that at 512 MiB.
pub(crate) const MAX_DELIVERIES: u64 = 1 << 32;

/// Why the options cannot make a run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum PlanError {
    #[error("--senders ({senders}) cannot exceed --clients ({clients})")]
    TooManySenders { senders: u32, clients: u32 },
    #[error("--messages ({messages}) must be at least --senders ({senders})")]
    TooFewMessages { messages: u64, senders: u32 },
    #[error("--size {size} cannot carry the sender, sequence and time stamps: use at least {min}")]
    SizeTooSmall { size: usize, min: usize },
    #[error("--clients × --messages is over {MAX_DELIVERIES} deliveries")]
    TooManyDeliveries,
    #[error("--rate must be a positive number of messages per second")]
    BadRate,
}

/// The shape of a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub clients: u32,
    /// Clients `0..senders` send.
    pub senders: u32,
    pub messages: u64,
    /// Bytes of each message text.
    pub size: usize,
    /// Closed loop: most messages one sender has in flight.
    pub window: u64,
    /// Open loop: messages per second of one sender.
    pub rate_per_sender: Option<f64>,
}

impl Plan {
    pub(crate) fn new(
        clients: u32,
        senders: u32,
        messages: u64,
        size: usize,
        rate: Option<f64>,
        timeout: Duration,
    ) -> Result<Plan, PlanError> {
        if senders > clients {
            return Err(PlanError::TooManySenders { senders, clients });
        }
        if messages < u64::from(senders) {
            return Err(PlanError::TooFewMessages { messages, senders });
        }
        if u64::from(clients).saturating_mul(messages) > MAX_DELIVERIES {
            return Err(PlanError::TooManyDeliveries);
        }
        let rate_per_sender = match rate {
            Some(r) if !(r.is_finite() && r > 0.0) => return Err(PlanError::BadRate),
            Some(r) => Some(r / f64::from(senders)),
            None => None,
        };
        let plan = Plan {
            clients,
            senders,
            messages,
            size,
            window: (WINDOW_TOTAL / u64::from(senders)).max(1),
            rate_per_sender,
        };
        let min = plan.min_size(timeout);
        if size < min {
            return Err(PlanError::SizeTooSmall { size, min });
        }
        Ok(plan)
    }

    /// Smallest text that carries the largest stamp of a run lasting `timeout`.
    pub(crate) fn min_size(&self, timeout: Duration) -> usize {
        header_len(&Stamp {
            kind: Kind::Data,
            sender: self.senders - 1,
            seq: self.count(0).saturating_sub(1),
            sent_us: u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX),
        })
    }

    /// Messages sender `s` sends (the first `messages % senders` send one more).
    pub(crate) fn count(&self, s: u32) -> u64 {
        let (base, extra) = self.split();
        base + u64::from(u64::from(s) < extra)
    }

    /// Index of sender `s`'s first message among all `messages`.
    pub(crate) fn offset(&self, s: u32) -> u64 {
        let (base, extra) = self.split();
        u64::from(s) * base + u64::from(s).min(extra)
    }

    fn split(&self) -> (u64, u64) {
        let senders = u64::from(self.senders);
        (self.messages / senders, self.messages % senders)
    }

    /// Deliveries a complete run makes: every message to every client, or to
    /// every client but its sender when the server does not echo.
    pub(crate) fn expected(&self, echo: bool) -> u64 {
        let receivers = if echo {
            u64::from(self.clients)
        } else {
            u64::from(self.clients - 1)
        };
        self.messages * receivers
    }

    /// The client whose receipt of sender `s`'s messages opens its window:
    /// itself when the server echoes, else the next client (none when alone).
    pub(crate) fn witness(&self, s: u32, echo: bool) -> Option<u32> {
        if echo {
            Some(s)
        } else if self.clients > 1 {
            Some((s + 1) % self.clients)
        } else {
            None
        }
    }

    /// Open loop: where in its interval sender `s` starts, so senders
    /// spread out instead of sending together.
    pub(crate) fn phase(&self, s: u32) -> f64 {
        f64::from(s) / f64::from(self.senders)
    }
}

/// Open loop: messages (of one sender at `rate` per second, starting
/// `phase` of an interval late) due `elapsed_us` after the start.
pub(crate) fn due_by(elapsed_us: u64, rate: f64, phase: f64) -> u64 {
    let slots = elapsed_us as f64 * rate / 1e6 - phase;
    if slots < 0.0 { 0 } else { slots as u64 + 1 }
}

/// Open loop: microseconds after the start at which message `i` is due.
pub(crate) fn scheduled_us(i: u64, rate: f64, phase: f64) -> u64 {
    ((i as f64 + phase) * 1e6 / rate).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(120);

    #[test]
    fn messages_are_split_evenly_and_offsets_tile_them() {
        let p = Plan::new(10, 3, 10, 32, None, T).unwrap();
        assert_eq!([p.count(0), p.count(1), p.count(2)], [4, 3, 3]);
        assert_eq!([p.offset(0), p.offset(1), p.offset(2)], [0, 4, 7]);
        assert_eq!(p.offset(2) + p.count(2), 10);
    }

    #[test]
    fn expected_counts_the_sender_only_when_the_server_echoes() {
        let p = Plan::new(100, 1, 10_000, 32, None, T).unwrap();
        assert_eq!(p.expected(true), 1_000_000);
        assert_eq!(p.expected(false), 990_000);
    }

    #[test]
    fn witness_is_the_sender_or_its_neighbour() {
        let p = Plan::new(3, 3, 9, 32, None, T).unwrap();
        assert_eq!(p.witness(1, true), Some(1));
        assert_eq!(p.witness(2, false), Some(0));
        let alone = Plan::new(1, 1, 9, 32, None, T).unwrap();
        assert_eq!(alone.witness(0, false), None);
    }

    #[test]
    fn window_shares_the_total_and_never_hits_zero() {
        assert_eq!(Plan::new(10, 1, 10, 32, None, T).unwrap().window, 256);
        assert_eq!(Plan::new(10, 10, 10, 32, None, T).unwrap().window, 25);
        assert_eq!(Plan::new(1000, 1000, 1000, 32, None, T).unwrap().window, 1);
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        assert!(matches!(
            Plan::new(2, 3, 10, 32, None, T),
            Err(PlanError::TooManySenders { .. })
        ));
        assert!(matches!(
            Plan::new(5, 3, 2, 32, None, T),
            Err(PlanError::TooFewMessages { .. })
        ));
        assert_eq!(
            Plan::new(10_000, 10_000, 1 << 40, 64, None, T),
            Err(PlanError::TooManyDeliveries)
        );
        assert_eq!(
            Plan::new(1, 1, 1, 32, Some(0.0), T),
            Err(PlanError::BadRate)
        );
        assert_eq!(
            Plan::new(1, 1, 1, 32, Some(f64::NAN), T),
            Err(PlanError::BadRate)
        );
    }

    #[test]
    fn size_must_carry_the_largest_stamp() {
        // 1e9 messages need 6 base-62 digits, 1e12 us need 7: 5 + 1 + 6 + 7 + 2.
        let long = Duration::from_secs(1_000_000);
        assert_eq!(
            Plan::new(1, 1, 1_000_000_000, 16, None, long),
            Err(PlanError::SizeTooSmall { size: 16, min: 21 })
        );
        assert!(Plan::new(100, 1, 10_000, 16, None, T).is_ok());
    }

    #[test]
    fn open_loop_schedule_and_due_count_agree() {
        let (rate, phase) = (1000.0, 0.5);
        assert_eq!(due_by(0, rate, phase), 0);
        for i in 0..50 {
            let t = scheduled_us(i, rate, phase);
            assert_eq!(due_by(t, rate, phase), i + 1, "message {i} at {t} us");
            assert_eq!(due_by(t - 1, rate, phase), i);
        }
        assert_eq!(due_by(1_000_000, 10.0, 0.0), 11);
    }
}
