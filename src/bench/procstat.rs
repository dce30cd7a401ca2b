//! What the server process cost during a run, read from `/proc/PID` (Linux
//! only; elsewhere every reading is `None` and the report leaves it out):
//! CPU time, and peak and current resident memory from `status`. The
//! parsers are pure and unit tested.
//!
//! CPU time comes from each thread's `schedstat` (nanoseconds on the CPU),
//! summed: a 100-client run lasts a fraction of a second and uses a few
//! hundredths of a CPU-second, which `stat`'s utime + stime (10 ms ticks)
//! cannot resolve. A thread that ended during the run takes its time with
//! it from `schedstat`, so then the reading falls back to the ticks.

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields that follow start after its *last* ')'. utime and stime are
    // fields 14 and 15, so the 12th and 13th after it (field 3 is first).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Nanoseconds on the CPU, the first field of `/proc/PID/task/TID/schedstat`.
pub(crate) fn parse_schedstat_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// The process's CPU use at one moment: clock ticks of the whole process
/// and nanoseconds of each live thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpuReading {
    pub ticks: u64,
    /// (thread id, nanoseconds), sorted by thread id.
    pub threads: Vec<(u32, u64)>,
}

impl CpuReading {
    /// CPU seconds used between `self` and the later reading `after`:
    /// nanosecond precision when every thread of `self` is still there
    /// (threads born since count whole), else the ticks.
    pub(crate) fn seconds_until(&self, after: &CpuReading, ticks_per_second: u64) -> f64 {
        let mut ns = 0u64;
        for &(tid, t) in &after.threads {
            let before = match self.threads.binary_search_by_key(&tid, |&(id, _)| id) {
                Ok(i) => self.threads[i].1,
                Err(_) => 0,
            };
            ns += t.saturating_sub(before);
        }
        let all_alive = self.threads.iter().all(|(tid, _)| {
            after
                .threads
                .binary_search_by_key(tid, |&(id, _)| id)
                .is_ok()
        });
        if all_alive && !self.threads.is_empty() {
            ns as f64 / 1e9
        } else {
            after.ticks.saturating_sub(self.ticks) as f64 / ticks_per_second.max(1) as f64
        }
    }
}

/// A `kB` value such as `VmHWM:    12345 kB` from `/proc/PID/status`.
pub(crate) fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Memory of the server process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Memory {
    /// Peak resident set (`VmHWM`).
    pub peak_kib: u64,
    /// Resident set now (`VmRSS`).
    pub rss_kib: u64,
}

/// The server process a run watches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerProcess {
    pub pid: u32,
}

#[cfg(target_os = "linux")]
impl ServerProcess {
    /// CPU ticks used so far, or `None` if the process is gone.
    fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        parse_cpu_ticks(&stat)
    }

    /// CPU use now, or `None` if the process is gone.
    pub(crate) fn cpu(&self) -> Option<CpuReading> {
        let ticks = self.cpu_ticks()?;
        let mut threads = Vec::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) {
            for entry in dir.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                let path = entry.path().join("schedstat");
                if let Some(ns) = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|s| parse_schedstat_ns(&s))
                {
                    threads.push((tid, ns));
                }
            }
        }
        threads.sort_unstable();
        Some(CpuReading { ticks, threads })
    }

    /// Ticks per second of those readings (`_SC_CLK_TCK`).
    pub(crate) fn ticks_per_second() -> u64 {
        rustix::param::clock_ticks_per_second()
    }

    pub(crate) fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        Some(Memory {
            peak_kib: parse_status_kib(&status, "VmHWM")?,
            rss_kib: parse_status_kib(&status, "VmRSS")?,
        })
    }
}

#[cfg(not(target_os = "linux"))]
impl ServerProcess {
    pub(crate) fn cpu(&self) -> Option<CpuReading> {
        None
    }

    pub(crate) fn ticks_per_second() -> u64 {
        100
    }

    pub(crate) fn memory(&self) -> Option<Memory> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (soquete) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                        731 269 0 0 20 0 3 0 98765 123456789 2048 18446744073709551615";

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        assert_eq!(parse_cpu_ticks(STAT), Some(1000));
    }

    #[test]
    fn a_command_name_with_spaces_and_parens_does_not_shift_fields() {
        let odd = STAT.replace("(soquete)", "(my (odd) server)");
        assert_eq!(parse_cpu_ticks(&odd), Some(1000));
    }

    #[test]
    fn truncated_stat_is_none() {
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_values_in_kib() {
        let status =
            "Name:\tsoquete\nVmPeak:\t  99999 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(6789));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn schedstat_gives_nanoseconds() {
        assert_eq!(parse_schedstat_ns("117370 3203216 2\n"), Some(117370));
        assert_eq!(parse_schedstat_ns(""), None);
    }

    fn reading(ticks: u64, threads: &[(u32, u64)]) -> CpuReading {
        CpuReading {
            ticks,
            threads: threads.to_vec(),
        }
    }

    #[test]
    fn cpu_time_sums_threads_in_nanoseconds() {
        let a = reading(10, &[(1, 1_000_000), (2, 5_000_000)]);
        // Thread 3 was born during the run: all its time counts.
        let b = reading(12, &[(1, 3_000_000), (2, 6_000_000), (3, 500_000)]);
        assert!((a.seconds_until(&b, 100) - 0.0035).abs() < 1e-12);
    }

    #[test]
    fn a_thread_that_ended_sends_the_reading_back_to_ticks() {
        let a = reading(10, &[(1, 1_000_000), (2, 5_000_000)]);
        let b = reading(13, &[(1, 3_000_000)]);
        assert!((a.seconds_until(&b, 100) - 0.03).abs() < 1e-12);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_very_process() {
        let me = ServerProcess {
            pid: std::process::id(),
        };
        assert!(me.cpu_ticks().is_some());
        let cpu = me.cpu().unwrap();
        assert!(cpu.threads.iter().any(|&(_, ns)| ns > 0));
        let m = me.memory().unwrap();
        assert!(m.peak_kib >= m.rss_kib && m.rss_kib > 0);
        assert!(ServerProcess::ticks_per_second() > 0);
    }
}
