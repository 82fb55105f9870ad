//! The data path: route each request through the table in service and forward it to an
//! endpoint of its backend. Lock-free: one `ArcSwap` load per request, nothing held across
//! an `.await`.

pub mod body;
pub mod error;
mod forward;
pub mod listener;

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;

pub use body::ProxyBody;
pub use error::ProxyError;
pub use forward::ClientSide;

use crate::live::SharedLive;
use crate::table::normalize_host;
use crate::upstream;

/// Data-path settings that are not about upstreams (those are in
/// [`crate::upstream::UpstreamSettings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {}

#[derive(Debug, Clone)]
pub struct Proxy {
    live: SharedLive,
    #[allow(dead_code, reason = "no data-path setting outside upstreams yet")]
    settings: ProxySettings,
}

impl Proxy {
    pub fn new(live: SharedLive, settings: ProxySettings) -> Self {
        Self { live, settings }
    }

    /// Answers one request; every failure becomes a short plain-text answer here.
    pub async fn handle(&self, req: Request<Incoming>, client: ClientSide) -> Response<ProxyBody> {
        match self.forward(req, client).await {
            Ok(response) => response,
            Err(err) => {
                match err.side() {
                    error::Side::Client => tracing::debug!(error = %err, "request refused"),
                    error::Side::Upstream => tracing::warn!(error = %err, "upstream failure"),
                }
                err.into_response()
            }
        }
    }

    async fn forward(&self, req: Request<Incoming>, client: ClientSide) -> Result<Response<ProxyBody>, ProxyError> {
        let host = request_host(&req).ok_or(ProxyError::BadHost)?;
        let (group, policy) = {
            let live = self.live.load();
            let name = host.to_str().ok().and_then(normalize_host).ok_or(ProxyError::BadHost)?;
            let route = live.compiled.table.find(&name, req.uri().path()).ok_or(ProxyError::NoRoute)?;
            let group = live.groups.get(route.backend).cloned().ok_or(ProxyError::NoRoute)?;
            (group, route.policy.clone())
        };
        let upstream_req = forward::upstream_request(req, client, &host);
        let response = upstream::send(&group, &policy.upstream, upstream_req).await?;
        Ok(forward::client_response(response.map(ProxyBody::Upstream)))
    }
}

/// The client's host as sent: `:authority` (HTTP/2, absolute-form) or `Host`.
fn request_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).ok();
    }
    req.headers().get(header::HOST).cloned()
}
