//! The HTTPS listener: accepts TCP, runs the TLS handshake in the connection's own task (with
//! a timeout, so a slow or failing handshake costs only itself), then hands the stream to the
//! same hyper HTTP/1.1 + HTTP/2 server as the plain listener, with scheme `https`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::proxy::listener::{ListenerSettings, client_address, http_builder};
use crate::proxy::{ClientSide, Proxy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListenerSettings {
    pub http: ListenerSettings,
    /// Time a client gets to complete the TLS handshake.
    pub handshake_timeout: Duration,
}

/// Serves HTTPS on `listener` until `shutdown`, then lets open connections finish for the
/// grace period.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    settings: TlsListenerSettings,
    shutdown: CancellationToken,
) {
    let builder = http_builder(&settings.http);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let client = ClientSide { address: client_address(peer), scheme: "https" };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let proxy = proxy.clone();
        let watcher = graceful.watcher();
        let timeout = settings.handshake_timeout;
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req, client).await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(err) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.http.grace_period, graceful.shutdown()).await.is_err() {
        tracing::warn!("grace period over; closing the remaining HTTPS connections");
    }
}
