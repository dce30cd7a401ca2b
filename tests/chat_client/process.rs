//! A `soquete chat join` process with live stdin, stdout and stderr, for
//! tests that talk to it step by step. Every wait is bounded by [`LIMIT`].

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{bin, wait_timeout};

/// Longest wait for any one thing.
pub const LIMIT: Duration = Duration::from_secs(10);

pub struct Join {
    pub child: Child,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    /// Every stdout / stderr line read so far.
    pub seen_out: Vec<String>,
    pub seen_err: Vec<String>,
}

impl Join {
    pub fn start(args: &[&str]) -> Join {
        let mut child = Command::new(bin())
            .args(["chat", "join"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn soquete chat join");
        let out = pump(child.stdout.take().unwrap());
        let err = pump(child.stderr.take().unwrap());
        Join {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            seen_out: Vec::new(),
            seen_err: Vec::new(),
        }
    }

    pub fn line(&mut self, s: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{s}").expect("write to client stdin");
        stdin.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn expect_out(&mut self, needle: &str) -> String {
        match wait_line(&self.out, &mut self.seen_out, needle) {
            Some(line) => line,
            None => {
                let err = self.drain_err();
                panic!(
                    "no stdout line with {needle:?}; stdout: {:?}; stderr: {err:?}",
                    self.seen_out
                )
            }
        }
    }

    pub fn expect_err(&mut self, needle: &str) -> String {
        wait_line(&self.err, &mut self.seen_err, needle).unwrap_or_else(|| {
            panic!(
                "no stderr line with {needle:?}; stderr: {:?}",
                self.seen_err
            )
        })
    }

    pub fn drain_err(&mut self) -> Vec<String> {
        self.seen_err.extend(self.err.try_iter());
        self.seen_err.clone()
    }

    /// Waits for exit; then every line is in `seen_out` / `seen_err`.
    pub fn finish(&mut self) -> ExitStatus {
        let status = wait_timeout(&mut self.child, LIMIT).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("chat join did not exit; stderr: {:?}", self.drain_err())
        });
        let deadline = Instant::now() + Duration::from_secs(2);
        for (rx, seen) in [
            (&self.out, &mut self.seen_out),
            (&self.err, &mut self.seen_err),
        ] {
            while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                seen.push(l);
            }
        }
        status
    }
}

impl Drop for Join {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pump(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn wait_line(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
) -> Option<String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = rx.recv_timeout(left).ok()?;
        seen.push(line.clone());
        if line.contains(needle) {
            return Some(line);
        }
    }
}
