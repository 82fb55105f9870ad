//! New connections to an endpoint: TCP within the connect timeout, `TCP_NODELAY`, and an
//! HTTP/1.1 handshake whose connection runs in a task of its own (with upgrades, so a
//! `101 Switching Protocols` hands the socket to the WebSocket tunnel).
//!
//! The socket carries the pool's open-connections guard: the gauge counts a connection until
//! its socket is dropped, whether it ends in the pool, under a request or in a tunnel.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::Outgoing;
use super::error::ConnectError;
use crate::metrics::{OpenConnection, PoolMetrics};

/// Where an endpoint's connections go: an IP literal parsed once, or a DNS name (ExternalName
/// Services) resolved at each connect.
#[derive(Debug, Clone)]
pub enum Target {
    Ip(SocketAddr),
    Name(Box<str>),
}

impl Target {
    pub fn new(authority: &Authority) -> Self {
        match authority.as_str().parse() {
            Ok(addr) => Self::Ip(addr),
            Err(_) if authority.port_u16().is_none() => Self::Name(format!("{}:80", authority.host()).into()),
            Err(_) => Self::Name(authority.as_str().into()),
        }
    }

    async fn tcp(&self) -> std::io::Result<TcpStream> {
        match self {
            Self::Ip(addr) => TcpStream::connect(*addr).await,
            Self::Name(name) => TcpStream::connect(name.as_ref()).await,
        }
    }
}

/// A TCP connection to `target` within `timeout`, with `TCP_NODELAY`: what both clients (hyper's
/// and the plain exchange's) start from.
pub async fn tcp(target: &Target, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, target.tcp()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(ConnectError::Failed(err.into())),
        Err(_) => return Err(ConnectError::TimedOut(timeout)),
    };
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "TCP_NODELAY not set on an upstream connection");
    }
    Ok(stream)
}

/// Opens one connection and spawns its driver; the sender is ready for a first request.
pub async fn connect(
    target: &Target,
    timeout: Duration,
    pool: &PoolMetrics,
) -> Result<SendRequest<Outgoing>, ConnectError> {
    let stream = tcp(target, timeout).await?;
    let io = Counted { io: TokioIo::new(stream), _open: pool.opened() };
    let (sender, connection) =
        http1::Builder::new().handshake(io).await.map_err(|err| ConnectError::Failed(err.into()))?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(%err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// A TCP connection counted as open until dropped.
#[derive(Debug)]
struct Counted {
    io: TokioIo<TcpStream>,
    _open: OpenConnection,
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_are_parsed_once_and_names_keep_their_port() {
        let t = |s: &str| Target::new(&s.parse().unwrap());
        assert!(matches!(t("10.0.0.1:8080"), Target::Ip(a) if a.port() == 8080));
        assert!(matches!(t("[::1]:81"), Target::Ip(a) if a.is_ipv6()));
        assert!(matches!(t("docs.example.net:8000"), Target::Name(n) if &*n == "docs.example.net:8000"));
        assert!(matches!(t("docs.example.net"), Target::Name(n) if &*n == "docs.example.net:80"));
    }
}
