//! Test certificates, made at test time (rcgen, on ring) so that no private key is ever in the
//! repository: a CA, a server certificate it signs for `localhost` and 127.0.0.1, and the PEM
//! files a gateway and an agent are configured with.

use std::path::{Path, PathBuf};

/// A CA and one server certificate signed by it, written as PEM files into a directory.
pub struct TestPki {
    /// The CA's certificate: what clients trust.
    pub ca: PathBuf,
    /// The server's certificate (for `localhost` and 127.0.0.1).
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

impl TestPki {
    /// Makes a CA named `name` and a server certificate it signs, in `dir` (`{name}-ca.pem`,
    /// `{name}-server.pem`, `{name}-server.key`).
    pub fn new(dir: &Path, name: &str) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");

        let server_key = rcgen::KeyPair::generate().expect("a server key");
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server parameters");
        let server = server_params
            .signed_by(&server_key, &ca, &ca_key)
            .expect("the server certificate");

        let pki = Self {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-server.pem")),
            key: dir.join(format!("{name}-server.key")),
        };
        std::fs::write(&pki.ca, ca.pem()).expect("writing the CA");
        std::fs::write(&pki.cert, server.pem()).expect("writing the server certificate");
        std::fs::write(&pki.key, server_key.serialize_pem()).expect("writing the server key");
        pki
    }
}
