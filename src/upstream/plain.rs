//! The plain exchange: a bodiless `GET` or `HEAD` (most of what an ingress carries) over a
//! connection this module drives itself, in the client's own task.
//!
//! Why not hyper's client for these: its connection runs in a task of its own, so every
//! request crosses two channels and two task wake-ups, and the head is copied for a possible
//! retry. Here the head is written from the headers as they are (a retry writes them again),
//! the response head is parsed in place (`response_head`) and its lines kept as text for
//! the client (`passed`), and the body is read from the socket by whoever polls it.
//! Everything else (bodies, upgrades) still goes through hyper.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, Method, Response, StatusCode, Uri, Version};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::connector::Target;
use super::endpoint::InFlight;
use super::error::{ConnectError, UpstreamError};
use super::policy::UpstreamPolicy;
use super::{Group, UpstreamBody};
use crate::kept_timer::KeptTimer;
use crate::metrics::{OpenConnection, PoolMetrics};

use super::passed::{PassedHeaders, Seen};
use super::plain_body::Framing;
pub use super::plain_body::PlainBody;
use super::response_head::{self, Parsed};

/// Response heads larger than this are refused (hyper's client allowed about as much).
const MAX_HEAD: usize = 64 * 1024;
/// Header lines in a response head at most.
const MAX_HEADERS: usize = 100;
/// A read asks for at least this much room.
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// Whether a request goes out as a plain exchange: `GET` or `HEAD`, no body, no upgrade.
pub fn suits(method: &Method, has_body: bool, upgrade: bool) -> bool {
    !has_body && !upgrade && (*method == Method::GET || *method == Method::HEAD)
}

/// Sends a plain exchange to an endpoint of `group`, with the rules of `send::send`: a failed
/// connect is retried once on another endpoint; a pooled connection that turns out closed
/// before any answer is retried once on a fresh connection (`GET` and `HEAD` are idempotent).
/// `now` is when it goes out (the pool's idle check), `deadline` when the answer is late;
/// `timer` times it (else the connection's own timer).
pub async fn send(
    group: &Group,
    policy: &UpstreamPolicy,
    req: PlainRequest<'_>,
    mut now: tokio::time::Instant,
    deadline: tokio::time::Instant,
    idle: Duration,
    mut timer: Option<&mut KeptTimer>,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let mut next = group.pick(policy.balance, None).ok_or_else(|| group.no_endpoint())?;
    let (mut retried_connect, mut retried_stale) = (false, false);
    loop {
        // The endpoint moves into its in-flight count (no second reference to take and drop).
        let in_flight = InFlight::new(next);
        let endpoint = in_flight.endpoint();
        let pooled = if retried_stale { None } else { endpoint.checkout_plain(now) };
        let (conn, pooled) = match pooled {
            Some(conn) => (conn, true),
            None => match tokio::time::timeout_at(deadline, endpoint.connect_plain()).await {
                Err(_) => return Err(UpstreamError::ResponseTimeout),
                Ok(Ok(conn)) => (conn, false),
                Ok(Err(err)) => {
                    let other = super::send::connect_failed(group, policy, endpoint, !retried_connect);
                    drop(in_flight);
                    if let Some(other) = other {
                        (next, retried_connect, retried_stale) = (other, true, false);
                        now = tokio::time::Instant::now();
                        continue;
                    }
                    return Err(super::send::connect_error(err));
                }
            },
        };
        if pooled {
            endpoint.note_reuse();
        }
        match conn.exchange(req, deadline, timer.as_deref_mut()).await {
            // The exchange, and with it its connection, is dropped.
            Err(PlainError::TimedOut) => return Err(UpstreamError::ResponseTimeout),
            Ok((response, seen)) => {
                super::send::observe_status(endpoint, response.status());
                if let Some(seconds) = seen.keep_alive_timeout {
                    endpoint.announce_keepalive(seconds);
                }
                // HTTP/1.1 and no `Connection: close` (a 101 was refused with the head).
                let keep = response.version() == Version::HTTP_11 && !seen.close;
                return Ok(response.map(|body| UpstreamBody::plain(body, idle, in_flight, keep)));
            }
            Err(PlainError::ClosedEarly(_)) if pooled && !retried_stale => {
                super::send::stale_retry(group, endpoint);
                next = endpoint.clone();
                retried_stale = true;
                now = tokio::time::Instant::now();
            }
            Err(err) => {
                endpoint.record_failure();
                return Err(UpstreamError::Plain(err));
            }
        }
    }
}

/// Why a plain exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    /// Nothing came back: the connection was closed or reset before the first response byte
    /// (on a pooled connection, the upstream closed it while it was idle).
    #[error("connection closed before any response")]
    ClosedEarly(#[source] Option<io::Error>),
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    #[error("connection closed before the end of the response")]
    Incomplete,
    /// No whole response head before the deadline (the caller answers 504).
    #[error("no response before the deadline")]
    TimedOut,
}

