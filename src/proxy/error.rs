//! Every error the data path can meet, and the one place where each becomes a status code
//! and a short plain-text answer. No answer echoes anything from the request.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::ProxyBody;
use crate::upstream::UpstreamError;

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
    #[error("no Ingress rule matches this host and path")]
    NoRoute,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadHost => StatusCode::BAD_REQUEST,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Upstream(err) => match err {
                UpstreamError::NoEndpoint(_) | UpstreamError::Unresolved { .. } => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamError::Connect(_) | UpstreamError::Protocol(_) => StatusCode::BAD_GATEWAY,
                UpstreamError::ConnectTimeout | UpstreamError::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            },
        }
    }

    pub fn side(&self) -> Side {
        match self {
            Self::BadHost | Self::NoRoute => Side::Client,
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
