//! One window of the terminal chat: a room, a private conversation, or the
//! status window. It holds the scrollback (bounded), the members, the
//! unread counter, and the scroll position with its "new messages below"
//! count. Pure; `render` turns it into rows.

use std::collections::VecDeque;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;

use super::text::{self, Segment};
use crate::chat::names::key;

/// Entries kept per window; older ones are dropped.
pub const SCROLLBACK: usize = 5000;
/// Member names kept per room (the server lists at most a thousand).
const MAX_MEMBERS: usize = 2000;

/// What a window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Connection messages and server text.
    Status,
    /// A room; typed text goes there.
    Room,
    /// Private messages with one person; typed text goes to them.
    Query,
}

/// What one scrollback entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// `<from> text`
    Say,
    /// `* from text`
    Action,
    /// `-!- text`: joins, leaves, connection state.
    Info,
    /// `error: text`
    Error,
    /// A line from a raw chat server, shown as it came.
    Raw,
}

/// One scrollback entry; every string is already `text::clean`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `HH:MM`, local time.
    pub time: String,
    pub kind: EntryKind,
    pub from: String,
    pub text: String,
    /// Mentions our name.
    pub mention: bool,
    /// Replayed from the room's history on join.
    pub history: bool,
    /// Sent by us (never unread).
    pub own: bool,
}

/// A window. See the module docs.
#[derive(Debug, Clone)]
pub struct Window {
    /// Room name, the other person's name, or the server for the status.
    pub name: String,
    pub kind: Kind,
    /// Oldest first, at most [`SCROLLBACK`].
    pub entries: VecDeque<Entry>,
    /// Members, in the order the server listed them.
    pub members: Vec<String>,
    /// Member count the server gave (can exceed `members`).
    pub total: u32,
    /// Messages since the window was last looked at.
    pub unread: usize,
    /// An unread message mentions us.
    pub highlight: bool,
    /// Rows scrolled up from the bottom (0: following new messages).
    pub scroll: usize,
    /// Entries that arrived while scrolled up.
    pub below: usize,
}

impl Window {
    pub fn new(name: impl Into<String>, kind: Kind) -> Self {
        Self {
            name: name.into(),
            kind,
            entries: VecDeque::new(),
            members: Vec::new(),
            total: 0,
            unread: 0,
            highlight: false,
            scroll: 0,
            below: 0,
        }
    }

