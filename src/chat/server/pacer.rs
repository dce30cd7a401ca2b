//! Applies a client's rate limit to its commands without blocking its
//! reader: commands over the burst wait in a short queue with their due time,
//! and past the allowed delay they are dropped (the caller tells the client).
//! Order is kept: once anything waits, everything after it waits behind it.
//! Pure: the caller passes `now` and asks what is due.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::ratelimit::{RateLimiter, Verdict};

/// How long a message may be held back before it is dropped instead.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// At most one "message dropped" notice per this interval.
const NOTICE_EVERY: Duration = Duration::from_secs(1);

/// What to do with a command offered to the pacer.
#[derive(Debug, PartialEq, Eq)]
pub enum Paced<T> {
    /// Run it now.
    Now(T),
    /// Held; it comes back from [`Pacer::due`].
    Held,
    /// Dropped; `notify` says whether to tell the client now.
    Dropped { notify: bool },
}

/// The rate limit plus the queue of held commands.
#[derive(Debug)]
pub struct Pacer<T> {
    limiter: RateLimiter,
    /// Held commands and when each may run, in order.
    held: VecDeque<(Instant, T)>,
    /// When the last drop notice was sent.
    last_notice: Option<Instant>,
}

impl<T> Pacer<T> {
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            limiter: RateLimiter::new(rate, burst, MAX_DELAY),
            held: VecDeque::new(),
            last_notice: None,
        }
    }

    /// Offers one command arriving at `now`.
    pub fn offer(&mut self, cmd: T, now: Instant) -> Paced<T> {
        match self.limiter.check(now.into_std()) {
            Verdict::Now if self.held.is_empty() => Paced::Now(cmd),
            Verdict::Now => {
                self.held.push_back((now, cmd));
                Paced::Held
            }
            Verdict::After(d) => {
                let due = self.held.back().map_or(now + d, |(t, _)| (*t).max(now + d));
                self.held.push_back((due, cmd));
                Paced::Held
            }
            Verdict::Drop => {
                let notify = self
                    .last_notice
                    .is_none_or(|t| now.duration_since(t) >= NOTICE_EVERY);
                if notify {
                    self.last_notice = Some(now);
                }
                Paced::Dropped { notify }
            }
        }
    }

    /// When the next held command is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|(t, _)| *t)
    }

    /// Takes the held commands due at `now`, in order.
    pub fn due(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(t, _)| *t <= now) {
            out.extend(self.held.pop_front().map(|(_, c)| c));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_passes_then_commands_are_held_in_order_then_dropped() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10.0, 2);
        assert_eq!(p.offer(1, t0), Paced::Now(1));
        assert_eq!(p.offer(2, t0), Paced::Now(2));
        for i in 3..=22 {
            assert_eq!(p.offer(i, t0), Paced::Held, "{i}");
        }
        assert_eq!(p.offer(23, t0), Paced::Dropped { notify: true });
        assert_eq!(p.offer(24, t0), Paced::Dropped { notify: false });
        assert_eq!(p.due(t0 + Duration::from_millis(250)), vec![3, 4]);
        assert_eq!(
            p.due(t0 + Duration::from_secs(3)),
            (5..=22).collect::<Vec<_>>()
        );
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn unlimited_pacer_never_holds() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0.0, 1);
        for i in 0..10_000 {
            assert_eq!(p.offer(i, t0), Paced::Now(i));
        }
    }
}
