//! Parsed keys kept across rebuilds, keyed by the SHA-256 of the PEM they came from, so an
//! unrelated change (an endpoint moving) does not re-parse every certificate. Entries not
//! used by the latest rebuild are dropped, so the cache never outgrows the Secrets in use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use ring::digest::{Context, SHA256};
use rustls::sign::CertifiedKey;

use super::keys::{KeyError, certified_key, not_after};

/// SHA-256 over the certificate and key PEM.
pub type Fingerprint = [u8; 32];

#[derive(Debug, Default)]
pub struct KeyCache {
    entries: HashMap<Fingerprint, Entry>,
    /// Bumped by [`KeyCache::sweep`]; entries remember the last one they were used in.
    generation: u64,
}

#[derive(Debug)]
struct Entry {
    parsed: Result<Parsed, KeyError>,
    used: u64,
}

/// A certificate chain and key ready to serve, and when the leaf certificate expires.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub key: Arc<CertifiedKey>,
    /// `notAfter` of the leaf, read once when it is parsed (`None` if it could not be read).
    pub not_after: Option<SystemTime>,
}

fn parse(cert_pem: &[u8], key_pem: &[u8]) -> Result<Parsed, KeyError> {
    let key = certified_key(cert_pem, key_pem)?;
    let not_after = not_after(&key);
    Ok(Parsed { key, not_after })
}

impl KeyCache {
    /// Parses (or finds already parsed) a certificate chain and key.
    pub fn load(&mut self, cert_pem: &[u8], key_pem: &[u8]) -> (Result<Parsed, KeyError>, Fingerprint) {
        let fingerprint = fingerprint(cert_pem, key_pem);
        let generation = self.generation;
        let entry = self
            .entries
            .entry(fingerprint)
            .or_insert_with(|| Entry { parsed: parse(cert_pem, key_pem), used: generation });
        entry.used = generation;
        (entry.parsed.clone(), fingerprint)
    }

    /// Ends a rebuild: forgets whatever it did not use.
    pub fn sweep(&mut self) {
        let generation = self.generation;
        self.entries.retain(|_, e| e.used == generation);
        self.generation += 1;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn fingerprint(cert_pem: &[u8], key_pem: &[u8]) -> Fingerprint {
    let mut ctx = Context::new(&SHA256);
    // Length-prefixed, so moving bytes between the two parts changes the result.
    ctx.update(&(cert_pem.len() as u64).to_be_bytes());
    ctx.update(cert_pem);
    ctx.update(key_pem);
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_entries_are_swept() {
        let mut cache = KeyCache::default();
        let (a, fa) = cache.load(b"not a cert", b"a");
        assert!(a.is_err());
        let (_, fb) = cache.load(b"not a cert", b"b");
        assert_ne!(fa, fb);
        cache.sweep();
        assert_eq!(cache.len(), 2);
        let _ = cache.load(b"not a cert", b"a");
        cache.sweep();
        assert_eq!(cache.len(), 1);
    }
}
