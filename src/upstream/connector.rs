//! The connector behind every endpoint's pool: TCP with a connect timeout, and each
//! connection stamped with the time it was made, so a failed request can tell a reused
//! pooled connection (safe to retry fresh) from one made for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

use super::error::ConnectError;

/// When a connection was established; read back from a failed request's connect info.
#[derive(Debug, Clone, Copy)]
pub struct Born(pub Instant);

#[derive(Debug, Clone)]
pub struct Connector {
    http: HttpConnector,
    timeout: Duration,
}

impl Connector {
    pub fn new(timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Self { http, timeout }
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
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(Ok(io)) => Ok(Stamped { io, born: Instant::now() }),
                Ok(Err(err)) => Err(ConnectError::Failed(err.into())),
                Err(_) => Err(ConnectError::TimedOut(timeout)),
            }
        })
    }
}

/// A TCP connection and the time it was made.
#[derive(Debug)]
pub struct Stamped {
    io: TokioIo<TcpStream>,
    born: Instant,
}

impl Connection for Stamped {
    fn connected(&self) -> Connected {
        self.io.connected().extra(Born(self.born))
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
