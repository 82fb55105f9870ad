//! Picks the certificate for each handshake by SNI from the table in service: the host's own
//! (exact, then a one-label wildcard), else the default Secret, else the built-in default.
//! One lock-free load of the live table per handshake; never waits on the control plane.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::live::SharedLive;

#[derive(Debug)]
pub struct CertResolver {
    live: SharedLive,
    /// Served when the table has nothing for the name (or there is no SNI).
    fallback: Arc<CertifiedKey>,
}

impl CertResolver {
    pub fn new(live: SharedLive, fallback: Arc<CertifiedKey>) -> Self {
        Self { live, fallback }
    }

    /// The certificate for an SNI name (rustls hands it over in lower case).
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let live = self.live.load();
        live.compiled.table.tls().certificate(sni).unwrap_or(&self.fallback).clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}
