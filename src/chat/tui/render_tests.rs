use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Style;

use super::*;
use crate::chat::tui::text;
use crate::chat::tui::window::{Entry, EntryKind};

fn entry(kind: EntryKind, from: &str, text: &str) -> Entry {
    Entry {
        time: "12:00".into(),
        kind,
        from: from.into(),
        text: text.into(),
        mention: false,
        history: false,
        own: false,
    }
}

/// Connected as ana to 127.0.0.1:8000, in #lobby (ana, bo) and #lab.
fn scene() -> App {
    let mut app = App::new(Mode::Native, "127.0.0.1:8000");
    app.me = "ana".into();
    app.link = Link::Connected;
    app.max_text = Some(4096);
    let lobby = app.window("lobby", Kind::Room);
    let lab = app.window("lab", Kind::Room);
    app.active = lobby;
    app.windows[lobby].set_members(2, vec!["bo".into(), "ana".into()]);
    app.push(
        lobby,
        entry(EntryKind::Info, "", "you joined #lobby (2 here)"),
    );
    app.push(lobby, entry(EntryKind::Say, "bo", "oi ana, tudo bem?"));
    app.push(lobby, entry(EntryKind::Action, "ana", "acena"));
    app.push(lab, entry(EntryKind::Say, "bo", "no lab"));
    app
}

fn render(app: &mut App, w: u16, h: u16) -> (Buffer, Position) {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, app)).unwrap();
    let pos = t.get_cursor_position().unwrap();
    (t.backend().buffer().clone(), pos)
}

/// The buffer's symbols only (styles are checked separately).
fn unstyled(mut b: Buffer) -> Buffer {
    b.set_style(b.area, Style::reset());
    for c in b.content.iter_mut() {
        c.set_style(Style::reset());
    }
    b
}

/// A golden buffer: each given row padded to `w`, missing rows blank.
fn golden(w: u16, h: u16, rows: &[(u16, &str)]) -> Buffer {
    let mut lines = vec![String::new(); usize::from(h)];
    for (y, r) in rows {
        lines[usize::from(*y)] = (*r).to_owned();
    }
    let padded: Vec<String> = lines
        .iter()
        .map(|l| format!("{l}{}", " ".repeat(usize::from(w) - text::width(l))))
        .collect();
    unstyled(Buffer::with_lines(padded))
}

