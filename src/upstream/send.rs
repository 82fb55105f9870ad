//! Forwarding one request to a group: pick an endpoint, send within the response timeout,
//! and retry only what is safe. A failed connect is retried once on another endpoint (the
//! body was not sent). A reused pooled connection that the upstream closed before answering
//! is retried once on a fresh connection, for idempotent requests and for requests whose
//! body was not sent. Nothing else is retried.

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use hyper_util::client::legacy::Error as ClientError;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::body::{Outgoing, UpstreamBody};
use super::connector::{Born, Tally};
use super::endpoint::{Endpoint, InFlight};
use super::error::find;
use super::error::{BodyError, ConnectError, UpstreamError};
use super::policy::UpstreamPolicy;
use super::{Group, upgrade};
use crate::proxy::RequestBody;

/// How long a retry waits for the body of a failed attempt to come back from the
/// connection that held it.
const BODY_RETURN: Duration = Duration::from_secs(1);

/// Sends `req` (origin-form URI, headers already rewritten) to an endpoint of `group`.
pub async fn send(
    group: &Group,
    policy: &UpstreamPolicy,
    mut req: Request<RequestBody>,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let settings = group.settings();
    let response_timeout = policy.response_timeout.unwrap_or(settings.response_timeout);
    let idle = policy.idle_timeout.unwrap_or(settings.idle_timeout);
    let client_upgrade = upgrade::is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // Shutdown waits for upgraded connections through this (set by the proxy on upgrades).
    let tunnels = parts.extensions.remove::<crate::ops::lifecycle::Tunnels>();
    let head = Head {
        method: parts.method,
        path: parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")),
        headers: parts.headers,
    };
    let had_body = !body.is_end_stream();
    let retry_when_stale = is_idempotent(&head.method) || had_body;
    let deadline = Instant::now() + response_timeout;

    // `None` for an empty body, which can always be sent again.
    let mut body = had_body.then_some(body);
    let mut endpoint = group.pick(policy.balance, None).ok_or_else(|| group.no_endpoint())?;
    let (mut retried_connect, mut retried_stale) = (false, false);
    loop {
        let (outgoing, back) = Outgoing::new(body.take(), idle);
        let request = head.request(&endpoint, outgoing);
        let clients = endpoint.clients();
        let client = if retried_stale { &clients.fresh } else { &clients.pooled };
        let in_flight = InFlight::new(endpoint.clone());
        let started = Instant::now();
        let err = match tokio::time::timeout_at(deadline, client.request(request)).await {
            Err(_) => return Err(UpstreamError::ResponseTimeout),
            Ok(Ok(mut response)) => {
                if let Some(tally) = response.extensions().get::<Tally>() {
                    tally.sent();
                }
                observe(&endpoint, &response);
                if response.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    let upstream_upgrade = hyper::upgrade::on(&mut response);
                    let idle = policy.idle_timeout.unwrap_or(settings.upgrade_idle_timeout);
                    let tracked = tunnels.as_ref().map(crate::ops::lifecycle::Tunnels::track);
                    upgrade::spawn_tunnel(client_upgrade, upstream_upgrade, idle, in_flight, tracked);
                    return Ok(response.map(|b| UpstreamBody::new(b, idle, None)));
                }
                // Which endpoint answered, for the access log.
                response.extensions_mut().insert(endpoint.authority.clone());
                return Ok(response.map(|b| UpstreamBody::new(b, idle, Some(in_flight))));
            }
            Ok(Err(err)) => {
                // The request went to a connection (and failed there) only when it has
                // connect info; a failed connect has none.
                if let Some(info) = err.connect_info() {
                    let mut extensions = http::Extensions::new();
                    info.get_extras(&mut extensions);
                    extensions.get::<Tally>().map(Tally::sent);
                }
                err
            }
        };
        drop(in_flight);
        let resendable;
        (body, resendable) = reclaim(back).await;
        match classify(&err, started) {
            Failure::Connect => {
                endpoint.record_failure();
                if !retried_connect
                    && resendable
                    && let Some(next) = group.pick(policy.balance, Some(&endpoint))
                {
                    tracing::debug!(backend = %group.name, failed = %endpoint.authority, next = %next.authority, "connect failed; retrying on another endpoint");
                    retried_connect = true;
                    retried_stale = false;
                    endpoint = next;
                    continue;
                }
                return Err(connect_error(err));
            }
            Failure::Stale if !retried_stale && retry_when_stale && resendable => {
                tracing::debug!(endpoint = %endpoint.authority, "pooled connection closed before the answer; retrying on a fresh one");
                retried_stale = true;
                endpoint.note_stale_retry();
                continue;
            }
            Failure::RequestBody => return Err(UpstreamError::RequestBody(err)),
            Failure::Stale | Failure::Other => {
                endpoint.record_failure();
                return Err(UpstreamError::Protocol(err));
            }
        }
    }
}

