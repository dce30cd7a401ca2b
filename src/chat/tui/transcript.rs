//! `chat join --log FILE`: a transcript of what the chat showed, one line
//! per message or event, each stamped with the local date and time, in
//! plain text (already sanitized). Appended to, flushed after each batch,
//! so `tail -f` follows it.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

/// An open transcript file.
pub struct Transcript {
    out: BufWriter<File>,
}

impl Transcript {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?;
        Ok(Self {
            out: BufWriter::new(file),
        })
    }

    /// Appends lines (each must be clean text without a newline) and
    /// flushes.
    pub fn write<I, S>(&mut self, lines: I) -> std::io::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        for line in lines {
            writeln!(self.out, "{stamp} {}", line.as_ref())?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_with_a_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.log");
        Transcript::open(&path)
            .unwrap()
            .write(["[#lobby] <ana> oi"])
            .unwrap();
        Transcript::open(&path).unwrap().write(["second"]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" [#lobby] <ana> oi"), "{text}");
        // YYYY-MM-DD HH:MM:SS
        assert_eq!(lines[1].find(" second"), Some(19));
    }
}
