//! TLS to the broker: a rustls client configuration from PEM files (the CA that signs the broker,
//! and optionally this device's certificate and key). Built once at start, so that a missing or
//! unreadable file is a startup error naming the file rather than a reconnect loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::{TlsConfiguration, Transport};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::config::TlsConfig;

/// Why the TLS settings cannot be used.
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
    /// rustls refused the certificates or key (wrong key for the certificate, say).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The transport for `tls`: TLS with the configured trust and client identity.
pub fn transport(tls: &TlsConfig) -> Result<Transport, TlsError> {
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(client_config(tls)?),
    )))
}

/// The rustls client configuration for `tls`.
pub fn client_config(tls: &TlsConfig) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) =
        roots.add_parsable_certificates(certificates("CA certificates", &tls.ca)?);
    if added == 0 {
        return Err(pem_error(
            "CA certificates",
            &tls.ca,
            "no usable certificate",
        ));
    }
    // Name the provider rather than rely on a process default, which is ambiguous when another
    // crate in the build enables a second one. ring: the build's one provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("the client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| pem_error("the client key", key, e))?;
            Ok(builder.with_client_auth_cert(chain, key)?)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        return Err(pem_error(what, path, "no certificate found"));
    }
    Ok(certs)
}

fn pem_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Makes a CA and a client certificate signed by it with the `openssl` command, if present.
    fn make_pki(dir: &Path) -> Option<()> {
        let run = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|_| ())
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ])?;
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "device.key",
            "-out",
            "device.csr",
            "-subj",
            "/CN=cab-0042",
        ])?;
        // Extensions make it an X.509 v3 certificate; webpki refuses v1.
        std::fs::write(
            dir.join("device.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .ok()?;
        run(&[
            "x509",
            "-req",
            "-in",
            "device.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "device.pem",
            "-days",
            "2",
            "-extfile",
            "device.ext",
        ])
    }

    #[test]
    fn builds_a_client_config_with_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        if make_pki(dir.path()).is_none() {
            eprintln!("openssl is not available; skipping");
            return;
        }
        let tls = TlsConfig {
            ca: dir.path().join("ca.pem"),
            cert: Some(dir.path().join("device.pem")),
            key: Some(dir.path().join("device.key")),
        };
        let config = client_config(&tls).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        transport(&tls).unwrap();

        // The CA's key is not the device certificate's key: rustls says so at start.
        let mismatched = TlsConfig {
            key: Some(dir.path().join("ca.key")),
            ..tls
        };
        assert!(client_config(&mismatched).is_err());
    }

    #[test]
    fn a_missing_or_empty_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for ca in [dir.path().join("missing.pem"), empty] {
            let tls = TlsConfig {
                ca: ca.clone(),
                cert: None,
                key: None,
            };
            let message = client_config(&tls).unwrap_err().to_string();
            assert!(message.contains(&ca.display().to_string()), "{message}");
        }
    }
}
