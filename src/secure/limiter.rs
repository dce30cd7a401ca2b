//! Per-address limit on passphrase guesses, with no I/O and no clock of its
//! own: the server asks [`AttemptLimiter::begin`] (with `now`) before it
//! answers a client's PAKE message, because that answer is what lets the
//! client test one passphrase guess. The attempt counts as failed at once,
//! so many parallel connections from one address cannot guess past the
//! limit; [`AttemptLimiter::succeeded`] forgets the address's failures.
//!
//! Policy (defaults): 5 attempts are free; from the 5th failure on, the
//! address is refused for 30 s, doubling with each further failure up to
//! 1 hour. An address quiet for a day starts afresh. IPv6 addresses count
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
    /// Run the PAKE; the attempt is already counted as a failure.
    Allowed,
    /// Do not run the PAKE; the address may try again after this long.
    Refused { retry_after: Duration },
}

/// What is remembered of one address.
#[derive(Debug, Clone)]
struct Record {
    /// Attempts since the last success (or since forgotten).
    failures: u32,
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

    /// Whether `ip` may make one passphrase attempt now; if so, counts it.
    pub fn begin(&mut self, ip: IpAddr, now: Instant) -> Admission {
        let key = address_key(ip);
        if !self.records.contains_key(&key) {
            self.make_room(now);
        }
        let policy = &self.policy;
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
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
        if now.saturating_duration_since(record.last) >= policy.forget_after {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
        if record.failures >= policy.free_attempts {
            record.locked_until = Some(now + lockout(policy, record.failures));
        }
        Admission::Allowed
    }

    /// The attempt from `ip` succeeded: forget its failures.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.records.remove(&address_key(ip));
    }

    /// Attempts counted against `ip` (tests, logs).
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
            r.locked_until.is_some_and(|u| u > now)
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

    #[test]
    fn refuses_after_five_failures_then_backs_off_exponentially() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(lim.begin(a, t0), Admission::Allowed);
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
            lim.begin(a, t2),
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
        assert_eq!(lim.begin(a, t3), Admission::Allowed);
        assert_eq!(
            lim.begin(a, t3),
            Admission::Refused {
                retry_after: Duration::from_secs(120)
            }
        );
        assert_eq!(lim.failures(a), 7);
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
            lim.begin(a, now);
        }
        lim.succeeded(a);
        assert_eq!(lim.failures(a), 0);
        for _ in 0..5 {
            lim.begin(b, now);
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
            lim.begin(a, now);
        }
        let later = now + Duration::from_secs(24 * 3600);
        assert_eq!(lim.begin(a, later), Admission::Allowed);
        assert_eq!(lim.failures(a), 1);
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let mut lim = AttemptLimiter::new(LimiterPolicy::default());
        let now = Instant::now();
        for i in 0..5 {
            lim.begin(ip(&format!("2001:db8::{i}")), now);
        }
        assert!(matches!(
            lim.begin(ip("2001:db8::ffff:1"), now),
            Admission::Refused { .. }
        ));
        assert_eq!(lim.begin(ip("2001:db8:0:1::1"), now), Admission::Allowed);
        lim.begin(ip("::ffff:192.0.2.9"), now);
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
            lim.begin(ip(&format!("192.0.2.{i}")), t0 + Duration::from_secs(i));
            assert!(lim.tracked() <= 3);
        }
        assert_eq!(lim.failures(ip("192.0.2.9")), 1);
        assert_eq!(lim.failures(ip("192.0.2.0")), 0);
    }
}
