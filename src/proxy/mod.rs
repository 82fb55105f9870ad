//! The data path: route each request through the table in service and forward it to an
//! endpoint of its backend. Lock-free: one `ArcSwap` load per request, nothing held across
//! an `.await`.

pub mod body;
pub mod error;
mod forward;
pub mod listener;
mod redirect;

use std::time::Duration;

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;

pub use body::ProxyBody;
pub use error::ProxyError;
pub use forward::ClientSide;

use crate::live::SharedLive;
use crate::table::normalize_host;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// Time from sending the request to the upstream's response header.
    pub response_timeout: Duration,
    /// The port written in redirects to HTTPS; 443 is left out of the URL.
    pub https_redirect_port: u16,
}

#[derive(Debug, Clone)]
pub struct Proxy {
    live: SharedLive,
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
        let (group, hsts) = {
            let live = self.live.load();
            let name = host.to_str().ok().and_then(normalize_host).ok_or(ProxyError::BadHost)?;
            let table = &live.compiled.table;
            let route = table.find(&name, req.uri().path());
            if client.scheme == "http"
                && let Some(to_https) =
                    redirect::to_https(table, &name, route, req.uri(), self.settings.https_redirect_port)
            {
                return Ok(to_https);
            }
            let route = route.ok_or(ProxyError::NoRoute)?;
            let hsts = if client.scheme == "https" { route.policy.hsts.clone() } else { None };
            (live.groups.get(route.backend).cloned().ok_or(ProxyError::NoRoute)?, hsts)
        };
        let Some(endpoint) = group.pick() else {
            return Err(match &group.unresolved {
                Some(why) => ProxyError::Unresolved { backend: group.name.clone(), why: why.clone() },
                None => ProxyError::NoEndpoint(group.name.clone()),
            });
        };
        let upstream_req = forward::upstream_request(req, endpoint, client, &host).map_err(|_| ProxyError::BadHost)?;
        let response = tokio::time::timeout(self.settings.response_timeout, endpoint.client.request(upstream_req))
            .await
            .map_err(|_| ProxyError::ResponseTimeout)?
            .map_err(ProxyError::from_client)?;
        let mut response = forward::client_response(response.map(ProxyBody::Upstream));
        redirect::add_hsts(&mut response, hsts.as_ref());
        Ok(response)
    }
}

/// The client's host as sent: `:authority` (HTTP/2, absolute-form) or `Host`.
fn request_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).ok();
    }
    req.headers().get(header::HOST).cloned()
}