fn dump(b: &Buffer) -> String {
    let w = usize::from(b.area.width);
    b.content
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A body row: `left` in the scrollback, `right` in the member list.
fn body(left: &str, right: &str, scrollback: usize) -> String {
    let pad = scrollback - text::width(left);
    format!("{left}{}│{right}", " ".repeat(pad))
}

/// Rows 1.. of the scene's body: member list on the right, messages at
/// the bottom of the scrollback.
fn scene_rows(h: u16, scrollback: usize) -> Vec<(u16, String)> {
    let members = ["2 here", "ana", "bo"];
    let messages = [
        "12:00 -!- you joined #lobby (2 here)",
        "12:00 <bo> oi ana, tudo bem?",
        "12:00 * ana acena",
    ];
    let body_rows = h - 3;
    (0..body_rows)
        .map(|i| {
            let right = members.get(usize::from(i)).copied().unwrap_or("");
            let from_bottom = body_rows - i;
            let left = match from_bottom {
                1..=3 => messages[3 - usize::from(from_bottom)],
                _ => "",
            };
            (i + 1, body(left, right, scrollback))
        })
        .collect()
}

fn check(buf: Buffer, w: u16, h: u16, rows: &[(u16, String)]) {
    let rows: Vec<(u16, &str)> = rows.iter().map(|(y, r)| (*y, r.as_str())).collect();
    let want = golden(w, h, &rows);
    let got = unstyled(buf);
    assert_eq!(got, want, "\ngot:\n{}\nwant:\n{}", dump(&got), dump(&want));
}

#[test]
fn layout_80x24() {
    let mut app = scene();
    let (buf, cursor) = render(&mut app, 80, 24);
    let mut rows = vec![(0, "1:127.0.0.1:8000 2:#lobby 3:#lab(1)".to_owned())];
    rows.extend(scene_rows(24, 64));
    rows.push((
        22,
        " soquete │ 127.0.0.1:8000 │ #lobby │ ana │ connected".into(),
    ));
    rows.push((23, "[#lobby]".into()));
    check(buf.clone(), 80, 24, &rows);
    assert_eq!(cursor, Position::new(9, 23));
    assert_eq!((app.view_width, app.view_height), (64, 21));
    // Names keep their colour; the status bar and tabs are styled.
    let bo = &buf[(7, 20)];
    assert_eq!((bo.symbol(), bo.fg), ("b", nick_color("bo")));
    assert_eq!(buf[(1, 22)].bg, Color::Blue);
    assert!(buf[(17, 0)].modifier.contains(Modifier::REVERSED));
    assert_eq!(buf[(26, 0)].fg, Color::Yellow, "unread tab");
}

#[test]
fn layout_120x40() {
    let mut app = scene();
    let (buf, cursor) = render(&mut app, 120, 40);
    let mut rows = vec![(0, "1:127.0.0.1:8000 2:#lobby 3:#lab(1)".to_owned())];
    rows.extend(scene_rows(40, 100));
    rows.push((
        38,
        " soquete │ 127.0.0.1:8000 │ #lobby │ ana │ connected".into(),
    ));
    rows.push((39, "[#lobby]".into()));
    check(buf, 120, 40, &rows);
    assert_eq!(cursor, Position::new(9, 39));
    assert_eq!((app.view_width, app.view_height), (100, 37));
}

/// A 30x8 screen on a query window (no member list) holding `texts`.
fn narrow(texts: &[&str]) -> App {
    let mut app = App::new(Mode::Native, "h:1");
    app.me = "ana".into();
    app.link = Link::Connected;
    let q = app.window("bo", Kind::Query);
    app.active = q;
    for t in texts {
        app.push(q, entry(EntryKind::Say, "bo", t));
    }
    app
}

#[test]
fn wide_characters_emoji_and_combining_marks_wrap_by_width() {
    let mut app = narrow(&[
        "日本語のテキストです 🎉🎉 ok",
        "cafe\u{301} cafe\u{301} cafe\u{301} fim",
    ]);
    let (buf, _) = render(&mut app, 30, 8);
    let rows = [
        (0, "1:h:1 2:@bo".to_owned()),
        (3, "12:00 <bo> 日本語のテキストで".into()),
        (4, "           す 🎉🎉 ok".into()),
        (
            5,
            "12:00 <bo> cafe\u{301} cafe\u{301} cafe\u{301} fim".into(),
        ),
        (6, " soquete │ h:1 │ @bo │ ana │ …".into()),
        (7, "[@bo]".into()),
    ];
    check(buf.clone(), 30, 8, &rows);
    // A wide character's second cell is left for it, not overwritten.
    assert_eq!(buf[(11, 3)].symbol(), "日");
    assert_eq!(buf[(13, 3)].symbol(), "本");
    assert_eq!(buf[(14, 5)].symbol(), "e\u{301}");
    assert_eq!(buf[(15, 5)].symbol(), " ");
}

#[test]
fn right_to_left_text_stays_in_its_cells() {
    let mut app = narrow(&["שלום עולם مرحبا بالعالم"]);
    let (buf, _) = render(&mut app, 30, 8);
    let rows = [
        (0, "1:h:1 2:@bo".to_owned()),
        (4, "12:00 <bo> שלום עולם مرحبا".into()),
        (5, "           بالعالم".into()),
        (6, " soquete │ h:1 │ @bo │ ana │ …".into()),
        (7, "[@bo]".into()),
    ];
    check(buf, 30, 8, &rows);
}

#[test]
fn scrolled_up_shows_new_messages_below() {
    let texts: Vec<String> = (1..=8).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut app = narrow(&refs);
    render(&mut app, 30, 8); // learns the view size: 30x5
    app.active_window_mut().scroll_up(2);
    let q = app.active;
    app.push(q, entry(EntryKind::Say, "bo", "m9"));
    let (buf, _) = render(&mut app, 30, 8);
    let rows = [
        (0, "1:h:1 2:@bo".to_owned()),
        (1, "12:00 <bo> m3".into()),
        (2, "12:00 <bo> m4".into()),
        (3, "12:00 <bo> m5".into()),
        (4, "12:00 <bo> m6".into()),
        (5, " 1 new message(s) below (End) ".into()),
        (6, " soquete │ h:1 │ @bo │ ana │ …".into()),
        (7, "[@bo]".into()),
    ];
    check(buf.clone(), 30, 8, &rows);
    assert_eq!(buf[(3, 5)].bg, Color::Yellow);
    // End: back to the newest, marker gone.
    app.active_window_mut().scroll_to_bottom();
    let (buf, _) = render(&mut app, 30, 8);
    let rows = [
        (0, "1:h:1 2:@bo".to_owned()),
        (1, "12:00 <bo> m5".into()),
        (2, "12:00 <bo> m6".into()),
        (3, "12:00 <bo> m7".into()),
        (4, "12:00 <bo> m8".into()),
        (5, "12:00 <bo> m9".into()),
        (6, " soquete │ h:1 │ @bo │ ana │ …".into()),
        (7, "[@bo]".into()),
    ];
    check(buf, 30, 8, &rows);
}

#[test]
fn scrolling_past_the_top_is_clamped_when_drawn() {
    let mut app = narrow(&["a", "b"]);
    app.active_window_mut().scroll_up(usize::MAX / 2);
    render(&mut app, 30, 8);
    assert_eq!(app.active_window().scroll, 0, "everything fits");
}

#[test]
fn a_long_input_line_scrolls_to_keep_the_cursor_visible() {
    let mut app = narrow(&[]);
    app.editor.insert("0123456789abcdefghij日本");
    let (buf, cursor) = render(&mut app, 20, 4);
    // Prompt "[@bo] " (6) leaves 13 cells, one kept for the cursor after
    // the text: the line's start scrolls out.
    let got = unstyled(buf);
    let want = golden(
        20,
        4,
        &[
            (0, "1:h:1 2:@bo"),
            (2, " soquete │ h:1 │ @b…"),
            (3, "[@bo] cdefghij日本"),
        ],
    );
    assert_eq!(got, want, "\n{}", dump(&got));
    assert_eq!(cursor, Position::new(18, 3));
    app.editor.home();
    let (buf, cursor) = render(&mut app, 20, 4);
    let row: String = (0..20).map(|x| buf[(x, 3)].symbol()).collect();
    assert_eq!(row, "[@bo] 0123456789abc ");
    assert_eq!(cursor, Position::new(6, 3));
}

#[test]
fn the_counter_appears_near_the_limit_and_turns_red_past_it() {
    let mut app = narrow(&[]);
    app.max_text = Some(10);
    app.editor.insert("12345678");
    let (buf, _) = render(&mut app, 30, 4);
    let row: String = (0..30).map(|x| buf[(x, 3)].symbol()).collect();
    assert_eq!(row, "[@bo] 12345678            8/10");
    assert_eq!(buf[(29, 3)].fg, Color::Yellow);
    app.editor.insert("901");
    let (buf, _) = render(&mut app, 30, 4);
    assert_eq!(buf[(29, 3)].fg, Color::Red);
}

#[test]
fn a_multi_line_paste_asks_in_the_input_line() {
    let mut app = narrow(&[]);
    app.paste("a\nb\nc", "12:00");
    let (buf, _) = render(&mut app, 40, 4);
    let row: String = (0..40).map(|x| buf[(x, 3)].symbol()).collect();
    assert_eq!(row.trim_end(), "Paste 3 lines as 3 messages? [y/N]");
}

#[test]
fn secure_mode_shows_a_lock_and_the_fingerprint() {
    let mut app = scene();
    app.fingerprint = Some("SHA256:0123456789abcdef".into());
    let (buf, _) = render(&mut app, 120, 10);
    let row: String = (0..120).map(|x| buf[(x, 8)].symbol()).collect();
    assert!(row.contains("│ connected │ 🔒"), "{row}");
    assert!(row.contains(" SHA256:0123456789abcdef"), "{row}");
    app.link = Link::Reconnecting(2, 20);
    let (buf, _) = render(&mut app, 120, 10);
    let row: String = (0..120).map(|x| buf[(x, 8)].symbol()).collect();
    assert!(row.contains("reconnecting… (2/20)"), "{row}");
}

#[test]
fn hostile_text_never_puts_a_control_character_in_a_cell() {
    let mut app = scene();
    let mut ev = crate::wire::chat::ChatLine {
        id: 1,
        ts_ms: 0,
        kind: crate::wire::chat::ChatKind::Say,
        history: false,
        room: "lobby".into(),
        from: "e\x1bvil".into(),
        to: String::new(),
        text: "\x1b[2J\x1b]0;title\x07\u{9b}31m\r\u{202e}x\u{301}".into(),
    };
    app.on_client(
        crate::chat::client::ClientEvent::Chat(ev.clone()),
        "",
        &|_| "12:00".into(),
    );
    ev.room = "l\x1bab".into();
    app.on_client(crate::chat::client::ClientEvent::Chat(ev), "", &|_| {
        "12:00".into()
    });
    for (w, h) in [(80, 24), (20, 6)] {
        let (buf, _) = render(&mut app, w, h);
        for c in &buf.content {
            assert!(
                !c.symbol().chars().any(char::is_control),
                "{:?}",
                c.symbol()
            );
        }
        assert!(dump(&buf).contains("^[[2J") || w < 40);
    }
}

#[test]
fn narrow_screens_hide_the_member_list_and_scroll_the_tabs() {
    let mut app = scene();
    for r in ["alpha", "beta", "gamma"] {
        app.window(r, Kind::Room);
    }
    app.active = app.windows.len() - 1;
    let (buf, _) = render(&mut app, 40, 6);
    let tabs: String = (0..40).map(|x| buf[(x, 0)].symbol()).collect();
    assert!(tabs.starts_with('<') && tabs.contains("6:#gamma"), "{tabs}");
    assert!(areas(&app, Rect::new(0, 0, 40, 6)).members.is_none());
    assert!(areas(&app, Rect::new(0, 0, 60, 6)).members.is_some());
}

#[test]
fn tiny_terminals_do_not_panic() {
    for (w, h) in [(1, 1), (2, 2), (5, 3), (10, 4), (3, 10)] {
        let mut app = scene();
        app.editor.insert("日本語 text");
        app.active_window_mut().scroll_up(3);
        render(&mut app, w, h);
        app.paste("a\nb", "12:00");
        render(&mut app, w, h);
    }
}
