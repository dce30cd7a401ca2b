//! The client's check of the server certificate: pinning instead of a CA.
//! The self-signed certificate is accepted whatever its names and dates (the
//! client pins the key, as SSH does), but the TLS 1.3 CertificateVerify
//! signature is still checked with the certificate's key by rustls' own
//! helper, so only the holder of the private key can complete the handshake.
//! When a pin (known_servers or `--fingerprint`) is given, any other key is
//! refused; the presented fingerprint is recorded either way so the caller
//! can report it.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use super::identity::Fingerprint;

/// Where the verifier leaves the fingerprint the server presented.
pub(crate) type Presented = Arc<Mutex<Option<Fingerprint>>>;

/// One connection's certificate check.
#[derive(Debug)]
pub(crate) struct PinVerifier {
    /// The key the server must have, if pinned.
    expected: Option<Fingerprint>,
    /// Filled in with the key the server presented.
    presented: Presented,
    /// Signature algorithms of the crypto provider (ring).
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    pub(crate) fn new(
        expected: Option<Fingerprint>,
        presented: Presented,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self {
            expected,
            presented,
            algorithms,
        }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let fingerprint = Fingerprint::of_cert(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        *self.presented.lock().unwrap_or_else(|e| e.into_inner()) = Some(fingerprint);
        match self.expected {
            Some(expected) if expected != fingerprint => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        // Only TLS 1.3 is enabled; this is never reached, and refuses if it is.
        Err(Error::General("tls 1.2 is not allowed".to_string()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
