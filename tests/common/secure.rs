//! Folders and a passphrase file for tests of the secure chat: a fresh
//! temporary folder with the passphrase (mode 0600, as the server demands),
//! the server's state folder and the client's.

use std::path::PathBuf;

use super::Server;

/// The passphrase every secure test shares.
pub const PASS: &str = "correct horse battery staple";

pub struct SecureDirs {
    _tmp: tempfile::TempDir,
    pub pass_file: PathBuf,
    pub server: PathBuf,
    pub client: PathBuf,
}

impl SecureDirs {
    pub fn new() -> SecureDirs {
        let tmp = tempfile::tempdir().unwrap();
        let pass_file = tmp.path().join("pass");
        std::fs::write(&pass_file, format!("{PASS}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        SecureDirs {
            server: tmp.path().join("server"),
            client: tmp.path().join("client"),
            pass_file,
            _tmp: tmp,
        }
    }

    /// A secure `chat serve` on 127.0.0.1:0 with this passphrase and state.
    pub fn serve(&self) -> Server {
        Server::start(&[
            "chat",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--passphrase-file",
            self.pass_file.to_str().unwrap(),
            "--state-dir",
            self.server.to_str().unwrap(),
        ])
    }
}
