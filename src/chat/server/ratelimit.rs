//! Per-client message rate limit: a token bucket (GCRA form) that says
//! whether a message goes now, goes after a short delay, or is dropped.
//! Delaying first keeps a fast typist's burst intact; dropping past
//! `max_delay` keeps a flooder from queueing unbounded work. Pure: the
//! caller passes `now`.

use std::time::{Duration, Instant};

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver now.
    Now,
    /// Deliver after this delay (messages stay in order).
    After(Duration),
    /// Drop it and tell the sender.
    Drop,
}

/// A token bucket in "theoretical arrival time" form.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Time per token (1 / rate); zero disables the limit.
    interval: Duration,
    /// How far ahead of `now` the schedule may run without delay (the burst).
    tolerance: Duration,
    /// How far beyond the burst a message may be delayed before it is dropped.
    max_delay: Duration,
    /// When the next message would conform with an empty bucket.
    tat: Option<Instant>,
}

impl RateLimiter {
    /// `rate` messages per second sustained, `burst` at once; `rate <= 0`
    /// means no limit.
    pub fn new(rate: f64, burst: u32, max_delay: Duration) -> Self {
        let interval = if rate > 0.0 && rate.is_finite() {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            max_delay,
            tat: None,
        }
    }

    /// Judges one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.interval.is_zero() {
            return Verdict::Now;
        }
        let tat = self.tat.unwrap_or(now).max(now);
        let earliest = tat.checked_sub(self.tolerance).unwrap_or(now);
        if earliest <= now {
            self.tat = Some(tat + self.interval);
            return Verdict::Now;
        }
        let wait = earliest - now;
        if wait > self.max_delay {
            return Verdict::Drop;
        }
        self.tat = Some(tat + self.interval);
        Verdict::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_passes_then_delays_then_drops() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10.0, 3, Duration::from_millis(250));
        assert_eq!(r.check(t0), Verdict::Now);
        assert_eq!(r.check(t0), Verdict::Now);
        assert_eq!(r.check(t0), Verdict::Now);
        assert_eq!(r.check(t0), Verdict::After(Duration::from_millis(100)));
        assert_eq!(r.check(t0), Verdict::After(Duration::from_millis(200)));
        assert_eq!(r.check(t0), Verdict::Drop);
        // Tokens come back with time.
        assert_eq!(r.check(t0 + Duration::from_secs(2)), Verdict::Now);
    }

    #[test]
    fn steady_rate_at_the_limit_is_never_delayed() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(5.0, 1, Duration::ZERO);
        for i in 0..20 {
            assert_eq!(r.check(t0 + Duration::from_millis(200 * i)), Verdict::Now);
        }
    }

    #[test]
    fn zero_rate_disables_the_limit() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(0.0, 1, Duration::ZERO);
        for _ in 0..1000 {
            assert_eq!(r.check(t0), Verdict::Now);
        }
    }
}
