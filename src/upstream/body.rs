//! Bodies on the way through: an idle timeout between chunks in either direction, the
//! request body kept replayable until its first byte is sent (so a failed connect can be
//! retried elsewhere), and the response body holding its endpoint's in-flight count and, until
//! its end, its keep-alive connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::endpoint::InFlight;
use super::error::BodyError;
use super::plain::PlainBody;
use crate::proxy::RequestBody;

/// Fails a body that has been waited on for `idle` without a frame. The clock runs only
/// while the consumer is asking for the next frame, so a slow reader never trips it.
#[derive(Debug)]
pub struct IdleBody<B> {
    inner: B,
    idle: Duration,
    /// Allocated on the first wait only: bodies that never wait cost nothing.
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self { inner, idle, sleep: None, waiting: false }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let idle = this.idle;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if !this.waiting {
            sleep.as_mut().reset(Instant::now() + idle);
            this.waiting = true;
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Idle(idle)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's request body until its first data is handed to the upstream connection.
/// Dropped before that (a failed connect, a connection closed under it), it goes back to
/// the sender through `back` and can be sent again.
#[derive(Debug)]
pub struct Replayable {
    body: Option<RequestBody>,
    back: Option<oneshot::Sender<RequestBody>>,
}

impl Body for Replayable {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(Some(_)) = &polled {
            // Something left for the upstream: from now on this body cannot be replayed.
            this.back = None;
        }
        polled.map(|f| f.map(|r| r.map_err(BodyError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Replayable {
    fn drop(&mut self) {
        if let (Some(body), Some(back)) = (self.body.take(), self.back.take()) {
            let _ = back.send(body);
        }
    }
}

/// What the upstream client sends: nothing, or the client's body.
#[derive(Debug)]
pub enum Outgoing {
    Empty,
    Stream(IdleBody<Replayable>),
}

impl Outgoing {
    /// Wraps a request body; for a non-empty one also returns where it comes back to if it
    /// is dropped unsent.
    pub fn new(body: Option<RequestBody>, idle: Duration) -> (Self, Option<oneshot::Receiver<RequestBody>>) {
        let Some(body) = body.filter(|b| !b.is_end_stream()) else { return (Self::Empty, None) };
        let (tx, rx) = oneshot::channel();
        (Self::Stream(IdleBody::new(Replayable { body: Some(body), back: Some(tx) }, idle)), Some(rx))
    }

    /// The client's body from a request that came back unsent, and whether the request can be
    /// sent again (not when data already left, which an unsent request cannot have done).
    pub fn reclaim(self) -> (Option<RequestBody>, bool) {
        match self {
            Self::Empty => (None, true),
            Self::Stream(mut idle) => {
                let replayable = &mut idle.inner;
                match replayable.back.take() {
                    Some(_) => (replayable.body.take(), true),
                    None => (None, false),
                }
            }
        }
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Stream(body) => body.size_hint(),
        }
    }
}

/// The upstream's response body on its way to the client. Holds the endpoint's in-flight
/// count until the body is done, so load balancing sees streaming responses as load, and the
/// connection when it may carry another request: it goes back to the endpoint's pool once the
/// body has been read to its end. A body dropped before its end drops the connection, which
/// closes it.
#[derive(Debug)]
pub struct UpstreamBody {
    body: IdleBody<Source>,
    in_flight: Option<InFlight>,
    /// hyper's sender, for a hyper exchange that may be reused (a plain body holds its own).
    reusable: Option<SendRequest<Outgoing>>,
}

/// Where the bytes come from: hyper's client, or a plain exchange reading its own socket.
#[derive(Debug)]
enum Source {
    Hyper(Incoming),
    Plain(PlainBody),
}

impl Body for Source {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Hyper(body) => Pin::new(body).poll_frame(cx).map(|f| f.map(|r| r.map_err(BodyError::from))),
            Self::Plain(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Hyper(body) => body.is_end_stream(),
            Self::Plain(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Hyper(body) => body.size_hint(),
            Self::Plain(body) => body.size_hint(),
        }
    }
}

impl UpstreamBody {
    pub(super) fn new(
        body: Incoming,
        idle: Duration,
        in_flight: Option<InFlight>,
        reusable: Option<SendRequest<Outgoing>>,
    ) -> Self {
        Self { body: IdleBody::new(Source::Hyper(body), idle), in_flight, reusable }
    }

    /// A plain exchange's body; its connection goes back to the pool at the end when the
    /// response allowed keeping it (`keep`).
    pub(super) fn plain(mut body: PlainBody, idle: Duration, in_flight: InFlight, keep: bool) -> Self {
        if !keep {
            body.forget_connection_at_end();
        }
        Self { body: IdleBody::new(Source::Plain(body), idle), in_flight: Some(in_flight), reusable: None }
    }

    /// The endpoint that answered (none for an upgrade, whose tunnel holds it).
    pub fn endpoint(&self) -> Option<&Authority> {
        self.in_flight.as_ref().map(|f| &f.endpoint().authority)
    }

    /// A plain exchange's header lines, not yet in the response's map; `None` for hyper's
    /// exchanges (whose headers are all in the map) and once the body has ended.
    pub fn passed_headers(&mut self) -> Option<&mut super::PassedHeaders> {
        match &mut self.body.inner {
            Source::Plain(body) => body.passed_headers(),
            Source::Hyper(_) => None,
        }
    }

    /// A plain body's rest when it is all buffered (`PlainBody::take_buffered_rest`); the
    /// connection goes back to the pool as at any end.
    pub fn take_buffered_rest(&mut self, out: &mut Vec<u8>, max: usize) -> Option<usize> {
        let Source::Plain(body) = &mut self.body.inner else { return None };
        let taken = body.take_buffered_rest(out, max)?;
        self.release();
        Some(taken)
    }

    /// Back to the pool, once the whole body has been read.
    fn release(&mut self) {
        let Some(in_flight) = &self.in_flight else { return };
        if let Some(sender) = self.reusable.take() {
            in_flight.endpoint().put(sender);
        } else if let Source::Plain(body) = &mut self.body.inner
            && let Some(conn) = body.take_reusable()
        {
            in_flight.endpoint().put_plain(conn);
        }
    }

    fn holds_connection(&self) -> bool {
        self.reusable.is_some() || matches!(&self.body.inner, Source::Plain(_))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // A failed body (cut, idle) leaves the connection in no state to reuse.
            Poll::Ready(Some(Err(_))) => {
                this.reusable = None;
                if let Source::Plain(body) = &mut this.body.inner {
                    body.forget_connection_at_end();
                }
            }
            _ => {}
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

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // An empty body is done without a poll.
        if self.holds_connection() && self.body.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests;
