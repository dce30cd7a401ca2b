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

    /// A token cancelled on Ctrl-C or SIGTERM.
    pub fn on_signals() -> Self {
        let s = Self::new();
        let watcher = s.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
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

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
