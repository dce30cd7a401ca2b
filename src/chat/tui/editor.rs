//! The input line: a one-line editor with Emacs keys and a history, moving
//! by grapheme cluster so a cursor never lands inside an emoji or between a
//! letter and its accent. Pure: the key mapping lives in `keys`, the
//! drawing in `render`.

use unicode_segmentation::UnicodeSegmentation;

/// Lines kept in the history.
pub const HISTORY: usize = 500;
/// Longest input line, in bytes: far above any server's message limit, it
/// only bounds memory when something is pasted.
pub const MAX_INPUT: usize = 64 * 1024;

/// The line being typed, its cursor, the kill ring of one, and the history.
#[derive(Debug, Default, Clone)]
pub struct Editor {
    /// The text typed so far.
    line: String,
    /// Byte offset of the cursor, always on a grapheme boundary.
    cursor: usize,
    /// What the last kill (C-k, C-u, C-w, M-d) removed, for C-y.
    killed: String,
    /// Sent lines, oldest first.
    history: Vec<String>,
    /// Which history line is shown (`None`: the line being typed).
    browsing: Option<usize>,
    /// The line being typed, kept while browsing the history.
    draft: String,
}

impl Editor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn line(&self) -> &str {
        &self.line
    }

    /// Byte offset of the cursor.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    /// Inserts text at the cursor (control characters dropped, tabs as
    /// spaces), up to [`MAX_INPUT`].
    pub fn insert(&mut self, s: &str) {
        let clean: String = s
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        let room = MAX_INPUT.saturating_sub(self.line.len());
        let clean = cut_to_bytes(&clean, room);
        self.line.insert_str(self.cursor, clean);
        self.cursor += clean.len();
        self.snap_to_boundary();
    }

    /// Replaces bytes `start..cursor` with `s` (completion).
    pub fn replace_before_cursor(&mut self, start: usize, s: &str) {
        let start = start.min(self.cursor);
        self.line.replace_range(start..self.cursor, s);
        self.cursor = start + s.len();
    }

    /// Takes the line to send: it joins the history (not twice in a row)
    /// and the editor is empty again.
    pub fn take(&mut self) -> String {
        let line = std::mem::take(&mut self.line);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        line
    }

    pub fn left(&mut self) {
        self.cursor = self.prev_boundary(self.cursor);
    }

    pub fn right(&mut self) {
        self.cursor = self.next_boundary(self.cursor);
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.line.len();
    }

    /// M-b: to the start of this or the previous word.
    pub fn word_left(&mut self) {
        self.cursor = self.word_start(self.cursor);
    }

    /// M-f: to the end of this or the next word.
    pub fn word_right(&mut self) {
        self.cursor = self.word_end(self.cursor);
    }

    /// Backspace.
    pub fn backspace(&mut self) {
        let start = self.prev_boundary(self.cursor);
        self.line.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Delete (C-d on a non-empty line).
    pub fn delete(&mut self) {
        let end = self.next_boundary(self.cursor);
        self.line.replace_range(self.cursor..end, "");
    }

    /// C-k.
    pub fn kill_to_end(&mut self) {
        self.killed = self.line.split_off(self.cursor);
    }

    /// C-u.
    pub fn kill_to_start(&mut self) {
        self.killed = self.line.drain(..self.cursor).collect();
        self.cursor = 0;
    }

    /// C-w and M-Backspace: the word before the cursor.
    pub fn kill_word_back(&mut self) {
        let start = self.word_start(self.cursor);
        self.killed = self.line.drain(start..self.cursor).collect();
        self.cursor = start;
    }

    /// M-d: the word after the cursor.
    pub fn kill_word_forward(&mut self) {
        let end = self.word_end(self.cursor);
        self.killed = self.line.drain(self.cursor..end).collect();
    }

    /// C-y.
    pub fn yank(&mut self) {
        let k = self.killed.clone();
        self.insert(&k);
    }

    /// C-t: swap the two clusters around the cursor (the last two at the
    /// end of the line).
    pub fn transpose(&mut self) {
        let mut at = self.cursor;
        if at == self.line.len() {
            at = self.prev_boundary(at);
        }
        let (a, b) = (self.prev_boundary(at), self.next_boundary(at));
        if a == at || b == at {
            return;
        }
        let swapped = format!("{}{}", &self.line[at..b], &self.line[a..at]);
        self.line.replace_range(a..b, &swapped);
        self.cursor = b;
    }

    /// Up: the previous history line (the typed one is kept as a draft).
    pub fn history_up(&mut self) {
        let next = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.line);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        self.line = self.history[next].clone();
        self.cursor = self.line.len();
    }

    /// Down: the next history line, then the draft.
    pub fn history_down(&mut self) {
        let Some(i) = self.browsing else { return };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            self.line = self.history[i + 1].clone();
        } else {
            self.browsing = None;
            self.line = std::mem::take(&mut self.draft);
        }
        self.cursor = self.line.len();
    }

    fn prev_boundary(&self, at: usize) -> usize {
        self.line[..at]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, at: usize) -> usize {
        self.line[at..]
            .graphemes(true)
            .next()
            .map_or(at, |g| at + g.len())
    }

    fn word_start(&self, at: usize) -> usize {
        let before = &self.line[..at];
        let trimmed = before.trim_end_matches(|c: char| !c.is_alphanumeric());
        trimmed
            .rfind(|c: char| !c.is_alphanumeric())
            .map_or(0, |i| {
                i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
            })
    }

    fn word_end(&self, at: usize) -> usize {
        let after = &self.line[at..];
        let skip = after.len()
            - after
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .len();
        let rest = &after[skip..];
        at + skip
            + rest
                .find(|c: char| !c.is_alphanumeric())
                .unwrap_or(rest.len())
    }

    fn snap_to_boundary(&mut self) {
        while !self.line.is_char_boundary(self.cursor) {
            self.cursor -= 1;
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes, cut at a char boundary.
fn cut_to_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::tui::text;

    fn typed(s: &str) -> Editor {
        let mut e = Editor::new();
        e.insert(s);
        e
    }

    #[test]
    fn typing_and_moving_by_clusters() {
        let mut e = typed("oi 🎉e\u{301}");
        e.left();
        assert_eq!(&e.line()[e.cursor()..], "e\u{301}");
        e.left();
        assert_eq!(&e.line()[e.cursor()..], "🎉e\u{301}");
        assert_eq!(text::width(&e.line()[..e.cursor()]), 3);
        e.backspace();
        assert_eq!(e.line(), "oi🎉e\u{301}");
        e.home();
        e.delete();
        assert_eq!(e.line(), "i🎉e\u{301}");
        e.end();
        e.backspace();
        assert_eq!(e.line(), "i🎉");
    }

    #[test]
    fn emacs_kills_and_yank() {
        let mut e = typed("hello big world");
        e.word_left();
        e.kill_to_end();
        assert_eq!(e.line(), "hello big ");
        e.home();
        e.yank();
        assert_eq!(e.line(), "worldhello big ");
        e.end();
        e.kill_word_back();
        assert_eq!(e.line(), "worldhello ");
        e.kill_to_start();
        assert_eq!(e.line(), "");
        e.yank();
        assert_eq!(e.line(), "worldhello ");
        e.home();
        e.kill_word_forward();
        assert_eq!(e.line(), " ");
    }

    #[test]
    fn word_motion_skips_punctuation() {
        let mut e = typed("ab, cd-ef");
        e.word_left();
        assert_eq!(e.cursor(), 7);
        e.word_left();
        assert_eq!(e.cursor(), 4);
        e.word_right();
        assert_eq!(e.cursor(), 6);
        e.home();
        e.word_right();
        assert_eq!(e.cursor(), 2);
    }

    #[test]
    fn transpose_swaps_clusters() {
        let mut e = typed("ab");
        e.transpose();
        assert_eq!(e.line(), "ba");
        let mut e = typed("a日c");
        e.home();
        e.right();
        e.transpose();
        assert_eq!(e.line(), "日ac");
    }

    #[test]
    fn history_walks_back_and_returns_to_the_draft() {
        let mut e = Editor::new();
        for l in ["one", "two", "two", "  "] {
            e.insert(l);
            e.take();
        }
        e.insert("draft");
        e.history_up();
        assert_eq!(e.line(), "two");
        e.history_up();
        assert_eq!(e.line(), "one");
        e.history_up();
        assert_eq!(e.line(), "one");
        e.history_down();
        assert_eq!(e.line(), "two");
        e.history_down();
        assert_eq!(e.line(), "draft");
        e.history_down();
        assert_eq!(e.line(), "draft");
    }

    #[test]
    fn control_characters_never_enter_the_line() {
        let e = typed("a\x1b[2J\tb\r\n");
        assert_eq!(e.line(), "a[2J b");
    }

    #[test]
    fn the_line_is_bounded() {
        let mut e = typed(&"é".repeat(MAX_INPUT));
        assert_eq!(e.line().len(), MAX_INPUT);
        e.insert("more");
        assert_eq!(e.line().len(), MAX_INPUT);
    }
}
