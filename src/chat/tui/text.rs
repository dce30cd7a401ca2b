//! Text made ready for terminal cells, and wrapped into rows by display
//! width. Pure.
//!
//! [`clean`] is the one door for network text: `sanitize::for_terminal`
//! shows control characters and escapes inert, tabs become spaces, and a
//! combining mark with nothing to combine with gets a dotted circle so it
//! takes a cell instead of vanishing. Widths come from ratatui's own
//! [`CellWidth`] per grapheme cluster, so the wrapping here and the cells
//! ratatui writes always agree (wide characters and emoji take two cells,
//! a letter with its combining marks one). Right-to-left text is laid out
//! cell by cell like any other; bidi overrides were already made inert.

use ratatui::buffer::CellWidth;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;

use crate::sanitize::for_terminal;

/// Spaces a tab becomes.
const TAB: &str = "    ";

/// Network (or pasted) text as it may enter a cell: no control characters,
/// no zero-width clusters.
pub fn clean(s: &str) -> String {
    let safe = for_terminal(s).replace('\t', TAB);
    if safe.graphemes(true).all(|g| g.cell_width() > 0) {
        return safe;
    }
    let mut out = String::with_capacity(safe.len() + 4);
    for g in safe.graphemes(true) {
        if g.cell_width() == 0 {
            out.push('\u{25CC}'); // ◌, the mark's usual stand-in base
        }
        out.push_str(g);
    }
    out
}

/// Display width in cells of already-clean text.
pub fn width(s: &str) -> usize {
    s.graphemes(true).map(|g| usize::from(g.cell_width())).sum()
}

/// The longest prefix of `s` that fits in `max` cells.
pub fn fit(s: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, g) in s.grapheme_indices(true) {
        used += usize::from(g.cell_width());
        if used > max {
            return &s[..i];
        }
    }
    s
}

/// One styled run of a logical line. `wrap` breaks rows only at spaces of
/// segments marked `breakable` (the message body, not the name column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    pub style: Style,
    pub breakable: bool,
}

impl Segment {
    pub fn fixed(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: text.into(),
            style,
            breakable: false,
        }
    }

    pub fn body(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: text.into(),
            style,
            breakable: true,
        }
    }
}

/// One grapheme cluster placed in a row.
#[derive(Debug, Clone)]
struct Cell<'a> {
    g: &'a str,
    width: usize,
    style: Style,
    /// A space where the row may break.
    space: bool,
}

/// Wraps `segments` into rows of at most `width` cells; rows after the
/// first start with `indent` spaces (dropped when it would leave less than
/// half the width). Breaks at the last body space that fits, else inside a
/// word; a wide character never straddles the edge.
pub fn wrap(segments: &[Segment], width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = if indent * 2 > width { 0 } else { indent };
    let mut rows: Vec<Vec<Cell<'_>>> = Vec::new();
    let mut cur: Vec<Cell<'_>> = Vec::new();
    let mut limit = width;
    for seg in segments {
        for g in seg.text.graphemes(true) {
            let w = usize::from(g.cell_width());
            if w == 0 || w > width - indent {
                continue; // cannot be shown in a row this narrow
            }
            let cell = Cell {
                g,
                width: w,
                style: seg.style,
                space: seg.breakable && g == " ",
            };
            if row_width(&cur) + w > limit {
                let carry = split_at_space(&mut cur, w, width - indent);
                rows.push(std::mem::replace(&mut cur, carry));
                limit = width - indent;
                if cell.space && cur.is_empty() {
                    continue; // the break itself
                }
            }
            cur.push(cell);
        }
    }
    if !cur.is_empty() || rows.is_empty() {
        rows.push(cur);
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| to_line(row, if i == 0 { 0 } else { indent }))
        .collect()
}

fn row_width(row: &[Cell<'_>]) -> usize {
    row.iter().map(|c| c.width).sum()
}

/// Cuts `row` after its last breakable space and returns what follows it,
/// if that and the next cluster (`next` cells) fit in a row of `limit`;
/// otherwise cuts nothing.
fn split_at_space<'a>(row: &mut Vec<Cell<'a>>, next: usize, limit: usize) -> Vec<Cell<'a>> {
    let Some(at) = row.iter().rposition(|c| c.space) else {
        return Vec::new();
    };
    if row_width(&row[at + 1..]) + next > limit {
        return Vec::new();
    }
    let carry = row.split_off(at + 1);
    row.pop(); // the space
    carry
}

