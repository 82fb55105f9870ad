//! Certificate chains and private keys from PEM, as a `kubernetes.io/tls` Secret or a pair of
//! files holds them, turned into rustls `CertifiedKey`s with the ring provider. Pure CPU work:
//! no I/O here, so `compile` can call it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The `notAfter` of the leaf certificate: when it expires. `None` when the DER does not
/// have the X.509 shape (rustls accepted the certificate, so that does not happen in practice).
pub fn not_after(key: &CertifiedKey) -> Option<SystemTime> {
    let leaf = key.cert.first()?;
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    // signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... }, ... }
    let (_, certificate, _) = der(leaf.as_ref(), SEQUENCE)?;
    let (_, tbs, _) = der(certificate, SEQUENCE)?;
    let mut fields = tbs;
    if fields.first() == Some(&0xa0) {
        fields = der(fields, 0xa0)?.2;
    }
    let (_, _serial, fields) = der(fields, 0x02)?;
    let (_, _signature, fields) = der(fields, SEQUENCE)?;
    let (_, _issuer, fields) = der(fields, SEQUENCE)?;
    let (_, validity, _) = der(fields, SEQUENCE)?;
    let (_, _, validity) = any_time(validity)?;
    let (tag, not_after, _) = any_time(validity)?;
    let seconds = asn1_time(tag, not_after)?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element with a one-byte tag: `(tag, content, rest)`, or `None` when `input` does
/// not start with an element tagged `tag`.
fn der(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((found, content, rest))
}

fn any_time(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    der(input, UTC_TIME).or_else(|| der(input, GENERALIZED_TIME))
}

/// Seconds since the Unix epoch of a DER `UTCTime` (`YYMMDDHHMMSSZ`, years 1950-2049) or
/// `GeneralizedTime` (`YYYYMMDDHHMMSSZ`), the two forms RFC 5280 allows.
fn asn1_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        (GENERALIZED_TIME, 14) => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let part = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) = (part(0)?, part(2)?, part(4)?, part(6)?, part(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    #[test]
    fn not_after_is_read_from_utc_and_generalized_time() {
        // Dates from `date -u -d ... +%s`; 2051 is past UTCTime's range, so GeneralizedTime.
        for (y, m, d, unix) in
            [(2031, 5, 17, 1_936_742_400u64), (2051, 1, 2, 2_556_230_400), (1999, 12, 31, 946_598_400)]
        {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = CertificateParams::new(vec!["a.example.com".to_owned()]).unwrap();
            params.not_after = rcgen::date_time_ymd(y, m, d);
            let cert = params.self_signed(&key).unwrap();
            let parsed = certified_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
            let expected = UNIX_EPOCH + Duration::from_secs(unix);
            assert_eq!(not_after(&parsed), Some(expected), "{y}-{m}-{d}");
        }
    }

    #[test]
    fn asn1_times_outside_the_rfc_5280_forms_are_refused() {
        assert_eq!(asn1_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(UTC_TIME, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(asn1_time(UTC_TIME, b"4912312359Z"), None);
        assert_eq!(asn1_time(GENERALIZED_TIME, b"20491231235959.5Z"), None);
        assert_eq!(asn1_time(UTC_TIME, b"491331235959Z"), None);
        assert_eq!(der(&[0x30, 0x85, 0, 0, 0, 0, 1], SEQUENCE), None);
    }
}
