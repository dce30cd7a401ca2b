//! The shutdown signal: Ctrl-C (and SIGTERM on Unix) cancel one token that
//! every task of a command watches; `main` exits 130 when it was Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

/// A cancellation token plus whether a signal (rather than the program
/// itself) triggered it.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    /// Cancelled when the command should stop.
    pub token: CancellationToken,
    /// Set when Ctrl-C or SIGTERM arrived, so the exit status can be 130.
    signalled: Arc<AtomicBool>,
}

impl Shutdown {
    /// A token with nothing watching signals (tests, embedded use).
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled on Ctrl-C or SIGTERM. The handlers are installed
    /// before this returns, not when the watching task first runs: a signal
    /// that comes right after a server printed `listening on` must cancel
    /// the token, not kill the process with the default action.
    pub fn on_signals() -> Self {
        let s = Self::new();
        let watcher = s.clone();
        let signals = Signals::install();
        tokio::spawn(async move {
            signals.wait().await;
            watcher.signalled.store(true, Ordering::SeqCst);
            watcher.token.cancel();
        });
        s
    }

    /// Whether a signal caused the shutdown.
    pub fn signalled(&self) -> bool {
        self.signalled.load(Ordering::SeqCst)
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }
}

/// The installed handlers for Ctrl-C and SIGTERM.
#[cfg(unix)]
struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => {}
            _ = recv(&mut self.term) => {}
        }
    }
}

/// The installed Ctrl-C handler.
#[cfg(windows)]
struct Signals(Option<tokio::signal::windows::CtrlC>);

#[cfg(windows)]
impl Signals {
    fn install() -> Self {
        Self(tokio::signal::windows::ctrl_c().ok())
    }

    async fn wait(mut self) {
        match &mut self.0 {
            Some(c) => {
                c.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