/// The parts of the request needed to send it again.
struct Head {
    method: Method,
    path: PathAndQuery,
    headers: HeaderMap,
}

impl Head {
    fn request(&self, endpoint: &Endpoint, body: Outgoing) -> Request<Outgoing> {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(endpoint.authority.clone());
        uri.path_and_query = Some(self.path.clone());
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        // Scheme, authority and path are all set, so this cannot fail.
        *request.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Passive health and the upstream's keep-alive, from a response header.
fn observe<B>(endpoint: &Endpoint, response: &Response<B>) {
    if response.status().is_server_error() {
        endpoint.record_failure();
    } else {
        endpoint.record_success();
    }
    if let Some(seconds) =
        response.headers().get(header::HeaderName::from_static("keep-alive")).and_then(keepalive_timeout)
    {
        endpoint.announce_keepalive(seconds);
    }
}

/// `timeout=N` from a `Keep-Alive` header.
fn keepalive_timeout(value: &http::HeaderValue) -> Option<u64> {
    value
        .to_str()
        .ok()?
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("timeout"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// The body of a failed attempt and whether the request can be sent again: an empty body
/// always can, a streamed one when it came back unread.
async fn reclaim(back: Option<oneshot::Receiver<RequestBody>>) -> (Option<RequestBody>, bool) {
    let Some(rx) = back else { return (None, true) };
    match tokio::time::timeout(BODY_RETURN, rx).await {
        Ok(Ok(body)) => (Some(body), true),
        _ => (None, false),
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection was made: nothing reached the upstream.
    Connect,
    /// A connection reused from the pool was closed before any answer.
    Stale,
    /// The client's request body failed: not the upstream's doing.
    RequestBody,
    Other,
}

fn classify(err: &ClientError, started: Instant) -> Failure {
    if err.is_connect() {
        return Failure::Connect;
    }
    if find::<BodyError>(err).is_some() {
        return Failure::RequestBody;
    }
    let reused = err.connect_info().is_some_and(|info| {
        let mut extensions = http::Extensions::new();
        info.get_extras(&mut extensions);
        extensions.get::<Born>().is_some_and(|born| born.0 < started)
    });
    if reused && closed_before_answer(err) { Failure::Stale } else { Failure::Other }
}

/// The connection went away before a response: EOF, reset, or a canceled dispatch.
fn closed_before_answer(err: &ClientError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
            return matches!(io.kind(), BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof);
        }
        source = e.source();
    }
    false
}

fn connect_error(err: ClientError) -> UpstreamError {
    match find::<ConnectError>(&err) {
        Some(ConnectError::TimedOut(_)) => UpstreamError::ConnectTimeout,
        _ => UpstreamError::Connect(err),
    }
}

/// Only for the tests of this module: the retry rules without a network.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods_are_the_rfc_ones() {
        for m in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE, Method::OPTIONS] {
            assert!(is_idempotent(&m), "{m}");
        }
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }

    #[test]
    fn keepalive_timeout_is_read_from_the_header() {
        let v = |s: &'static str| keepalive_timeout(&http::HeaderValue::from_static(s));
        assert_eq!(v("timeout=5, max=100"), Some(5));
        assert_eq!(v("max=100,Timeout=2"), Some(2));
        assert_eq!(v("max=100"), None);
    }

    #[test]
    fn the_head_is_rebuilt_for_each_endpoint() {
        let head = Head { method: Method::POST, path: PathAndQuery::from_static("/a?b=1"), headers: HeaderMap::new() };
        let ep = Endpoint::new(
            "10.0.0.1:8080".parse().unwrap(),
            super::super::endpoint::ConnSettings {
                connect_timeout: Duration::from_secs(1),
                keepalive_idle: Duration::from_secs(1),
            },
            Default::default(),
        );
        let req = head.request(&ep, Outgoing::Empty);
        assert_eq!(req.uri(), "http://10.0.0.1:8080/a?b=1");
        assert_eq!(req.method(), Method::POST);
    }
}
