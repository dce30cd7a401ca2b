//! Draws the terminal chat: the window tabs on top, the scrollback (with a
//! "new messages below" bar when scrolled up) and the member list in the
//! middle, the status bar, and the input line at the bottom with its
//! counter near the server's limit. Pure over the model; every string it
//! draws was `text::clean`ed on its way into the model, and is cut to its
//! area by display width.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_segmentation::UnicodeSegmentation;

use super::app::{App, Link, Mode};
use super::text::{fit, width};
use super::window::{Kind, Window, nick_color};
use crate::chat::names::key;

/// Below this width the member list is hidden.
const MEMBERS_FROM: u16 = 60;

/// The areas of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub tabs: Rect,
    pub scrollback: Rect,
    pub members: Option<Rect>,
    pub status: Rect,
    pub input: Rect,
}

/// Splits `area` for `app`'s active window.
pub fn areas(app: &App, area: Rect) -> Areas {
    let [tabs, body, status, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let listed = app.mode == Mode::Native && app.active_window().kind == Kind::Room;
    if !listed || area.width < MEMBERS_FROM {
        return Areas {
            tabs,
            scrollback: body,
            members: None,
            status,
            input,
        };
    }
    let side = if area.width >= 100 { 20 } else { 16 };
    let [scrollback, members] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(side)]).areas(body);
    Areas {
        tabs,
        scrollback,
        members: Some(members),
        status,
        input,
    }
}

/// Draws everything; remembers the scrollback's size in `app` (for paging
/// and for keeping a scrolled view still) and clamps its scroll.
pub fn draw(frame: &mut Frame<'_>, app: &mut App) {
    let a = areas(app, frame.area());
    app.view_width = usize::from(a.scrollback.width);
    app.view_height = usize::from(a.scrollback.height);
    frame.render_widget(Paragraph::new(tabs_line(app, a.tabs.width)), a.tabs);
    draw_scrollback(frame, app, a.scrollback);
    if let Some(m) = a.members {
        draw_members(frame, app.active_window(), &app.me, m);
    }
    frame.render_widget(
        Paragraph::new(status_line(app, a.status.width))
            .style(Style::new().bg(Color::Blue).fg(Color::White)),
        a.status,
    );
    draw_input(frame, app, a.input);
}

fn tabs_line(app: &App, width: u16) -> Line<'static> {
    let tabs: Vec<Span<'static>> = app
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| tab(i, w, i == app.active))
        .collect();
    // Drop tabs from the left until the active one fits.
    let mut first = 0;
    let total = |from: usize| -> usize { tabs[from..].iter().map(|s| width_of(s) + 1).sum() };
    while first < app.active && total(first) > usize::from(width) {
        first += 1;
    }
    let mut spans = Vec::new();
    if first > 0 {
        spans.push(Span::styled("<", Style::new().fg(Color::DarkGray)));
    }
    for t in tabs.into_iter().skip(first) {
        spans.push(t);
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

fn width_of(s: &Span<'_>) -> usize {
    width(&s.content)
}

fn tab(i: usize, w: &Window, active: bool) -> Span<'static> {
    let mut label = format!("{}:{}", i + 1, w.label());
    if w.unread > 0 && !active {
        label.push_str(&format!("({})", w.unread));
    }
    let style = if active {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else if w.highlight {
        Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD)
    } else if w.unread > 0 {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::Gray)
    };
    Span::styled(label, style)
}

fn draw_scrollback(frame: &mut Frame<'_>, app: &mut App, area: Rect) {
    let w = app.active_window();
    let marked = w.scroll > 0;
    let height = usize::from(area.height).saturating_sub(usize::from(marked));
    let (rows, scroll) = w.visible(usize::from(area.width), height);
    let below = w.below;
    app.active_window_mut().scroll = scroll;
    let top = area.y + (height - rows.len().min(height)) as u16;
    let text_area = Rect::new(area.x, top, area.width, rows.len() as u16);
    frame.render_widget(Paragraph::new(rows), text_area);
    if marked && area.height > 0 {
        let text = if below > 0 {
            format!(" {below} new message(s) below (End) ")
        } else {
            " more below (End) ".to_owned()
        };
        let bar = Rect::new(area.x, area.bottom() - 1, area.width, 1);
        let line = centred(&text, usize::from(area.width));
        let style = Style::new().fg(Color::Black).bg(Color::Yellow);
        frame.render_widget(Paragraph::new(line).style(style), bar);
    }
}

/// `text` centred in `width` cells with `─` on both sides.
fn centred(text: &str, width: usize) -> String {
    let text = fit(text, width);
    let pad = width - super::text::width(text);
    format!("{}{text}{}", "─".repeat(pad / 2), "─".repeat(pad - pad / 2))
}

