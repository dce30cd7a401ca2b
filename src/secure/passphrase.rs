//! Where the secure channel's passphrase and settings come from: the
//! clap-ready [`PassphraseArgs`] that `chat serve` and `chat join` flatten,
//! and [`PassphraseArgs::resolve`], which turns them into [`SecureOptions`]
//! (or `None`: no passphrase option, plain mode).
//!
//! A passphrase is read from a file (`--passphrase-file F`, first line), an
//! environment variable (`--passphrase-env VAR`) or a prompt on the terminal
//! (`--passphrase`, no echo). There is deliberately no option that takes the
//! passphrase itself: command lines are visible to every user (`ps`) and
//! kept in shell history. The passphrase is wiped from memory on drop.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;
use zeroize::Zeroizing;

use super::identity::Fingerprint;
use super::pake::Role;

/// The longest passphrase accepted, in bytes.
pub const MAX_PASSPHRASE_LEN: usize = 1024;
/// Bytes read from a passphrase file at most (its first line is used).
const MAX_FILE_READ: u64 = 64 * 1024;
/// Below this many characters the server warns that online guessing is easy.
const SHORT_PASSPHRASE: usize = 8;

/// Why no passphrase could be had.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// Empty file line, variable or answer.
    #[error("the passphrase from {0} is empty")]
    Empty(String),
    /// Longer than [`MAX_PASSPHRASE_LEN`].
    #[error("the passphrase from {0} is longer than {MAX_PASSPHRASE_LEN} bytes")]
    TooLong(String),
    /// Not UTF-8.
    #[error("the passphrase from {0} is not UTF-8 text")]
    NotText(String),
    /// The file could not be read.
    #[error("cannot read passphrase file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// No terminal to ask on.
    #[error(
        "--passphrase needs a terminal to ask on ({0}); use --passphrase-file or --passphrase-env"
    )]
    NoTerminal(std::io::Error),
    /// The two answers at the server's prompt differ.
    #[error("the two passphrases typed differ")]
    Mismatch,
    /// No `--state-dir` and no per-user directory on this system.
    #[error("no per-user data directory on this system; give --state-dir")]
    NoStateDir,
    /// An option that makes no sense without a passphrase.
    #[error("{0} needs --passphrase, --passphrase-file or --passphrase-env")]
    NeedsPassphrase(&'static str),
    /// A client option given to a server.
    #[error("{0} is for chat join, not chat serve")]
    ClientOnly(&'static str),
}

/// A passphrase, wiped from memory on drop; never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Checks it is non-empty and at most [`MAX_PASSPHRASE_LEN`] bytes;
    /// `from` names the source in errors.
    pub fn new(text: String, from: &str) -> Result<Self, PassphraseError> {
        let text = Zeroizing::new(text);
        if text.is_empty() {
            return Err(PassphraseError::Empty(from.to_string()));
        }
        if text.len() > MAX_PASSPHRASE_LEN {
            return Err(PassphraseError::TooLong(from.to_string()));
        }
        Ok(Self(text))
    }

    /// The bytes the PAKE uses.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// The secure-channel options of `chat serve` and `chat join`
/// (`#[command(flatten)]`). Without a passphrase option the chat is plain.
#[derive(Debug, Clone, Default, Args)]
#[command(group(clap::ArgGroup::new("passphrase_source").multiple(false)))]
pub struct PassphraseArgs {
    /// Secure mode: ask for the passphrase on the terminal.
    ///
    /// Everyone who knows the passphrase can join; the connection is TLS 1.3
    /// and the passphrase never crosses the network (see docs/security.md).
    #[arg(long, group = "passphrase_source")]
    pub passphrase: bool,
    /// Secure mode: the passphrase is the first line of FILE.
    #[arg(long, value_name = "FILE", group = "passphrase_source")]
    pub passphrase_file: Option<PathBuf>,
    /// Secure mode: the passphrase is in environment variable VAR.
    #[arg(long, value_name = "VAR", group = "passphrase_source")]
    pub passphrase_env: Option<String>,
    /// Where the server key and the client's known_servers live.
    ///
    /// Default: the per-user data directory (Linux `~/.local/share/soquete`,
    /// macOS `~/Library/Application Support/soquete`, Windows
    /// `%APPDATA%\soquete\data`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Join only if the server's fingerprint is HEX (`SHA256:...`), even on
    /// the first connection.
    #[arg(long, value_name = "HEX", requires = "passphrase_source")]
    pub fingerprint: Option<Fingerprint>,
    /// Show the server's identity fingerprint (serve: this server's; join:
    /// the server joined).
    #[arg(long)]
    pub show_fingerprint: bool,
}

/// Where the passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// Ask on the terminal (`--passphrase`).
    Prompt,
    /// First line of a file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// The runtime settings of a secure chat endpoint.
#[derive(Debug, Clone)]
pub struct SecureOptions {
    /// The shared passphrase.
    pub passphrase: Passphrase,
    /// Server key / known_servers directory.
    pub state_dir: PathBuf,
    /// `--fingerprint`: the identity the server must have (join).
    pub fingerprint: Option<Fingerprint>,
    /// `--show-fingerprint`.
    pub show_fingerprint: bool,
}

impl PassphraseArgs {
    /// The passphrase option given, if any.
    pub fn source(&self) -> Option<PassphraseSource> {
        if let Some(path) = &self.passphrase_file {
            Some(PassphraseSource::File(path.clone()))
        } else if let Some(var) = &self.passphrase_env {
            Some(PassphraseSource::Env(var.clone()))
        } else {
            self.passphrase.then_some(PassphraseSource::Prompt)
        }
    }

    /// `--state-dir`, or the per-user default.
    pub fn state_dir(&self) -> Result<PathBuf, PassphraseError> {
        match &self.state_dir {
            Some(dir) => Ok(dir.clone()),
            None => default_state_dir().ok_or(PassphraseError::NoStateDir),
        }
    }

    /// Reads the passphrase (asking on the terminal if so told) and returns
    /// the secure settings, or `None` when no passphrase option was given.
    /// `role` decides the prompt (a server asks twice) and refuses
    /// `--fingerprint` on a server.
    pub fn resolve(&self, role: Role) -> Result<Option<SecureOptions>, PassphraseError> {
        if role == Role::Server && self.fingerprint.is_some() {
            return Err(PassphraseError::ClientOnly("--fingerprint"));
        }
        let Some(source) = self.source() else {
            if self.fingerprint.is_some() {
                return Err(PassphraseError::NeedsPassphrase("--fingerprint"));
            }
            return Ok(None);
        };
        let passphrase = read_passphrase(&source, role)?;
        if role == Role::Server && passphrase.0.chars().count() < SHORT_PASSPHRASE {
            tracing::warn!(
                "the passphrase is shorter than {SHORT_PASSPHRASE} characters: easy to guess online despite the rate limit"
            );
        }
        Ok(Some(SecureOptions {
            passphrase,
            state_dir: self.state_dir()?,
            fingerprint: self.fingerprint,
            show_fingerprint: self.show_fingerprint,
        }))
    }
}

/// The per-user data directory (`directories::ProjectDirs("", "", "soquete")`).
pub fn default_state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "soquete").map(|d| d.data_dir().to_path_buf())
}

