//! The routing table: immutable once built by `compile`, shared through `ArcSwap`, read
//! lock-free by the data path. Pure data and lookups: no I/O, no Kubernetes types here.

pub mod allow;
mod explain;
mod host;
mod path;
#[cfg(test)]
mod tests;
mod tls;

use std::fmt;
use std::sync::Arc;

pub use explain::{Explanation, HostCandidate, HostMatch, PathCandidate};
pub use host::{HostError, normalize_host, validate_rule_host};
pub use path::{PathKind, PathRule};
pub use tls::{Cert, SslRedirect, TlsHost, TlsHosts, TlsListing};

/// The maps the data path probes on every request (hosts, paths) and every handshake (SNI).
/// Keys come from configuration, never from clients, so a fast seeded hash (foldhash) is as
/// safe as SipHash here and cheaper per probe (measured in `benches/compare.sh`).
pub(crate) type Map<V> = std::collections::HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// Index of a [`Backend`] in [`RouteTable::backends`].
pub type BackendIdx = usize;

/// Everything the data path needs to route one request: hosts, paths and backends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTable {
    exact_hosts: Map<VirtualHost>,
    /// Keyed by the domain after `*.`: `*.foo.com` is stored under `foo.com`.
    wildcard_hosts: Map<VirtualHost>,
    /// Rules with no host: used when no host rule matched.
    any_host: Option<VirtualHost>,
    default_backend: Option<Route>,
    backends: Vec<Backend>,
    /// Hosts with TLS and their certificates.
    tls: TlsHosts,
}

/// The paths of one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VirtualHost {
    exact: Map<Route>,
    /// Keyed by the normalised prefix (no trailing `/`; the root prefix is the empty string).
    prefix: Map<Route>,
    /// The key lengths of each map: a candidate of a length no key has costs no hash probe.
    exact_lengths: path::Lengths,
    prefix_lengths: path::Lengths,
}

/// Where one matched request goes and who asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub backend: BackendIdx,
    /// `namespace/name` of the Ingress that owns this route.
    pub ingress: Arc<str>,
    /// The path as written in the Ingress (for display), and how it matches.
    pub rule: PathRule,
    /// What the owning Ingress's annotations ask for, shared by all its routes.
    pub policy: Arc<Policy>,
}

/// Per-Ingress behaviour parsed from annotations in `compile`; the data path only reads it.
/// Each feature adds its own typed field here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Timeouts, load balancing and health checks toward the backend.
    pub upstream: crate::upstream::policy::UpstreamPolicy,
    /// Which client addresses may use the routes.
    pub source: allow::SourceFilter,
    /// Largest request body accepted, in bytes (`None`: no limit).
    pub max_body_size: Option<u64>,
    /// Whether plain-HTTP requests are redirected to HTTPS.
    pub ssl_redirect: SslRedirect,
    /// `Strict-Transport-Security` value for HTTPS responses (`lintel.dev/hsts`).
    pub hsts: Option<http::HeaderValue>,
}

/// A Service port as named by an Ingress backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// The identity of a backend: long-lived upstream state is keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId {
    pub namespace: String,
    pub service: String,
    pub port: PortRef,
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)
    }
}

/// A resolved backend: the endpoints traffic may go to right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub id: BackendId,
    /// `host:port` authorities (IP literals, or DNS names for ExternalName Services).
    pub endpoints: Vec<Arc<str>>,
    /// True when `endpoints` holds serving+terminating endpoints because none was ready.
    pub terminating_fallback: bool,
    /// Why there is no endpoint at all, when the reason is a configuration error.
    pub unresolved: Option<String>,
}

/// One route as listed for people (`/routes`, `lintel check`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteListing {
    /// `None` for rules without a host and for the default backend.
    pub host: Option<String>,
    /// `None` for the default backend.
    pub path: Option<String>,
    pub path_type: Option<PathKind>,
    pub backend: String,
    pub endpoints: Vec<Arc<str>>,
    pub ingress: String,
}

