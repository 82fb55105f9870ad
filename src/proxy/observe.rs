//! Observing each request without slowing it: the request body counts its bytes as they pass
//! (`RequestBody::counting`), the response body counts its own, and when hyper drops the response body (the last byte
//! written, or the client gone) the route's metric handles are updated and the access-log
//! line, if this request was sampled, is written. No lock, no label lookup.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};

use super::access_log::{AccessLogSettings, Entry};
use super::body::ProxyBody;
use super::error::ProxyError;
use super::request_id::X_REQUEST_ID;
use crate::metrics::{MethodClass, Metrics, Outcome, RouteMetrics};
use crate::upstream::{AddedValue, BodyError, PassedHeaders, UpstreamError};

/// What the proxy records with, and how much it logs.
#[derive(Debug, Clone, Default)]
pub struct Observe {
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLogSettings,
}

/// What routing found out about a request, filled in as it goes.
#[derive(Debug, Default)]
pub struct Matched {
    /// The route owner's metric handles; `None` when no route matched.
    pub route: Option<Arc<RouteMetrics>>,
    /// The endpoint that answered, for the access log: filled only when the request is logged.
    pub upstream: Option<Authority>,
    /// This request is logged (sampled).
    pub logged: bool,
    /// Request sent upstream → response header.
    pub upstream_time: Option<Duration>,
    /// The client address once trusted `X-Forwarded-For` is applied.
    pub client: Option<IpAddr>,
    /// Request body bytes sent upstream; `None` for bodiless requests.
    pub bytes_in: Option<Arc<AtomicU64>>,
    /// The route's `Strict-Transport-Security`, on HTTPS: set on every answer, the proxy's
    /// own errors included.
    pub hsts: Option<HeaderValue>,
}

impl Matched {
    fn bytes_in(&self) -> u64 {
        self.bytes_in.as_ref().map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

/// One request from its header to its last response byte.
#[derive(Debug)]
pub struct Exchange {
    pub started: Instant,
    pub method: MethodClass,
    pub request_id: AddedValue,
    /// Present when this request is logged.
    pub log: Option<Box<Entry>>,
}

impl Exchange {
    /// Hands the response to the client with the body observed. Its `X-Request-ID` goes with
    /// the body, for the server to write (`ObservedBody::request_id`): inserting it into the
    /// map cost a hash and an insert a request.
    pub fn finish(self, response: Response<ProxyBody>, matched: Matched, metrics: &Metrics) -> Response<ObservedBody> {
        let (parts, mut body) = response.into_parts();
        // The upstream's own `X-Request-ID` is kept, in the map or among its passed lines.
        let return_id = !parts.headers.contains_key(&X_REQUEST_ID)
            && !body.passed_headers().is_some_and(|passed| passed.has(X_REQUEST_ID.as_str()));
        // A routed request records under `matched.route`: one reference count less to move.
        let unrouted = matched.route.is_none().then(|| metrics.unrouted().clone());
        let done = Done { status: parts.status.as_u16(), exchange: self, matched, unrouted, return_id };
        Response::from_parts(parts, ObservedBody { body, sent: 0, done: Some(done) })
    }
}

/// Counts the errors that concern a backend under its name.
pub fn count_error(metrics: &Metrics, err: &ProxyError, route: Option<&RouteMetrics>) {
    metrics.proxy_error(err.kind());
    let Some(route) = route else { return };
    match err {
        ProxyError::Upstream(UpstreamError::Connect(_)) => {
            metrics.upstream_connect_error(route.namespace(), route.service())
        }
        ProxyError::Upstream(UpstreamError::ConnectTimeout) => {
            metrics.upstream_connect_error(route.namespace(), route.service());
            metrics.upstream_timeout(route.namespace(), route.service(), "connect");
        }
        ProxyError::Upstream(UpstreamError::ResponseTimeout) => {
            metrics.upstream_timeout(route.namespace(), route.service(), "response_header")
        }
        ProxyError::Forbidden => metrics.allowlist_rejected(route.namespace(), route.ingress()),
        ProxyError::BodyTooLarge => metrics.limit_rejected("body_size"),
        _ => {}
    }
}

#[derive(Debug)]
struct Done {
    status: u16,
    exchange: Exchange,
    matched: Matched,
    /// Where an unrouted request records; a routed one records under `matched.route`.
    unrouted: Option<Arc<RouteMetrics>>,
    /// The response has no `X-Request-ID` of its own: the server writes the request's.
    return_id: bool,
}

/// The response body as the client gets it; records the request when dropped.
#[derive(Debug)]
pub struct ObservedBody {
    body: ProxyBody,
    sent: u64,
    done: Option<Done>,
}

impl ObservedBody {
    /// The upstream's header lines still to be written as text (see `upstream::passed`).
    pub fn passed_headers(&mut self) -> Option<&mut PassedHeaders> {
        self.body.passed_headers()
    }

    /// The rest of the body appended to `out`, counted as sent, when it is all at hand (see
    /// `ProxyBody::take_buffered_rest`).
    pub fn take_buffered_rest(&mut self, out: &mut Vec<u8>, max: usize) -> Option<usize> {
        let taken = self.body.take_buffered_rest(out, max)?;
        self.sent += taken as u64;
        Some(taken)
    }

    /// The `X-Request-ID` the server writes with the response's headers, if it has none.
    pub fn request_id(&self) -> Option<&[u8]> {
        self.done.as_ref().filter(|done| done.return_id).map(|done| done.exchange.request_id.as_bytes())
    }
}

/// The response with all its headers in its map (the upstream's passed lines, the request
/// id), for a server that writes only the map (hyper's).
pub fn headers_in_map(response: Response<ObservedBody>) -> Response<ObservedBody> {
    let (mut parts, mut body) = response.into_parts();
    if let Some(passed) = body.passed_headers() {
        passed.move_into(&mut parts.headers, true);
    }
    if let Some(done) = body.done.as_mut().filter(|done| done.return_id) {
        done.return_id = false;
        parts.headers.insert(X_REQUEST_ID, done.exchange.request_id.to_header_value());
    }
    Response::from_parts(parts, body)
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.sent += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        let Some(done) = self.done.take() else { return };
        let outcome = Outcome {
            method: done.exchange.method,
            status: done.status,
            elapsed: done.exchange.started.elapsed(),
            bytes_in: done.matched.bytes_in(),
            bytes_out: self.sent,
        };
        if let Some(record) = done.matched.route.as_ref().or(done.unrouted.as_ref()) {
            record.record(&outcome);
        }
        if let Some(entry) = &done.exchange.log {
            entry.emit(&done.matched, &outcome);
        }
    }
}
