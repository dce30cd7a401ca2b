//! Helpers for integration tests: run the real `soquete` binary (or a Python
//! peer), find the port it printed in `listening on`, and stop it with
//! SIGINT. Every wait is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};

pub mod native;
pub mod secure;
pub mod tls;
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_soquete")
}

/// A running server process; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines of stderr after `listening on`, as they arrive.
    pub stderr_lines: mpsc::Receiver<String>,
}

impl Server {
    /// Runs `soquete ARGS…` and waits (≤ 10 s) for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        Server::spawn(cmd)
    }

    /// Runs a Python peer script from `tests/peers` with ARGS.
    pub fn python(script: &str, args: &[&str]) -> Server {
        let mut cmd = Command::new("python3");
        cmd.arg(format!(
            "{}/tests/peers/{script}",
            env!("CARGO_MANIFEST_DIR")
        ));
        cmd.args(args);
        Server::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().unwrap();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || pump_stderr(stderr, addr_tx, line_tx));
        let addr = match addr_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not print 'listening on' within 10 s");
            }
        };
        Server {
            child,
            addr,
            stderr_lines: line_rx,
        }
    }

    /// `host:port` of the server, as a string for command lines.
    pub fn addr_str(&self) -> String {
        self.addr.to_string()
    }

    /// Sends SIGINT (Ctrl-C).
    pub fn interrupt(&self) {
        signal(self.child.id(), "INT");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, limit)
    }

    /// Waits (≤ `limit`) for a stderr line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump_stderr(
    stderr: ChildStderr,
    addr_tx: mpsc::Sender<SocketAddr>,
    line_tx: mpsc::Sender<String>,
) {
    let mut found = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if !found
            && let Some(rest) = line.trim().strip_prefix("listening on ")
            && let Ok(a) = rest.trim().parse()
        {
            found = true;
            let _ = addr_tx.send(a);
            continue;
        }
        let _ = line_tx.send(line);
    }
}

/// Sends a signal by name (`INT`, `TERM`, `STOP`, `CONT`) to a process.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Waits up to `limit` for `child` to exit.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `soquete ARGS…` with `stdin` as input, bounded by `limit`; returns
/// (status, stdout, stderr). Kills the process if it overstays.
pub fn run_with_input(
    args: &[&str],
    stdin: &[u8],
    limit: Duration,
) -> (ExitStatus, String, String) {
    run_with_input_delayed(args, stdin, Duration::ZERO, limit)
}

/// Like [`run_with_input`], but keeps stdin open for `hold` after writing
/// it (a person who types, then waits before ending the input).
pub fn run_with_input_delayed(
    args: &[&str],
    stdin: &[u8],
    hold: Duration,
    limit: Duration,
) -> (ExitStatus, String, String) {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn soquete");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
        std::thread::sleep(hold);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = match wait_timeout(&mut child, limit) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("soquete {args:?} did not finish within {limit:?}");
        }
    };
    (status, out_t.join().unwrap(), err_t.join().unwrap())
}

/// A free TCP port on 127.0.0.1 (for peers that cannot be given port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `ncat` is installed. When it is not, the caller skips its test
/// with a note -- unless `SOQUETE_REQUIRE_INTEROP` is set (CI), where a
/// missing ncat is a failure.
pub fn have_ncat() -> bool {
    let found = Command::new("ncat")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("SOQUETE_REQUIRE_INTEROP").is_err(),
            "ncat is required for the interop tests (apt-get install ncat)"
        );
        eprintln!("note: ncat not installed; skipping this ncat test");
    }
    found
}

/// Runs one of the chapter's scripted clients from `tests/peers` on `port`,
/// typing `lines` (0.2 s apart) after `delay`; returns what it printed.
pub fn chapter_client(
    script: &str,
    port: u16,
    delay: Duration,
    lines: &[&str],
) -> std::thread::JoinHandle<String> {
    use std::io::Write;
    let script = format!("{}/tests/peers/{script}", env!("CARGO_MANIFEST_DIR"));
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::thread::spawn(move || {
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg("0.2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the chapter's client");
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(delay);
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        if wait_timeout(&mut child, Duration::from_secs(15)).is_none() {
            let _ = child.kill();
            panic!("{script} did not finish");
        }
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// `ncat --chat` on a free port, killed on drop.
pub struct Ncat {
    child: Child,
    pub addr: String,
}

impl Ncat {
    /// Starts it, or `None` (with a note) when ncat is not installed.
    pub fn start() -> Option<Ncat> {
        if !have_ncat() {
            return None;
        }
        let port = free_port();
        let child = Command::new("ncat")
            .args(["--chat", "-l", "127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ncat --chat");
        let addr = format!("127.0.0.1:{port}");
        let up = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "ncat did not start listening");
        Some(Ncat { child, addr })
    }
}

impl Drop for Ncat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
