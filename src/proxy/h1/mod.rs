//! Lintel's own HTTP/1.1 server, for the common case: keep-alive `GET` and `HEAD` without a
//! body. It reads a head, hands the request to [`Proxy::handle_conn`] in the connection's own
//! task and writes the answer, framed as hyper frames it (see `encode`). The first request it
//! does not take (a body, an upgrade, HTTP/1.0, h2c, anything malformed: see `head`) and the
//! rest of the connection go to hyper, with the bytes already read ([`Outcome::HandOver`]).
//!
//! It keeps hyper's conduct where a client can see it: the request-header timeout runs from
//! the moment a request is awaited (idle keep-alive included) and closes without an answer;
//! a client that goes away while its answer is pending is noticed by reading, and the work
//! for it is dropped; pipelined requests are answered in order; once shutdown starts, an
//! idle connection closes and a busy one closes after its answer (`connection: close`).
//! A body that fails, or ends short of its length, cuts the connection.

mod encode;
mod head;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Request;
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::{ClientBody, ClientSide, ConnInfo, ObservedBody, Prefixed, Proxy};
use crate::kept_timer::KeptTimer;
use crate::upstream::BodyError;
use encode::Framing;
use head::Parsed;

/// Reads ask for at least this much room.
const READ_SIZE: usize = 8192;
/// Body bytes gathered behind a head before they are written.
const OUT_LIMIT: usize = 64 * 1024;
/// How long closing a connection (TLS `close_notify`, TCP FIN) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// One client connection and what its requests need.
pub struct Conn<'a> {
    pub proxy: &'a Proxy,
    pub client: ClientSide,
    pub info: &'a ConnInfo,
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub closing: &'a Closing,
}

/// Shutdown as the connections of a listener see it: a flag read without a lock (a
/// `CancellationToken` takes a mutex to say whether it is cancelled, three times a request),
/// and a wake-up for connections waiting for a request.
#[derive(Debug, Default)]
pub struct Closing {
    started: AtomicBool,
    notify: Notify,
}

impl Closing {
    /// Idle connections close now, busy ones after their answer.
    pub fn start(&self) {
        self.started.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }
}

/// A connection's wait for `Closing::start`: registered with the first wait for a request
/// and left so (the connection's task does not change), then only the flag is read.
struct CloseWatch<'p, 'n> {
    closing: &'n Closing,
    notified: Pin<&'p mut Notified<'n>>,
    registered: bool,
}

impl CloseWatch<'_, '_> {
    /// Whether shutdown has started; otherwise the waker is registered for it.
    fn started(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closing.started() {
            return true;
        }
        if !self.registered {
            self.registered = true;
            return self.notified.as_mut().poll(cx).is_ready();
        }
        false
    }
}

/// A client stream that can tell, without reading, that a read now would find nothing. The
/// wait for a request and the watch for a client gone ask first: over TLS, a read that finds
/// nothing still runs rustls's record machinery (about 450 instructions, twice a request) to
/// learn what the socket's readiness already says.
pub trait ReadHint {
    /// `Pending`, with the waker registered, when a read now would certainly find nothing;
    /// `Ready` when it might find something (or an end, or an error).
    fn poll_read_hint(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

impl ReadHint for Prefixed<TcpStream> {
    fn poll_read_hint(&mut self, _: &mut Context<'_>) -> Poll<()> {
        // A read that finds nothing costs no more than asking.
        Poll::Ready(())
    }
}

impl ReadHint for TlsStream<Prefixed<TcpStream>> {
    fn poll_read_hint(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (io, session) = self.get_ref();
        // Plaintext waiting, a close_notify seen, or a handshake under way: let the read say.
        // Otherwise rustls holds at most part of a record, and only the socket can add to it.
        if !session.wants_read() {
            return Poll::Ready(());
        }
        io.poll_read_ready(cx)
    }
}

pub enum Outcome<S> {
    /// The connection is over.
    Closed,
    /// hyper serves the rest, starting with the bytes read so far.
    HandOver(Prefixed<S>),
}

/// The client went away, or its connection cannot be kept.
struct Cut;

#[expect(clippy::large_enum_variant, reason = "one per request, moved once; a box would cost an allocation")]
enum Next {
    Request(Request<ClientBody>),
    Decline,
    Close,
}

enum Step {
    Frame(Option<Result<Frame<Bytes>, BodyError>>),
    Flush,
    Gone,
}

pub async fn serve<S>(mut io: S, conn: Conn<'_>) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + ReadHint + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(READ_SIZE);
    let mut timer = KeptTimer::default();
    // The deadline of each request's upstream answer: a timer polled by this task only, so
    // it stays armed from one request to the next (a pooled connection's own timer is polled
    // by whichever client used it last, and re-registered).
    let mut upstream_timer = KeptTimer::default();
    // Made before the first check of the flag: it then sees a `start` that comes after.
    let notified = pin!(conn.closing.notify.notified());
    let mut watch = CloseWatch { closing: conn.closing, notified, registered: false };
    loop {
        if conn.closing.started() {
            break;
        }
        let req = match read_head(&mut io, &mut buf, &conn, &mut timer, &mut watch).await {
            Next::Request(req) => req,
            Next::Decline => return Outcome::HandOver(Prefixed::new(io, buf.freeze())),
            Next::Close => break,
        };
        let method = req.method().clone();
        // The proxy's answer, unless the client goes away first. Polled here rather than in
        // a function of its own: that future (the proxy's, about 3 kB) would be moved once
        // more per request.
        let mut handled = pin!(conn.proxy.handle_conn(req, conn.client, conn.info, Some(&mut upstream_timer)));
        let mut watching = buf.is_empty();
        let answered = poll_fn(|cx| {
            if let Poll::Ready(response) = handled.as_mut().poll(cx) {
                return Poll::Ready(Ok(response));
            }
            if watching && gone(&mut io, &mut buf, cx, &mut watching) {
                return Poll::Ready(Err(Cut));
            }
            Poll::Pending
        })
        .await;
        let Ok(response) = answered else { return Outcome::Closed };
        let close = conn.closing.started();
        let (parts, mut body) = response.into_parts();
        out.clear();
        let framing = encode::head(&mut out, &method, &parts, &mut body, close);
        crate::header_maps::give(parts.headers);
        let sent = if framing == Framing::None {
            drop(body);
            flush(&mut io, &mut out).await
        } else {
            send_body(&mut io, &mut buf, &mut out, &mut body, framing).await
        };
        if sent.is_err() {
            return Outcome::Closed;
        }
        if close {
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
    Outcome::Closed
}

/// Waits for the next whole request head, within the request-header timeout.
async fn read_head<S: AsyncRead + ReadHint + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    conn: &Conn<'_>,
    timer: &mut KeptTimer,
    watch: &mut CloseWatch<'_, '_>,
) -> Next {
    let deadline = Instant::now() + conn.header_timeout;
    loop {
        match head::parse(buf, conn.max_headers, conn.max_header_bytes) {
            Parsed::Request(req) => return Next::Request(req),
            Parsed::Decline => return Next::Decline,
            Parsed::Partial => {}
        }
        if buf.len() >= conn.max_header_bytes {
            return Next::Decline; // hyper answers 431
        }
        reserve(buf);
        let read = poll_fn(|cx| {
            if io.poll_read_hint(cx).is_ready()
                && let Poll::Ready(read) = tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)
            {
                return Poll::Ready(read.is_ok_and(|n| n > 0));
            }
            if buf.is_empty() && watch.started(cx) {
                return Poll::Ready(false);
            }
            if timer.passed(cx, deadline) { Poll::Ready(false) } else { Poll::Pending }
        })
        .await;
        if !read {
            return Next::Close;
        }
    }
}

/// Reads while an answer is under way, as hyper does, to notice a client that closed (and
/// drop the work for it). Bytes that arrive are a pipelined request, kept for later; reading
/// stops there.
fn gone<S: AsyncRead + ReadHint + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
    watching: &mut bool,
) -> bool {
    if io.poll_read_hint(cx).is_pending() {
        return false;
    }
    reserve(buf);
    match tokio_util::io::poll_read_buf(Pin::new(io), cx, buf) {
        Poll::Ready(Ok(0) | Err(_)) => true,
        Poll::Ready(Ok(_)) => {
            *watching = false;
            false
        }
        Poll::Pending => false,
    }
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_SIZE);
    }
}

