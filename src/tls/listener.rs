//! The HTTPS listener: the traffic listener of `proxy::listener` with a TLS handshake after
//! the (optional) PROXY header, scheme `https`. The handshake runs in the connection's own
//! task with a timeout, so a slow or failing handshake costs only itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::proxy::Proxy;
use crate::proxy::listener::{ListenerSettings, Tls, serve_with};

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
    let tls = Tls { acceptor, handshake_timeout: settings.handshake_timeout };
    serve_with(listener, proxy, "https", Some(tls), settings.http, shutdown).await;
}
