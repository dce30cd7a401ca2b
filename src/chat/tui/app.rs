//! The terminal chat's model: windows, connection state, the input line
//! and what the user asked for. Client events and keys go in; requests for
//! the client core (or lines for a raw server) come out as [`Action`]s.
//! Pure and clock-free (the caller passes the time of day), so everything
//! here is unit tested without a terminal.

use std::collections::VecDeque;

use super::complete::{self, Cycle, Sources};
use super::editor::Editor;
use super::text::clean;
use super::window::{Entry, EntryKind, Kind, Window};
use crate::chat::client::Request;
use crate::chat::command::{self, Command};
use crate::chat::names::key;

/// Room names remembered from `/rooms` answers, for completion.
const KNOWN_ROOMS: usize = 200;
/// Recent speakers remembered for name completion.
const SPEAKERS: usize = 50;
/// From this share of the server's limit on, the input shows a counter.
const COUNTER_FROM: f64 = 0.8;
/// Most lines one paste may send (a bigger paste is refused whole).
pub const MAX_PASTE_LINES: usize = 1000;

/// Which server the chat talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A soquete chat server (rooms, names, history).
    Native,
    /// A raw chat server (the chapter's `Servidor.py`): one window.
    Raw,
}

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    /// Waiting to reconnect (attempt, of).
    Reconnecting(u32, u32),
    /// Gone for good; the reason.
    Lost(String),
}

/// What the event loop must do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass to the client core.
    Request(Request),
    /// Send a typed line to a raw server.
    RawLine(String),
    /// Leave now (the quit is already requested, or there is nothing to
    /// tell the server).
    Exit,
    /// Clear the terminal and draw everything again (Ctrl-L).
    Redraw,
}

/// A multi-line paste waiting for the user's yes or no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPaste {
    pub lines: Vec<String>,
}

/// The whole screen's state. See the module docs.
#[derive(Debug)]
pub struct App {
    pub mode: Mode,
    /// Server address as typed.
    pub server: String,
    /// Our name (empty before the welcome).
    pub me: String,
    pub link: Link,
    /// The server's fingerprint in secure mode.
    pub fingerprint: Option<String>,
    /// Longest message the server takes, in bytes (native mode).
    pub max_text: Option<usize>,
    /// Window 0 is the status window.
    pub windows: Vec<Window>,
    pub active: usize,
    pub editor: Editor,
    /// Tab completion in progress.
    pub cycle: Option<Cycle>,
    pub paste: Option<PendingPaste>,
    /// Width of the scrollback area at the last draw.
    pub view_width: usize,
    /// Height of the scrollback area at the last draw.
    pub view_height: usize,
    /// A mention arrived: ring the bell once.
    pub bell: bool,
    /// `/quit` was asked.
    pub quitting: bool,
    /// Rooms seen in `/rooms` answers.
    known_rooms: Vec<String>,
    /// Names that spoke recently, newest last.
    speakers: VecDeque<String>,
    /// Transcript lines not yet written (`--log`).
    pub log: Vec<String>,
}

impl App {
    pub fn new(mode: Mode, server: &str) -> Self {
        let status = Window::new(clean(server), Kind::Status);
        Self {
            mode,
            server: clean(server),
            me: String::new(),
            link: Link::Connecting,
            fingerprint: None,
            max_text: None,
            windows: vec![status],
            active: 0,
            editor: Editor::new(),
            cycle: None,
            paste: None,
            view_width: 80,
            view_height: 20,
            bell: false,
            quitting: false,
            known_rooms: Vec::new(),
            speakers: VecDeque::new(),
            log: Vec::new(),
        }
    }

    pub fn active_window(&self) -> &Window {
        &self.windows[self.active]
    }

    pub fn active_window_mut(&mut self) -> &mut Window {
        &mut self.windows[self.active]
    }

    /// The window for a room or query, made if missing.
    pub fn window(&mut self, name: &str, kind: Kind) -> usize {
        if let Some(i) = self.find(name, &kind) {
            return i;
        }
        self.windows.push(Window::new(clean(name), kind));
        self.windows.len() - 1
    }

    fn find(&self, name: &str, kind: &Kind) -> Option<usize> {
        let name = clean(name);
        self.windows
            .iter()
            .position(|w| w.kind == *kind && key(&w.name) == key(&name))
    }

