//! Upstreams: the long-lived state behind backends. An [`Endpoint`] owns its keep-alive
//! pool and its health and outlives table swaps (it is reused by address); a [`Group`] is
//! the set of endpoints of one backend in one table, and picks one per request. [`send`]
//! forwards a request to a group, with retries and timeouts.
//!
//! Files: `endpoint` (settings, counts), `pool` (idle keep-alive connections), `connector`
//! (new connections), `balance` (picking), `health` (active checks),
//! `passive` (ejection), `send` (attempts and retries), `body` (idle timeouts, replayable
//! request bodies), `upgrade` (WebSocket and other tunnels), `policy`/`profile` (what an
//! Ingress asks for), `plain`/`plain_body` (Lintel's own HTTP/1.1 client for bodiless GET and
//! HEAD; everything else goes through hyper's), `passed` (its response's header lines, kept
//! as text for the client), `added` (the `X-Forwarded-*` headers a request
//! gets on its way out).

mod added;
mod balance;
pub mod body;
mod connector;
pub mod endpoint;
pub mod error;
pub mod health;
mod passed;
pub mod passive;
mod plain;
mod plain_body;
pub mod policy;
mod pool;
pub mod profile;
mod response_head;
mod send;
mod upgrade;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use http::uri::Authority;

pub use added::{AddedHeaders, AddedValue};
pub use body::UpstreamBody;
pub use endpoint::Endpoint;
pub use error::{BodyError, UpstreamError};
pub use passed::PassedHeaders;
pub use plain::PlainError;
/// Whether a request goes to [`send_plain`] rather than [`send`].
pub use plain::suits as goes_plain;
pub use send::{send, send_plain};

use balance::BackendState;
use endpoint::ConnSettings;
use passive::PassiveSettings;
use policy::HealthCheck;

use crate::metrics::Metrics;
use crate::table::{BackendId, RouteTable};

/// Defaults for what an Ingress does not set, and the passive-ejection rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept. Below the upstream's own keep-alive idle,
    /// or a request can race the upstream closing it.
    pub keepalive_idle: Duration,
    /// From the request sent to the upstream's response header.
    pub response_timeout: Duration,
    /// Longest gap between two body chunks, either direction.
    pub idle_timeout: Duration,
    /// Longest silence on an upgraded (WebSocket) connection.
    pub upgrade_idle_timeout: Duration,
    pub passive: PassiveSettings,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            keepalive_idle: Duration::from_secs(15),
            response_timeout: Duration::from_secs(180),
            idle_timeout: Duration::from_secs(60),
            upgrade_idle_timeout: Duration::from_secs(3600),
            passive: PassiveSettings::default(),
        }
    }
}

/// The endpoints of one backend, as of one table.
#[derive(Debug)]
pub struct Group {
    /// `namespace/service:port`, for answers and logs.
    pub name: Arc<str>,
    endpoints: Box<[Arc<Endpoint>]>,
    state: Arc<BackendState>,
    settings: Arc<UpstreamSettings>,
    /// Why the backend has no endpoints, when that is a configuration error.
    pub unresolved: Option<Arc<str>>,
    /// Where retries are counted, under this backend's namespace and service.
    retries: Option<(Arc<Metrics>, BackendId)>,
}

impl Group {
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    /// Counts one retry (`connect`: on another endpoint after a failed connect; `stale`: on
    /// a new connection after a pooled one closed before answering). Rare: the labels are
    /// looked up here rather than held per backend.
    fn retried(&self, reason: &'static str) {
        if let Some((metrics, id)) = &self.retries {
            metrics.upstream_retry(&id.namespace, &id.service, reason);
        }
    }

    /// The answer when no endpoint can be picked.
    fn no_endpoint(&self) -> UpstreamError {
        match &self.unresolved {
            Some(why) => UpstreamError::Unresolved { backend: self.name.clone(), why: why.clone() },
            None => UpstreamError::NoEndpoint(self.name.clone()),
        }
    }
}

/// Hands out [`Endpoint`]s by address, so pools and health survive table swaps. Only the
/// control plane calls [`Upstreams::bind`]; the data path never touches the locks.
#[derive(Debug)]
pub struct Upstreams {
    settings: Arc<UpstreamSettings>,
    endpoints: Mutex<HashMap<Authority, Weak<Endpoint>>>,
    backends: Mutex<HashMap<BackendId, Weak<BackendState>>>,
    /// Where new endpoints count their connections; `None` counts nowhere.
    metrics: Option<Arc<Metrics>>,
}

