//! `spec.tls`: which hosts have TLS and which `kubernetes.io/tls` Secret each is served with.
//!
//! A Secret that is missing, unparsable or whose key does not match its certificate is a
//! diagnostic, and its hosts are served with the default certificate (never with another
//! host's); they still count as TLS hosts, so plain HTTP keeps redirecting and the error stays
//! visible. A certificate whose names do not cover a host it is listed for is a warning.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;

use crate::diagnostic::{Diagnostic, Subject};
use crate::source::Snapshot;
use crate::table::{Cert, HostKey, TlsHost, TlsHosts, validate_rule_host};
use crate::tls::cache::KeyCache;
use crate::tls::keys::covers;

/// `NAMESPACE/NAME` of a Secret, as `--default-certificate` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl FromStr for SecretRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self { namespace: ns.to_owned(), name: name.to_owned() })
            }
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> Self {
        r.to_string()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Finds Secrets and parses each at most once per rebuild (and, through the cache, once for
/// as long as its content stays the same).
pub(super) struct Certs<'a> {
    secrets: HashMap<(&'a str, &'a str), &'a Secret>,
    cache: &'a mut KeyCache,
    loaded: HashMap<(String, String), Result<Cert, String>>,
}

impl<'a> Certs<'a> {
    pub fn new(snapshot: &'a Snapshot, cache: &'a mut KeyCache) -> Self {
        let mut secrets = HashMap::new();
        for secret in &snapshot.secrets {
            if let (Some(ns), Some(name)) = (secret.metadata.namespace.as_deref(), secret.metadata.name.as_deref()) {
                secrets.insert((ns, name), &**secret);
            }
        }
        Self { secrets, cache, loaded: HashMap::new() }
    }

    /// The certificate of one Secret, or why it cannot be used.
    fn load(&mut self, namespace: &str, name: &str) -> Result<Cert, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(done) = self.loaded.get(&key) {
            return done.clone();
        }
        let shown: Arc<str> = format!("{namespace}/{name}").into();
        let result = match self.secrets.get(&(namespace, name)) {
            None => Err(format!("Secret {shown} not found")),
            Some(secret) => match (field(secret, "tls.crt"), field(secret, "tls.key")) {
                (None, _) => Err(format!("Secret {shown} has no tls.crt")),
                (_, None) => Err(format!("Secret {shown} has no tls.key")),
                (Some(crt), Some(key)) => match self.cache.load(crt, key) {
                    (Ok(parsed), fingerprint) => {
                        Ok(Cert::new(parsed.key, parsed.not_after, fingerprint, shown.clone()))
                    }
                    (Err(err), _) => Err(format!("Secret {shown}: {err}")),
                },
            },
        };
        self.loaded.insert(key, result.clone());
        result
    }

    /// The default certificate from `--default-certificate`, if named and usable.
    pub fn default_cert(&mut self, secret: Option<&SecretRef>, diagnostics: &mut Vec<Diagnostic>) -> Option<Cert> {
        let secret = secret?;
        match self.load(&secret.namespace, &secret.name) {
            Ok(cert) => Some(cert),
            Err(why) => {
                let subject = Subject::object("Secret", &secret.namespace, &secret.name);
                let msg = format!("--default-certificate: {why}; the built-in default certificate is used");
                diagnostics.push(Diagnostic::error(subject, "", msg));
                None
            }
        }
    }

    /// Adds the TLS hosts of one Ingress. Ingresses arrive oldest first: a host listed by an
    /// older Ingress keeps its certificate and the newcomer gets a diagnostic.
    pub fn add_ingress(
        &mut self,
        ingress: &Ingress,
        name: &Arc<str>,
        tls: &mut TlsHosts,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let Some(spec) = &ingress.spec else { return };
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let subject = &Subject::object("Ingress", namespace, ingress.metadata.name.as_deref().unwrap_or_default());
        for (i, entry) in spec.tls.iter().flatten().enumerate() {
            let field = format!("spec.tls[{i}]");
            let secret_name = entry.secret_name.as_deref().filter(|s| !s.is_empty());
            let cert = match secret_name {
                Some(secret) => self.load(namespace, secret),
                None => Err("no secretName".to_owned()),
            };
            let listed: Vec<&str> = entry.hosts.iter().flatten().map(String::as_str).collect();
            // No hosts: the certificate applies to this Ingress's rule hosts that it covers.
            let implied = listed.is_empty();
            let hosts: Vec<&str> = if implied {
                spec.rules.iter().flatten().filter_map(|r| r.host.as_deref()).filter(|h| !h.is_empty()).collect()
            } else {
                listed
            };
            let mut added = Vec::new();
            for (j, host) in hosts.iter().enumerate() {
                let key = match validate_rule_host(host) {
                    Ok(HostKey::Any) | Err(_) if implied => continue,
                    Ok(key) => key,
                    Err(err) => {
                        let msg = format!("{err}; not served over TLS");
                        diagnostics.push(Diagnostic::error(subject.clone(), format!("{field}.hosts[{j}]"), msg));
                        continue;
                    }
                };
                let shown = host_name(&key);
                if let Ok(cert) = &cert
                    && !covers(&cert.key, &shown)
                {
                    if implied {
                        continue;
                    }
                    let msg = format!("the certificate in Secret {} does not cover host {shown}", cert.secret);
                    diagnostics.push(Diagnostic::warning(subject.clone(), format!("{field}.hosts[{j}]"), msg));
                }
                let tls_host = TlsHost {
                    cert: cert.as_ref().ok().cloned(),
                    secret: secret_name.map(|s| format!("{namespace}/{s}").into()),
                    ingress: name.clone(),
                };
                if let Err(winner) = tls.insert(&key, tls_host.clone())
                    && (winner.secret != tls_host.secret || winner.cert != tls_host.cert)
                {
                    let msg = format!(
                        "host {shown} already gets its certificate from {} (Ingress {}); ignored here",
                        winner.secret.as_deref().map_or_else(|| "the default".to_owned(), |s| format!("Secret {s}")),
                        winner.ingress,
                    );
                    diagnostics.push(Diagnostic::warning(subject.clone(), format!("{field}.hosts[{j}]"), msg));
                    continue;
                }
                added.push(shown);
            }
            if implied && added.is_empty() {
                let msg = "no hosts listed and the certificate covers none of this Ingress's rule hosts; ignored";
                diagnostics.push(Diagnostic::warning(subject.clone(), format!("{field}.hosts"), msg));
                continue;
            }
            if let Err(why) = cert {
                let hosts = if added.is_empty() { "its hosts".to_owned() } else { added.join(", ") };
                let msg = format!("{why}; {hosts} served with the default certificate");
                diagnostics.push(match secret_name {
                    Some(_) => Diagnostic::error(subject.clone(), format!("{field}.secretName"), msg),
                    None => Diagnostic::warning(subject.clone(), field, msg),
                });
            }
        }
    }
}

/// `tls.crt` / `tls.key` from `stringData` (as written in a manifests directory) or `data`.
fn field<'s>(secret: &'s Secret, key: &str) -> Option<&'s [u8]> {
    if let Some(value) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(value.as_bytes());
    }
    secret.data.as_ref().and_then(|d| d.get(key)).map(|v| v.0.as_slice())
}

fn host_name(key: &HostKey) -> String {
    match key {
        HostKey::Exact(h) => h.clone(),
        HostKey::Wildcard(h) => format!("*.{h}"),
        HostKey::Any => String::new(),
    }
}

#[cfg(test)]
mod tests;