impl PlainError {
    fn early_or(err: io::Error, received: bool) -> Self {
        use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        if !received && matches!(err.kind(), BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof) {
            Self::ClosedEarly(Some(err))
        } else {
            Self::Io(err)
        }
    }
}

/// One HTTP/1.1 connection to an upstream, idle between exchanges.
#[derive(Debug)]
pub struct PlainConn {
    pub(super) io: TcpStream,
    /// Bytes read and not yet used; its capacity is reused from one response to the next.
    pub(super) buf: BytesMut,
    /// The request head is written from here; kept for the next request.
    out: Vec<u8>,
    /// The response deadline's timer, kept armed from one exchange to the next.
    timer: KeptTimer,
    /// The response's header lines, passed to the client as text; kept for the next response.
    pub(super) passed: PassedHeaders,
    _open: OpenConnection,
}

impl super::pool::Pooled for PlainConn {
    fn is_usable(&mut self) -> bool {
        PlainConn::is_usable(self)
    }
}

/// The request as it goes out: origin-form target, headers already rewritten (`Host` set).
#[derive(Debug, Clone, Copy)]
pub struct PlainRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// Written after `headers`.
    pub added: &'a super::AddedHeaders,
}

impl PlainConn {
    /// A new connection within `timeout`, with `TCP_NODELAY`.
    pub async fn connect(target: &Target, timeout: Duration, pool: &PoolMetrics) -> Result<Self, ConnectError> {
        let io = super::connector::tcp(target, timeout).await?;
        Ok(Self {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(512),
            timer: KeptTimer::default(),
            passed: PassedHeaders::default(),
            _open: pool.opened(),
        })
    }

