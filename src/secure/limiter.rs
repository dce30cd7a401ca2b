//! Per-address limit on passphrase guesses, with no I/O and no clock of its
//! own: the server asks [`AttemptLimiter::begin`] (with `now`) before it
//! answers a client's PAKE message, because that answer is what lets the
//! client test one passphrase guess, and reports how the attempt ended with
//! [`AttemptLimiter::finish`] (an attempt that never finishes, such as a
//! client gone after the server's answer, is a failure: the caller's guard
//! reports it so). Attempts in flight count against the address's allowance
//! as if they had failed, so parallel connections cannot guess past the
//! limit; but an address whose allowance is only taken by attempts in flight
//! is told to wait for them ([`Admission::Busy`]), not locked out — a class
//! behind one NAT joining at once is many right passphrases, not guesses.
//! A success forgets the address's failures.
//!
//! Policy (defaults): 5 attempts are free; from the 5th failure on, the
//! address is refused for 30 s, doubling with each further failure up to
//! 1 hour, and after a lockout it gets one attempt at a time. An address quiet for a day starts afresh. IPv6 addresses count
//! per /64 (one host usually has a whole /64); IPv4-mapped IPv6 counts as
//! IPv4. At most `max_tracked` addresses are remembered (about 64 bytes
//! each); past that, the least recently seen is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The limits; every field is a setting.
#[derive(Debug, Clone)]
pub struct LimiterPolicy {
    /// Attempts allowed before the first lockout.
    pub free_attempts: u32,
    /// Lockout after `free_attempts` failures; doubles with each more.
    pub base_lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
    /// An address with no attempt for this long starts from zero.
    pub forget_after: Duration,
    /// Addresses remembered at once (memory bound).
    pub max_tracked: usize,
}

impl Default for LimiterPolicy {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            base_lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(3600),
            forget_after: Duration::from_secs(24 * 3600),
            max_tracked: 10_000,
        }
    }
}

/// The answer to [`AttemptLimiter::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Run the PAKE, then [`AttemptLimiter::finish`] the attempt.
    Allowed,
    /// The address's allowance is taken by attempts in flight: ask again
    /// when one of them finishes.
    Busy,
    /// Do not run the PAKE; the address may try again after this long.
    Refused { retry_after: Duration },
}

/// What is remembered of one address.
#[derive(Debug, Clone)]
struct Record {
    /// Failed attempts since the last success (or since forgotten).
    failures: u32,
    /// Attempts begun and not yet finished.
    in_flight: u32,
    /// Refused until then.
    locked_until: Option<Instant>,
    /// The last attempt, for forgetting and eviction.
    last: Instant,
}

/// Failed attempts per address.
#[derive(Debug)]
pub struct AttemptLimiter {
    /// The limits.
    policy: LimiterPolicy,
    /// One record per address key (IPv4, or IPv6 /64).
    records: HashMap<IpAddr, Record>,
}

impl AttemptLimiter {
    /// An empty limiter.
    pub fn new(policy: LimiterPolicy) -> Self {
        Self {
            policy,
            records: HashMap::new(),
        }
    }

    /// Whether `ip` may make one passphrase attempt now; if so, it is in
    /// flight until [`finish`](Self::finish).
    pub fn begin(&mut self, ip: IpAddr, now: Instant) -> Admission {
        let key = address_key(ip);
        if !self.records.contains_key(&key) {
            self.make_room(now);
        }
        let policy = &self.policy;
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
            in_flight: 0,
            locked_until: None,
            last: now,
        });
        if let Some(until) = record.locked_until {
            if now < until {
                return Admission::Refused {
                    retry_after: until - now,
                };
            }
            record.locked_until = None;
        }
        if record.in_flight == 0
            && now.saturating_duration_since(record.last) >= policy.forget_after
        {
            record.failures = 0;
        }
        let allowance = policy.free_attempts.saturating_sub(record.failures).max(1);
        if record.in_flight >= allowance {
            return Admission::Busy;
        }
        record.in_flight += 1;
        record.last = now;
        Admission::Allowed
    }

    /// How an attempt [`begin`](Self::begin) allowed ended. A success
    /// forgets the address's failures; a failure may lock it out.
    pub fn finish(&mut self, ip: IpAddr, succeeded: bool, now: Instant) {
        let key = address_key(ip);
        if succeeded {
            if let Some(r) = self.records.get_mut(&key) {
                r.failures = 0;
                r.in_flight = r.in_flight.saturating_sub(1);
                if r.in_flight == 0 && r.locked_until.is_none() {
                    self.records.remove(&key);
                }
            }
            return;
        }
        if !self.records.contains_key(&key) {
            // Evicted while in flight: the failure still counts.
            self.make_room(now);
        }
        let policy = &self.policy;
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
            in_flight: 1,
            locked_until: None,
            last: now,
        });
        record.in_flight = record.in_flight.saturating_sub(1);
        record.failures = record.failures.saturating_add(1);
        record.last = now;
        if record.failures >= policy.free_attempts {
            record.locked_until = Some(now + lockout(policy, record.failures));
        }
    }

    /// Failed attempts counted against `ip` (tests, logs).
    pub fn failures(&self, ip: IpAddr) -> u32 {
        self.records.get(&address_key(ip)).map_or(0, |r| r.failures)
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.records.len()
    }

    /// Before adding an address when full: drop forgotten records, then
    /// the least recently seen one.
    fn make_room(&mut self, now: Instant) {
        if self.records.len() < self.policy.max_tracked {
            return;
        }
        let forget = self.policy.forget_after;
        self.records.retain(|_, r| {
            r.in_flight > 0
                || r.locked_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(r.last) < forget
        });
        while self.records.len() >= self.policy.max_tracked.max(1) {
            let Some(oldest) = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.records.remove(&oldest);
        }
    }
}

