//! Rules for person and room names: 1 to 32 bytes of printable, non-space
//! characters, not starting with `/`, `#`, `*` or `@`; compared without case.
//! A room may be typed as `#lab`; the `#` is dropped.

use crate::wire::chat::MAX_NAME;

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {MAX_NAME} bytes")]
    TooLong,
    #[error("name may not contain spaces or control characters")]
    BadChar,
    #[error("name may not start with '/', '#', '*' or '@'")]
    BadStart,
}

/// Checks a person's name.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':' || is_format_char(c))
    {
        return Err(NameError::BadChar);
    }
    if name.starts_with(['/', '#', '*', '@']) {
        return Err(NameError::BadStart);
    }
    Ok(())
}

/// Normalises and checks a room name (`#lab` -> `lab`).
pub fn room_name(room: &str) -> Result<String, NameError> {
    let room = room.strip_prefix('#').unwrap_or(room);
    check_name(room)?;
    Ok(room.to_owned())
}

/// The key names and rooms are compared by.
pub fn key(name: &str) -> String {
    name.to_lowercase()
}

/// [`key`] without an allocation when `name` is already its own key (plain
/// lowercase ASCII, as room names nearly always are): a message names its
/// room, and this runs once per message.
pub fn key_cow(name: &str) -> std::borrow::Cow<'_, str> {
    if name
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(key(name))
    }
}

/// Bidi and zero-width controls: they would let one name look like another.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("ana").is_ok());
        assert!(check_name("José_2").is_ok());
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name("a b"), Err(NameError::BadChar));
        assert_eq!(check_name("a:b"), Err(NameError::BadChar));
        assert_eq!(check_name("a\x1b"), Err(NameError::BadChar));
        assert_eq!(check_name("/x"), Err(NameError::BadStart));
        assert_eq!(check_name(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(check_name("a\u{202E}b"), Err(NameError::BadChar));
    }

    #[test]
    fn rooms_drop_the_hash() {
        assert_eq!(room_name("#lab").unwrap(), "lab");
        assert_eq!(room_name("lab").unwrap(), "lab");
        assert!(room_name("#").is_err());
        assert_eq!(key("Ana"), key("ANA"));
    }

    #[test]
    fn key_cow_borrows_only_what_is_already_a_key() {
        use std::borrow::Cow;
        for name in ["lab", "lab_2", "Lab", "LOBBY", "sala-ç", "Über", ""] {
            let k = key_cow(name);
            assert_eq!(k, key(name), "{name}");
            let borrowed = matches!(k, Cow::Borrowed(_));
            assert_eq!(borrowed, name.is_ascii() && key(name) == name, "{name}");
        }
    }
}
