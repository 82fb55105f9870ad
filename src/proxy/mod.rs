//! The data path: route each request through the table in service and forward it to an
//! endpoint of its backend. Lock-free: one `ArcSwap` load per request, nothing held across
//! an `.await`.

pub mod body;
pub mod client_addr;
pub mod error;
mod forward;
pub mod listener;
pub mod normalize;
mod redirect;
mod request;

use std::time::Duration;

use http::{Request, Response, header};
use hyper::body::Incoming;

pub use body::{ProxyBody, RequestBody};
pub use error::ProxyError;
pub use forward::ClientSide;

use crate::live::SharedLive;
use crate::table::allow::FilterMode;
use crate::table::normalize_host;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    /// Time from sending the request to the upstream's response header.
    pub response_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<crate::table::allow::CidrList>,
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
        let host = request::check(&req)?;
        let path = normalize::normalize_path(req.uri().path())?;
        let (address, origin) = client_addr::forwarded_client(
            req.headers(),
            client.address,
            client.origin,
            self.settings.trusted_proxies.as_ref(),
        );
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
            let group = live.groups.get(route.backend).cloned().ok_or(ProxyError::NoRoute)?;
            (group, route.policy.clone())
        };
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
        let Some(endpoint) = group.pick() else {
            return Err(match &group.unresolved {
                Some(why) => ProxyError::Unresolved { backend: group.name.clone(), why: why.clone() },
                None => ProxyError::NoEndpoint(group.name.clone()),
            });
        };
        let client = ClientSide { address, origin, ..client };
        let path = match path {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(p) => Some(p),
        };
        let req = req.map(|body| RequestBody::new(body, policy.max_body_size));
        let upstream_req = forward::upstream_request(req, path.as_deref(), endpoint, client, &host)
            .map_err(|_| ProxyError::BadHost)?;
        let response = tokio::time::timeout(self.settings.response_timeout, endpoint.client.request(upstream_req))
            .await
            .map_err(|_| ProxyError::ResponseTimeout)?
            .map_err(ProxyError::from_client)?;
        let mut response = forward::client_response(response.map(ProxyBody::Upstream));
        if client.scheme == "https" {
            redirect::add_hsts(&mut response, policy.hsts.as_ref());
        }
        Ok(response)
    }
}

fn content_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
