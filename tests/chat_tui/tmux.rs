//! A private tmux server for driving the terminal chat as a person would:
//! `send-keys` to type, `capture-pane` to read the screen. Its socket lives
//! in a temporary directory, so it never touches the user's tmux; it is
//! killed on drop. Every wait is bounded.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a screen may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(10);

/// A tmux server of our own.
pub struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts a tmux server (with dead panes kept, so their screens can
    /// be read), or `None` when tmux is not installed -- a failure instead when
    /// `SOQUETE_REQUIRE_TMUX=1` (CI).
    pub fn start() -> Option<Tmux> {
        let found = Command::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if std::env::var("SOQUETE_REQUIRE_TMUX").as_deref() == Ok("1") {
                panic!("tmux is not installed but SOQUETE_REQUIRE_TMUX=1");
            }
            eprintln!(
                "skipped: tmux is not installed (set SOQUETE_REQUIRE_TMUX=1 to fail instead)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let t = Tmux {
            socket: dir.path().join("sock"),
            _dir: dir,
        };
        t.ok(&["new-session", "-d", "-s", "keep", "-x", "80", "-y", "24"]);
        t.ok(&["set-option", "-g", "remain-on-exit", "on"]);
        Some(t)
    }

    /// Runs `tmux ARGS` on our socket.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// Runs `tmux ARGS` and insists that it worked.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new session `name`, `w`x`h`, running `soquete ARGS` with a
    /// 256-colour terminal; [`Tmux::wait_exit`] reads its exit status.
    pub fn spawn(&self, name: &str, w: u16, h: u16, args: &[&str]) {
        let mut cmd = vec![
            "env".to_owned(),
            "TERM=xterm-256color".to_owned(),
            "RUST_BACKTRACE=0".to_owned(),
            quote(env!("CARGO_BIN_EXE_soquete")),
        ];
        cmd.extend(args.iter().map(|a| quote(a)));
        let status = self.status_file(name);
        let line = format!(
            "{}; echo $? > {}",
            cmd.join(" "),
            quote(status.to_str().expect("utf-8 temp path"))
        );
        let (w, h) = (w.to_string(), h.to_string());
        self.ok(&["new-session", "-d", "-s", name, "-x", &w, "-y", &h, &line]);
    }

    /// Types `text` literally (no key names).
    pub fn type_text(&self, target: &str, text: &str) {
        self.ok(&["send-keys", "-t", target, "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `M-2`, `C-n`, `PageUp`).
    pub fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    /// Types a line and presses Enter.
    pub fn line(&self, target: &str, text: &str) {
        self.type_text(target, text);
        self.keys(target, &["Enter"]);
    }

    /// The pane's screen as text, one line per row.
    pub fn capture(&self, target: &str) -> String {
        self.ok(&["capture-pane", "-p", "-t", target])
    }

    /// A tmux format of the pane (`#{pane_width}`, `#{alternate_on}`).
    pub fn format(&self, target: &str, fmt: &str) -> String {
        self.ok(&["display-message", "-p", "-t", target, fmt])
            .trim()
            .to_owned()
    }

    /// Waits (≤ [`WAIT`]) until the screen satisfies `ok`; returns it, or
    /// fails showing the last screen.
    pub fn wait(&self, target: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.capture(target);
            if ok(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!("{target}: timed out waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen contains `needle`.
    pub fn wait_for(&self, target: &str, needle: &str) -> String {
        self.wait(target, &format!("{needle:?}"), |s| s.contains(needle))
    }

    /// Waits until the pane's program has exited; its exit status. (The
    /// shell in the pane writes it to a file: tmux itself does not always
    /// reap a pane's process in time to report it.)
    pub fn wait_exit(&self, target: &str) -> i32 {
        let file = self.status_file(target);
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if let Ok(code) = text.trim().parse() {
                return code;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{target} did not exit; the screen:\n{}",
                    self.capture(target)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn status_file(&self, target: &str) -> PathBuf {
        self._dir.path().join(format!("{target}.status"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Single-quotes a word for the shell tmux runs the command with.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
