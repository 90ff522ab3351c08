//! TLS for the gateway's listeners (HTTP and the embedded broker): a rustls server configuration
//! from PEM files, built at start so that a missing or unreadable file is a start-up error naming
//! the file. One crypto provider, *ring*, named rather than left to a process default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A listener's certificate chain and private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server's certificate, then any intermediates, as PEM.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1), as PEM. Keep it readable by the
    /// gateway's user only.
    pub key: PathBuf,
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing, unreadable or holds nothing of the kind expected.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// rustls refused the certificate or key (a key that is not the certificate's, say).
    #[error("TLS configuration refused for {path}: {source}")]
    Rustls {
        /// The certificate file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// The crypto provider every TLS configuration of the gateway uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS acceptor serving `files`, for HTTP/1.1 (`alpn`: the protocols offered, none for MQTT).
pub fn acceptor(files: &TlsFiles, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Pem {
        what: "a private key",
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let refused = |source| TlsError::Rustls {
        path: files.cert.clone(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(refused)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        what: "certificates",
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no certificate found".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn serves_a_certificate_and_its_key() {
        let dir = tempfile::tempdir().unwrap();
        acceptor(&write_pair(dir.path()), &[b"http/1.1"]).unwrap();
    }

    #[test]
    fn a_missing_file_or_a_key_of_another_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path());
        let missing = TlsFiles {
            key: dir.path().join("missing.pem"),
            ..files.clone()
        };
        let message = acceptor(&missing, &[]).err().unwrap().to_string();
        assert!(message.contains("missing.pem"), "{message}");

        let other = tempfile::tempdir().unwrap();
        let mismatched = TlsFiles {
            key: write_pair(other.path()).key,
            ..files
        };
        let message = acceptor(&mismatched, &[]).err().unwrap().to_string();
        assert!(message.contains("cert.pem"), "{message}");
    }
}
