//! The server's long-term identity for the secure channel: an Ed25519 key
//! pair and a self-signed certificate, made on first start and kept in a
//! state directory (`server-key.pem`, mode 0600 on Unix, and
//! `server-cert.pem`), and its [`Fingerprint`]: SHA-256 of the certificate's
//! SubjectPublicKeyInfo, shown as `SHA256:` and 64 lowercase hex digits.
//!
//! The fingerprint covers the public key only, not the certificate, so a
//! lost `server-cert.pem` is remade from the key with the same fingerprint.
//! Nothing here touches the network; the TLS configuration is in `channel`.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// File name of the server's private key inside the state directory.
pub const KEY_FILE: &str = "server-key.pem";
/// File name of the server's self-signed certificate inside the state directory.
pub const CERT_FILE: &str = "server-cert.pem";
/// Prefix of a displayed fingerprint (as in OpenSSH).
const PREFIX: &str = "SHA256:";

/// Why the server identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Creating, reading or writing a file in the state directory failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but does not hold what it should.
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    /// The private key can be read by other users (Unix).
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    KeyTooOpen { path: PathBuf, mode: u32 },
    /// Key generation or certificate signing failed.
    #[error("cannot make the server identity: {0}")]
    Generate(String),
}

/// SHA-256 of a SubjectPublicKeyInfo (DER): what clients pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The fingerprint of a certificate's public key; fails on a
    /// certificate that does not parse as X.509.
    pub fn of_cert(cert: &CertificateDer<'_>) -> Result<Self, webpki::Error> {
        let parsed = webpki::EndEntityCert::try_from(cert)?;
        Ok(Self::of_spki(parsed.subject_public_key_info().as_ref()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a fingerprint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a fingerprint: {0:?} (want SHA256: and 64 hex digits, as `soquete chat serve --show-fingerprint` prints)"
)]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// Accepts `SHA256:` (any case, optional) and 64 hex digits in any case;
    /// `:` between digits is ignored, so `ab:cd:...` pastes work too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.chars().take(100).collect());
        let t = s.trim();
        let t = match t.get(..PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(PREFIX) => &t[PREFIX.len()..],
            _ => t,
        };
        let digits: Vec<u8> = t.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(bad)?;
            let lo = hex_value(pair[1]).ok_or_else(bad)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Self(out))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The server's key pair and certificate, ready for rustls.
pub struct ServerIdentity {
    /// The self-signed certificate sent in every TLS handshake.
    pub cert: CertificateDer<'static>,
    /// The private key (PKCS#8) that signs every TLS 1.3 handshake.
    pub key: PrivatePkcs8KeyDer<'static>,
    /// SHA-256 of the certificate's public key.
    pub fingerprint: Fingerprint,
    /// Whether this call generated a new key (first start).
    pub created: bool,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads the identity from `state_dir`, or makes and saves a new one when
    /// there is no key yet. A key without a certificate gets a new
    /// certificate (same fingerprint); a certificate without its key, or a
    /// certificate for another key, is an error rather than a silent new
    /// identity that every client would report as changed.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, IdentityError> {
        create_private_dir(state_dir).map_err(|source| IdentityError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let key_path = state_dir.join(KEY_FILE);
        let cert_path = state_dir.join(CERT_FILE);
        let created = !key_path.exists();
        if created {
            if cert_path.exists() {
                return Err(IdentityError::Invalid {
                    path: cert_path,
                    detail: format!(
                        "found without its key {KEY_FILE}; remove it to make a new identity"
                    ),
                });
            }
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                .map_err(|e| IdentityError::Generate(e.to_string()))?;
            write_new_file(&key_path, key.serialize_pem().as_bytes(), true)?;
        }
        check_key_mode(&key_path)?;
        let key_pem = read_text(&key_path)?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| IdentityError::Invalid {
            path: key_path.clone(),
            detail: format!("not a private key: {e}"),
        })?;
        if !cert_path.exists() {
            write_new_file(&cert_path, self_signed(&key)?.as_bytes(), false)?;
        }
        let cert =
            CertificateDer::from_pem_file(&cert_path).map_err(|e| IdentityError::Invalid {
                path: cert_path.clone(),
                detail: format!("not a PEM certificate: {e}"),
            })?;
        let fingerprint = Fingerprint::of_cert(&cert).map_err(|e| IdentityError::Invalid {
            path: cert_path.clone(),
            detail: format!("not an X.509 certificate: {e}"),
        })?;
        if fingerprint != Fingerprint::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&key))
        {
            return Err(IdentityError::Invalid {
                path: cert_path,
                detail: format!("does not match the key in {KEY_FILE}"),
            });
        }
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        Ok(Self {
            cert,
            key,
            fingerprint,
            created,
        })
    }

    /// The private key in the form rustls takes.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// A self-signed certificate for `key`, as PEM. Its validity dates are
/// rcgen's defaults (1975–4096): clients pin the key, not a CA, and do not
/// check dates, like SSH host keys.
fn self_signed(key: &rcgen::KeyPair) -> Result<String, IdentityError> {
    let gen_err = |e: rcgen::Error| IdentityError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(vec!["soquete".to_string()]).map_err(gen_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "soquete server");
    Ok(params.self_signed(key).map_err(gen_err)?.pem())
}

/// Creates `dir` (and parents), private to the user on Unix.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a file that must not exist yet, through a temporary name so a
/// crash never leaves a half-written key under the real name.
fn write_new_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = private;
    let result = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    // A link fails if `path` appeared meanwhile (another server starting on
    // the same directory): theirs is kept, and the caller reads it back.
    let result = result.and_then(|()| match fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = fs::remove_file(&tmp);
    result.map_err(io)
}

fn read_text(path: &Path) -> Result<String, IdentityError> {
    fs::read_to_string(path).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a key file that group or others can read (Unix), as sshd does.
fn check_key_mode(path: &Path) -> Result<(), IdentityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyTooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
