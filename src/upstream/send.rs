//! Forwarding one request to a group: pick an endpoint, send within the response timeout,
//! and retry only what is safe. A failed connect is retried once on another endpoint (the
//! body was not sent). A reused pooled connection that the upstream closed before answering
//! is retried once on a fresh connection, for idempotent requests and for requests whose
//! body was not sent. Nothing else is retried. (A request that a pooled connection hands back
//! unsent, because the connection was not ready yet or had just closed, goes to another
//! connection: nothing reached the upstream, so that is not a retry.)
//!
//! Requests go out in origin-form with the client's `Host`; the head is copied only for an
//! attempt that may be retried after it was sent (on a pooled connection), otherwise moved.
//! Bodiless `GET` and `HEAD` requests take the plain exchange instead ([`send_plain`], in
//! `upstream::plain`, same retry rules), which needs no copy: it writes the head from the
//! headers as they are.

use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::AddedHeaders;
use super::body::{Outgoing, UpstreamBody};
use super::endpoint::{Endpoint, InFlight};
use super::error::find;
use super::error::{BodyError, ConnectError, UpstreamError};
use super::plain::{self, PlainRequest};
use super::policy::UpstreamPolicy;
use super::{Group, upgrade};
use crate::kept_timer::KeptTimer;
use crate::proxy::RequestBody;

/// How long a retry waits for the body of a failed attempt to come back from the
/// connection that held it.
const BODY_RETURN: Duration = Duration::from_secs(1);

/// Pooled connections that hand a request back unsent (not ready yet, or closed) before the
/// request goes to a new connection instead.
const UNSENT_MAX: u32 = 4;

pub(super) const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Sends a request that [`plain::suits`] (origin-form URI, `Host` set, headers already
/// rewritten) with `added` after its headers to an endpoint of `group`, as a plain exchange.
/// `now` is the time it goes out (read once by the caller, who also times the answer).
///
/// Apart from [`send`] because of size: every `.await` up the chain moves the futures it
/// holds, and `send`'s is about three times this one's (hyper's client, the retry state,
/// the head kept for a retry). Callers await this one in place and box the other.
pub fn send_plain<'a, B>(
    group: &'a Group,
    policy: &'a UpstreamPolicy,
    req: &'a Request<B>,
    added: &'a AddedHeaders,
    now: Instant,
    timer: Option<&'a mut KeptTimer>,
) -> impl Future<Output = Result<Response<UpstreamBody>, UpstreamError>> + 'a {
    let settings = group.settings();
    let response_timeout = policy.response_timeout.unwrap_or(settings.response_timeout);
    let idle = policy.idle_timeout.unwrap_or(settings.idle_timeout);
    let head = PlainRequest { method: req.method(), uri: req.uri(), headers: req.headers(), added };
    plain::send(group, policy, head, now, now + response_timeout, idle, timer)
}

