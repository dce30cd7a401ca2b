//! Stderr, captured while the terminal chat owns the screen: file
//! descriptor 2 is pointed at a pipe, a thread reads its lines (bounded in
//! length and in number queued; extra lines are dropped, never blocking a
//! writer) and hands them to the chat, which shows them in the status
//! window. [`stop`] points stderr back at the terminal.
//!
//! Unix only; elsewhere nothing is captured and such lines are drawn over
//! until the next redraw (Ctrl-L).

use tokio::sync::mpsc;

/// Lines queued for the chat.
const QUEUE: usize = 64;
/// Longest captured line kept, in bytes.
const MAX_LINE: usize = 2048;

#[cfg(unix)]
mod imp {
    use std::io::{BufRead, BufReader, Read};
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::Mutex;

    use tokio::sync::mpsc;

    use super::{MAX_LINE, QUEUE};

    /// The real stderr, kept while captured.
    static SAVED: Mutex<Option<OwnedFd>> = Mutex::new(None);

    pub fn start() -> Option<mpsc::Receiver<String>> {
        let (read, write) = rustix::pipe::pipe().ok()?;
        let saved = rustix::io::dup(std::io::stderr().as_fd()).ok()?;
        rustix::stdio::dup2_stderr(&write).ok()?;
        drop(write); // fd 2 is now the only write end
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
        let (tx, rx) = mpsc::channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("stderr".into())
            .spawn(move || pump(std::fs::File::from(read), &tx));
        spawned.ok()?;
        Some(rx)
    }

    fn pump(read: std::fs::File, tx: &mpsc::Sender<String>) {
        let mut r = BufReader::new(read);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return, // every write end closed
                Ok(_) => {}
            }
            if buf.last() != Some(&b'\n') {
                // Too long: skip the rest of the line.
                let mut rest = Vec::new();
                let _ = r.read_until(b'\n', &mut rest);
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            if !line.is_empty() {
                let _ = tx.try_send(line);
            }
        }
    }

    pub fn stop() {
        let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(fd) = saved {
            let _ = rustix::stdio::dup2_stderr(&fd);
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use tokio::sync::mpsc;

    pub fn start() -> Option<mpsc::Receiver<String>> {
        None
    }

    pub fn stop() {}
}

/// Points stderr at a pipe; its lines arrive on the returned channel.
pub fn start() -> Option<mpsc::Receiver<String>> {
    imp::start()
}

/// Points stderr back where it was. Safe to call when not capturing.
pub fn stop() {
    imp::stop()
}

/// Removes ANSI escape sequences (`ESC [ … letter`, and a lone `ESC x`)
/// that a log line coloured for the terminal carries.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(
            strip_ansi("\x1b[2m2026\x1b[0m \x1b[32m INFO\x1b[0m hi"),
            "2026  INFO hi"
        );
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("cut\x1b["), "cut");
    }
}
