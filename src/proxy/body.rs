//! The response body type: either the upstream's streamed body or a short answer of our own.
//! An enum rather than a boxed trait object, so no allocation per response. A body error
//! (an upstream gone quiet or away mid-stream) cuts the client connection.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::upstream::{BodyError, UpstreamBody};

#[derive(Debug)]
pub enum ProxyBody {
    Upstream(UpstreamBody),
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub fn text(text: impl Into<Bytes>) -> Self {
        Self::Full(Some(text.into()))
    }

    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// The upstream's header lines still to be written as text (see `upstream::passed`).
    pub fn passed_headers(&mut self) -> Option<&mut crate::upstream::PassedHeaders> {
        match self {
            Self::Upstream(body) => body.passed_headers(),
            Self::Full(_) => None,
        }
    }

    /// The rest of the body appended to `out` when it is all at hand and at most `max`
    /// bytes, without a frame; its length, or `None` when it must be polled.
    pub fn take_buffered_rest(&mut self, out: &mut Vec<u8>, max: usize) -> Option<usize> {
        match self {
            Self::Upstream(body) => body.take_buffered_rest(out, max),
            Self::Full(data) => {
                let data = data.take_if(|data| data.len() <= max)?;
                out.extend_from_slice(&data);
                Some(data.len())
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Upstream(body) => Pin::new(body).poll_frame(cx),
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(body) => body.is_end_stream(),
            Self::Full(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(body) => body.size_hint(),
            Self::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// A client's request body: hyper's, or none at all (a request Lintel's own HTTP/1.1 server
/// read, which it only takes when the head says there is no body).
pub type ClientBody = Option<Incoming>;

/// The request body on its way upstream, refused once it grows past the route's limit
/// (chunked bodies included: the limit is on bytes seen, not on what `Content-Length` said).
#[derive(Debug)]
pub struct RequestBody {
    inner: ClientBody,
    limit: Option<u64>,
    seen: u64,
    /// Shared with the access log and the request-size metric.
    counter: Option<Arc<AtomicU64>>,
}

/// The error a body past its limit ends with; the proxy turns it into 413.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than the limit")]
pub struct BodyTooLarge;

#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error(transparent)]
    Client(#[from] hyper::Error),
    #[error(transparent)]
    TooLarge(#[from] BodyTooLarge),
}

impl RequestBody {
    pub fn new(inner: ClientBody, limit: Option<u64>) -> Self {
        Self { inner, limit, seen: 0, counter: None }
    }

    /// Also adds the bytes that pass to `counter` (for metrics and the access log).
    pub fn counting(self, counter: Option<Arc<AtomicU64>>) -> Self {
        Self { counter, ..self }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        let Some(inner) = &mut this.inner else { return Poll::Ready(None) };
        let frame = match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let (Some(counter), Some(data)) = (&this.counter, frame.data_ref()) {
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        if let (Some(limit), Some(data)) = (this.limit, frame.data_ref()) {
            this.seen += data.len() as u64;
            if this.seen > limit {
                return Poll::Ready(Some(Err(BodyTooLarge.into())));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