/// `base * 2^(failures - free)`, at most `max`.
fn lockout(policy: &LimiterPolicy, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(policy.free_attempts).min(31);
    policy
        .base_lockout
        .saturating_mul(1u32 << doublings)
        .min(policy.max_lockout)
}

/// IPv4 as is (IPv4-mapped IPv6 too); IPv6 cut to its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// One attempt from `a` at `now` that fails, as a guesser's does.
    fn guess(lim: &mut AttemptLimiter, a: IpAddr, now: Instant) -> Admission {
        let adm = lim.begin(a, now);
        if adm == Admission::Allowed {
            lim.finish(a, false, now);
        }
        adm
    }

    #[test]
    fn refuses_after_five_failures_then_backs_off_exponentially() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(guess(&mut lim, a, t0), Admission::Allowed);
        }
        assert_eq!(
            lim.begin(a, t0),
            Admission::Refused {
                retry_after: Duration::from_secs(30)
            }
        );
        let t1 = t0 + Duration::from_secs(29);
        assert_eq!(
            lim.begin(a, t1),
            Admission::Refused {
                retry_after: Duration::from_secs(1)
            }
        );
        let t2 = t0 + Duration::from_secs(30);
        assert_eq!(
            guess(&mut lim, a, t2),
            Admission::Allowed,
            "one more guess after the lockout"
        );
        assert_eq!(
            lim.begin(a, t2),
            Admission::Refused {
                retry_after: Duration::from_secs(60)
            }
        );
        let t3 = t2 + Duration::from_secs(60);
        assert_eq!(guess(&mut lim, a, t3), Admission::Allowed);
        assert_eq!(
            lim.begin(a, t3),
            Admission::Refused {
                retry_after: Duration::from_secs(120)
            }
        );
        assert_eq!(lim.failures(a), 7);
    }

    #[test]
    fn attempts_in_flight_take_the_allowance_and_make_others_wait() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(lim.begin(a, now), Admission::Allowed);
        }
        // Five guesses at once are the whole allowance: the sixth waits.
        assert_eq!(lim.begin(a, now), Admission::Busy);
        assert_eq!(lim.failures(a), 0, "nobody failed yet");
        lim.finish(a, true, now);
        assert_eq!(
            lim.begin(a, now),
            Admission::Allowed,
            "a success frees a place"
        );
        assert_eq!(lim.begin(a, now), Admission::Busy);
        for _ in 0..5 {
            lim.finish(a, false, now);
        }
        assert!(matches!(lim.begin(a, now), Admission::Refused { .. }));
    }

    #[test]
    fn many_right_passphrases_from_one_address_are_never_locked_out() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        // 200 clients behind one address, five handshakes at a time.
        for _ in 0..40 {
            for _ in 0..5 {
                assert_eq!(lim.begin(a, now), Admission::Allowed);
            }
            assert_eq!(lim.begin(a, now), Admission::Busy);
            for _ in 0..5 {
                lim.finish(a, true, now);
            }
        }
        assert_eq!(lim.failures(a), 0);
        assert_eq!(lim.tracked(), 0, "nothing left to remember");
    }

    #[test]
    fn after_a_lockout_one_attempt_at_a_time() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            guess(&mut lim, a, t0);
        }
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(lim.begin(a, t1), Admission::Allowed);
        assert_eq!(lim.begin(a, t1), Admission::Busy);
    }

    #[test]
    fn lockout_is_capped() {
        let policy = LimiterPolicy::default();
        assert_eq!(lockout(&policy, 5), Duration::from_secs(30));
        assert_eq!(lockout(&policy, 12), Duration::from_secs(3600));
        assert_eq!(lockout(&policy, u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn success_forgets_failures_and_other_addresses_are_unaffected() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let now = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..4 {
            guess(&mut lim, a, now);
        }
        assert_eq!(lim.begin(a, now), Admission::Allowed);
        lim.finish(a, true, now);
        assert_eq!(lim.failures(a), 0);
        for _ in 0..5 {
            guess(&mut lim, b, now);
        }
        assert!(matches!(lim.begin(b, now), Admission::Refused { .. }));
        assert_eq!(lim.begin(a, now), Admission::Allowed);
    }

    #[test]
    fn quiet_address_starts_afresh() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            guess(&mut lim, a, now);
        }
        let later = now + Duration::from_secs(24 * 3600);
        assert_eq!(guess(&mut lim, a, later), Admission::Allowed);
        assert_eq!(lim.failures(a), 1);
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let now = Instant::now();
        for i in 0..5 {
            guess(&mut lim, ip(&format!("2001:db8::{i}")), now);
        }
        assert!(matches!(
            lim.begin(ip("2001:db8::ffff:1"), now),
            Admission::Refused { .. }
        ));
        assert_eq!(
            guess(&mut lim, ip("2001:db8:0:1::1"), now),
            Admission::Allowed
        );
        guess(&mut lim, ip("::ffff:192.0.2.9"), now);
        assert_eq!(lim.failures(ip("192.0.2.9")), 1);
    }

    #[test]
    fn memory_is_bounded_by_dropping_the_least_recent() {
        let policy = LimiterPolicy {
            max_tracked: 3,
            ..LimiterPolicy::default()
        };
        let mut lim = AttemptLimiter::new(policy);
        let t0 = Instant::now();
        for i in 0..10u64 {
            guess(
                &mut lim,
                ip(&format!("192.0.2.{i}")),
                t0 + Duration::from_secs(i),
            );
            assert!(lim.tracked() <= 3);
        }
        assert_eq!(lim.failures(ip("192.0.2.9")), 1);
        assert_eq!(lim.failures(ip("192.0.2.0")), 0);
    }
}
