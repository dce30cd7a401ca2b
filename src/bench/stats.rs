//! The numbers of a report, computed from raw counts: latency percentiles
//! from the histogram, rates, CPU time per million deliveries. Pure
//! functions, so each is unit tested on known inputs.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram keeps exactly, in microseconds (one hour);
/// larger values are recorded as this.
pub(crate) const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Percentiles of a microsecond histogram, in ms; `None` when empty.
pub(crate) fn latency_ms(h: &Histogram<u64>) -> Option<LatencyMs> {
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(LatencyMs {
        p50: ms(h.value_at_quantile(0.50)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    })
}

/// `count` per second over `elapsed`; 0 for an empty interval.
pub(crate) fn per_second(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 { count as f64 / s } else { 0.0 }
}

/// CPU seconds spent per million deliveries; `None` without deliveries.
pub(crate) fn per_million(cpu_s: f64, deliveries: u64) -> Option<f64> {
    (deliveries > 0).then(|| cpu_s * 1e6 / deliveries as f64)
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let l = latency_ms(&h).unwrap();
        assert!((l.p50 - 0.5).abs() < 0.001, "{l:?}");
        assert!((l.p99 - 0.99).abs() < 0.001, "{l:?}");
        assert!((l.max - 1.0).abs() < 0.001, "{l:?}");
    }

    #[test]
    fn empty_histogram_has_no_latency() {
        assert_eq!(latency_ms(&new_histogram()), None);
    }

    #[test]
    fn huge_latencies_saturate_instead_of_failing() {
        let mut h = new_histogram();
        h.saturating_record(u64::MAX);
        assert!(latency_ms(&h).unwrap().max >= 3_600_000.0 * 0.999);
    }

    #[test]
    fn rates_and_cpu_per_million() {
        assert_eq!(
            per_second(1_000_000, Duration::from_millis(500)),
            2_000_000.0
        );
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        assert_eq!(per_million(2.5, 5_000_000), Some(0.5));
        assert_eq!(per_million(2.5, 0), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
