//! The result of a run: one struct, printed as a table on stderr for people
//! or as one JSON object on stdout for scripts (`--json`).

use serde::Serialize;

use super::stats::{LatencyMs, thousands};

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// `native` or `raw`.
    pub mode: &'static str,
    /// Every client ran the secure channel (TLS 1.3 + passphrase) first.
    pub secure: bool,
    /// Whether the server delivers a message to its sender too (native:
    /// always; raw: found out by a probe before the run; `None` if the run
    /// ended before that).
    pub server_echoes: Option<bool>,
    /// `closed` (bounded window per sender) or `open` (`--rate`).
    pub load: &'static str,
    pub window_per_sender: Option<u64>,
    pub rate: Option<f64>,
    pub clients: u32,
    /// Clients connected (and, native, welcomed) when sending began.
    pub connected: u32,
    /// Time to connect every client (handshakes included), before sending:
    /// not part of `elapsed_s`.
    pub connect_s: Option<f64>,
    pub senders: u32,
    pub messages: u64,
    pub size: usize,
    /// Messages actually written to the server.
    pub sent: u64,
    /// Distinct messages received, over all clients.
    pub delivered: u64,
    pub expected: u64,
    /// From the first send to the last delivery.
    pub elapsed_s: f64,
    pub deliveries_per_s: f64,
    /// Send (open loop: scheduled send) to receipt.
    pub latency_ms: Option<LatencyMs>,
    pub errors: Errors,
    /// Lines without a message (`ncat`'s announcements); not errors.
    pub other_lines: u64,
    /// Why the run ended.
    pub stopped: String,
    pub server: Option<ServerUsage>,
}

/// What went wrong, counted.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Errors {
    pub connect_failures: u64,
    pub disconnects: u64,
    pub decode_errors: u64,
    pub kicked: u64,
    pub duplicates: u64,
    /// Raw mode: torn or mixed-up messages.
    pub garbled: u64,
}

impl Errors {
    pub(crate) fn total(&self) -> u64 {
        self.connect_failures
            + self.disconnects
            + self.decode_errors
            + self.kicked
            + self.duplicates
            + self.garbled
    }
}

/// The server's cost during the sending phase (`--server-pid`).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ServerUsage {
    pub pid: u32,
    pub cpu_s: Option<f64>,
    pub cpu_s_per_million: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    pub rss_kib: Option<u64>,
}

impl Report {
    /// The table for people.
    pub(crate) fn human(&self) -> String {
        let mut t = Vec::new();
        let load = match (self.rate, self.window_per_sender) {
            (Some(r), _) => format!("open loop at {r} msg/s"),
            (None, Some(w)) => format!("closed loop, window {w} per sender"),
            (None, None) => "closed loop".into(),
        };
        let echo = match self.server_echoes {
            Some(true) => "every client, senders included",
            Some(false) => "every client but the sender: server does not echo",
            None => "not known whether the server echoes",
        };
        let channel = if self.secure { ", secure channel" } else { "" };
        t.push(("mode", format!("{}{channel} ({load})", self.mode)));
        t.push((
            "clients",
            format!(
                "{} ({} connected)",
                thousands(self.clients.into()),
                thousands(self.connected.into())
            ),
        ));
        if let Some(c) = self.connect_s {
            t.push(("connecting", format!("{c:.3} s (not measured below)")));
        }
        t.push(("senders", thousands(self.senders.into())));
        t.push((
            "messages",
            format!(
                "{} x {} B ({} sent)",
                thousands(self.messages),
                self.size,
                thousands(self.sent)
            ),
        ));
        t.push((
            "delivered",
            format!(
                "{} / {} expected ({echo})",
                thousands(self.delivered),
                thousands(self.expected)
            ),
        ));
        t.push((
            "elapsed",
            format!("{:.3} s ({})", self.elapsed_s, self.stopped),
        ));
        t.push((
            "deliveries/s",
            thousands(self.deliveries_per_s.round() as u64),
        ));
        t.push(("latency", self.latency_text()));
        t.push(("errors", self.errors_text()));
        if let Some(s) = &self.server {
            t.push(("server cpu", server_cpu_text(s)));
            t.push(("server memory", server_memory_text(s)));
        }
        t.iter().map(|(k, v)| format!("{k:<14} {v}\n")).collect()
    }

    fn latency_text(&self) -> String {
        match &self.latency_ms {
            Some(l) => format!(
                "p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
                l.p50, l.p99, l.max
            ),
            None => "none measured".into(),
        }
    }

    fn errors_text(&self) -> String {
        let e = &self.errors;
        if e.total() == 0 {
            return "none".into();
        }
        let parts = [
            ("connect failures", e.connect_failures),
            ("disconnects", e.disconnects),
            ("decode errors", e.decode_errors),
            ("kicked", e.kicked),
            ("duplicates", e.duplicates),
            ("garbled", e.garbled),
        ];
        parts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{what} {}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn server_cpu_text(s: &ServerUsage) -> String {
    match (s.cpu_s, s.cpu_s_per_million) {
        (Some(c), Some(m)) => format!("{c:.2} s ({m:.3} s per million deliveries)"),
        (Some(c), None) => format!("{c:.2} s"),
        _ => format!("unknown (pid {})", s.pid),
    }
}

fn server_memory_text(s: &ServerUsage) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    match (s.peak_rss_kib, s.rss_kib) {
        (Some(p), Some(r)) => format!("peak {:.1} MiB, now {:.1} MiB", mib(p), mib(r)),
        _ => format!("unknown (pid {})", s.pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            mode: "raw",
            secure: false,
            connect_s: Some(0.25),
            server_echoes: Some(false),
            load: "closed",
            window_per_sender: Some(256),
            rate: None,
            clients: 100,
            connected: 100,
            senders: 1,
            messages: 10_000,
            size: 32,
            sent: 10_000,
            delivered: 990_000,
            expected: 990_000,
            elapsed_s: 1.5,
            deliveries_per_s: 660_000.0,
            latency_ms: Some(LatencyMs {
                p50: 0.5,
                p99: 2.0,
                max: 3.25,
            }),
            errors: Errors::default(),
            other_lines: 200,
            stopped: "complete".into(),
            server: Some(ServerUsage {
                pid: 7,
                cpu_s: Some(1.2),
                cpu_s_per_million: Some(1.212),
                peak_rss_kib: Some(10_240),
                rss_kib: Some(8_192),
            }),
        }
    }

    #[test]
    fn table_says_what_was_expected_and_why() {
        let t = sample().human();
        assert!(
            t.contains("990,000 / 990,000 expected (every client but the sender"),
            "{t}"
        );
        assert!(t.contains("660,000"), "{t}");
        assert!(t.contains("p99 2.000 ms"), "{t}");
        assert!(t.contains("errors         none"), "{t}");
        assert!(t.contains("peak 10.0 MiB"), "{t}");
    }

    #[test]
    fn table_lists_only_the_errors_that_happened() {
        let mut r = sample();
        r.errors.disconnects = 3;
        r.errors.garbled = 1200;
        let t = r.human();
        assert!(
            t.contains("errors         disconnects 3, garbled 1,200\n"),
            "{t}"
        );
    }

    #[test]
    fn json_has_the_fields_scripts_read() {
        let v = serde_json::to_value(sample()).unwrap();
        for key in [
            "delivered",
            "expected",
            "deliveries_per_s",
            "latency_ms",
            "errors",
            "server",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["server"]["cpu_s_per_million"], 1.212);
        assert_eq!(v["latency_ms"]["p99"], 2.0);
    }
}
