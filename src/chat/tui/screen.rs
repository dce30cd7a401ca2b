//! The terminal while the chat owns it: raw mode, the alternate screen and
//! bracketed paste on entry; everything put back on exit, on a panic (a
//! hook restores the terminal before the panic message is printed) and on
//! Ctrl-C. While the screen is up, stderr points at a pipe (`capture`), so
//! log lines and notices from the client core become lines in the status
//! window instead of scribbling over the screen.

use std::io::{Stdout, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::Show;
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use super::app::App;
use super::{capture, render};

/// Whether the terminal is in the chat's state (so restoring is needed).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The panic hook is installed once per process.
static HOOK: Once = Once::new();

/// The terminal in the chat's state; restored on drop.
pub struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Takes over the terminal. Also returns the captured stderr lines
    /// (`None` where stderr cannot be redirected).
    pub fn enter() -> std::io::Result<(Screen, Option<mpsc::Receiver<String>>)> {
        HOOK.call_once(install_panic_hook);
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut out = std::io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, EnableBracketedPaste) {
            restore();
            return Err(e);
        }
        let terminal = match Terminal::new(CrosstermBackend::new(out)) {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e);
            }
        };
        let lines = capture::start();
        Ok((Screen { terminal }, lines))
    }

    /// Draws the model (the terminal's size is checked each time, so a
    /// resize redraws everything).
    pub fn draw(&mut self, app: &mut App) -> std::io::Result<()> {
        self.terminal.draw(|f| render::draw(f, app))?;
        Ok(())
    }

    /// Ctrl-L: clear and draw everything on the next `draw`.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.terminal.clear()
    }

    /// Rings the terminal bell (our own byte, never network text).
    pub fn bell(&mut self) {
        let out = self.terminal.backend_mut();
        let _ = out.write_all(b"\x07");
        let _ = out.flush();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal and stderr back. Safe to call more than once.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    capture::stop();
    let _ = execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        Show
    );
    let _ = disable_raw_mode();
}

/// A panic restores the terminal first, so its message is readable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