fn draw_members(frame: &mut Frame<'_>, w: &Window, me: &str, area: Rect) {
    let block = Block::new()
        .borders(Borders::LEFT)
        .border_style(Style::new().fg(Color::DarkGray));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let cells = usize::from(inner.width);
    let mut names: Vec<&String> = w.members.iter().collect();
    names.sort_by_key(|n| key(n));
    let height = usize::from(inner.height);
    let mut lines = vec![Line::styled(
        fit(&format!("{} here", w.total), cells).to_owned(),
        Style::new().fg(Color::DarkGray),
    )];
    let room = height.saturating_sub(1);
    let total = (w.total as usize).max(names.len());
    let (shown, more) = if total <= room {
        (names.len(), 0)
    } else {
        let s = room.saturating_sub(1).min(names.len());
        (s, total - s)
    };
    for n in names.iter().take(shown) {
        let mut style = Style::new().fg(nick_color(n));
        if key(n) == key(me) {
            style = style.add_modifier(Modifier::BOLD);
        }
        lines.push(Line::styled(fit(n, cells).to_owned(), style));
    }
    if more > 0 && room > 0 {
        let text = fit(&format!("+{more} more"), cells).to_owned();
        lines.push(Line::styled(text, Style::new().fg(Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn status_line(app: &App, cells: u16) -> String {
    let link = match &app.link {
        Link::Connecting => "connecting…".to_owned(),
        Link::Connected if app.mode == Mode::Raw => "connected (raw)".to_owned(),
        Link::Connected => "connected".to_owned(),
        Link::Reconnecting(n, of) => format!("reconnecting… ({n}/{of})"),
        Link::Lost(_) if app.mode == Mode::Native && !app.quitting => "reconnecting…".to_owned(),
        Link::Lost(_) => "disconnected".to_owned(),
    };
    let window = match app.active_window().kind {
        Kind::Status => "status".to_owned(),
        _ => app.active_window().label(),
    };
    let mut parts = vec![" soquete".to_owned(), app.server.clone(), window];
    if !app.me.is_empty() {
        parts.push(app.me.clone());
    }
    parts.push(link);
    if let Some(fp) = &app.fingerprint {
        parts.push(format!("🔒 {fp}"));
    }
    let line = parts.join(" │ ");
    let w = usize::from(cells);
    if width(&line) > w {
        let cut = fit(&line, w.saturating_sub(1));
        format!("{cut}…")
    } else {
        line
    }
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    if let Some(p) = &app.paste {
        let n = p.lines.len();
        let text = format!("Paste {n} lines as {n} messages? [y/N]");
        let style = Style::new().fg(Color::Black).bg(Color::Yellow);
        frame.render_widget(
            Paragraph::new(fit(&text, usize::from(area.width)).to_owned()).style(style),
            area,
        );
        return;
    }
    let prompt = match app.active_window().kind {
        Kind::Status => "> ".to_owned(),
        _ => format!("[{}] ", app.active_window().label()),
    };
    let prompt = fit(&prompt, usize::from(area.width) / 2).to_owned();
    let counter = app.counter().map(|(used, max)| format!(" {used}/{max}"));
    let counter_w = counter.as_deref().map_or(0, width);
    let room = usize::from(area.width).saturating_sub(width(&prompt) + counter_w + 1);
    let (shown, cursor) = scrolled(app.editor.line(), app.editor.cursor(), room);
    let mut spans = vec![
        Span::styled(prompt.clone(), Style::new().fg(Color::Cyan)),
        Span::raw(shown),
    ];
    if let Some(c) = counter {
        let used = app.counter().map_or(0, |(u, _)| u);
        let over = app.max_text.is_some_and(|m| used > m);
        let style = Style::new().fg(if over { Color::Red } else { Color::Yellow });
        let pad = usize::from(area.width)
            .saturating_sub(width(&prompt) + width(&spans[1].content) + counter_w);
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(c, style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    let x = area.x + (width(&prompt) + cursor) as u16;
    frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
}

/// The part of `line` shown in `room` cells so the cursor (byte `at`)
/// stays visible, and the cursor's column in it.
fn scrolled(line: &str, at: usize, room: usize) -> (String, usize) {
    let mut start = 0;
    while width(&line[start..at]) >= room.max(1) {
        match line[start..].graphemes(true).next() {
            Some(g) => start += g.len(),
            None => break,
        }
    }
    let col = width(&line[start..at]);
    (fit(&line[start..], room).to_owned(), col)
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
