//! Accepting connections: hyper's HTTP/1.1 and HTTP/2 (prior knowledge) on one plain
//! listener, with a client header timeout and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{ClientSide, ConnInfo, Proxy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Time a client gets to send a complete request header (slow clients are cut off).
    pub header_timeout: Duration,
    /// How long in-flight requests get to finish after shutdown starts.
    pub grace_period: Duration,
}

/// Serves `listener` until `shutdown`, then lets open connections finish for the grace period.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    scheme: &'static str,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(settings.header_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let counted = proxy.metrics().listener(scheme);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let open = counted.accepted();
        let client = ClientSide { address: client_address(peer), scheme };
        let info = Arc::new(ConnInfo::new(peer, scheme));
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            let info = info.clone();
            async move { Ok::<_, Infallible>(proxy.handle_conn(req, client, &info).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _open = open;
            if let Err(err) = conn.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.grace_period, graceful.shutdown()).await.is_err() {
        tracing::warn!("grace period over; closing the remaining connections");
    }
}

/// The peer address, with IPv4-mapped IPv6 addresses shown as IPv4.
fn client_address(peer: SocketAddr) -> std::net::IpAddr {
    peer.ip().to_canonical()
}