    /// The tab label: `#room`, `@name` or the server.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Room => format!("#{}", self.name),
            Kind::Query => format!("@{}", self.name),
            Kind::Status => self.name.clone(),
        }
    }

    /// Adds an entry. `active`: the window is on screen; `width`: its
    /// scrollback width, so a scrolled-up view stays where it is.
    pub fn push(&mut self, entry: Entry, active: bool, width: usize) {
        let counts = matches!(
            entry.kind,
            EntryKind::Say | EntryKind::Action | EntryKind::Raw
        );
        if counts && !active && !entry.history && !entry.own {
            self.unread += 1;
            self.highlight |= entry.mention;
        }
        if self.scroll > 0 {
            self.scroll += rows(&entry, width).len();
            self.below += 1;
        }
        if self.entries.len() == SCROLLBACK {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The window is on screen now.
    pub fn seen(&mut self) {
        self.unread = 0;
        self.highlight = false;
    }

    /// Scrolls up `n` rows (clamped when drawn).
    pub fn scroll_up(&mut self, n: usize) {
        self.scroll = self.scroll.saturating_add(n);
    }

    /// Scrolls down `n` rows; at the bottom the "below" count clears.
    pub fn scroll_down(&mut self, n: usize) {
        self.scroll = self.scroll.saturating_sub(n);
        if self.scroll == 0 {
            self.below = 0;
        }
    }

    /// End: back to following new messages.
    pub fn scroll_to_bottom(&mut self) {
        self.scroll = 0;
        self.below = 0;
    }

    /// The visible rows for a view `width` by `height`, bottom-aligned, and
    /// the clamped scroll. Only the entries needed are wrapped.
    pub fn visible(&self, width: usize, height: usize) -> (Vec<Line<'static>>, usize) {
        let want = height.saturating_add(self.scroll);
        let mut rows_rev: Vec<Line<'static>> = Vec::new();
        for e in self.entries.iter().rev() {
            let mut r = rows(e, width);
            r.reverse();
            rows_rev.extend(r);
            if rows_rev.len() >= want {
                break;
            }
        }
        let scroll = self.scroll.min(rows_rev.len().saturating_sub(height));
        let mut shown: Vec<Line<'static>> =
            rows_rev.into_iter().skip(scroll).take(height).collect();
        shown.reverse();
        (shown, scroll)
    }

    pub fn set_members(&mut self, total: u32, members: Vec<String>) {
        self.total = total.max(members.len() as u32);
        self.members = members;
        self.members.truncate(MAX_MEMBERS);
    }

    pub fn add_member(&mut self, name: &str) {
        if !self.members.iter().any(|m| key(m) == key(name)) {
            if self.members.len() < MAX_MEMBERS {
                self.members.push(name.to_owned());
            }
            self.total += 1;
        }
    }

    pub fn remove_member(&mut self, name: &str) {
        let before = self.members.len();
        self.members.retain(|m| key(m) != key(name));
        if self.members.len() < before {
            self.total = self.total.saturating_sub(1);
        }
    }

    pub fn rename_member(&mut self, old: &str, new: &str) {
        for m in &mut self.members {
            if key(m) == key(old) {
                *m = new.to_owned();
            }
        }
    }
}

/// An entry's wrapped rows at `width`.
pub fn rows(e: &Entry, width: usize) -> Vec<Line<'static>> {
    let time = (!e.time.is_empty())
        .then(|| Segment::fixed(format!("{} ", e.time), Style::new().fg(Color::DarkGray)));
    let body_style = if e.mention {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let nick = nick_style(&e.from);
    let mut segs: Vec<Segment> = time.into_iter().collect();
    match e.kind {
        EntryKind::Say => {
            segs.push(Segment::fixed("<", Style::new().fg(Color::DarkGray)));
            segs.push(Segment::fixed(e.from.clone(), nick));
            segs.push(Segment::fixed("> ", Style::new().fg(Color::DarkGray)));
        }
        EntryKind::Action => {
            segs.push(Segment::fixed("* ", Style::new()));
            segs.push(Segment::fixed(format!("{} ", e.from), nick));
        }
        EntryKind::Info => segs.push(Segment::fixed("-!- ", Style::new().fg(Color::Cyan))),
        EntryKind::Error => segs.push(Segment::fixed("error: ", Style::new().fg(Color::Red))),
        EntryKind::Raw => {}
    }
    let body = match e.kind {
        EntryKind::Info => Style::new().fg(Color::Gray),
        EntryKind::Error => Style::new().fg(Color::LightRed),
        // Replayed on join: dimmed, so what is new stands out.
        _ if e.history => body_style.add_modifier(Modifier::DIM),
        _ => body_style,
    };
    let prefix: usize = segs.iter().map(|s| text::width(&s.text)).sum();
    segs.push(Segment::body(e.text.clone(), body));
    let indent = if prefix <= 24 { prefix } else { 6 };
    text::wrap(&segs, width, indent)
}

/// A name's colour: a stable hash of its case-folded form, so one person
/// keeps one colour across rooms, sessions and machines.
pub fn nick_color(name: &str) -> Color {
    const PALETTE: [Color; 12] = [
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
    ];
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    let mut h: u32 = 0x811c_9dc5;
    for b in key(name).bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    PALETTE[h as usize % PALETTE.len()]
}

fn nick_style(name: &str) -> Style {
    Style::new().fg(nick_color(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(from: &str, text: &str) -> Entry {
        Entry {
            time: "12:00".into(),
            kind: EntryKind::Say,
            from: from.into(),
            text: text.into(),
            mention: false,
            history: false,
            own: false,
        }
    }

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn colours_are_stable_and_case_blind() {
        assert_eq!(nick_color("Ana"), nick_color("ana"));
        let spread: std::collections::HashSet<_> = ["ana", "bo", "cy", "di", "ed", "flo"]
            .iter()
            .map(|n| format!("{:?}", nick_color(n)))
            .collect();
        assert!(spread.len() >= 3, "{spread:?}");
    }

    #[test]
    fn history_replays_are_dimmed() {
        let mut e = say("ana", "old");
        e.history = true;
        let row = &rows(&e, 40)[0];
        let body = row.spans.last().unwrap();
        assert_eq!(body.content, "old");
        assert!(body.style.add_modifier.contains(Modifier::DIM));
        let fresh = rows(&say("ana", "new"), 40);
        assert!(
            !fresh[0]
                .spans
                .last()
                .unwrap()
                .style
                .add_modifier
                .contains(Modifier::DIM)
        );
    }

    #[test]
    fn unread_counts_only_messages_in_hidden_windows() {
        let mut w = Window::new("lab", Kind::Room);
        w.push(say("ana", "x"), false, 40);
        let mut info = say("", "bo joined");
        info.kind = EntryKind::Info;
        w.push(info, false, 40);
        let mut m = say("bo", "me?");
        m.mention = true;
        w.push(m, false, 40);
        w.push(say("cy", "seen"), true, 40);
        assert_eq!((w.unread, w.highlight), (2, true));
        w.seen();
        assert_eq!((w.unread, w.highlight), (0, false));
    }

    #[test]
    fn a_scrolled_view_stays_put_and_counts_what_is_below() {
        let mut w = Window::new("lab", Kind::Room);
        for i in 0..10 {
            w.push(say("ana", &format!("m{i}")), true, 40);
        }
        w.scroll_up(3);
        let (before, _) = w.visible(40, 2);
        w.push(say("bo", "new one"), true, 40);
        let (after, scroll) = w.visible(40, 2);
        assert_eq!(plain(&before), plain(&after));
        assert_eq!((scroll, w.below), (4, 1));
        w.scroll_down(10);
        assert_eq!((w.scroll, w.below), (0, 0));
        assert_eq!(plain(&w.visible(40, 1).0), ["12:00 <bo> new one"]);
    }

    #[test]
    fn scrolling_is_clamped_at_the_top() {
        let mut w = Window::new("lab", Kind::Room);
        for i in 0..3 {
            w.push(say("ana", &format!("m{i}")), true, 40);
        }
        w.scroll_up(100);
        let (rows, scroll) = w.visible(40, 2);
        assert_eq!(scroll, 1);
        assert_eq!(plain(&rows), ["12:00 <ana> m0", "12:00 <ana> m1"]);
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut w = Window::new("lab", Kind::Room);
        for i in 0..SCROLLBACK + 5 {
            w.push(say("ana", &i.to_string()), true, 40);
        }
        assert_eq!(w.entries.len(), SCROLLBACK);
        assert_eq!(w.entries[0].text, "5");
    }

    #[test]
    fn members_follow_joins_leaves_and_renames() {
        let mut w = Window::new("lab", Kind::Room);
        w.set_members(2, vec!["ana".into(), "bo".into()]);
        w.add_member("cy");
        w.add_member("CY");
        w.remove_member("ana");
        w.rename_member("bo", "bob");
        assert_eq!(w.members, ["bob", "cy"]);
        assert_eq!(w.total, 2);
    }
}
