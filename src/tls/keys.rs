//! Certificate chains and private keys from PEM, as a `kubernetes.io/tls` Secret or a pair of
//! files holds them, turned into rustls `CertifiedKey`s with the ring provider. Pure CPU work:
//! no I/O here, so `compile` can call it.

use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;

/// Why a certificate and key cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("tls.crt is not valid PEM: {0}")]
    CertificatePem(String),
    #[error("tls.crt: the first certificate cannot be parsed: {0}")]
    Certificate(String),
    #[error("tls.key holds no PEM private key (expected PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey,
    #[error("tls.key: unsupported or invalid private key: {0}")]
    Key(String),
    #[error("tls.key does not match the certificate in tls.crt")]
    KeyMismatch,
}

/// Parses a PEM chain (leaf first) and a PEM private key in PKCS#8, PKCS#1 (RSA) or SEC1 (EC),
/// and checks that the key belongs to the leaf certificate.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, KeyError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| KeyError::CertificatePem(e.to_string()))?;
    let leaf = chain.first().ok_or(KeyError::NoCertificate)?;
    ParsedCertificate::try_from(leaf).map_err(|e| KeyError::Certificate(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => KeyError::NoKey,
        other => KeyError::Key(other.to_string()),
    })?;
    let signing_key = any_supported_type(&key).map_err(|e| KeyError::Key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(certified)),
        Err(_) => Err(KeyError::KeyMismatch),
    }
}

/// Whether the leaf certificate is valid for `host` (a lower-case DNS name, or `*.domain` for
/// a wildcard host, which only a `*.domain` certificate name covers).
pub fn covers(key: &CertifiedKey, host: &str) -> bool {
    let Some(leaf) = key.cert.first() else { return false };
    let Ok(parsed) = ParsedCertificate::try_from(leaf) else { return false };
    // A wildcard host is covered when a name one label below it is: only `*.domain` (or a
    // certificate naming this very label, which nobody writes) does that.
    let probe = match host.strip_prefix("*.") {
        Some(domain) => format!("lintel-wildcard-probe.{domain}"),
        None => host.to_owned(),
    };
    let Ok(name) = DnsName::try_from(probe) else { return false };
    rustls::client::verify_server_name(&parsed, &ServerName::DnsName(name)).is_ok()
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};

    use super::*;

    fn self_signed(names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let key = KeyPair::generate_for(alg).unwrap();
        let params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn ecdsa_and_ed25519_pkcs8_keys_load() {
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &PKCS_ECDSA_P384_SHA384, &PKCS_ED25519] {
            let (cert, key) = self_signed(&["a.example.com"], alg);
            certified_key(cert.as_bytes(), key.as_bytes()).unwrap();
        }
    }

    /// PKCS#1 (RSA) and SEC1 (EC) keys, as older tools write them, with the certificate made
    /// from the same key in PKCS#8 (which rcgen reads).
    #[test]
    fn pkcs1_and_sec1_keys_load() {
        let fixtures = [
            (
                include_str!("../../tests/fixtures/tls/rsa2048.pkcs8.pem"),
                include_str!("../../tests/fixtures/tls/rsa2048.pkcs1.pem"),
            ),
            (
                include_str!("../../tests/fixtures/tls/p256.pkcs8.pem"),
                include_str!("../../tests/fixtures/tls/p256.sec1.pem"),
            ),
            (
                include_str!("../../tests/fixtures/tls/p384.pkcs8.pem"),
                include_str!("../../tests/fixtures/tls/p384.sec1.pem"),
            ),
        ];
        for (pkcs8, other_form) in fixtures {
            let key = KeyPair::from_pem(pkcs8).unwrap();
            let cert = CertificateParams::new(vec!["a.example.com".to_owned()]).unwrap().self_signed(&key).unwrap();
            certified_key(cert.pem().as_bytes(), other_form.as_bytes()).unwrap();
            certified_key(cert.pem().as_bytes(), pkcs8.as_bytes()).unwrap();
        }
    }

    #[test]
    fn key_of_another_certificate_is_a_mismatch() {
        let (cert, _) = self_signed(&["a.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other_key) = self_signed(&["b.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(certified_key(cert.as_bytes(), other_key.as_bytes()).unwrap_err(), KeyError::KeyMismatch);
    }

    #[test]
    fn garbage_is_reported_by_part() {
        let (cert, key) = self_signed(&["a.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(certified_key(b"hello", key.as_bytes()).unwrap_err(), KeyError::NoCertificate);
        assert_eq!(certified_key(cert.as_bytes(), b"").unwrap_err(), KeyError::NoKey);
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(certified_key(bad.as_bytes(), key.as_bytes()), Err(KeyError::Certificate(_))));
    }

    #[test]
    fn names_cover_exact_and_wildcard_hosts() {
        let (cert, key) = self_signed(&["a.example.com", "*.wild.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let key = certified_key(cert.as_bytes(), key.as_bytes()).unwrap();
        assert!(covers(&key, "a.example.com"));
        assert!(covers(&key, "x.wild.example.com"));
        assert!(covers(&key, "*.wild.example.com"));
        assert!(!covers(&key, "b.example.com"));
        assert!(!covers(&key, "*.example.com"));
        assert!(!covers(&key, "wild.example.com"));
    }
}
