//! What a person sees while files move: on a terminal, a bar per file and
//! a total (indicatif) with rate and ETA; nothing when stderr is not a
//! terminal or with `--quiet`; and one summary line at the end (files,
//! bytes, seconds, MB/s, verified). Also byte and time formatting.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::transfer::Tally;
use crate::sanitize::for_terminal;

/// Counts and bars of one `get` or `put`.
pub struct Progress {
    /// The bars, when shown.
    multi: Option<MultiProgress>,
    /// The total bar, when shown.
    total: Option<ProgressBar>,
    /// No summary line either.
    quiet: bool,
    started: Instant,
    /// Files transferred and verified.
    pub files: u64,
    /// Bytes moved over the network.
    pub bytes: u64,
    /// Files skipped because identical.
    pub skipped: u64,
}

impl Progress {
    /// Bars only when stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool, total_bytes: u64) -> Self {
        let show = !quiet && std::io::stderr().is_terminal();
        let (multi, total) = if show {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(total_bytes));
            total.set_style(style("total"));
            (Some(multi), Some(total))
        } else {
            (None, None)
        };
        Self {
            multi,
            total,
            quiet,
            started: Instant::now(),
            files: 0,
            bytes: 0,
            skipped: 0,
        }
    }

    /// A bar for one file of `size` bytes, `from` already there.
    pub fn file(&self, name: &str, size: u64, from: u64) -> FileBar {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.insert_before(
                self.total.as_ref().expect("total with multi"),
                ProgressBar::new(size),
            );
            b.set_style(style("file"));
            b.set_message(short(name));
            b.set_position(from);
            b
        });
        if let Some(t) = &self.total {
            t.inc(from);
        }
        FileBar {
            bar,
            total: self.total.clone(),
            moved: 0,
        }
    }

    /// A file is done: count it and its bytes.
    pub fn finish_file(&mut self, bar: FileBar) {
        self.files += 1;
        self.bytes += bar.moved;
        if let Some(b) = bar.bar {
            b.finish_and_clear();
        }
    }

    /// A file moved by someone else (the upload writer) is done.
    pub fn count_file(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }

    /// A skipped file still counts toward the total bar.
    pub fn skip(&mut self, size: u64) {
        self.skipped += 1;
        if let Some(t) = &self.total {
            t.inc(size);
        }
    }

    /// Prints a line above the bars (or plainly) unless quiet.
    pub fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// Clears the bars and prints the summary line (unless quiet). A run
    /// that `failed` without moving or skipping a single file prints none:
    /// its error line says everything.
    pub fn summary(&self, verb: &str, verified: bool, failed: bool) {
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
        if self.quiet || (failed && self.files == 0 && self.skipped == 0) {
            return;
        }
        eprintln!("{}", self.summary_line(verb, verified));
    }

    /// `2 files received, 1.5 MiB in 0.31 s (4.84 MB/s), verified (BLAKE3); 1 identical skipped`
    pub fn summary_line(&self, verb: &str, verified: bool) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let plural = if self.files == 1 { "" } else { "s" };
        let mut line = format!(
            "{} file{plural} {verb}, {} in {secs:.2} s ({:.2} MB/s)",
            self.files,
            human_bytes(self.bytes),
            self.bytes as f64 / secs / 1e6
        );
        line.push_str(if verified {
            ", verified (BLAKE3)"
        } else {
            ", not verified (the server sends no hash)"
        });
        if self.skipped > 0 {
            line.push_str(&format!("; {} identical skipped", self.skipped));
        }
        line
    }
}

fn style(kind: &str) -> ProgressStyle {
    let template = if kind == "total" {
        "{prefix}total [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
    } else {
        "  {msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// A file name cut to fit a bar, made safe for the terminal.
fn short(name: &str) -> String {
    let safe = for_terminal(name);
    let n = safe.chars().count();
    if n <= 30 {
        safe
    } else {
        let tail: String = safe.chars().skip(n - 29).collect();
        format!("…{tail}")
    }
}

/// One file's bar; counts the bytes moved.
pub struct FileBar {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    /// Bytes moved for this file.
    pub moved: u64,
}

impl FileBar {
    /// Clears this file's bar.
    pub fn done(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

impl Tally for FileBar {
    fn add(&mut self, n: u64) {
        self.moved += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(t) = &self.total {
            t.inc(n);
        }
    }
}

/// `1.5 MiB`, `812 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `2024-05-01 13:45` (UTC) from milliseconds since the epoch.
pub fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_times_format() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(timestamp(0), "1970-01-01 00:00");
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14 22:13");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00");
    }

    #[test]
    fn summary_names_files_bytes_rate_and_verification() {
        let mut p = Progress::new(true, 10);
        let mut bar = p.file("a", 10, 0);
        bar.add(10);
        p.finish_file(bar);
        p.skip(3);
        let line = p.summary_line("received", true);
        assert!(line.starts_with("1 file received, 10 B in "), "{line}");
        assert!(line.contains("MB/s), verified (BLAKE3); 1 identical skipped"));
    }
}
