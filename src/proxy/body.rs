//! The response body type: either the upstream's streamed body or a short answer of our own.
//! An enum rather than a boxed trait object, so no allocation per response. A body error
//! (an upstream gone quiet or away mid-stream) cuts the client connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

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
