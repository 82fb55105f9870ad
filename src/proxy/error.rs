//! Every error the data path can meet, and the one place where each becomes a status code
//! and a short plain-text answer. No answer echoes anything from the request.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{ProxyBody, RequestBodyError};
use crate::upstream::error::find;
use crate::upstream::{BodyError, UpstreamError};

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
    #[error("the request body stalled: nothing for longer than the idle timeout")]
    RequestBodyIdle,
    #[error(transparent)]
    Upstream(UpstreamError),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadHost | Self::BadRequest(_) | Self::BadPath(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::RequestBodyIdle => StatusCode::REQUEST_TIMEOUT,
            Self::Upstream(err) => match err {
                UpstreamError::NoEndpoint(_) | UpstreamError::Unresolved { .. } => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamError::Connect(_) | UpstreamError::Protocol(_) | UpstreamError::Plain(_) => {
                    StatusCode::BAD_GATEWAY
                }
                UpstreamError::RequestBody(_) => StatusCode::BAD_REQUEST,
                UpstreamError::ConnectTimeout | UpstreamError::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            },
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
            Self::RequestBodyIdle => "request_body_idle",
            Self::Upstream(err) => match err {
                UpstreamError::NoEndpoint(_) => "no_endpoint",
                UpstreamError::Unresolved { .. } => "unresolved",
                UpstreamError::Connect(_) => "upstream_connect",
                UpstreamError::ConnectTimeout => "connect_timeout",
                UpstreamError::ResponseTimeout => "response_timeout",
                UpstreamError::Protocol(_) | UpstreamError::Plain(_) => "upstream_protocol",
                UpstreamError::RequestBody(_) => "request_body",
            },
        }
    }

    pub fn side(&self) -> Side {
        match self {
            Self::BadHost
            | Self::BadRequest(_)
            | Self::BadPath(_)
            | Self::Forbidden
            | Self::BodyTooLarge
            | Self::RequestBodyIdle
            | Self::NoRoute
            | Self::Upstream(UpstreamError::RequestBody(_)) => Side::Client,
            Self::Upstream(_) => Side::Upstream,
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

/// Sorts what went wrong on the way upstream; a request body that failed is the client's
/// doing (too large, or stalled), not the upstream's.
impl From<UpstreamError> for ProxyError {
    fn from(err: UpstreamError) -> Self {
        if let UpstreamError::RequestBody(cause) = &err {
            if matches!(find::<RequestBodyError>(cause), Some(RequestBodyError::TooLarge(_))) {
                return Self::BodyTooLarge;
            }
            if matches!(find::<BodyError>(cause), Some(BodyError::Idle(_))) {
                return Self::RequestBodyIdle;
            }
        }
        Self::Upstream(err)
    }
}
