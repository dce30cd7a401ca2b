//! What each key does in the terminal chat: Emacs editing keys on the input
//! line, history, Tab completion, scrolling, window switching, and the
//! yes/no of a multi-line paste. Pure: a crossterm key in, the model
//! changed and [`Action`]s out.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{Action, App};
use crate::chat::client::Request;
use crate::chat::command::Command;

/// The keys, for `/help`.
pub const KEYS_HELP: &[&str] = &[
    "keys: Enter send, Up/Down history, Tab complete names, rooms and /commands",
    "      Ctrl-A/E start/end, Ctrl-B/F or Left/Right, Alt-B/F or Ctrl-Left/Right words",
    "      Ctrl-K/U/W kill, Alt-D kill word, Ctrl-Y yank, Ctrl-T transpose",
    "      PageUp/PageDown scroll, Home/End top/bottom of the scrollback",
    "      Ctrl-N/Ctrl-P or Alt-Right/Alt-Left next/previous window, Alt-1..9 window N",
    "      Ctrl-L redraw, Ctrl-C or Ctrl-D on an empty line quit",
];

/// Applies one key press. `now` is the local `HH:MM` for any line it adds.
pub fn on_key(app: &mut App, key: KeyEvent, now: &str) -> Vec<Action> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    if app.paste.is_some() {
        let yes = matches!(key.code, KeyCode::Char('y' | 'Y'));
        return app.answer_paste(yes, now);
    }
    if key.code != KeyCode::Tab {
        app.cycle = None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if let (true, true, KeyCode::Char(c)) = (ctrl, alt, key.code) {
        // AltGr on Windows arrives as Ctrl+Alt: it types a character.
        app.editor.insert(c.encode_utf8(&mut [0; 4]));
        return Vec::new();
    }
    if ctrl {
        return ctrl_key(app, key.code, now);
    }
    if alt {
        return alt_key(app, key.code);
    }
    plain_key(app, key.code, now)
}

fn ctrl_key(app: &mut App, code: KeyCode, now: &str) -> Vec<Action> {
    let e = &mut app.editor;
    match code {
        KeyCode::Char('c') => return quit(app, now),
        KeyCode::Char('d') if e.is_empty() => return quit(app, now),
        KeyCode::Char('d') => e.delete(),
        KeyCode::Char('a') => e.home(),
        KeyCode::Char('e') => e.end(),
        KeyCode::Char('b') => e.left(),
        KeyCode::Char('f') => e.right(),
        KeyCode::Char('h') | KeyCode::Backspace => e.backspace(),
        KeyCode::Char('k') => e.kill_to_end(),
        KeyCode::Char('u') => e.kill_to_start(),
        KeyCode::Char('w') => e.kill_word_back(),
        KeyCode::Char('y') => e.yank(),
        KeyCode::Char('t') => e.transpose(),
        KeyCode::Left => e.word_left(),
        KeyCode::Right => e.word_right(),
        KeyCode::Char('n') => return app.cycle_window(true),
        KeyCode::Char('p') => return app.cycle_window(false),
        KeyCode::Char('l') => return vec![Action::Redraw],
        _ => {}
    }
    Vec::new()
}

fn alt_key(app: &mut App, code: KeyCode) -> Vec<Action> {
    let e = &mut app.editor;
    match code {
        KeyCode::Char('b') => e.word_left(),
        KeyCode::Char('f') => e.word_right(),
        KeyCode::Char('d') => e.kill_word_forward(),
        KeyCode::Backspace => e.kill_word_back(),
        KeyCode::Right => return app.cycle_window(true),
        KeyCode::Left => return app.cycle_window(false),
        KeyCode::Char(c @ '0'..='9') => {
            let n = c.to_digit(10).unwrap_or(0) as usize;
            return app.switch_to(if n == 0 { 9 } else { n - 1 });
        }
        _ => {}
    }
    Vec::new()
}

fn plain_key(app: &mut App, code: KeyCode, now: &str) -> Vec<Action> {
    let page = app.view_height.saturating_sub(1).max(1);
    match code {
        KeyCode::Enter => return app.submit(now),
        KeyCode::Tab => app.complete(),
        KeyCode::Char(c) => app.editor.insert(c.encode_utf8(&mut [0; 4])),
        KeyCode::Backspace => app.editor.backspace(),
        KeyCode::Delete => app.editor.delete(),
        KeyCode::Left => app.editor.left(),
        KeyCode::Right => app.editor.right(),
        KeyCode::Up => app.editor.history_up(),
        KeyCode::Down => app.editor.history_down(),
        KeyCode::PageUp => app.active_window_mut().scroll_up(page),
        KeyCode::PageDown => app.active_window_mut().scroll_down(page),
        // Clamped to the top when drawn.
        KeyCode::Home => app.active_window_mut().scroll_up(usize::MAX / 2),
        KeyCode::End => app.active_window_mut().scroll_to_bottom(),
        _ => {}
    }
    Vec::new()
}