fn to_line(row: Vec<Cell<'_>>, indent: usize) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    if indent > 0 {
        spans.push(Span::raw(" ".repeat(indent)));
    }
    let mut text = String::new();
    let mut style = None;
    for c in row {
        if style.is_some_and(|s| s != c.style) {
            spans.push(Span::styled(
                std::mem::take(&mut text),
                style.unwrap_or_default(),
            ));
        }
        style = Some(c.style);
        text.push_str(c.g);
    }
    if let Some(s) = style {
        spans.push(Span::styled(text, s));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Color;

    fn rows(segments: &[Segment], width: usize, indent: usize) -> Vec<String> {
        wrap(segments, width, indent)
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    fn body(s: &str) -> Vec<Segment> {
        vec![Segment::body(s, Style::new())]
    }

    #[test]
    fn clean_makes_escapes_and_controls_inert() {
        assert_eq!(clean("a\x1b[2Jb"), "a^[[2Jb");
        assert_eq!(clean("x\ty"), "x    y");
        assert_eq!(clean("bell\x07\r\n"), "bell^G^M^J");
        assert!(!clean("\u{9b}31m").chars().any(char::is_control));
    }

    #[test]
    fn a_lone_combining_mark_gets_a_visible_base() {
        // U+0301 alone would take no cell; on a letter it stays one cell.
        assert_eq!(clean("\u{301}x"), "\u{25CC}\u{301}x");
        assert_eq!(clean("e\u{301}"), "e\u{301}");
        assert_eq!(width("e\u{301}"), 1);
    }

    #[test]
    fn widths_count_cells_not_chars() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("日本"), 4);
        assert_eq!(width("🎉"), 2);
        assert_eq!(width("שלום"), 4);
        assert_eq!(fit("日本語", 5), "日本");
        assert_eq!(fit("ab", 5), "ab");
    }

    #[test]
    fn words_wrap_at_spaces_with_an_indent() {
        let mut segs = vec![Segment::fixed("<ana> ", Style::new())];
        segs.extend(body("the quick brown fox jumps"));
        assert_eq!(
            rows(&segs, 16, 6),
            ["<ana> the quick", "      brown fox", "      jumps"]
        );
    }

    #[test]
    fn long_words_are_cut_and_the_name_column_never_breaks() {
        let segs = [
            Segment::fixed("<a b> ", Style::new()),
            Segment::body("abcdefghijkl", Style::new()),
        ];
        assert_eq!(rows(&segs, 10, 2), ["<a b> abcd", "  efghijkl"]);
    }

    #[test]
    fn wide_characters_never_straddle_the_edge() {
        assert_eq!(rows(&body("a日本語"), 4, 0), ["a日", "本語"]);
        assert_eq!(rows(&body("🎉🎉🎉"), 5, 0), ["🎉🎉", "🎉"]);
        for row in rows(&body("x日本語🎉e\u{301}e\u{301}ab"), 3, 0) {
            assert!(width(&row) <= 3, "{row:?}");
        }
    }

    #[test]
    fn combining_marks_stay_with_their_letter() {
        let r = rows(&body("ae\u{301}e\u{301}e\u{301}"), 2, 0);
        assert_eq!(r, ["ae\u{301}", "e\u{301}e\u{301}"]);
    }

    #[test]
    fn styles_are_kept_per_run() {
        let red = Style::new().fg(Color::Red);
        let lines = wrap(
            &[Segment::fixed("ab", red), Segment::body("cd", Style::new())],
            10,
            0,
        );
        assert_eq!(lines[0].spans.len(), 2);
        assert_eq!(lines[0].spans[0].style, red);
    }

    #[test]
    fn empty_text_is_one_empty_row() {
        assert_eq!(rows(&body(""), 10, 0), [""]);
        assert_eq!(rows(&body("abc"), 0, 0), ["a", "b", "c"]);
    }
}
