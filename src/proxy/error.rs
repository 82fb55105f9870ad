//! Every error the data path can meet, and the one place where each becomes a status code
//! and a short plain-text answer. No answer echoes anything from the request.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};

use super::body::ProxyBody;

/// Which side caused an error: decides logging and (later) metrics and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request has no valid Host")]
    BadHost,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("{0}")]
    BadPath(#[from] super::normalize::PathError),
    #[error("client address not allowed")]
    Forbidden,
    #[error("request body larger than this site accepts")]
    BodyTooLarge,
    #[error("no Ingress rule matches this host and path")]
    NoRoute,
    #[error("no ready endpoint for backend {0}")]
    NoEndpoint(Arc<str>),
    #[error("backend {backend} is not available: {why}")]
    Unresolved { backend: Arc<str>, why: Arc<str> },
    #[error("upstream connect failed")]
    UpstreamConnect(#[source] hyper_util::client::legacy::Error),
    #[error("upstream connect timed out")]
    ConnectTimeout,
    #[error("upstream did not send a response header in time")]
    ResponseTimeout,
    #[error("upstream sent an invalid response or closed the connection")]
    UpstreamProtocol(#[source] hyper_util::client::legacy::Error),
}

impl ProxyError {
    /// Sorts a client error by what went wrong.
    pub fn from_client(err: hyper_util::client::legacy::Error) -> Self {
        if matches!(find::<super::body::RequestBodyError>(&err), Some(super::body::RequestBodyError::TooLarge(_))) {
            return Self::BodyTooLarge;
        }
        if err.is_connect() {
            if is_timeout(&err) {
                return Self::ConnectTimeout;
            }
            return Self::UpstreamConnect(err);
        }
        Self::UpstreamProtocol(err)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadHost | Self::BadRequest(_) | Self::BadPath(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::NoEndpoint(_) | Self::Unresolved { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamConnect(_) | Self::UpstreamProtocol(_) => StatusCode::BAD_GATEWAY,
            Self::ConnectTimeout | Self::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The metric label of this error (`lintel_proxy_errors_total{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadHost => "bad_host",
            Self::BadRequest(_) => "bad_request",
            Self::BadPath(_) => "bad_path",
            Self::Forbidden => "forbidden",
            Self::BodyTooLarge => "body_too_large",
            Self::NoRoute => "no_route",
            Self::NoEndpoint(_) => "no_endpoint",
            Self::Unresolved { .. } => "unresolved",
            Self::UpstreamConnect(_) => "upstream_connect",
            Self::ConnectTimeout => "connect_timeout",
            Self::ResponseTimeout => "response_timeout",
            Self::UpstreamProtocol(_) => "upstream_protocol",
        }
    }

    pub fn side(&self) -> Side {
        match self {
            Self::BadHost
            | Self::BadRequest(_)
            | Self::BadPath(_)
            | Self::Forbidden
            | Self::BodyTooLarge
            | Self::NoRoute => Side::Client,
            _ => Side::Upstream,
        }
    }

    /// The answer sent to the client: `503 Service Unavailable: no ready endpoint for ...`.
    pub fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        let text = format!("{} {}: {self}\n", status.as_u16(), status.canonical_reason().unwrap_or_default());
        let mut response = Response::new(ProxyBody::text(text));
        *response.status_mut() = status;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    find::<std::io::Error>(err).is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// The first error of type `E` in the chain of sources.
fn find<'a, E: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}