/// What the Ingresses reaching one endpoint ask of it, merged.
struct Plan<'t> {
    conn: ConnSettings,
    /// The check of the first Ingress (by namespace/name) that configures one.
    check: Option<(&'t str, &'t Arc<HealthCheck>)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Upstreams {
    pub fn new(settings: UpstreamSettings) -> Self {
        Self { settings: Arc::new(settings), endpoints: Mutex::default(), backends: Mutex::default(), metrics: None }
    }

    /// Counts upstream connections in `metrics`, under the backend that first reaches each
    /// endpoint.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// One group per backend of `table`, in the same order. Endpoints still in use are reused
    /// and reconfigured; an endpoint no table uses is dropped with its pool and its checker
    /// once the requests holding it finish.
    ///
    /// An endpoint shared by Ingresses that disagree gets the longest connect timeout, the
    /// shortest keep-alive idle, and the health check of the first Ingress by name: one
    /// checker per endpoint, however many Ingresses reach it.
    pub fn bind(&self, table: &RouteTable) -> Vec<Arc<Group>> {
        let backends = table.backends();
        let addresses: Vec<Vec<Authority>> = backends.iter().map(|b| parse_endpoints(&b.endpoints)).collect();
        let plans = self.plans(table, &addresses);

        let mut known = lock(&self.endpoints);
        known.retain(|_, weak| weak.strong_count() > 0);
        let mut states = lock(&self.backends);
        states.retain(|_, weak| weak.strong_count() > 0);
        let default_conn = ConnSettings {
            connect_timeout: self.settings.connect_timeout,
            keepalive_idle: self.settings.keepalive_idle,
        };
        let mut configured: HashSet<&Authority> = HashSet::new();
        backends
            .iter()
            .zip(&addresses)
            .map(|(backend, authorities)| {
                let endpoints = authorities
                    .iter()
                    .map(|authority| {
                        let plan = plans.get(authority);
                        let conn = plan.map_or(default_conn, |p| p.conn);
                        let endpoint = match known.get(authority).and_then(Weak::upgrade) {
                            Some(existing) => existing,
                            None => {
                                let pool = self.metrics.as_ref().map_or_else(Default::default, |m| {
                                    m.pool(&backend.id.namespace, &backend.id.service)
                                });
                                let passive = self.settings.passive.clone();
                                let endpoint = Arc::new(Endpoint::counted(authority.clone(), conn, passive, pool));
                                known.insert(authority.clone(), Arc::downgrade(&endpoint));
                                endpoint
                            }
                        };
                        if configured.insert(authority) {
                            endpoint.configure(conn, plan.and_then(|p| p.check).map(|(_, c)| c.clone()));
                        }
                        endpoint
                    })
                    .collect();
                let state = match states.get(&backend.id).and_then(Weak::upgrade) {
                    Some(state) => state,
                    None => {
                        let state = Arc::new(BackendState::default());
                        states.insert(backend.id.clone(), Arc::downgrade(&state));
                        state
                    }
                };
                Arc::new(Group {
                    name: backend.id.to_string().into(),
                    endpoints,
                    state,
                    settings: self.settings.clone(),
                    unresolved: backend.unresolved.as_deref().map(Into::into),
                    retries: self.metrics.as_ref().map(|m| (m.clone(), backend.id.clone())),
                })
            })
            .collect()
    }

    /// What the routes reaching each endpoint ask of it, merged.
    fn plans<'t>(&self, table: &'t RouteTable, addresses: &'t [Vec<Authority>]) -> HashMap<&'t Authority, Plan<'t>> {
        let mut plans: HashMap<&Authority, Plan<'_>> = HashMap::new();
        for route in table.routes() {
            let Some(authorities) = addresses.get(route.backend) else { continue };
            let policy = &route.policy.upstream;
            let connect = policy.connect_timeout.unwrap_or(self.settings.connect_timeout);
            let keepalive = policy.keepalive_idle.unwrap_or(self.settings.keepalive_idle);
            let check = policy.health_check.as_ref().map(|c| (route.ingress.as_ref(), c));
            for authority in authorities {
                let plan = plans.entry(authority).or_insert(Plan {
                    conn: ConnSettings { connect_timeout: connect, keepalive_idle: keepalive },
                    check: None,
                });
                plan.conn.connect_timeout = plan.conn.connect_timeout.max(connect);
                plan.conn.keepalive_idle = plan.conn.keepalive_idle.min(keepalive);
                if let Some((ingress, c)) = check
                    && plan.check.is_none_or(|(first, _)| ingress < first)
                {
                    plan.check = Some((ingress, c));
                }
            }
        }
        plans
    }
}

fn parse_endpoints(endpoints: &[Arc<str>]) -> Vec<Authority> {
    endpoints
        .iter()
        .filter_map(|a| match Authority::try_from(a.as_ref()) {
            Ok(authority) => Some(authority),
            Err(err) => {
                tracing::warn!(endpoint = %a, %err, "endpoint address is not a valid authority; skipped");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
