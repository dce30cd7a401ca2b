//! Tab completion of the word before the cursor: `/commands` as the first
//! word, room names after `/join`, `/part` and `/who`, and member names
//! elsewhere (`ana: ` at the start of a line, as IRC clients do). Pressing
//! Tab again cycles through the candidates; any other key ends the cycle.
//! Pure: candidates in, an edit out.

use crate::chat::command;
use crate::chat::names::key;

/// A completion in progress, for cycling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Byte offset where the completed word starts.
    start: usize,
    /// What each candidate replaces the word with, in order.
    choices: Vec<String>,
    /// The choice shown now.
    index: usize,
}

/// Where completion candidates come from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sources<'a> {
    /// Names to offer (members of the room, recent speakers).
    pub names: &'a [String],
    /// Rooms to offer after `/join`, `/part`, `/who`.
    pub rooms: &'a [String],
}

/// An edit to apply: replace `line[start..cursor]` with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub text: String,
}

/// Completes the word ending at `cursor` in `line`, or moves `cycle` on.
/// Returns the edit (if any); `cycle` holds the state for the next Tab.
pub fn complete(
    line: &str,
    cursor: usize,
    sources: Sources<'_>,
    cycle: &mut Option<Cycle>,
) -> Option<Edit> {
    if let Some(c) = cycle.as_mut()
        && c.choices.len() > 1
    {
        c.index = (c.index + 1) % c.choices.len();
        return Some(Edit {
            start: c.start,
            text: c.choices[c.index].clone(),
        });
    }
    let before = &line[..cursor];
    let start = before.rfind(' ').map_or(0, |i| i + 1);
    let word = &before[start..];
    let choices = candidates(&before[..start], word, sources);
    let first = choices.first()?.clone();
    *cycle = Some(Cycle {
        start,
        choices,
        index: 0,
    });
    Some(Edit { start, text: first })
}

/// Every completion of `word`, given the text before it, as the text that
/// replaces the word (with its trailing separator).
fn candidates(head: &str, word: &str, sources: Sources<'_>) -> Vec<String> {
    let first_word = head.trim().is_empty();
    let head_cmd = head.split_whitespace().next().unwrap_or("");
    if first_word && word.starts_with('/') {
        return matching(command::NAMES.iter().copied(), word)
            .map(|c| format!("{c} "))
            .collect();
    }
    let after_room_cmd = matches!(head_cmd, "/join" | "/j" | "/part" | "/leave" | "/who")
        && head.split_whitespace().count() == 1;
    if after_room_cmd {
        let bare = word.strip_prefix('#').unwrap_or(word);
        return matching(sources.rooms.iter().map(String::as_str), bare)
            .map(|r| format!("{r} "))
            .collect();
    }
    if word.is_empty() {
        return Vec::new();
    }
    let suffix = if first_word { ": " } else { " " };
    matching(sources.names.iter().map(String::as_str), word)
        .map(|n| format!("{n}{suffix}"))
        .collect()
}

/// Candidates that start with `prefix` (case-insensitively), sorted and
/// without duplicates.
fn matching<'a>(all: impl Iterator<Item = &'a str>, prefix: &str) -> impl Iterator<Item = &'a str> {
    let p = key(prefix);
    let mut found: Vec<&str> = all.filter(|c| key(c).starts_with(&p)).collect();
    found.sort_by_key(|c| key(c));
    found.dedup_by_key(|c| key(c));
    found.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["ana", "Anibal", "bo"].map(String::from).to_vec()
    }

    fn rooms() -> Vec<String> {
        ["lobby", "lab"].map(String::from).to_vec()
    }

    fn tab(line: &str, cycle: &mut Option<Cycle>) -> Option<String> {
        let (n, r) = (names(), rooms());
        let s = Sources {
            names: &n,
            rooms: &r,
        };
        let e = complete(line, line.len(), s, cycle)?;
        Some(format!("{}{}", &line[..e.start], e.text))
    }

    #[test]
    fn a_name_at_the_start_gets_a_colon() {
        let mut c = None;
        assert_eq!(tab("b", &mut c).as_deref(), Some("bo: "));
        let mut c = None;
        assert_eq!(tab("hi b", &mut c).as_deref(), Some("hi bo "));
    }

    #[test]
    fn repeated_tab_cycles_through_matches() {
        let mut c = None;
        assert_eq!(tab("an", &mut c).as_deref(), Some("ana: "));
        // The next Tab replaces the same word with the next match.
        assert_eq!(tab("ana: ", &mut c).as_deref(), Some("Anibal: "));
        assert_eq!(tab("Anibal: ", &mut c).as_deref(), Some("ana: "));
    }

    #[test]
    fn commands_and_rooms_complete() {
        let mut c = None;
        assert_eq!(tab("/jo", &mut c).as_deref(), Some("/join "));
        let mut c = None;
        assert_eq!(tab("/join #lo", &mut c).as_deref(), Some("/join lobby "));
        let mut c = None;
        assert_eq!(tab("/msg a", &mut c).as_deref(), Some("/msg ana "));
        let mut c = None;
        assert_eq!(tab("/q", &mut c).as_deref(), Some("/quit "));
    }

    #[test]
    fn nothing_matches_nothing_changes() {
        let mut c = None;
        assert_eq!(tab("zz", &mut c), None);
        assert_eq!(tab("", &mut c), None);
        assert!(c.is_none());
    }
}
