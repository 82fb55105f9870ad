//! Prometheus metrics: every family Lintel exports, registered once in [`Metrics`], with one
//! method per event so the rest of the proxy never touches label sets. Served as OpenMetrics
//! text at the admin listener's `/metrics`. Labels are bounded (see `labels`); the request
//! families are recorded through per-route handles resolved at bind time (see `route`).

pub mod histogram;
pub mod labels;
mod owners;
pub mod route;

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use histogram::AtomicHistogram;
use histogram::Shown;
use labels::*;
use owners::{Owners, PoolLease};
use route::{HistogramFamily, RequestFamilies, RouteRegistry};
pub use route::{MethodClass, Outcome, RouteIndex, RouteMetrics};

use crate::compile::Compiled;
use crate::diagnostic::{Diagnostic, Severity, Subject};
use crate::source::Snapshot;
use crate::table::RouteTable;

type FloatGauge = Gauge<f64, AtomicU64>;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Endpoint states of `lintel_upstream_endpoints`.
pub const ENDPOINT_STATES: [&str; 4] = ["healthy", "unhealthy", "ejected", "terminating"];

/// Every family, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    routes: RouteRegistry,
    proxy_errors: Family<KindLabels, Counter>,
    // Upstreams.
    endpoints: Family<EndpointStateLabels, Gauge>,
    /// The series of the table in service, so a scrape refreshes only those.
    endpoint_series: Mutex<HashSet<EndpointStateLabels>>,
    connect_errors: Family<BackendLabels, Counter>,
    retries: Family<BackendReasonLabels, Counter>,
    timeouts: Family<BackendReasonLabels, Counter>,
    pool_opened: Family<BackendLabels, Counter>,
    pool_reused: Family<BackendLabels, Counter>,
    pool_open: Family<BackendLabels, Gauge>,
    /// Services and Ingresses with series of the families above and allowlist rejections.
    owners: Mutex<Owners>,
    // Connections.
    accepted: Family<ListenerLabels, Counter>,
    open: Family<ListenerLabels, Gauge>,
    handshakes: Family<VersionLabels, Counter>,
    handshake_errors: Family<ReasonLabels, Counter>,
    allowlist_rejections: Family<IngressLabels, Counter>,
    limit_rejections: Family<KindLabels, Counter>,
    // Control plane.
    rebuilds: Family<OutcomeLabels, Counter>,
    rebuild_duration: AtomicHistogram,
    objects: Family<KindLabels, Gauge>,
    last_sync: FloatGauge,
    watch_restarts: Family<ResourceLabels, Counter>,
    api_errors: Family<KindLabels, Counter>,
    diagnostics: Family<DiagnosticLabels, Gauge>,
    leader: Gauge,
    cert_expiry: Family<SecretLabels, FloatGauge>,
    cert_series: Mutex<Vec<SecretLabels>>,
    startup: FloatGauge,
}

/// Pre-resolved handles of one listener, for its accept loop.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    accepted: Counter,
    open: Gauge,
}

impl ListenerMetrics {
    /// Counts an accepted connection; it counts as open until the guard is dropped.
    pub fn accepted(&self) -> OpenConnection {
        self.accepted.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

/// Pre-resolved upstream-pool handles of one backend. The default is detached (counts go
/// nowhere), for endpoints made without metrics.
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    opened: Counter,
    open: Gauge,
    reused: Counter,
    /// Keeps the backend's pool series exported while this endpoint counts under them.
    _lease: Option<Arc<PoolLease>>,
}

impl PoolMetrics {
    /// A new upstream connection; it counts as open until the guard is dropped.
    pub fn opened(&self) -> OpenConnection {
        self.opened.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }

