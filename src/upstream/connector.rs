//! The connector behind every endpoint's pool: TCP with a connect timeout, and each
//! connection stamped with the time it was made, so a failed request can tell a reused
//! pooled connection (safe to retry fresh) from one made for it.
//!
//! The connector also feeds the upstream pool metrics: a successful connect counts as opened
//! and as open until the connection's IO is dropped (the connection closed), and each
//! connection carries a [`Tally`] of the requests sent on it, read back from the response (or
//! the error) of each request, so every request after a connection's first counts as a reuse.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

use super::error::ConnectError;
use crate::metrics::{OpenConnection, PoolMetrics};

/// When a connection was established; read back from a failed request's connect info.
#[derive(Debug, Clone, Copy)]
pub struct Born(pub Instant);

/// Requests sent on one connection; found in the extensions of each response (and in the
/// connect info of a failed request) through the connection's `Connected` extras.
#[derive(Debug, Clone)]
pub struct Tally(Arc<TallyInner>);

#[derive(Debug)]
struct TallyInner {
    requests: AtomicU64,
    pool: PoolMetrics,
}

impl Tally {
    /// One more request went out on this connection: a reuse unless it is the first.
    pub fn sent(&self) {
        if self.0.requests.fetch_add(1, Ordering::Relaxed) > 0 {
            self.0.pool.reused();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Connector {
    http: HttpConnector,
    timeout: Duration,
    pool: PoolMetrics,
}

impl Connector {
    pub fn new(timeout: Duration, pool: PoolMetrics) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Self { http, timeout, pool }
    }
}

impl Service<Uri> for Connector {
    type Response = Stamped;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Stamped, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.http.poll_ready(cx).map_err(|err| ConnectError::Failed(err.into()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let timeout = self.timeout;
        let pool = self.pool.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(Ok(io)) => {
                    let open = pool.opened();
                    let tally = Tally(Arc::new(TallyInner { requests: AtomicU64::new(0), pool }));
                    Ok(Stamped { io, born: Instant::now(), tally, _open: open })
                }
                Ok(Err(err)) => Err(ConnectError::Failed(err.into())),
                Err(_) => Err(ConnectError::TimedOut(timeout)),
            }
        })
    }
}

/// A TCP connection, the time it was made and its request tally; counted as open until
/// dropped.
#[derive(Debug)]
pub struct Stamped {
    io: TokioIo<TcpStream>,
    born: Instant,
    tally: Tally,
    _open: OpenConnection,
}

impl Connection for Stamped {
    fn connected(&self) -> Connected {
        self.io.connected().extra(Born(self.born)).extra(self.tally.clone())
    }
}

impl hyper::rt::Read for Stamped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stamped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
