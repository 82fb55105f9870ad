//! What is known about one client connection, made once per connection by its listener and
//! shared by its requests: the TCP peer, the listener, and the TLS facts once the TLS
//! listener fills them in (empty on plain HTTP).

use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The TCP peer (a load balancer or the client itself).
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub listener: &'static str,
    pub tls: Option<TlsInfo>,
}

/// The TLS facts of a connection, for access logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The server name the client asked for, when it sent one.
    pub sni: Option<Arc<str>>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, listener: &'static str) -> Self {
        Self { peer, listener, tls: None }
    }

    pub fn with_tls(self, tls: TlsInfo) -> Self {
        Self { tls: Some(tls), ..self }
    }
}