impl RouteTable {
    /// Finds the route for a normalised host (see [`normalize_host`]) and a request path.
    /// Falls back to the default backend when no rule matches.
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        self.virtual_host(host).and_then(|vhost| vhost.find(path)).or(self.default_backend.as_ref())
    }

    /// Exact host, then a wildcard covering exactly one more label, then the host-less rules.
    fn virtual_host(&self, host: &str) -> Option<&VirtualHost> {
        if let Some(vhost) = self.exact_hosts.get(host) {
            return Some(vhost);
        }
        if !self.wildcard_hosts.is_empty()
            && let Some((first, rest)) = host.split_once('.')
            && !first.is_empty()
            && let Some(vhost) = self.wildcard_hosts.get(rest)
        {
            return Some(vhost);
        }
        self.any_host.as_ref()
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    pub fn backend(&self, idx: BackendIdx) -> Option<&Backend> {
        self.backends.get(idx)
    }

    /// Every route, the default backend's included, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        let vhosts = self.exact_hosts.values().chain(self.wildcard_hosts.values()).chain(self.any_host.iter());
        vhosts.flat_map(|v| v.exact.values().chain(v.prefix.values())).chain(self.default_backend.iter())
    }

    pub fn default_backend(&self) -> Option<&Route> {
        self.default_backend.as_ref()
    }

    /// Hosts with TLS and their certificates.
    pub fn tls(&self) -> &TlsHosts {
        &self.tls
    }

    /// Number of host+path routes (the default backend not counted).
    pub fn route_count(&self) -> usize {
        self.virtual_hosts().map(|(_, v)| v.exact.len() + v.prefix.len()).sum()
    }

    fn virtual_hosts(&self) -> impl Iterator<Item = (Option<String>, &VirtualHost)> {
        let exact = self.exact_hosts.iter().map(|(h, v)| (Some(h.to_string()), v));
        let wild = self.wildcard_hosts.iter().map(|(h, v)| (Some(format!("*.{h}")), v));
        let any = self.any_host.iter().map(|v| (None, v));
        exact.chain(wild).chain(any)
    }

    /// Every route, sorted by host then path, the default backend last.
    pub fn listing(&self) -> Vec<RouteListing> {
        let mut out = Vec::with_capacity(self.route_count() + 1);
        for (host, vhost) in self.virtual_hosts() {
            let mut routes: Vec<&Route> = vhost.exact.values().chain(vhost.prefix.values()).collect();
            routes.sort_by(|a, b| a.rule.cmp(&b.rule));
            for route in routes {
                out.push(self.listing_of(host.clone(), route, true));
            }
        }
        out.sort_by(|a, b| (&a.host, &a.path).cmp(&(&b.host, &b.path)));
        if let Some(default) = &self.default_backend {
            out.push(self.listing_of(None, default, false));
        }
        out
    }

    fn listing_of(&self, host: Option<String>, route: &Route, with_path: bool) -> RouteListing {
        let backend = self.backends.get(route.backend);
        RouteListing {
            host,
            path: with_path.then(|| route.rule.path().to_owned()),
            path_type: with_path.then(|| route.rule.kind()),
            backend: backend.map(|b| b.id.to_string()).unwrap_or_default(),
            endpoints: backend.map(|b| b.endpoints.clone()).unwrap_or_default(),
            ingress: route.ingress.to_string(),
        }
    }
}

/// Which hosts a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostKey {
    /// A lower-case host name.
    Exact(String),
    /// `*.foo.com`, stored as `foo.com`.
    Wildcard(String),
    /// A rule with no host.
    Any,
}

/// Assembles a [`RouteTable`]; used by `compile`, which decides precedence between Ingresses.
#[derive(Debug, Default)]
pub struct TableBuilder {
    table: RouteTable,
}

impl TableBuilder {
    pub fn add_backend(&mut self, backend: Backend) -> BackendIdx {
        self.table.backends.push(backend);
        self.table.backends.len() - 1
    }

    /// Adds a route; when the host already has the same path and type, keeps the existing
    /// one and returns it so the caller can say who won.
    pub fn add_route(&mut self, host: &HostKey, route: Route) -> Result<(), &Route> {
        let table = &mut self.table;
        let vhost = match host {
            HostKey::Exact(h) => table.exact_hosts.entry(h.as_str().into()).or_default(),
            HostKey::Wildcard(h) => table.wildcard_hosts.entry(h.as_str().into()).or_default(),
            HostKey::Any => table.any_host.get_or_insert_with(VirtualHost::default),
        };
        vhost.insert(route)
    }

    /// Sets the default backend unless one is set already, which is then returned.
    pub fn set_default_backend(&mut self, route: Route) -> Result<(), &Route> {
        match self.table.default_backend {
            Some(ref existing) => Err(existing),
            None => {
                self.table.default_backend = Some(route);
                Ok(())
            }
        }
    }

    pub fn tls_mut(&mut self) -> &mut TlsHosts {
        &mut self.table.tls
    }

    pub fn build(self) -> RouteTable {
        self.table
    }
}