/// Sends `req` (origin-form URI, `Host` set, headers already rewritten) with `added` after
/// its headers to an endpoint of `group`, through hyper's client: requests with a body,
/// upgrades, methods other than `GET` and `HEAD`. `is_upgrade`: the request asks to switch
/// protocols (the caller has looked already).
pub async fn send(
    group: &Group,
    policy: &UpstreamPolicy,
    mut req: Request<RequestBody>,
    added: AddedHeaders,
    is_upgrade: bool,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let settings = group.settings();
    let response_timeout = policy.response_timeout.unwrap_or(settings.response_timeout);
    let idle = policy.idle_timeout.unwrap_or(settings.idle_timeout);
    let client_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    added.insert_into(&mut parts.headers);
    // Shutdown waits for upgraded connections through this (set by the proxy on upgrades).
    let tunnels = parts.extensions.remove::<crate::ops::lifecycle::Tunnels>();
    let mut head = Head { method: parts.method, uri: parts.uri, headers: parts.headers };
    let had_body = !body.is_end_stream();
    let retry_when_stale = is_idempotent(&head.method) || had_body;
    let mut now = Instant::now();
    let deadline = now + response_timeout;

    // `None` for an empty body, which can always be sent again.
    let mut body = had_body.then_some(body);
    let mut endpoint = group.pick(policy.balance, None).ok_or_else(|| group.no_endpoint())?;
    let (mut retried_connect, mut retried_stale, mut unsent) = (false, false, 0);
    loop {
        let in_flight = InFlight::new(endpoint.clone());
        // A pooled connection, unless this is the retry after a pooled one closed under the
        // request: that one goes to a new connection.
        let pooled = if retried_stale || unsent >= UNSENT_MAX { None } else { endpoint.checkout(now) };
        let (mut sender, pooled) = match pooled {
            Some(sender) => (sender, true),
            None => match tokio::time::timeout_at(deadline, endpoint.connect()).await {
                Err(_) => return Err(UpstreamError::ResponseTimeout),
                Ok(Ok(sender)) => (sender, false),
                Ok(Err(err)) => {
                    // Nothing was sent: the request and its body are still here.
                    drop(in_flight);
                    if let Some(next) = connect_failed(group, policy, &endpoint, !retried_connect) {
                        (endpoint, retried_connect, retried_stale) = (next, true, false);
                        now = Instant::now();
                        continue;
                    }
                    return Err(connect_error(err));
                }
            },
        };
        // The head is kept for another attempt only when this one may be retried after it
        // was sent: on a pooled connection the upstream may have closed meanwhile.
        let may_retry_stale = pooled && !retried_stale && retry_when_stale;
        let (outgoing, back) = Outgoing::new(body.take(), idle);
        let request = if may_retry_stale { head.request(outgoing) } else { head.take_request(outgoing) };
        let err = match tokio::time::timeout_at(deadline, sender.try_send_request(request)).await {
            // Dropping the exchange closes its connection; the sender goes with it.
            Err(_) => return Err(UpstreamError::ResponseTimeout),
            Ok(Ok(mut response)) => {
                if pooled {
                    endpoint.note_reuse();
                }
                observe(&endpoint, &response);
                if response.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    let upstream_upgrade = hyper::upgrade::on(&mut response);
                    let idle = policy.idle_timeout.unwrap_or(settings.upgrade_idle_timeout);
                    let tracked = tunnels.as_ref().map(crate::ops::lifecycle::Tunnels::track);
                    upgrade::spawn_tunnel(client_upgrade, upstream_upgrade, idle, in_flight, tracked);
                    return Ok(response.map(|b| UpstreamBody::new(b, idle, None, None)));
                }
                let reusable = keeps_alive(&response).then_some(sender);
                return Ok(response.map(|b| UpstreamBody::new(b, idle, Some(in_flight), reusable)));
            }
            Ok(Err(mut err)) => match err.take_message() {
                Some(request) if pooled => {
                    // Handed back unsent: the pooled connection was not ready yet (it goes
                    // back to the pool when it is) or had closed. Take another connection.
                    let (parts, outgoing) = request.into_parts();
                    head.restore(parts);
                    let resendable;
                    (body, resendable) = outgoing.reclaim();
                    if resendable {
                        endpoint.put(sender);
                        unsent += 1;
                        now = Instant::now();
                        continue;
                    }
                    err.into_error()
                }
                _ => err.into_error(),
            },
        };
        drop(in_flight);
        if pooled {
            // The request went out on a reused connection, even if it got no answer.
            endpoint.note_reuse();
        }
        let resendable;
        (body, resendable) = reclaim(back).await;
        match classify(&err, pooled) {
            Failure::Stale if may_retry_stale && resendable => {
                stale_retry(group, &endpoint);
                retried_stale = true;
                now = Instant::now();
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

/// A connect to `endpoint` failed: counts it against the endpoint and, when `may_retry`, picks
/// another endpoint for the retry (counted as one). Shared by both clients' send loops.
pub(super) fn connect_failed(
    group: &Group,
    policy: &UpstreamPolicy,
    endpoint: &Arc<Endpoint>,
    may_retry: bool,
) -> Option<Arc<Endpoint>> {
    endpoint.record_failure();
    if !may_retry {
        return None;
    }
    let next = group.pick(policy.balance, Some(endpoint))?;
    tracing::debug!(backend = %group.name, failed = %endpoint.authority, next = %next.authority, "connect failed; retrying on another endpoint");
    group.retried("connect");
    Some(next)
}

/// A pooled connection closed before the answer: the request goes again on a fresh one.
pub(super) fn stale_retry(group: &Group, endpoint: &Endpoint) {
    tracing::debug!(endpoint = %endpoint.authority, "pooled connection closed before the answer; retrying on a fresh one");
    endpoint.note_stale_retry();
    group.retried("stale");
}

/// The parts of the request needed to send it again.
struct Head {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Head {
    /// A copy of the request, for an attempt that may need it again.
    fn request(&self, body: Outgoing) -> Request<Outgoing> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers.clone();
        request
    }

    /// The request itself, for an attempt that cannot be retried once sent; should it come
    /// back unsent, [`Head::restore`] takes it back.
    fn take_request(&mut self, body: Outgoing) -> Request<Outgoing> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = std::mem::take(&mut self.uri);
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = std::mem::take(&mut self.headers);
        request
    }

    fn restore(&mut self, parts: http::request::Parts) {
        self.uri = parts.uri;
        self.headers = parts.headers;
    }
}

/// Whether the connection may carry another request after this response: HTTP/1.1, no
/// `Connection: close`, not switching protocols.
pub(super) fn keeps_alive<B>(response: &Response<B>) -> bool {
    response.version() == Version::HTTP_11
        && response.status() != StatusCode::SWITCHING_PROTOCOLS
        && !says_close(response.headers())
}

/// `Connection: close`, alone or among other options.
pub(super) fn says_close(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        let v = v.as_bytes();
        // `keep-alive` alone (nginx says it on every answer) needs no splitting.
        !v.eq_ignore_ascii_case(b"keep-alive")
            && v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Passive health and the upstream's keep-alive, from a response header.
pub(super) fn observe<B>(endpoint: &Endpoint, response: &Response<B>) {
    observe_status(endpoint, response.status());
    observe_keep_alive(endpoint, response.headers());
}

/// Passive health: a 5xx counts as a failure, anything else as a success.
pub(super) fn observe_status(endpoint: &Endpoint, status: StatusCode) {
    if status.is_server_error() {
        endpoint.record_failure();
    } else {
        endpoint.record_success();
    }
}

/// The keep-alive timeout an upstream announces, so idle connections are dropped before it.
pub(super) fn observe_keep_alive(endpoint: &Endpoint, headers: &http::HeaderMap) {
    if let Some(seconds) = headers.get(KEEP_ALIVE).and_then(|v| keepalive_timeout(v.as_bytes())) {
        endpoint.announce_keepalive(seconds);
    }
}

/// `timeout=N` from a `Keep-Alive` header.
pub(super) fn keepalive_timeout(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value)
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
    /// A connection reused from the pool was closed before any answer.
    Stale,
    /// The client's request body failed: not the upstream's doing.
    RequestBody,
    Other,
}

fn classify(err: &hyper::Error, pooled: bool) -> Failure {
    if find::<BodyError>(err).is_some() {
        return Failure::RequestBody;
    }
    if pooled && closed_before_answer(err) { Failure::Stale } else { Failure::Other }
}

/// The connection went away before a response: EOF, reset, or a canceled dispatch.
fn closed_before_answer(err: &hyper::Error) -> bool {
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

pub(super) fn connect_error(err: ConnectError) -> UpstreamError {
    match err {
        ConnectError::TimedOut(_) => UpstreamError::ConnectTimeout,
        err => UpstreamError::Connect(err),
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
        let v = |s: &'static str| keepalive_timeout(s.as_bytes());
        assert_eq!(v("timeout=5, max=100"), Some(5));
        assert_eq!(v("max=100,Timeout=2"), Some(2));
        assert_eq!(v("max=100"), None);
    }

    #[test]
    fn the_head_is_sent_in_origin_form_and_copied_only_when_asked() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, http::HeaderValue::from_static("app.example.com"));
        let mut head = Head { method: Method::POST, uri: Uri::from_static("/a?b=1"), headers };
        let copy = head.request(Outgoing::Empty);
        assert_eq!(copy.uri(), "/a?b=1");
        assert_eq!(copy.method(), Method::POST);
        assert_eq!(copy.version(), Version::HTTP_11);
        assert_eq!(copy.headers()[header::HOST], "app.example.com");
        assert_eq!(head.headers.len(), 1, "a copy leaves the head whole");

        let taken = head.take_request(Outgoing::Empty);
        assert_eq!(taken.uri(), "/a?b=1");
        assert_eq!(taken.headers()[header::HOST], "app.example.com");
        assert!(head.headers.is_empty(), "taken, not copied");
        let (parts, _) = taken.into_parts();
        head.restore(parts);
        assert_eq!(head.request(Outgoing::Empty).headers()[header::HOST], "app.example.com");
    }

    #[test]
    fn connection_close_http_1_0_and_upgrades_are_not_kept() {
        let response = |version, status: u16, connection: Option<&'static str>| {
            let mut r = Response::new(());
            *r.version_mut() = version;
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(c) = connection {
                r.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static(c));
            }
            r
        };
        assert!(keeps_alive(&response(Version::HTTP_11, 200, None)));
        assert!(keeps_alive(&response(Version::HTTP_11, 200, Some("keep-alive"))));
        assert!(!keeps_alive(&response(Version::HTTP_11, 200, Some("Close"))));
        assert!(!keeps_alive(&response(Version::HTTP_11, 200, Some("foo, close"))));
        assert!(!keeps_alive(&response(Version::HTTP_10, 200, Some("keep-alive"))));
        assert!(!keeps_alive(&response(Version::HTTP_11, 101, Some("upgrade"))));
    }
}
