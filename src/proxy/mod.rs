//! The data path: route each request through the table in service and forward it to an
//! endpoint of its backend. Lock-free: one `ArcSwap` load per request, nothing held across
//! an `.await`.

pub mod access_log;
pub mod body;
pub mod client_addr;
pub mod conn;
pub mod error;
mod forward;
pub mod h1;
pub mod listener;
pub mod normalize;
pub mod observe;
mod prefixed;
mod redirect;
mod request;
pub mod request_id;

use std::net::SocketAddr;
use std::time::Instant;

use http::{Request, Response, header};
use hyper::body::Incoming;

pub use body::{ClientBody, ProxyBody, RequestBody};
pub use conn::{ConnInfo, TlsInfo};
pub use error::ProxyError;
pub use forward::ClientSide;
pub use observe::{Observe, ObservedBody};
pub use prefixed::Prefixed;

use crate::kept_timer::KeptTimer;
use crate::live::SharedLive;
use crate::metrics::{MethodClass, Metrics};
use crate::ops::lifecycle::Tunnels;
use crate::table::allow::FilterMode;
use crate::table::normalize_host;
use crate::upstream;
use access_log::Entry;
use observe::{Exchange, Matched};

/// Data-path settings; those about upstreams (timeouts) are in
/// [`crate::upstream::UpstreamSettings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<crate::table::allow::CidrList>,
    /// The port written in redirects to HTTPS; 443 is left out of the URL.
    pub https_redirect_port: u16,
}

#[derive(Debug, Clone)]
pub struct Proxy {
    live: SharedLive,
    settings: ProxySettings,
    observe: Observe,
    tunnels: Tunnels,
}

impl Proxy {
    pub fn new(live: SharedLive, settings: ProxySettings) -> Self {
        Self { live, settings, observe: Observe::default(), tunnels: Tunnels::default() }
    }

    /// Upgraded connections (WebSocket): whoever copies one's bytes holds `tunnels().track()`,
    /// so shutdown gives it the grace period.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
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
        observe::headers_in_map(self.handle_conn(req.map(Some), client, &conn, None).await)
    }

    /// Answers one request; every failure becomes a short plain-text answer here. Each
    /// request gets an `X-Request-ID`, is counted in the metrics and (sampled) logged.
    /// `timer`, the client connection's, times the upstream's answer (else the upstream
    /// connection's own does).
    pub async fn handle_conn(
        &self,
        mut req: Request<ClientBody>,
        client: ClientSide,
        conn: &ConnInfo,
        timer: Option<&mut KeptTimer>,
    ) -> Response<ObservedBody> {
        let started = Instant::now();
        let (request_id, generated) = request_id::ensure(req.headers_mut());
        let mut added = upstream::AddedHeaders::default();
        if generated {
            added.push(request_id::X_REQUEST_ID, request_id.clone());
        }
        let method = MethodClass::of(req.method());
        let log = self.observe.access_log.sampled().then(|| Box::new(Entry::new(&req, client, conn, &request_id)));
        let mut matched = Matched { logged: log.is_some(), ..Matched::default() };
        let exchange = Exchange { started, method, request_id, log };
        if req.body().as_ref().is_some_and(|body| !http_body::Body::is_end_stream(body)) {
            matched.bytes_in = Some(std::sync::Arc::default());
        }
        let response = match self.forward(req, client, &mut matched, &mut added, timer).await {
            Ok(response) => response,
            Err(err) => {
                match err.side() {
                    error::Side::Client => tracing::debug!(error = %err, "request refused"),
                    error::Side::Upstream => tracing::warn!(error = %err, "upstream failure"),
                }
                observe::count_error(&self.observe.metrics, &err, matched.route.as_deref());
                let mut response = err.into_response();
                redirect::add_hsts(&mut response, matched.hsts.as_ref());
                response
            }
        };
        exchange.finish(response, matched, &self.observe.metrics)
    }

    async fn forward(
        &self,
        mut req: Request<ClientBody>,
        client: ClientSide,
        matched: &mut Matched,
        added: &mut upstream::AddedHeaders,
        timer: Option<&mut KeptTimer>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let host = request::check(&req)?;
        let path = normalize::normalize_path(req.uri().path())?;
        let (address, origin) = client_addr::forwarded_client(
            req.headers(),
            client.address,
            client.origin,
            self.settings.trusted_proxies.as_ref(),
        );
        matched.client = Some(address);
        let (group, policy) = {
            let live = self.live.load();
            let name = host.to_str().ok().and_then(normalize_host).ok_or(ProxyError::BadHost)?;
            let table = &live.compiled.table;
            let route = table.find(&name, &path);
            if client.scheme == "http"
                && let Some(to_https) =
                    redirect::to_https(table, &name, route, req.uri(), self.settings.https_redirect_port)
            {
                return Ok(to_https);
            }
            let route = route.ok_or(ProxyError::NoRoute)?;
            matched.route = live.route_metrics.find(route).cloned();
            let group = live.groups.get(route.backend).cloned().ok_or(ProxyError::NoRoute)?;
            (group, route.policy.clone())
        };
        if client.scheme == "https" {
            matched.hsts.clone_from(&policy.hsts);
        }
        if let Err(refusal) = policy.source.check(address) {
            let enforced = policy.source.mode == FilterMode::Enforce;
            tracing::info!(client = %address, from = %origin, peer = %client.address, backend = %group.name, reason = refusal.as_str(), enforced, "source address refused");
            if enforced {
                return Err(ProxyError::Forbidden);
            }
        }
        if let Some(limit) = policy.max_body_size
            && content_length(&req).is_some_and(|len| len > limit)
        {
            return Err(ProxyError::BodyTooLarge);
        }
        let client = ClientSide { address, origin, ..client };
        let path = match path {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(p) => Some(p),
        };
        let upgrade = forward::upstream_request(&mut req, path.as_deref(), client, &host, added)
            .map_err(|_| ProxyError::BadHost)?;
        let has_body = req.body().as_ref().is_some_and(|body| !http_body::Body::is_end_stream(body));
        // tokio's clock: the plain exchange takes its deadline and pool check from it.
        let sent = tokio::time::Instant::now();
        let response = if upstream::goes_plain(req.method(), has_body, upgrade) {
            let response = upstream::send_plain(&group, &policy.upstream, &req, added, sent, timer).await?;
            crate::header_maps::give(std::mem::take(req.headers_mut()));
            response
        } else {
            let counter = matched.bytes_in.clone();
            let mut req = req.map(|body| RequestBody::new(body, policy.max_body_size).counting(counter));
            if upgrade {
                req.extensions_mut().insert(self.tunnels.clone());
            }
            // Boxed: this future is large, and the common case should not carry its size.
            Box::pin(upstream::send(&group, &policy.upstream, req, std::mem::take(added), upgrade)).await?
        };
        let took = sent.elapsed();
        if matched.logged {
            matched.upstream = response.body().endpoint().cloned();
        }
        matched.upstream_time = Some(took);
        if let Some(route) = &matched.route {
            route.record_upstream_time(took);
        }
        let mut response = forward::client_response(response.map(ProxyBody::Upstream));
        redirect::add_hsts(&mut response, matched.hsts.as_ref());
        Ok(response)
    }
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
