//! The client's `known_servers` file: the server fingerprints it has pinned,
//! one `host:port fingerprint` per line, like SSH's `known_hosts`. Blank lines
//! and lines starting with `#` are ignored; anything else that is not exactly
//! those two fields is an error naming the line, so a typo never silently
//! drops a pin. Parsing is pure ([`KnownServers::parse`]); reading and
//! appending are thin wrappers. The host is compared without ASCII case,
//! exactly as the user wrote it otherwise (`localhost:8000` and
//! `127.0.0.1:8000` are two entries, as in SSH).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::identity::Fingerprint;

/// File name of the pins inside the client's state directory.
pub const KNOWN_FILE: &str = "known_servers";
/// A larger file is refused before it is read (about 10,000 entries).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why `known_servers` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    /// Reading or appending failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not `host:port fingerprint`.
    #[error("{path} line {line}: {detail}")]
    Malformed {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    /// A server label that would not parse back from the file.
    #[error("{0:?} is not host:port, so it cannot be pinned")]
    BadServer(String),
    /// The file is larger than 1 MiB.
    #[error("{path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
}

/// One pinned server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// `host:port` as the user wrote it (host lowercased).
    pub server: String,
    /// The pinned public-key fingerprint.
    pub fingerprint: Fingerprint,
    /// 1-based line number, for messages that tell the user what to edit.
    pub line: usize,
}

/// The parsed file.
#[derive(Debug, Clone, Default)]
pub struct KnownServers {
    /// Where the pins were read from (and new ones go).
    pub path: PathBuf,
    /// Every entry, in file order.
    pub pins: Vec<Pin>,
}

impl KnownServers {
    /// Parses the file's text; `path` is only used in error messages.
    /// Two entries for the same server are an error unless they agree.
    pub fn parse(path: &Path, text: &str) -> Result<Self, KnownError> {
        let mut pins: Vec<Pin> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let malformed = |detail: String| KnownError::Malformed {
                path: path.to_path_buf(),
                line,
                detail,
            };
            let Some(pin) = parse_line(raw, line).map_err(malformed)? else {
                continue;
            };
            if let Some(other) = pins.iter().find(|p| p.server == pin.server) {
                if other.fingerprint != pin.fingerprint {
                    return Err(malformed(format!(
                        "{} is also on line {} with another fingerprint; keep one",
                        pin.server, other.line
                    )));
                }
                continue;
            }
            pins.push(pin);
        }
        Ok(Self {
            path: path.to_path_buf(),
            pins,
        })
    }

    /// Reads and parses `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, KnownError> {
        let io = |source| KnownError::Io {
            path: path.to_path_buf(),
            source,
        };
        match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: path.to_path_buf(),
                    pins: Vec::new(),
                });
            }
            Err(e) => return Err(io(e)),
            Ok(meta) if meta.len() > MAX_FILE_BYTES => {
                return Err(KnownError::TooLarge {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => {}
        }
        let bytes = fs::read(path).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|e| KnownError::Malformed {
            path: path.to_path_buf(),
            line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            detail: "not UTF-8".to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// The pin for `server` (`host:port`), if any.
    pub fn lookup(&self, server: &str) -> Option<&Pin> {
        let key = normalize(server);
        self.pins.iter().find(|p| p.server == key)
    }
}

/// Checks that `server` can be a known_servers key (`host:port`, no
/// spaces): `connect` asks before the handshake, so a successful
/// connection can always be pinned.
pub fn check_label(server: &str) -> Result<(), KnownError> {
    let bad = || KnownError::BadServer(server.chars().take(200).collect());
    if server
        .trim()
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(bad());
    }
    check_server(server.trim()).map_err(|_| bad())
}

/// Appends a pin for `server` to the file at `path`, creating it (and a
/// header comment) if needed. One `write` of one line with `O_APPEND`, so
/// two clients pinning at once do not interleave their lines.
pub fn append_pin(path: &Path, server: &str, fingerprint: &Fingerprint) -> Result<(), KnownError> {
    check_label(server)?;
    let io = |source| KnownError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    let mut text = String::new();
    if file.metadata().map_err(io)?.len() == 0 {
        text.push_str("# soquete known servers: host:port fingerprint (see docs/security.md)\n");
    }
    text.push_str(&format_line(server, fingerprint));
    file.write_all(text.as_bytes()).map_err(io)
}

/// The line [`append_pin`] writes, with its newline.
pub fn format_line(server: &str, fingerprint: &Fingerprint) -> String {
    format!("{} {fingerprint}\n", normalize(server))
}

/// Lowercases the host part for comparison; the port is digits anyway.
fn normalize(server: &str) -> String {
    server.trim().to_ascii_lowercase()
}

/// `Ok(None)` for a blank or comment line.
fn parse_line(raw: &str, line: usize) -> Result<Option<Pin>, String> {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [server, fingerprint] = fields[..] else {
        return Err(format!(
            "want `host:port fingerprint`, found {} fields",
            fields.len()
        ));
    };
    check_server(server)?;
    let fingerprint = fingerprint
        .parse::<Fingerprint>()
        .map_err(|e| e.to_string())?;
    Ok(Some(Pin {
        server: normalize(server),
        fingerprint,
        line,
    }))
}

/// `host:port` with a non-empty host and a port of 1–65535.
fn check_server(server: &str) -> Result<(), String> {
    let bad = || format!("{server:?} is not host:port");
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    let port_ok =
        port.parse::<u16>().is_ok_and(|p| p != 0) && port.bytes().all(|b| b.is_ascii_digit());
    if host.is_empty() || !port_ok {
        return Err(bad());
    }
    if host.starts_with('[') != host.ends_with(']') {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
#[path = "known_tests.rs"]
mod tests;