    /// Whether an idle connection can carry a request: nothing arrived while it was idle
    /// (an end of stream, or bytes nobody asked for). No system call unless the socket has
    /// shown readable since its last read (tokio clears that once a read comes back short),
    /// and no waker registered: `try_read` answers `WouldBlock` from the readiness alone,
    /// where polling for readiness took the socket's waiter lock.
    pub fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends the request and reads the response head by `deadline`; the body is read by
    /// whoever polls the returned response's body, which owns the connection until its end.
    pub async fn exchange(
        mut self: Box<Self>,
        req: PlainRequest<'_>,
        deadline: Instant,
        mut timer: Option<&mut KeptTimer>,
    ) -> Result<(Response<PlainBody>, Seen), PlainError> {
        self.out.clear();
        write_head(&mut self.out, &req);
        let mut written = 0;
        while written < self.out.len() {
            let wrote = std::future::poll_fn(|cx| {
                match std::pin::Pin::new(&mut self.io).poll_write(cx, &self.out[written..]) {
                    Poll::Ready(wrote) => Poll::Ready(Some(wrote)),
                    Poll::Pending if timer.as_deref_mut().unwrap_or(&mut self.timer).passed(cx, deadline) => {
                        Poll::Ready(None)
                    }
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match wrote {
                None => return Err(PlainError::TimedOut),
                Some(Ok(0)) => return Err(PlainError::early_or(io::ErrorKind::WriteZero.into(), false)),
                Some(Ok(n)) => written += n,
                Some(Err(err)) => return Err(PlainError::early_or(err, false)),
            }
        }
        let mut received = false;
        loop {
            if let Some(head) = self.parse_head()? {
                let framing = framing(req.method, &head)?;
                if head.seen.transfer_encoding && !matches!(framing, Framing::Length(_)) {
                    // The length a transfer coding overrides must not reach the client: it
                    // would be framed by it, and read past or short of it.
                    self.passed.length = None;
                }
                let mut response = Response::new(PlainBody::new(self, framing));
                *response.status_mut() = head.status;
                *response.version_mut() = head.version;
                // The upstream's lines travel as text with the body; this map is for the
                // proxy's own (`X-Request-ID`, `Strict-Transport-Security`).
                *response.headers_mut() = crate::header_maps::take(2);
                return Ok((response, head.seen));
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(PlainError::Invalid("response head too large"));
            }
            let read = std::future::poll_fn(|cx| match self.poll_read(cx) {
                Poll::Ready(read) => Poll::Ready(Some(read)),
                Poll::Pending if timer.as_deref_mut().unwrap_or(&mut self.timer).passed(cx, deadline) => {
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            })
            .await
            .ok_or(PlainError::TimedOut)?;
            match read {
                Ok(0) if received => return Err(PlainError::Incomplete),
                Ok(0) => return Err(PlainError::ClosedEarly(None)),
                Ok(_) => received = true,
                Err(err) => return Err(PlainError::early_or(err, received)),
            }
        }
    }

    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// A complete final response head from the buffer, if it holds one. Interim (1xx) heads
    /// are skipped; `101` is refused, as nothing here asked to switch protocols.
    fn parse_head(&mut self) -> Result<Option<Head>, PlainError> {
        loop {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let mut seen = Seen::default();
            let passed = &mut self.passed;
            passed.begin();
            let parsed = response_head::parse(&self.buf, MAX_HEADERS, |line| passed.take(&mut seen, line));
            let (len, version, code) = match parsed {
                Ok(Parsed::Complete { len, version, code }) => (len, version, code),
                Ok(Parsed::Partial) => return Ok(None),
                Err(err) => return Err(PlainError::Invalid(err.reason())),
            };
            let status = StatusCode::from_u16(code).map_err(|_| PlainError::Invalid("bad status code"))?;
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(PlainError::Invalid("101 to a request that did not ask to switch"));
            }
            if status.is_informational() {
                self.buf.advance(len);
                continue;
            }
            let version = if version == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
            self.passed.end();
            self.buf.advance(len);
            return Ok(Some(Head { status, version, seen }));
        }
    }
}

/// A final response head; its lines are in the connection's `passed`.
#[derive(Debug)]
struct Head {
    status: StatusCode,
    version: Version,
    seen: Seen,
}

/// `METHOD target HTTP/1.1`, the headers as they are, and the blank line.
fn write_head(out: &mut Vec<u8>, req: &PlainRequest<'_>) {
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = req.headers.iter().map(|(name, value)| (name, value.as_bytes()));
    for (name, value) in headers.chain(req.added.iter()) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How the body of a response is delimited (RFC 9112 section 6.3).
fn framing(method: &Method, head: &Head) -> Result<Framing, PlainError> {
    if *method == Method::HEAD || head.status == StatusCode::NO_CONTENT || head.status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Length(0));
    }
    let seen = &head.seen;
    if seen.transfer_encoding {
        // A length beside a transfer coding is ignored (and the connection not kept).
        let keep = seen.chunked && seen.content_length.is_none();
        return Ok(if seen.chunked { Framing::chunked(keep) } else { Framing::UntilClose });
    }
    match seen.content_length {
        None => Ok(Framing::UntilClose),
        Some(Ok(n)) => Ok(Framing::Length(n)),
        Some(Err(())) => Err(PlainError::Invalid("bad or conflicting Content-Length")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn head(status: u16, headers: &[(&'static str, &'static str)]) -> Head {
        let seen =
            PassedHeaders::default().read(headers.iter().map(|(name, value)| (name.as_bytes(), value.as_bytes())));
        Head { status: StatusCode::from_u16(status).unwrap(), version: Version::HTTP_11, seen }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = |status, headers| framing(&Method::GET, &head(status, headers));
        assert_eq!(get(200, &[("content-length", "5")]).unwrap(), Framing::Length(5));
        assert_eq!(get(200, &[("content-length", "5, 5")]).unwrap(), Framing::Length(5));
        assert_eq!(get(200, &[("content-length", "5"), ("content-length", "5")]).unwrap(), Framing::Length(5));
        assert!(get(200, &[("content-length", "5, 6")]).is_err());
        assert!(get(200, &[("content-length", "+5")]).is_err());
        assert!(get(200, &[("content-length", "")]).is_err());
        assert!(get(200, &[("content-length", "99999999999999999999")]).is_err());
        assert_eq!(get(200, &[("transfer-encoding", "gzip, Chunked")]).unwrap(), Framing::chunked(true));
        assert_eq!(
            get(200, &[("transfer-encoding", "chunked"), ("content-length", "3")]).unwrap(),
            Framing::chunked(false)
        );
        assert_eq!(get(200, &[("transfer-encoding", "gzip")]).unwrap(), Framing::UntilClose);
        assert_eq!(get(200, &[]).unwrap(), Framing::UntilClose);
        assert_eq!(get(204, &[("content-length", "5")]).unwrap(), Framing::Length(0));
        assert_eq!(get(304, &[("transfer-encoding", "chunked")]).unwrap(), Framing::Length(0));
        assert_eq!(framing(&Method::HEAD, &head(200, &[("content-length", "5")])).unwrap(), Framing::Length(0));
    }

    #[test]
    fn the_head_goes_out_as_the_headers_are() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("a.example.com"));
        headers.append("x-many", HeaderValue::from_static("1"));
        headers.append("x-many", HeaderValue::from_static("2"));
        let uri = Uri::from_static("/p?q=1");
        let mut added = crate::upstream::AddedHeaders::default();
        added.push(HeaderName::from_static("x-real-ip"), crate::upstream::AddedValue::inline(b"192.0.2.1").unwrap());
        let mut out = Vec::new();
        write_head(&mut out, &PlainRequest { method: &Method::HEAD, uri: &uri, headers: &headers, added: &added });
        assert_eq!(
            out,
            b"HEAD /p?q=1 HTTP/1.1\r\nhost: a.example.com\r\nx-many: 1\r\nx-many: 2\r\nx-real-ip: 192.0.2.1\r\n\r\n"
        );
    }

    #[test]
    fn only_bodiless_get_and_head_are_plain() {
        assert!(suits(&Method::GET, false, false));
        assert!(suits(&Method::HEAD, false, false));
        assert!(!suits(&Method::GET, true, false), "a GET with a body goes through hyper");
        assert!(!suits(&Method::GET, false, true), "upgrades go through hyper");
        assert!(!suits(&Method::POST, false, false));
        assert!(!suits(&Method::OPTIONS, false, false));
    }
}
