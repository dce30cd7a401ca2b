//! How the hub's messages look to each kind of client: a native frame, or a
//! text line for raw clients (`name: text`, `* ana joined lobby`). Each
//! message is rendered at most once per kind and the bytes are shared by all
//! recipients of that kind.

use bytes::Bytes;

use crate::sanitize::for_terminal;
use crate::wire::chat::{ChatKind, ChatLine, EventKind, EventLine, ServerMsg};

/// Which protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Length-prefixed soquete frames.
    Native,
    /// Unframed text (the chapter's script, nc, telnet).
    Raw,
}

impl Flavor {
    pub fn label(self) -> &'static str {
        match self {
            Flavor::Native => "native",
            Flavor::Raw => "raw",
        }
    }
}

/// A message, rendered lazily for each flavour.
pub struct Rendered {
    /// The native message; encoded on first use.
    msg: Option<ServerMsg>,
    native: Option<Bytes>,
    /// The raw form; `None` inside means raw clients get nothing.
    raw: RawForm,
}

enum RawForm {
    Ready(Option<Bytes>),
    /// Text line to build on first use.
    Line(String),
}

impl Rendered {
    /// A chat line. In verbatim mode raw clients get the bare text bytes,
    /// as the chapter's server would have relayed them.
    pub fn chat(line: &ChatLine, verbatim: bool) -> Self {
        let raw = if verbatim {
            RawForm::Ready(Some(Bytes::from(line.text.clone().into_bytes())))
        } else {
            RawForm::Line(chat_text(line))
        };
        Self {
            msg: Some(ServerMsg::Chat(line.clone())),
            native: None,
            raw,
        }
    }

    /// A membership event; raw clients in verbatim mode get nothing.
    pub fn event(ev: &EventLine, verbatim: bool) -> Self {
        let raw = if verbatim {
            RawForm::Ready(None)
        } else {
            RawForm::Line(event_text(ev))
        };
        Self {
            msg: Some(ServerMsg::Event(ev.clone())),
            native: None,
            raw,
        }
    }

    /// A message whose raw form is given bytes (verbatim relay).
    pub fn with_raw(msg: &ServerMsg, raw: Bytes) -> Self {
        Self {
            msg: Some(msg.clone()),
            native: None,
            raw: RawForm::Ready(Some(raw)),
        }
    }

    /// Bytes already rendered for each flavour (a batch); an empty buffer
    /// means that flavour gets nothing.
    pub fn prepared(native: Bytes, raw: Bytes) -> Self {
        Self {
            msg: None,
            native: Some(native).filter(|b| !b.is_empty()),
            raw: RawForm::Ready(Some(raw).filter(|b| !b.is_empty())),
        }
    }

    /// The bytes for a client of `flavor`, or `None` if it gets nothing.
    pub fn for_flavor(&mut self, flavor: Flavor) -> Option<Bytes> {
        match flavor {
            Flavor::Native => {
                if self.native.is_none() {
                    self.native = self.msg.as_ref().map(super::hub::encode);
                }
                self.native.clone()
            }
            Flavor::Raw => {
                if let RawForm::Line(text) = &self.raw {
                    self.raw = RawForm::Ready(Some(raw_line(text)));
                }
                match &self.raw {
                    RawForm::Ready(b) => b.clone(),
                    RawForm::Line(_) => None,
                }
            }
        }
    }
}

/// A text line for raw clients: sanitized, newline-terminated.
pub fn raw_line(text: &str) -> Bytes {
    let mut s = for_terminal(text);
    s.push('\n');
    Bytes::from(s.into_bytes())
}

fn chat_text(line: &ChatLine) -> String {
    match line.kind {
        ChatKind::Say => format!("{}: {}", line.from, line.text),
        ChatKind::Action => format!("* {} {}", line.from, line.text),
        ChatKind::Private => format!("[pm] {} -> {}: {}", line.from, line.to, line.text),
    }
}

fn event_text(ev: &EventLine) -> String {
    match ev.kind {
        EventKind::Join => format!("* {} joined {}", ev.name, ev.room),
        EventKind::Part => format!("* {} left {}", ev.name, ev.room),
        EventKind::Quit if ev.detail.is_empty() => format!("* {} quit", ev.name),
        EventKind::Quit => format!("* {} quit ({})", ev.name, ev.detail),
        EventKind::Nick => format!("* {} is now {}", ev.name, ev.detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: ChatKind, text: &str) -> ChatLine {
        ChatLine {
            id: 1,
            ts_ms: 0,
            kind,
            history: false,
            room: "lobby".into(),
            from: "ana".into(),
            to: "bo".into(),
            text: text.into(),
        }
    }

    #[test]
    fn raw_lines_name_the_sender() {
        let mut r = Rendered::chat(&line(ChatKind::Say, "oi"), false);
        assert_eq!(&r.for_flavor(Flavor::Raw).unwrap()[..], b"ana: oi\n");
        let mut r = Rendered::chat(&line(ChatKind::Action, "acena"), false);
        assert_eq!(&r.for_flavor(Flavor::Raw).unwrap()[..], b"* ana acena\n");
        let mut r = Rendered::chat(&line(ChatKind::Private, "psst"), false);
        assert_eq!(
            &r.for_flavor(Flavor::Raw).unwrap()[..],
            b"[pm] ana -> bo: psst\n"
        );
    }

    #[test]
    fn raw_lines_cannot_inject_lines_or_escapes() {
        let mut r = Rendered::chat(&line(ChatKind::Say, "a\nfake: b\x1b[2J"), false);
        assert_eq!(
            &r.for_flavor(Flavor::Raw).unwrap()[..],
            b"ana: a^Jfake: b^[[2J\n"
        );
    }

    #[test]
    fn verbatim_mode_relays_bare_text_and_no_events() {
        let mut r = Rendered::chat(&line(ChatKind::Say, "Olá turma de redes industriais"), true);
        assert_eq!(r.for_flavor(Flavor::Raw).unwrap().len(), 31);
        let ev = EventLine {
            id: 1,
            ts_ms: 0,
            kind: EventKind::Join,
            room: "lobby".into(),
            name: "ana".into(),
            detail: String::new(),
        };
        assert_eq!(Rendered::event(&ev, true).for_flavor(Flavor::Raw), None);
        assert!(
            Rendered::event(&ev, true)
                .for_flavor(Flavor::Native)
                .is_some()
        );
    }

    #[test]
    fn native_bytes_are_encoded_once_and_shared() {
        let mut r = Rendered::chat(&line(ChatKind::Say, "oi"), false);
        let a = r.for_flavor(Flavor::Native).unwrap();
        let b = r.for_flavor(Flavor::Native).unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr());
    }
}
