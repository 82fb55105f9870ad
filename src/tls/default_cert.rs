//! The built-in default certificate, served when neither the SNI name nor a default Secret
//! gives one: a PEM file pair from the configuration, or a self-signed certificate made at
//! start (as ingress-nginx's "fake certificate"), which is logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::keys::{KeyError, certified_key};

/// The name the self-signed certificate is issued for.
pub const SELF_SIGNED_NAME: &str = "lintel-default.invalid";

#[derive(Debug, thiserror::Error)]
pub enum DefaultCertError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{cert} / {key}: {source}")]
    Parse { cert: PathBuf, key: PathBuf, source: KeyError },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Reads and checks a PEM certificate chain and its key.
pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, DefaultCertError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| DefaultCertError::Read { path: path.into(), source });
    certified_key(&read(cert)?, &read(key)?).map_err(|source| DefaultCertError::Parse {
        cert: cert.into(),
        key: key.into(),
        source,
    })
}

/// A fresh ECDSA P-256 self-signed certificate for [`SELF_SIGNED_NAME`].
pub fn self_signed() -> Result<Arc<CertifiedKey>, DefaultCertError> {
    let mut params = rcgen::CertificateParams::new(vec![SELF_SIGNED_NAME.to_owned()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "Lintel default certificate");
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    certified_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).map_err(|source| DefaultCertError::Parse {
        cert: "(generated)".into(),
        key: "(generated)".into(),
        source,
    })
}