/// Streams the body after its head. What is ready is gathered and written together; when
/// the body has nothing more yet, what is gathered goes out before waiting.
async fn send_body<S: AsyncRead + AsyncWrite + ReadHint + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    body: &mut ObservedBody,
    framing: Framing,
) -> Result<(), Cut> {
    let mut left = match framing {
        Framing::Length(n) => n,
        Framing::None | Framing::Chunked => 0,
    };
    // A small answer usually came whole with its head: copied behind it, without frames.
    if let Framing::Length(_) = framing
        && let Some(taken) = body.take_buffered_rest(out, OUT_LIMIT.saturating_sub(out.len()))
    {
        let taken = taken as u64;
        if taken > left {
            return Err(Cut); // more than the head announced
        }
        left -= taken;
    }
    let mut watching = buf.is_empty();
    loop {
        let step = poll_fn(|cx| {
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                return Poll::Ready(Step::Frame(frame));
            }
            if !out.is_empty() {
                return Poll::Ready(Step::Flush);
            }
            if watching && gone(io, buf, cx, &mut watching) {
                return Poll::Ready(Step::Gone);
            }
            Poll::Pending
        })
        .await;
        let data = match step {
            Step::Flush => {
                flush(io, out).await?;
                continue;
            }
            Step::Frame(None) => break,
            // A body that fails cuts the connection, so the client sees it incomplete.
            Step::Gone | Step::Frame(Some(Err(_))) => return Err(Cut),
            Step::Frame(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers are dropped, as hyper drops them for a client that did not ask.
                _ => continue,
            },
        };
        match framing {
            Framing::Length(_) => {
                let len = data.len() as u64;
                if len > left {
                    return Err(Cut); // more than the head announced
                }
                left -= len;
                put(io, out, data).await?;
            }
            Framing::Chunked => {
                encode::chunk_start(out, data.len());
                put(io, out, data).await?;
                out.extend_from_slice(b"\r\n");
            }
            Framing::None => {}
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    flush(io, out).await?;
    if left > 0 {
        return Err(Cut); // ended short of its length
    }
    Ok(())
}

/// Gathers `data` behind what waits in `out`, or writes both when that grows too big.
async fn put<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>, data: Bytes) -> Result<(), Cut> {
    if out.len() + data.len() <= OUT_LIMIT {
        out.extend_from_slice(&data);
        return Ok(());
    }
    flush(io, out).await?;
    io.write_all(&data).await.map_err(|_| Cut)?;
    io.flush().await.map_err(|_| Cut)
}

async fn flush<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>) -> Result<(), Cut> {
    if !out.is_empty() {
        io.write_all(out).await.map_err(|_| Cut)?;
        out.clear();
    }
    // A no-op on TCP; TLS pushes out the records it still holds.
    io.flush().await.map_err(|_| Cut)
}
