//! What the server process cost during a run, read from `/proc/PID` (Linux
//! only; elsewhere every reading is `None` and the report leaves it out):
//! CPU ticks from `stat` (utime + stime), peak and current resident memory
//! from `status`. The parsers are pure and unit tested.

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
    pub(crate) fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        parse_cpu_ticks(&stat)
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
    pub(crate) fn cpu_ticks(&self) -> Option<u64> {
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

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_very_process() {
        let me = ServerProcess {
            pid: std::process::id(),
        };
        assert!(me.cpu_ticks().is_some());
        let m = me.memory().unwrap();
        assert!(m.peak_kib >= m.rss_kib && m.rss_kib > 0);
        assert!(ServerProcess::ticks_per_second() > 0);
    }
}
