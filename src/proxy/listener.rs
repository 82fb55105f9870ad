//! Accepting connections: an optional PROXY protocol header, an optional TLS handshake (with
//! its own timeout, in the connection's own task), then Lintel's own HTTP/1.1 server for
//! plain `GET`/`HEAD` and hyper's HTTP/1.1 and HTTP/2 for the rest, with header
//! size/count/time limits, a cap on open connections, and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::client_addr::{self, ClientAddressSettings};
use super::{ClientSide, ConnInfo, Prefixed, Proxy, TlsInfo, h1};

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
    /// Lintel's own HTTP/1.1 server takes plain `GET` and `HEAD` ([`super::h1`]); else hyper
    /// serves everything.
    pub own_http1: bool,
}

/// TLS on a listener: the acceptor and how long a handshake may take.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub handshake_timeout: Duration,
}

/// Serves `listener` until `shutdown`, then lets open connections finish for the grace period.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    scheme: &'static str,
    settings: ListenerSettings,
    shutdown: CancellationToken,
) {
    serve_with(listener, proxy, scheme, None, settings, shutdown).await;
}

/// [`serve`], with TLS terminated on each connection when `tls` is set.
pub async fn serve_with(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    scheme: &'static str,
    tls: Option<Tls>,
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
    let closing = Arc::new(h1::Closing::default());
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
        let (proxy, builder, settings, tls) = (proxy.clone(), builder.clone(), settings.clone(), tls.clone());
        let closing = closing.clone();
        tokio::spawn(async move {
            let (_slot, _open) = (slot, open);
            let listener = Listener { scheme, builder: &builder, settings: &settings, closing: &closing };
            serve_connection(stream, peer, proxy, tls, listener, watcher).await;
        });
    }
    drop(listener);
    closing.start();
    let tunnels = proxy.tunnels().clone();
    let drained = async move {
        graceful.shutdown().await;
        tunnels.idle().await;
    };
    if tokio::time::timeout(settings.grace_period, drained).await.is_err() {
        tracing::warn!("grace period over; closing the remaining connections");
    }
}

/// What a listener lends each of its connections.
struct Listener<'a> {
    scheme: &'static str,
    builder: &'a auto::Builder<TokioExecutor>,
    settings: &'a ListenerSettings,
    closing: &'a h1::Closing,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    tls: Option<Tls>,
    listener: Listener<'_>,
    watcher: Watcher,
) {
    let _ = stream.set_nodelay(true);
    let settings = listener.settings;
    let (stream, address, origin) = match client_addr::accept(stream, peer, &settings.client_address).await {
        Ok(accepted) => accepted,
        Err(err) => {
            tracing::info!(%peer, error = %err, "connection refused");
            return;
        }
    };
    let client = ClientSide { address, origin, scheme: listener.scheme };
    let info = ConnInfo::new(peer, listener.scheme);
    let result = match tls {
        None => serve_http(stream, true, &proxy, client, Arc::new(info), &listener, watcher).await,
        Some(tls) => {
            let stream = match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    proxy.metrics().tls_handshake_error(handshake_error_reason(&err));
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    proxy.metrics().tls_handshake_error("timeout");
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let tls_info = tls_info(stream.get_ref().1);
            proxy.metrics().tls_handshake(tls_info.version);
            // A client that chose h2 in ALPN sends nothing HTTP/1.1 could take.
            let h1 = stream.get_ref().1.alpn_protocol() != Some(b"h2");
            serve_http(stream, h1, &proxy, client, Arc::new(info.with_tls(tls_info)), &listener, watcher).await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// HTTP on an accepted (and decrypted) connection: Lintel's own HTTP/1.1 server first when
/// it may take it, then hyper for whatever it hands over (or for all of it).
async fn serve_http<S>(
    stream: S,
    h1: bool,
    proxy: &Arc<Proxy>,
    client: ClientSide,
    info: Arc<ConnInfo>,
    listener: &Listener<'_>,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + h1::ReadHint + Unpin + Send + 'static,
{
    let settings = listener.settings;
    let stream = if h1 && settings.own_http1 {
        let conn = h1::Conn {
            proxy,
            client,
            info: &info,
            header_timeout: settings.header_timeout,
            max_header_bytes: settings.max_header_bytes,
            max_headers: settings.max_headers,
            closing: listener.closing,
        };
        match h1::serve(stream, conn).await {
            h1::Outcome::Closed => return Ok(()),
            h1::Outcome::HandOver(stream) => stream,
        }
    } else {
        Prefixed::new(stream, bytes::Bytes::new())
    };
    let proxy = proxy.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        let info = info.clone();
        // hyper writes only the map: the upstream's passed lines go into it.
        async move {
            let response = proxy.handle_conn(req.map(Some), client, &info, None).await;
            Ok::<_, Infallible>(crate::proxy::observe::headers_in_map(response))
        }
    });
    watcher.watch(listener.builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned()).await
}

/// The version and SNI of a completed handshake, for access logs and metrics.
fn tls_info(conn: &rustls::ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "other",
    };
    TlsInfo { version, sni: conn.server_name().map(Arc::from) }
}

/// A bounded word for a failed handshake (`lintel_tls_handshake_errors_total{reason}`).
fn handshake_error_reason(err: &std::io::Error) -> &'static str {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        return "eof";
    }
    match err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible",
        Some(rustls::Error::InvalidMessage(_)) => "invalid_message",
        Some(rustls::Error::NoCertificatesPresented) => "no_certificate",
        Some(rustls::Error::AlertReceived(_)) => "alert_received",
        Some(_) => "tls_error",
        None => "io",
    }
}
