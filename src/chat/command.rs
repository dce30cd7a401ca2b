//! What a person types: `/join lab`, `/msg ana hi`, or plain text. Parsed the
//! same way by the line-mode client, the terminal UI and the server (for raw
//! clients, which type commands as text). Pure: a string in, a [`Command`] out.

/// One typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Plain text for the current room.
    Say(String),
    /// `/me TEXT`
    Action(String),
    /// `/msg NAME TEXT`
    Private { to: String, text: String },
    /// `/join ROOM`
    Join(String),
    /// `/part [ROOM]` (current room when omitted)
    Part(Option<String>),
    /// `/nick NAME`
    Nick(String),
    /// `/who [ROOM]`
    Who(Option<String>),
    /// `/rooms`
    Rooms,
    /// `/quit [REASON]`
    Quit(Option<String>),
    /// `/help`
    Help,
}

/// Why a typed line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command /{0} (try /help)")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// The commands and what they do, for `/help`.
pub const HELP: &[(&str, &str)] = &[
    ("/join ROOM", "join a room (and make it the current one)"),
    ("/part [ROOM]", "leave a room (default: the current one)"),
    ("/msg NAME TEXT", "private message"),
    ("/me TEXT", "action in the current room"),
    ("/nick NAME", "change your name"),
    ("/who [ROOM]", "who is in a room"),
    ("/rooms", "list rooms"),
    ("/quit [REASON]", "leave"),
    ("//text", "send text that starts with a slash"),
];

/// Every command name, for completion.
pub const NAMES: &[&str] = &[
    "/join", "/part", "/msg", "/me", "/nick", "/who", "/rooms", "/quit", "/help",
];

/// Parses one typed line (without its newline). `None` for a blank line.
pub fn parse(line: &str) -> Option<Result<Command, CommandError>> {
    if line.trim().is_empty() {
        return None;
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Some(Ok(Command::Say(line.to_owned())));
    };
    if rest.starts_with('/') {
        // `//x` sends `/x`.
        return Some(Ok(Command::Say(rest.to_owned())));
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    let opt = |a: &str| (!a.is_empty()).then(|| a.to_owned());
    Some(match name.to_ascii_lowercase().as_str() {
        "me" if !args.is_empty() => Ok(Command::Action(args.to_owned())),
        "me" => Err(CommandError::Usage("/me TEXT")),
        "msg" | "query" | "m" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Ok(Command::Private {
                to: to.to_owned(),
                text: text.trim_start().to_owned(),
            }),
            _ => Err(CommandError::Usage("/msg NAME TEXT")),
        },
        "join" | "j" if single_word(args) => Ok(Command::Join(args.to_owned())),
        "join" | "j" => Err(CommandError::Usage("/join ROOM")),
        "part" | "leave" if args.split_whitespace().count() <= 1 => Ok(Command::Part(opt(args))),
        "part" | "leave" => Err(CommandError::Usage("/part [ROOM]")),
        "nick" if single_word(args) => Ok(Command::Nick(args.to_owned())),
        "nick" => Err(CommandError::Usage("/nick NAME")),
        "who" | "names" if args.split_whitespace().count() <= 1 => Ok(Command::Who(opt(args))),
        "who" | "names" => Err(CommandError::Usage("/who [ROOM]")),
        "rooms" | "list" => Ok(Command::Rooms),
        "quit" | "exit" | "bye" => Ok(Command::Quit(opt(args))),
        "help" | "?" => Ok(Command::Help),
        other => Err(CommandError::Unknown(other.to_owned())),
    })
}

fn single_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// The `/help` text, one command per line.
pub fn help_text() -> String {
    HELP.iter()
        .map(|(c, d)| format!("{c:<16} {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Command {
        parse(s).unwrap().unwrap()
    }

    #[test]
    fn plain_text_is_said() {
        assert_eq!(ok("Olá turma"), Command::Say("Olá turma".into()));
        assert_eq!(ok("//slash"), Command::Say("/slash".into()));
        assert_eq!(parse("   "), None);
    }

    #[test]
    fn commands_parse_with_their_arguments() {
        assert_eq!(ok("/join lab"), Command::Join("lab".into()));
        assert_eq!(ok("/part"), Command::Part(None));
        assert_eq!(
            ok("/msg ana oi tudo bem"),
            Command::Private {
                to: "ana".into(),
                text: "oi tudo bem".into()
            }
        );
        assert_eq!(ok("/me acena"), Command::Action("acena".into()));
        assert_eq!(ok("/NICK bo"), Command::Nick("bo".into()));
        assert_eq!(ok("/who"), Command::Who(None));
        assert_eq!(ok("/rooms"), Command::Rooms);
        assert_eq!(ok("/quit tchau"), Command::Quit(Some("tchau".into())));
    }

    #[test]
    fn bad_commands_say_how_to_use_them() {
        assert_eq!(
            parse("/msg ana"),
            Some(Err(CommandError::Usage("/msg NAME TEXT")))
        );
        assert_eq!(
            parse("/join a b"),
            Some(Err(CommandError::Usage("/join ROOM")))
        );
        assert_eq!(
            parse("/frob"),
            Some(Err(CommandError::Unknown("frob".into())))
        );
    }
}
