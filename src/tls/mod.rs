//! TLS termination: certificates from PEM (`keys`), kept parsed across rebuilds (`cache`),
//! chosen per handshake by SNI from the table in service (`resolver`), the built-in default
//! certificate (`default_cert`), and the HTTPS listener (`listener`).

pub mod cache;
pub mod default_cert;
pub mod keys;
pub mod listener;
pub mod resolver;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;

/// ALPN protocols offered, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("default certificate: {0}")]
    DefaultCert(#[from] default_cert::DefaultCertError),
}

/// The server side of every HTTPS connection: TLS 1.3 and 1.2 only (rustls has nothing older),
/// ring's safe default cipher suites, ALPN `h2` then `http/1.1`, and session tickets.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(config)
}
