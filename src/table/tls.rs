//! The TLS part of the table: which hosts have TLS, the certificate each one is served with,
//! and the default certificate. Read by the certificate resolver on every handshake and by
//! the plain listener to decide redirects. Lookups only: parsing happens in `compile`.

use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::sign::CertifiedKey;

use super::HostKey;

/// A parsed certificate chain and key, with the identity of its source bytes (so two tables
/// compare equal when the Secrets did not change, and a rebuild can skip the swap).
#[derive(Clone)]
pub struct Cert {
    pub key: Arc<CertifiedKey>,
    /// SHA-256 of the PEM the key was parsed from.
    fingerprint: [u8; 32],
    /// `namespace/name` of the Secret it came from.
    pub secret: Arc<str>,
    /// When the leaf certificate expires (`notAfter`).
    pub not_after: Option<SystemTime>,
}

impl Cert {
    pub fn new(key: Arc<CertifiedKey>, not_after: Option<SystemTime>, fingerprint: [u8; 32], secret: Arc<str>) -> Self {
        Self { key, fingerprint, secret, not_after }
    }
}

impl PartialEq for Cert {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.secret == other.secret
    }
}

impl fmt::Debug for Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short: String = self.fingerprint[..6].iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "Cert({} sha256:{short})", self.secret)
    }
}

/// A host listed under some Ingress's `spec.tls`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsHost {
    /// `None` when the Secret is missing or unusable: the host is served with the default
    /// certificate (never with another host's), and plain HTTP still redirects.
    pub cert: Option<Cert>,
    /// `namespace/name` of the Secret named for this host, if any.
    pub secret: Option<Arc<str>>,
    /// `namespace/name` of the Ingress that listed it.
    pub ingress: Arc<str>,
}

/// Hosts with TLS, keyed like the routing table: exact names, and wildcards by the domain
/// after `*.`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsHosts {
    exact: super::Map<TlsHost>,
    wildcard: super::Map<TlsHost>,
    /// From `--default-certificate NAMESPACE/SECRET`; `None` leaves the listener's own default.
    default: Option<Cert>,
}

/// How redirects from plain HTTP to HTTPS apply to the routes of one Ingress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SslRedirect {
    /// Redirect when the request's host has TLS (is listed under some `spec.tls`).
    #[default]
    IfTls,
    /// Never redirect (`ssl-redirect: "false"`).
    Never,
    /// Redirect even when the host has no certificate of its own (`force-ssl-redirect`).
    Always,
}

/// One TLS host as listed for people (`/routes`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsListing {
    pub host: String,
    pub secret: Option<String>,
    /// False when the host is served with the default certificate because its own is unusable.
    pub certificate_loaded: bool,
    pub ingress: String,
}

impl TlsHosts {
    /// The entry for a lower-case host name: exact, then a wildcard one label up.
    pub fn find(&self, host: &str) -> Option<&TlsHost> {
        if let Some(entry) = self.exact.get(host) {
            return Some(entry);
        }
        if self.wildcard.is_empty() {
            return None;
        }
        let (first, rest) = host.split_once('.')?;
        if first.is_empty() {
            return None;
        }
        self.wildcard.get(rest)
    }

    /// The certificate for an SNI name: the host's own, else the default from a Secret.
    /// `None` means the listener's built-in default.
    pub fn certificate(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let own = sni.and_then(|name| self.find(name)).and_then(|entry| entry.cert.as_ref());
        own.or(self.default.as_ref()).map(|cert| &cert.key)
    }

    /// Whether plain-HTTP requests for this host are redirected by default.
    pub fn has_tls(&self, host: &str) -> bool {
        self.find(host).is_some()
    }

    /// Adds a host unless it is listed already, in which case the existing entry is returned.
    pub fn insert(&mut self, host: &HostKey, entry: TlsHost) -> Result<(), &TlsHost> {
        let (map, key) = match host {
            HostKey::Exact(h) => (&mut self.exact, h),
            HostKey::Wildcard(h) => (&mut self.wildcard, h),
            HostKey::Any => return Ok(()),
        };
        match map.entry(key.as_str().into()) {
            Entry::Occupied(existing) => Err(existing.into_mut()),
            Entry::Vacant(slot) => {
                slot.insert(entry);
                Ok(())
            }
        }
    }

    pub fn set_default(&mut self, cert: Option<Cert>) {
        self.default = cert;
    }

    pub fn default_cert(&self) -> Option<&Cert> {
        self.default.as_ref()
    }

    /// Every certificate loaded from a Secret: the hosts' own and the default (a Secret
    /// listed for several hosts appears once per host).
    pub fn certs(&self) -> impl Iterator<Item = &Cert> {
        let hosts = self.exact.values().chain(self.wildcard.values()).filter_map(|e| e.cert.as_ref());
        hosts.chain(self.default.as_ref())
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every TLS host, sorted by name.
    pub fn listing(&self) -> Vec<TlsListing> {
        let exact = self.exact.iter().map(|(h, e)| (h.to_string(), e));
        let wild = self.wildcard.iter().map(|(h, e)| (format!("*.{h}"), e));
        let mut out: Vec<TlsListing> = exact
            .chain(wild)
            .map(|(host, e)| TlsListing {
                host,
                secret: e.secret.as_deref().map(str::to_owned),
                certificate_loaded: e.cert.is_some(),
                ingress: e.ingress.to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.host.cmp(&b.host));
        out
    }
}