    /// A request sent on a connection that had carried a request before.
    pub fn reused(&self) {
        self.reused.inc();
    }
}

/// Decrements the open-connections gauge when the connection ends.
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn histograms(make: fn() -> AtomicHistogram) -> HistogramFamily<RouteLabels> {
    Family::new_with_constructor(make)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("lintel");
        let requests = RequestFamilies {
            requests: Family::default(),
            durations: Family::new_with_constructor(AtomicHistogram::durations),
            request_sizes: histograms(AtomicHistogram::sizes),
            response_sizes: histograms(AtomicHistogram::sizes),
            upstream_times: histograms(AtomicHistogram::durations),
        };
        reg(
            &mut r,
            "requests",
            "Requests answered, by route owner, method class and status class.",
            None,
            &requests.requests,
        );
        reg(
            &mut r,
            "request_duration",
            "Time from the request header to the last byte of the response, by route owner, method and status class.",
            Some(Unit::Seconds),
            &requests.durations,
        );
        reg(&mut r, "request_size", "Request body sizes, by route owner.", Some(Unit::Bytes), &requests.request_sizes);
        reg(
            &mut r,
            "response_size",
            "Response body sizes, by route owner.",
            Some(Unit::Bytes),
            &requests.response_sizes,
        );
        reg(
            &mut r,
            "upstream_response_duration",
            "Time from sending a request upstream to its response header, by route owner.",
            Some(Unit::Seconds),
            &requests.upstream_times,
        );
        let m = Self {
            routes: RouteRegistry::new(requests),
            proxy_errors: Family::default(),
            endpoints: Family::default(),
            endpoint_series: Mutex::default(),
            connect_errors: Family::default(),
            retries: Family::default(),
            timeouts: Family::default(),
            pool_opened: Family::default(),
            pool_reused: Family::default(),
            pool_open: Family::default(),
            owners: Mutex::default(),
            accepted: Family::default(),
            open: Family::default(),
            handshakes: Family::default(),
            handshake_errors: Family::default(),
            allowlist_rejections: Family::default(),
            limit_rejections: Family::default(),
            rebuilds: Family::default(),
            rebuild_duration: AtomicHistogram::rebuilds(),
            objects: Family::default(),
            last_sync: FloatGauge::default(),
            watch_restarts: Family::default(),
            api_errors: Family::default(),
            diagnostics: Family::default(),
            leader: Gauge::default(),
            cert_expiry: Family::default(),
            cert_series: Mutex::default(),
            startup: FloatGauge::default(),
            registry: r,
        };
        m.register_rest()
    }

    fn register_rest(mut self) -> Self {
        let r = &mut self.registry;
        reg(
            r,
            "proxy_errors",
            "Requests Lintel answered itself with an error, by kind (no_route, upstream_connect, ...).",
            None,
            &self.proxy_errors,
        );
        reg(
            r,
            "upstream_endpoints",
            "Endpoints per backend port by state (healthy, unhealthy, ejected, terminating).",
            None,
            &self.endpoints,
        );
        reg(
            r,
            "upstream_connect_errors",
            "Failed TCP connects to upstream endpoints, by backend.",
            None,
            &self.connect_errors,
        );
        reg(
            r,
            "upstream_retries",
            "Requests sent again, by backend and reason: connect (another endpoint after a failed connect), stale (a new connection after a pooled one closed before answering).",
            None,
            &self.retries,
        );
        reg(
            r,
            "upstream_timeouts",
            "Upstream timeouts by backend and kind (connect, response_header, idle).",
            None,
            &self.timeouts,
        );
        reg(
            r,
            "upstream_connections_opened",
            "TCP connections opened to upstream endpoints, counted by the connector when the connect succeeds, by backend.",
            None,
            &self.pool_opened,
        );
        reg(
            r,
            "upstream_connections_reused",
            "Requests sent on an upstream connection that had already carried a request (each connection counts its own requests; every one after its first is a reuse), by backend.",
            None,
            &self.pool_reused,
        );
        reg(
            r,
            "upstream_connections_open",
            "Upstream TCP connections open now (idle in the pool or busy), by backend.",
            None,
            &self.pool_open,
        );
        reg(r, "connections_accepted", "Client connections accepted, by listener.", None, &self.accepted);
        reg(r, "connections_open", "Client connections open now, by listener.", None, &self.open);
        reg(r, "tls_handshakes", "Completed TLS handshakes, by protocol version.", None, &self.handshakes);
        reg(r, "tls_handshake_errors", "Failed TLS handshakes, by reason.", None, &self.handshake_errors);
        reg(
            r,
            "allowlist_rejections",
            "Requests refused (403) by a source-address allowlist, by Ingress.",
            None,
            &self.allowlist_rejections,
        );
        reg(
            r,
            "limit_rejections",
            "Requests refused by a limit, by kind (body_size, header_size, ...).",
            None,
            &self.limit_rejections,
        );
        reg(r, "table_rebuilds", "Route table rebuilds, by outcome (swapped, unchanged).", None, &self.rebuilds);
        reg(
            r,
            "table_rebuild_duration",
            "Time to compile and bind one route table.",
            Some(Unit::Seconds),
            &self.rebuild_duration,
        );
        reg(
            r,
            "table_objects",
            "Objects in the table in service, by kind (ingresses, services, routes, backends, ...).",
            None,
            &self.objects,
        );
        reg(
            r,
            "last_successful_sync_timestamp",
            "Unix time of the last successful sync: a table rebuild, or a Kubernetes relist that found nothing changed.",
            Some(Unit::Seconds),
            &self.last_sync,
        );
        reg(
            r,
            "source_watch_restarts",
            "Kubernetes watches that broke (an error, or 410 Gone forcing a relist) and started over, by resource; once per interruption.",
            None,
            &self.watch_restarts,
        );
        reg(
            r,
            "source_api_errors",
            "Errors from Kubernetes API calls (the watches, the leader Lease, Ingress status writes, Events, the published Service), by kind.",
            None,
            &self.api_errors,
        );
        reg(r, "diagnostics", "Diagnostics of the table in service, by severity and reason.", None, &self.diagnostics);
        reg(
            r,
            "leader",
            "1 while this replica holds the leader Lease (writes Ingress status), else 0.",
            None,
            &self.leader,
        );
        reg(
            r,
            "tls_certificate_expiry_timestamp",
            "Unix time when the certificate of a TLS Secret in use expires (notAfter), by Secret.",
            Some(Unit::Seconds),
            &self.cert_expiry,
        );
        reg(
            r,
            "startup_duration",
            "Time from start to ready (first table in service, listeners open).",
            Some(Unit::Seconds),
            &self.startup,
        );
        let build = Info::new(BuildLabels { version: env!("CARGO_PKG_VERSION") });
        r.register("build", "Lintel's version.", build);
        self
    }

