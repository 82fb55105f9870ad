//! What can go wrong toward an upstream, sorted so the proxy can map each to a status
//! (src/proxy/error.rs does that) and the sender can tell what is safe to retry.

use std::sync::Arc;
use std::time::Duration;

/// A request that got no upstream response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no ready endpoint for backend {0}")]
    NoEndpoint(Arc<str>),
    #[error("backend {backend} is not available: {why}")]
    Unresolved { backend: Arc<str>, why: Arc<str> },
    #[error("upstream connect failed")]
    Connect(#[source] ConnectError),
    #[error("upstream connect timed out")]
    ConnectTimeout,
    #[error("upstream did not send a response header in time")]
    ResponseTimeout,
    #[error("upstream sent an invalid response or closed the connection")]
    Protocol(#[source] hyper::Error),
    /// The same, from a plain exchange (`upstream::plain`).
    #[error("upstream sent an invalid response or closed the connection")]
    Plain(#[source] super::plain::PlainError),
    /// The client's request body failed while it was being sent (too large, stalled, cut).
    #[error("the request body could not be read")]
    RequestBody(#[source] hyper::Error),
}

/// A body that stopped part way; the connection is cut, as no status can be sent any more.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("no body data for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error(transparent)]
    Plain(#[from] super::plain::PlainError),
    #[error("request body: {0}")]
    Request(#[from] crate::proxy::body::RequestBodyError),
}

/// Why a connection to an upstream could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out after {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// The first error of type `E` in the chain of sources.
pub(crate) fn find<'a, E: std::error::Error + 'static>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}