/// Reads the passphrase from `source`.
pub fn read_passphrase(
    source: &PassphraseSource,
    role: Role,
) -> Result<Passphrase, PassphraseError> {
    match source {
        PassphraseSource::File(path) => from_file(path),
        PassphraseSource::Env(var) => from_env(var),
        PassphraseSource::Prompt => from_prompt(role),
    }
}

/// First line of the file, without its line ending.
pub fn from_file(path: &Path) -> Result<Passphrase, PassphraseError> {
    let io = |source| PassphraseError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    warn_if_others_can_read(path, &file);
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_FILE_READ)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let from = format!("file {}", path.display());
    let line = first_line(&bytes);
    let text = std::str::from_utf8(line).map_err(|_| PassphraseError::NotText(from.clone()))?;
    Passphrase::new(text.to_string(), &from)
}

/// The bytes before the first `\n`, without a `\r` before it.
fn first_line(bytes: &[u8]) -> &[u8] {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The variable's whole value.
pub fn from_env(var: &str) -> Result<Passphrase, PassphraseError> {
    let from = format!("environment variable {var}");
    match std::env::var(var) {
        Ok(value) => Passphrase::new(value, &from),
        Err(std::env::VarError::NotPresent) => Err(PassphraseError::EnvMissing(var.to_string())),
        Err(std::env::VarError::NotUnicode(_)) => Err(PassphraseError::NotText(from)),
    }
}

/// Asks on the terminal without echo; a server asks twice.
fn from_prompt(role: Role) -> Result<Passphrase, PassphraseError> {
    let first = Zeroizing::new(
        rpassword::prompt_password("passphrase: ").map_err(PassphraseError::NoTerminal)?,
    );
    if role == Role::Server {
        let again = Zeroizing::new(
            rpassword::prompt_password("passphrase again: ")
                .map_err(PassphraseError::NoTerminal)?,
        );
        if *first != *again {
            return Err(PassphraseError::Mismatch);
        }
    }
    Passphrase::new(first.to_string(), "the terminal")
}

/// A passphrase file others can read is worth a warning, not a refusal.
fn warn_if_others_can_read(path: &Path, file: &std::fs::File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = file.metadata()
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "passphrase file {} can be read by other users; chmod 600 it",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, file);
}

#[cfg(test)]
#[path = "passphrase_tests.rs"]
mod tests;