    /// The whole exposition (OpenMetrics text, ending in `# EOF`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    // --- Requests -------------------------------------------------------------------------

    /// Resolves the per-route handles of a table about to go into service.
    pub fn bind_routes(&self, table: &RouteTable) -> RouteIndex {
        self.routes.bind(table)
    }

    /// Handles for requests that matched no route.
    pub fn unrouted(&self) -> &Arc<RouteMetrics> {
        self.routes.unrouted()
    }

    /// A request Lintel answered itself with an error (`ProxyError::kind`).
    pub fn proxy_error(&self, kind: &'static str) {
        self.proxy_errors.get_or_create(&KindLabels { kind }).inc();
    }

    // --- Upstreams ------------------------------------------------------------------------

    /// Sets the endpoint counts of one backend port. States not listed are set to 0.
    pub fn set_endpoint_states(&self, namespace: &str, service: &str, port: &str, counts: &[(&'static str, i64)]) {
        for state in ENDPOINT_STATES {
            let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            let labels = EndpointStateLabels {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                port: port.to_owned(),
                state,
            };
            self.endpoints.get_or_create(&labels).set(n);
        }
    }

    /// Endpoint counts from the table about to go into service (every resolved endpoint is
    /// `healthy` until health checks say otherwise); backends no longer in it are dropped.
    pub fn set_endpoints_from_table(&self, table: &RouteTable) {
        let mut series = HashSet::new();
        for backend in table.backends() {
            let id = &backend.id;
            let n = i64::try_from(backend.endpoints.len()).unwrap_or(i64::MAX);
            let state = if backend.terminating_fallback { "terminating" } else { "healthy" };
            let port = id.port.to_string();
            self.set_endpoint_states(&id.namespace, &id.service, &port, &[(state, n)]);
            for state in ENDPOINT_STATES {
                series.insert(EndpointStateLabels {
                    namespace: id.namespace.clone(),
                    service: id.service.clone(),
                    port: port.clone(),
                    state,
                });
            }
        }
        let mut previous = self.endpoint_series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for stale in previous.iter().filter(|labels| !series.contains(labels)) {
            self.endpoints.remove(stale);
        }
        *previous = series;
    }

    /// Endpoint counts by what health checks and passive ejection say now; called when
    /// `/metrics` is scraped. An endpoint failing its active check is `unhealthy`, one
    /// ejected by passive failures `ejected`, a serving one `terminating` when its backend
    /// only has terminating endpoints left, else `healthy`. Only backends of the table in
    /// service are refreshed (a scrape racing a swap never brings back a removed backend).
    pub fn refresh_endpoint_states(&self, table: &RouteTable, groups: &[Arc<crate::upstream::Group>]) {
        let series = self.endpoint_series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        for (backend, group) in table.backends().iter().zip(groups) {
            let id = &backend.id;
            let mut counts = [0i64; 4];
            for endpoint in group.endpoints() {
                let state = if !endpoint.is_healthy() {
                    1
                } else if !endpoint.is_available(now) {
                    2
                } else if backend.terminating_fallback {
                    3
                } else {
                    0
                };
                if let Some(n) = counts.get_mut(state) {
                    *n += 1;
                }
            }
            let port = id.port.to_string();
            for (state, n) in ENDPOINT_STATES.into_iter().zip(counts) {
                let labels = EndpointStateLabels {
                    namespace: id.namespace.clone(),
                    service: id.service.clone(),
                    port: port.clone(),
                    state,
                };
                if series.contains(&labels) {
                    self.endpoints.get_or_create(&labels).set(n);
                }
            }
        }
    }

    pub fn upstream_connect_error(&self, namespace: &str, service: &str) {
        let labels = backend(namespace, service);
        self.track_backend(&labels, None);
        self.connect_errors.get_or_create(&labels).inc();
    }

    /// A request retried on another endpoint; `reason` e.g. `connect`, `status_5xx`.
    pub fn upstream_retry(&self, namespace: &str, service: &str, reason: &'static str) {
        self.track_backend(&backend(namespace, service), Some(reason));
        self.retries.get_or_create(&backend_reason(namespace, service, reason)).inc();
    }

    /// `kind`: `connect`, `response_header` or `idle`.
    pub fn upstream_timeout(&self, namespace: &str, service: &str, kind: &'static str) {
        self.track_backend(&backend(namespace, service), Some(kind));
        self.timeouts.get_or_create(&backend_reason(namespace, service, kind)).inc();
    }

    /// The pool handles of one backend, for the connector of each of its endpoints. The
    /// series stay while any endpoint holds them, even once the backend left the table.
    pub fn pool(self: &Arc<Self>, namespace: &str, service: &str) -> PoolMetrics {
        let labels = backend(namespace, service);
        let lease = self.pool_lease(&labels);
        PoolMetrics {
            opened: self.pool_opened.get_or_create_owned(&labels),
            open: self.pool_open.get_or_create_owned(&labels),
            reused: self.pool_reused.get_or_create_owned(&labels),
            _lease: Some(lease),
        }
    }

    // --- Connections ----------------------------------------------------------------------

    /// Handles for one listener (`http`, `https`); resolve once, before the accept loop.
    pub fn listener(&self, listener: &'static str) -> ListenerMetrics {
        let labels = ListenerLabels { listener };
        ListenerMetrics {
            accepted: self.accepted.get_or_create_owned(&labels),
            open: self.open.get_or_create_owned(&labels),
        }
    }

    /// `version`: `TLSv1.2`, `TLSv1.3`.
    pub fn tls_handshake(&self, version: &'static str) {
        self.handshakes.get_or_create(&VersionLabels { version }).inc();
    }

    /// `reason`: a fixed word such as `timeout`, `no_certificate`, `protocol_version`, `eof`.
    pub fn tls_handshake_error(&self, reason: &'static str) {
        self.handshake_errors.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn allowlist_rejected(&self, namespace: &str, ingress: &str) {
        let labels = IngressLabels { namespace: namespace.to_owned(), ingress: ingress.to_owned() };
        self.track_ingress(&labels);
        self.allowlist_rejections.get_or_create(&labels).inc();
    }

    /// `kind`: `body_size`, `header_size`, `uri_size`, `connections`, ...
    pub fn limit_rejected(&self, kind: &'static str) {
        self.limit_rejections.get_or_create(&KindLabels { kind }).inc();
    }

    // --- Control plane --------------------------------------------------------------------

    /// A rebuild that found nothing changed.
    pub fn rebuild_unchanged(&self, took: Duration) {
        self.rebuilds.get_or_create(&OutcomeLabels { outcome: "unchanged" }).inc();
        self.rebuild_duration.observe_duration(took);
        self.sync_succeeded();
    }

    /// A rebuild whose table went into service.
    pub fn rebuild_swapped(&self, took: Duration, snapshot: &Snapshot, compiled: &Compiled) {
        self.rebuilds.get_or_create(&OutcomeLabels { outcome: "swapped" }).inc();
        self.rebuild_duration.observe_duration(took);
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let objects = [
            ("ingresses", count(snapshot.ingresses.len())),
            ("ingresses_served", count(compiled.served.len())),
            ("ingress_classes", count(snapshot.ingress_classes.len())),
            ("services", count(snapshot.services.len())),
            ("endpoint_slices", count(snapshot.endpoint_slices.len())),
            ("secrets", count(snapshot.secrets.len())),
            ("routes", count(compiled.table.route_count())),
            ("backends", count(compiled.table.backends().len())),
        ];
        for (kind, n) in objects {
            self.objects.get_or_create(&KindLabels { kind }).set(n);
        }
        self.diagnostics.clear();
        for diag in &compiled.diagnostics {
            let severity = match diag.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            self.diagnostics.get_or_create(&DiagnosticLabels { severity, reason: diagnostic_reason(diag) }).inc();
        }
        self.set_endpoints_from_table(&compiled.table);
        self.set_live_owners(&compiled.table);
        self.set_cert_expiry_from_table(&compiled.table);
        self.sync_succeeded();
    }

    /// A rebuild that failed (the previous table stays in service).
    pub fn rebuild_failed(&self) {
        self.rebuilds.get_or_create(&OutcomeLabels { outcome: "failed" }).inc();
    }

    /// The source delivered a complete picture and it was applied (or was already in
    /// service). Rebuilds call it; a source that re-lists without a change (the Kubernetes
    /// watch's periodic resync) should call it too, or the sync time ages on a quiet cluster.
    pub fn sync_succeeded(&self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_sync.set(now.as_secs_f64());
    }

    /// `resource`: `ingresses`, `services`, `endpointslices`, `secrets`, `ingressclasses`.
    pub fn watch_restart(&self, resource: &'static str) {
        self.watch_restarts.get_or_create(&ResourceLabels { resource }).inc();
    }

    /// `kind`: a fixed word such as `connect`, `unauthorized`, `forbidden`, `timeout`, `decode`.
    pub fn api_error(&self, kind: &'static str) {
        self.api_errors.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Expiry (`notAfter`) of every certificate the table about to go into service loaded
    /// from a Secret; Secrets no longer in it (deleted, unusable, or no longer named by any
    /// Ingress) lose their series.
    pub fn set_cert_expiry_from_table(&self, table: &RouteTable) {
        let mut series: Vec<SecretLabels> = Vec::new();
        for cert in table.tls().certs() {
            let Some(not_after) = cert.not_after else { continue };
            let Some((namespace, secret)) = cert.secret.split_once('/') else { continue };
            let labels = SecretLabels { namespace: namespace.to_owned(), secret: secret.to_owned() };
            if !series.contains(&labels) {
                self.set_cert_expiry(&labels, not_after);
                series.push(labels);
            }
        }
        let mut previous = self.cert_series.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for stale in previous.iter().filter(|labels| !series.contains(labels)) {
            self.cert_expiry.remove(stale);
        }
        *previous = series;
    }

    fn set_cert_expiry(&self, labels: &SecretLabels, not_after: SystemTime) {
        let at = not_after.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.cert_expiry.get_or_create(labels).set(at.as_secs_f64());
    }

    pub fn set_startup(&self, took: Duration) {
        self.startup.set(took.as_secs_f64());
    }
}

fn reg<M>(r: &mut Registry, name: &str, help: &str, unit: Option<Unit>, metric: &M)
where
    M: EncodeMetric + Clone + Send + Sync + std::fmt::Debug + 'static,
{
    let shown = Shown(metric.clone());
    match unit {
        Some(unit) => r.register_with_unit(name, help, unit, shown),
        None => r.register(name, help, shown),
    }
}

fn backend(namespace: &str, service: &str) -> BackendLabels {
    BackendLabels { namespace: namespace.to_owned(), service: service.to_owned() }
}

fn backend_reason(namespace: &str, service: &str, reason: &'static str) -> BackendReasonLabels {
    BackendReasonLabels { namespace: namespace.to_owned(), service: service.to_owned(), reason }
}

/// A diagnostic's bounded reason, from the field it is about (never its free-text message,
/// never an annotation name a user chose).
pub fn diagnostic_reason(diag: &Diagnostic) -> &'static str {
    if matches!(diag.subject, Subject::File { .. }) {
        return "file";
    }
    let field = diag.field.as_str();
    if diag.message.contains("older Ingress") {
        "conflict"
    } else if field.contains("annotations") {
        "annotation"
    } else if field.starts_with("spec.tls") || field.contains("tls") {
        "tls"
    } else if field.ends_with(".host") {
        "host"
    } else if field.ends_with(".pathType") {
        "path_type"
    } else if field.ends_with(".path") {
        "path"
    } else if field.starts_with("spec.defaultBackend") {
        "default_backend"
    } else if field.contains("backend") {
        "backend"
    } else if field.contains("ingressClassName") || field.contains("class") {
        "class"
    } else if field.is_empty() || field == "spec" {
        "object"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests;
