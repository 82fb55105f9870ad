//! Accepting connections: an optional PROXY protocol header, then hyper's HTTP/1.1 and
//! HTTP/2 (prior knowledge) on one plain listener, with header size/count/time limits, a cap
//! on open connections, and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client_addr::{self, ClientAddressSettings};
use super::{ClientSide, ConnInfo, Proxy};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Time a client gets to send a complete request header (slow clients are cut off).
    pub header_timeout: Duration,
    /// How long in-flight requests get to finish after shutdown starts.
    pub grace_period: Duration,
    pub client_address: ClientAddressSettings,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Open connections at most; past it, new ones wait in the kernel's accept backlog.
    pub max_connections: usize,
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
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_headers(settings.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let counted = proxy.metrics().listener(scheme);
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let settings = Arc::new(settings);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
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
        let open = counted.accepted();
        let watcher = graceful.watcher();
        let (proxy, builder, settings) = (proxy.clone(), builder.clone(), settings.clone());
        tokio::spawn(async move {
            let (_slot, _open) = (slot, open);
            serve_connection(stream, peer, proxy, scheme, &builder, &settings, watcher).await;
        });
    }
    drop(listener);
    let tunnels = proxy.tunnels().clone();
    let drained = async move {
        graceful.shutdown().await;
        tunnels.idle().await;
    };
    if tokio::time::timeout(settings.grace_period, drained).await.is_err() {
        tracing::warn!("grace period over; closing the remaining connections");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    scheme: &'static str,
    builder: &auto::Builder<TokioExecutor>,
    settings: &ListenerSettings,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = stream.set_nodelay(true);
    let (stream, address, origin) = match client_addr::accept(stream, peer, &settings.client_address).await {
        Ok(accepted) => accepted,
        Err(err) => {
            tracing::info!(%peer, error = %err, "connection refused");
            return;
        }
    };
    let client = ClientSide { address, origin, scheme };
    let info = Arc::new(ConnInfo::new(peer, scheme));
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let info = info.clone();
        async move { Ok::<_, Infallible>(proxy.handle_conn(req, client, &info).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}