    /// Adds an entry to window `i` (and the transcript).
    pub fn push(&mut self, i: usize, entry: Entry) {
        let label = self.windows[i].label();
        self.log.push(transcript_line(&label, &entry));
        let (active, width) = (i == self.active, self.view_width);
        self.windows[i].push(entry, active, width);
    }

    /// An info line (`-!- text`) in window `i`; `text` must be clean.
    pub fn info(&mut self, i: usize, time: &str, text: String) {
        self.push(i, local(time, EntryKind::Info, text));
    }

    /// An error line in the active window; `text` must be clean.
    pub fn error(&mut self, time: &str, text: String) {
        self.push(self.active, local(time, EntryKind::Error, text));
    }

    /// Makes window `i` the active one.
    pub fn switch_to(&mut self, i: usize) -> Vec<Action> {
        if i >= self.windows.len() {
            return Vec::new();
        }
        self.active = i;
        self.windows[i].seen();
        let w = &self.windows[i];
        if w.kind == Kind::Room && self.mode == Mode::Native {
            // Makes it the core's current room (no network: we are in it).
            return vec![Action::Request(Request::Command(Command::Join(
                w.name.clone(),
            )))];
        }
        Vec::new()
    }

    /// Ctrl-N / Ctrl-P: the next or previous window, wrapping.
    pub fn cycle_window(&mut self, forward: bool) -> Vec<Action> {
        let n = self.windows.len();
        let i = if forward {
            (self.active + 1) % n
        } else {
            (self.active + n - 1) % n
        };
        self.switch_to(i)
    }

    /// Tab: completes the word before the cursor.
    pub fn complete(&mut self) {
        let mut names: Vec<String> = self.active_window().members.clone();
        names.extend(self.speakers.iter().rev().cloned());
        names.retain(|n| key(n) != key(&self.me));
        let mut rooms: Vec<String> = self
            .windows
            .iter()
            .filter(|w| w.kind == Kind::Room)
            .map(|w| w.name.clone())
            .collect();
        rooms.extend(self.known_rooms.iter().cloned());
        let sources = Sources {
            names: &names,
            rooms: &rooms,
        };
        let (line, cursor) = (self.editor.line().to_owned(), self.editor.cursor());
        if let Some(edit) = complete::complete(&line, cursor, sources, &mut self.cycle) {
            self.editor.replace_before_cursor(edit.start, &edit.text);
        }
    }

    /// Enter: the typed line, understood.
    pub fn submit(&mut self, time: &str) -> Vec<Action> {
        let line = self.editor.take();
        self.send_line(&line, time)
    }

    /// One line as if typed: a command, or text for the active window.
    pub fn send_line(&mut self, line: &str, time: &str) -> Vec<Action> {
        if self.mode == Mode::Raw {
            return self.raw_line(line);
        }
        let cmd = match command::parse(line) {
            None => return Vec::new(),
            Some(Err(e)) => {
                self.error(time, e.to_string());
                return Vec::new();
            }
            Some(Ok(cmd)) => cmd,
        };
        self.command(cmd, time)
    }

    fn raw_line(&mut self, line: &str) -> Vec<Action> {
        match line.trim() {
            "/quit" | "/exit" => {
                self.quitting = true;
                vec![Action::Exit]
            }
            "/help" => {
                self.show_help(&crate::chat::tui::keys::KEYS_HELP.join("\n"));
                Vec::new()
            }
            _ => vec![Action::RawLine(line.to_owned())],
        }
    }

    fn command(&mut self, cmd: Command, time: &str) -> Vec<Action> {
        let w = self.active_window();
        let (kind, name) = (w.kind.clone(), w.name.clone());
        let cmd = match (cmd, kind) {
            (Command::Help, _) => {
                let text = format!(
                    "{}\n{}",
                    command::help_text(),
                    crate::chat::tui::keys::KEYS_HELP.join("\n")
                );
                self.show_help(&text);
                return Vec::new();
            }
            (Command::Say(_) | Command::Action(_), Kind::Status) => {
                self.error(
                    time,
                    "this is the status window: switch to a room (Ctrl-N) or /join one".into(),
                );
                return Vec::new();
            }
            (Command::Say(text), Kind::Query) => Command::Private { to: name, text },
            (Command::Part(None), Kind::Query) => {
                self.close_active();
                return Vec::new();
            }
            (Command::Quit(r), _) => {
                self.quitting = true;
                Command::Quit(r)
            }
            (cmd, _) => cmd,
        };
        vec![Action::Request(Request::Command(cmd))]
    }

