//! The data path: route each request through the table in service and forward it to an
//! endpoint of its backend. Lock-free: one `ArcSwap` load per request, nothing held across
//! an `.await`.

pub mod access_log;
pub mod body;
pub mod conn;
pub mod error;
mod forward;
pub mod listener;
pub mod observe;
pub mod request_id;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;

pub use body::ProxyBody;
pub use conn::{ConnInfo, TlsInfo};
pub use error::ProxyError;
pub use forward::ClientSide;
pub use observe::{Observe, ObservedBody, RequestBody};

use crate::live::SharedLive;
use crate::metrics::{MethodClass, Metrics};
use crate::table::normalize_host;
use access_log::Entry;
use observe::{Exchange, Matched};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// Time from sending the request to the upstream's response header.
    pub response_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Proxy {
    live: SharedLive,
    settings: ProxySettings,
    observe: Observe,
}

impl Proxy {
    pub fn new(live: SharedLive, settings: ProxySettings) -> Self {
        Self { live, settings, observe: Observe::default() }
    }

    /// Records into `observe.metrics` and logs as `observe.access_log` says.
    pub fn observed(self, observe: Observe) -> Self {
        Self { observe, ..self }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.observe.metrics
    }

    /// Answers one request of a connection whose listener did not describe it.
    pub async fn handle(&self, req: Request<Incoming>, client: ClientSide) -> Response<ObservedBody> {
        let conn = ConnInfo::new(SocketAddr::new(client.address, 0), client.scheme);
        self.handle_conn(req, client, &conn).await
    }

    /// Answers one request; every failure becomes a short plain-text answer here. Each
    /// request gets an `X-Request-ID`, is counted in the metrics and (sampled) logged.
    pub async fn handle_conn(
        &self,
        mut req: Request<Incoming>,
        client: ClientSide,
        conn: &ConnInfo,
    ) -> Response<ObservedBody> {
        let started = Instant::now();
        let request_id = request_id::ensure(req.headers_mut());
        let method = MethodClass::of(req.method());
        let log = self.observe.access_log.sampled().then(|| Box::new(Entry::new(&req, client, conn, &request_id)));
        let (req, bytes_in) = observe::count_request(req);
        let exchange = Exchange { started, method, request_id, bytes_in, log };
        let mut matched = Matched::default();
        let response = match self.forward(req, client, &mut matched).await {
            Ok(response) => response,
            Err(err) => {
                match err.side() {
                    error::Side::Client => tracing::debug!(error = %err, "request refused"),
                    error::Side::Upstream => tracing::warn!(error = %err, "upstream failure"),
                }
                observe::count_error(&self.observe.metrics, &err, matched.route.as_deref());
                err.into_response()
            }
        };
        exchange.finish(response, matched, &self.observe.metrics)
    }

    async fn forward(
        &self,
        req: Request<RequestBody>,
        client: ClientSide,
        matched: &mut Matched,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let host = request_host(&req).ok_or(ProxyError::BadHost)?;
        let group = {
            let live = self.live.load();
            let name = host.to_str().ok().and_then(normalize_host).ok_or(ProxyError::BadHost)?;
            let route = live.compiled.table.find(&name, req.uri().path()).ok_or(ProxyError::NoRoute)?;
            matched.route = live.route_metrics.find(route).cloned();
            live.groups.get(route.backend).cloned().ok_or(ProxyError::NoRoute)?
        };
        let Some(endpoint) = group.pick() else {
            return Err(match &group.unresolved {
                Some(why) => ProxyError::Unresolved { backend: group.name.clone(), why: why.clone() },
                None => ProxyError::NoEndpoint(group.name.clone()),
            });
        };
        matched.upstream = Some(endpoint.authority.clone());
        let upstream_req = forward::upstream_request(req, endpoint, client, &host).map_err(|_| ProxyError::BadHost)?;
        let sent = Instant::now();
        let response = tokio::time::timeout(self.settings.response_timeout, endpoint.client.request(upstream_req))
            .await
            .map_err(|_| ProxyError::ResponseTimeout)?
            .map_err(ProxyError::from_client)?;
        let took = sent.elapsed();
        matched.upstream_time = Some(took);
        if let Some(route) = &matched.route {
            route.record_upstream_time(took);
        }
        Ok(forward::client_response(response.map(ProxyBody::Upstream)))
    }
}

/// The client's host as sent: `:authority` (HTTP/2, absolute-form) or `Host`.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).ok();
    }
    req.headers().get(header::HOST).cloned()
}
