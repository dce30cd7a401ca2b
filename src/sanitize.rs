//! Makes text from the network safe to print on a terminal: control
//! characters and escape sequences are shown inert, never interpreted.
//!
//! Chat messages, names and file names from other people pass through here
//! before reaching stdout or stderr, so a message holding `\x1b[2J` cannot
//! clear anyone's screen.

/// Replaces C0/C1 control characters (except tab) with visible escapes:
/// `\x1b` becomes `^[`, other controls `\u{..}`-style `<U+XXXX>` markers.
pub fn for_terminal(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x20 {
            out.push('^');
            out.push(char::from(b'@' + c as u8));
        } else {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c != '\t' && (c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_inert() {
        assert_eq!(for_terminal("a\x1b[2Jb"), "a^[[2Jb");
        assert_eq!(for_terminal("bell\x07"), "bell^G");
        assert_eq!(for_terminal("x\u{9b}y"), "x<U+009B>y");
        assert_eq!(for_terminal("line\nbreak"), "line^Jbreak");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        assert_eq!(
            for_terminal("Olá turma\tde redes 🎉"),
            "Olá turma\tde redes 🎉"
        );
    }

    #[test]
    fn bidi_overrides_are_neutralised() {
        assert_eq!(for_terminal("a\u{202E}b"), "a<U+202E>b");
    }
}