    fn show_help(&mut self, text: &str) {
        for line in text.lines() {
            self.info(self.active, "", clean(line));
        }
    }

    fn close_active(&mut self) {
        if self.active > 0 {
            self.windows.remove(self.active);
            self.active = self.active.min(self.windows.len() - 1);
            self.windows[self.active].seen();
        }
    }

    /// A bracketed paste: one line goes into the input line; several ask
    /// first (see [`App::answer_paste`]); more than [`MAX_PASTE_LINES`]
    /// are refused.
    pub fn paste(&mut self, text: &str, time: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let count = text.split('\n').filter(|l| !l.trim().is_empty()).count();
        if count > MAX_PASTE_LINES {
            let msg = format!("paste not sent: {count} lines (at most {MAX_PASTE_LINES})");
            self.error(time, msg);
            return;
        }
        let lines: Vec<String> = text
            .split('\n')
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        match lines.len() {
            0 => {}
            1 => self.editor.insert(&lines[0]),
            _ => self.paste = Some(PendingPaste { lines }),
        }
    }

    /// The answer to "send N lines?": yes sends each as a message, as is
    /// (a line starting with `/` is text, not a command).
    pub fn answer_paste(&mut self, yes: bool, time: &str) -> Vec<Action> {
        let Some(p) = self.paste.take() else {
            return Vec::new();
        };
        if !yes {
            return Vec::new();
        }
        let mut out = Vec::new();
        for line in p.lines {
            if self.mode == Mode::Raw {
                out.push(Action::RawLine(line));
                continue;
            }
            let typed = if line.starts_with('/') {
                format!("/{line}")
            } else {
                line
            };
            out.extend(self.send_line(&typed, time));
        }
        out
    }

    /// The counter shown near the server's limit: `(used, max)`.
    pub fn counter(&self) -> Option<(usize, usize)> {
        let max = self.max_text?;
        let used = self.editor.line().len();
        (used as f64 >= max as f64 * COUNTER_FROM).then_some((used, max))
    }

    /// A line from a raw server.
    pub fn on_raw(&mut self, text: &str, time: &str) {
        let i = self.window(&self.server.clone(), Kind::Room);
        let text = clean(text);
        let mention = !self.me.is_empty() && mentions(&text, &self.me);
        self.bell |= mention;
        let entry = Entry {
            time: time.to_owned(),
            kind: EntryKind::Raw,
            from: String::new(),
            text,
            mention,
            history: false,
            own: false,
        };
        self.push(i, entry);
    }

    /// Remembers a speaker for completion.
    fn spoke(&mut self, name: &str) {
        self.speakers.retain(|s| key(s) != key(name));
        if self.speakers.len() == SPEAKERS {
            self.speakers.pop_front();
        }
        self.speakers.push_back(name.to_owned());
    }

    /// Remembers rooms from a `/rooms` answer.
    fn learn_rooms(&mut self, rooms: &[(String, u32)]) {
        self.known_rooms = rooms
            .iter()
            .take(KNOWN_ROOMS)
            .map(|(r, _)| clean(r))
            .collect();
    }
}

/// Whether `text` names `me` as a word (case-insensitively).
pub fn mentions(text: &str, me: &str) -> bool {
    let (text, me) = (key(text), key(me));
    if me.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    text.match_indices(&me).any(|(i, m)| {
        !word(text[..i].chars().next_back()) && !word(text[i + m.len()..].chars().next())
    })
}

fn local(time: &str, kind: EntryKind, text: String) -> Entry {
    Entry {
        time: time.to_owned(),
        kind,
        from: String::new(),
        text,
        mention: false,
        history: false,
        own: false,
    }
}

/// The transcript's line for an entry (the caller adds the date).
fn transcript_line(label: &str, e: &Entry) -> String {
    match e.kind {
        EntryKind::Say => format!("[{label}] <{}> {}", e.from, e.text),
        EntryKind::Action => format!("[{label}] * {} {}", e.from, e.text),
        EntryKind::Info => format!("[{label}] -!- {}", e.text),
        EntryKind::Error => format!("[{label}] error: {}", e.text),
        EntryKind::Raw => format!("[{label}] {}", e.text),
    }
}

#[path = "app_events.rs"]
mod events;

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
