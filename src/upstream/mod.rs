//! Upstreams: the long-lived state behind backends. An [`Endpoint`] owns its keep-alive
//! connection pool and outlives table swaps (it is reused by address); a [`Group`] is the
//! set of endpoints of one backend in one table, and picks one per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::uri::Authority;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::proxy::RequestBody;
use crate::table::RouteTable;

/// How connections to upstreams are made and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept. Below the upstream's own keep-alive idle,
    /// or a request can race the upstream closing it.
    pub keepalive_idle: Duration,
}

/// One upstream address and its connection pool.
#[derive(Debug)]
pub struct Endpoint {
    pub authority: Authority,
    pub client: Client<HttpConnector, RequestBody>,
}

impl Endpoint {
    fn new(authority: Authority, settings: &UpstreamSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(settings.keepalive_idle)
            .build(connector);
        Self { authority, client }
    }
}

/// The endpoints of one backend, as of one table.
#[derive(Debug)]
pub struct Group {
    /// `namespace/service:port`, for answers and logs.
    pub name: Arc<str>,
    endpoints: Box<[Arc<Endpoint>]>,
    next: AtomicUsize,
    /// Why the backend has no endpoints, when that is a configuration error.
    pub unresolved: Option<Arc<str>>,
}

impl Group {
    /// Round robin across the endpoints; `None` when there is none.
    pub fn pick(&self) -> Option<&Arc<Endpoint>> {
        if self.endpoints.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.endpoints.get(n % self.endpoints.len())
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }
}

/// Hands out [`Endpoint`]s by address, so pools survive table swaps. Only the control plane
/// calls [`Upstreams::bind`]; the data path never touches the lock.
#[derive(Debug)]
pub struct Upstreams {
    settings: UpstreamSettings,
    endpoints: Mutex<HashMap<Authority, Weak<Endpoint>>>,
}

impl Upstreams {
    pub fn new(settings: UpstreamSettings) -> Self {
        Self { settings, endpoints: Mutex::new(HashMap::new()) }
    }

    /// One group per backend of `table`, in the same order. Endpoints still used by the table
    /// in service are reused; an endpoint no table uses is dropped with its pool once the
    /// requests holding it finish.
    pub fn bind(&self, table: &RouteTable) -> Vec<Arc<Group>> {
        let mut known = match self.endpoints.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        known.retain(|_, weak| weak.strong_count() > 0);
        table
            .backends()
            .iter()
            .map(|backend| {
                let endpoints = backend
                    .endpoints
                    .iter()
                    .filter_map(|a| match Authority::try_from(a.as_ref()) {
                        Ok(authority) => Some(authority),
                        Err(err) => {
                            tracing::warn!(endpoint = %a, %err, "endpoint address is not a valid authority; skipped");
                            None
                        }
                    })
                    .map(|authority| {
                        if let Some(existing) = known.get(&authority).and_then(Weak::upgrade) {
                            return existing;
                        }
                        let endpoint = Arc::new(Endpoint::new(authority.clone(), &self.settings));
                        known.insert(authority, Arc::downgrade(&endpoint));
                        endpoint
                    })
                    .collect();
                Arc::new(Group {
                    name: backend.id.to_string().into(),
                    endpoints,
                    next: AtomicUsize::new(0),
                    unresolved: backend.unresolved.as_deref().map(Into::into),
                })
            })
            .collect()
    }
}