/// Ctrl-C, or Ctrl-D on an empty line: leave like `/quit`.
fn quit(app: &mut App, now: &str) -> Vec<Action> {
    if app.quitting {
        return vec![Action::Exit]; // a second time: do not wait
    }
    match app.mode {
        super::app::Mode::Native => {
            app.quitting = true;
            vec![Action::Request(Request::Command(Command::Quit(None)))]
        }
        super::app::Mode::Raw => app.send_line("/quit", now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::tui::app::Mode;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn alt(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::ALT)
    }

    fn type_str(app: &mut App, s: &str) {
        for c in s.chars() {
            on_key(app, key(KeyCode::Char(c)), "12:00");
        }
    }

    #[test]
    fn emacs_keys_edit_the_line() {
        let mut app = App::new(Mode::Native, "h:1");
        type_str(&mut app, "hello world");
        on_key(&mut app, ctrl('a'), "");
        on_key(&mut app, alt(KeyCode::Char('f')), "");
        on_key(&mut app, ctrl('k'), "");
        assert_eq!(app.editor.line(), "hello");
        on_key(&mut app, ctrl('w'), "");
        assert_eq!(app.editor.line(), "");
        on_key(&mut app, ctrl('y'), "");
        assert_eq!(app.editor.line(), "hello");
        on_key(&mut app, ctrl('b'), "");
        on_key(&mut app, ctrl('t'), "");
        assert_eq!(app.editor.line(), "helol");
    }

    #[test]
    fn altgr_characters_are_typed() {
        let mut app = App::new(Mode::Raw, "h:1");
        let altgr = KeyModifiers::CONTROL | KeyModifiers::ALT;
        on_key(&mut app, KeyEvent::new(KeyCode::Char('@'), altgr), "");
        assert_eq!(app.editor.line(), "@");
    }

    #[test]
    fn enter_sends_and_up_brings_it_back() {
        let mut app = App::new(Mode::Raw, "h:1");
        type_str(&mut app, "oi");
        let out = on_key(&mut app, key(KeyCode::Enter), "12:00");
        assert_eq!(out, [Action::RawLine("oi".into())]);
        assert_eq!(app.editor.line(), "");
        on_key(&mut app, key(KeyCode::Up), "");
        assert_eq!(app.editor.line(), "oi");
    }

    #[test]
    fn ctrl_c_quits_once_then_exits() {
        let mut app = App::new(Mode::Native, "h:1");
        let out = on_key(&mut app, ctrl('c'), "");
        assert_eq!(
            out,
            [Action::Request(Request::Command(Command::Quit(None)))]
        );
        assert_eq!(on_key(&mut app, ctrl('c'), ""), [Action::Exit]);
    }

    #[test]
    fn ctrl_d_deletes_or_quits() {
        let mut app = App::new(Mode::Raw, "h:1");
        type_str(&mut app, "ab");
        on_key(&mut app, ctrl('a'), "");
        on_key(&mut app, ctrl('d'), "");
        assert_eq!(app.editor.line(), "b");
        on_key(&mut app, ctrl('a'), "");
        on_key(&mut app, ctrl('k'), "");
        assert_eq!(on_key(&mut app, ctrl('d'), ""), [Action::Exit]);
    }

    #[test]
    fn a_multi_line_paste_waits_for_yes() {
        let mut app = App::new(Mode::Raw, "h:1");
        app.paste("one\r\ntwo\n\nthree\n", "12:00");
        assert_eq!(app.paste.as_ref().map(|p| p.lines.len()), Some(3));
        // Any other key is a no, and nothing is sent.
        assert!(on_key(&mut app, key(KeyCode::Char('x')), "").is_empty());
        assert!(app.paste.is_none());
        app.paste("one\ntwo", "12:00");
        let out = on_key(&mut app, key(KeyCode::Char('y')), "");
        assert_eq!(
            out,
            [Action::RawLine("one".into()), Action::RawLine("two".into())]
        );
        // A single line goes into the input line instead.
        app.paste("just this\n", "12:00");
        assert!(app.paste.is_none());
        assert_eq!(app.editor.line(), "just this");
    }

    #[test]
    fn page_keys_scroll_the_active_window() {
        let mut app = App::new(Mode::Raw, "h:1");
        app.view_height = 10;
        on_key(&mut app, key(KeyCode::PageUp), "");
        assert_eq!(app.active_window().scroll, 9);
        on_key(&mut app, key(KeyCode::PageDown), "");
        assert_eq!(app.active_window().scroll, 0);
        on_key(&mut app, key(KeyCode::Home), "");
        assert!(app.active_window().scroll > 1000);
        on_key(&mut app, key(KeyCode::End), "");
        assert_eq!(app.active_window().scroll, 0);
    }
}
