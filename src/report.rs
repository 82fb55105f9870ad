//! The compiled table and its diagnostics as people read them: JSON for `/routes` and
//! `lintel check --output json`, text for `lintel check`.

use std::fmt::Write;

use crate::compile::Compiled;
use crate::diagnostic::{Diagnostic, Severity};
use crate::table::{PathKind, RouteListing, TlsListing};

#[derive(Debug, serde::Serialize)]
pub struct RoutesReport<'a> {
    pub routes: Vec<RouteListing>,
    /// Hosts served over TLS and the Secret each one's certificate comes from.
    pub tls: Vec<TlsListing>,
    pub served_ingresses: &'a [String],
    pub diagnostics: &'a [Diagnostic],
}

impl<'a> RoutesReport<'a> {
    pub fn new(compiled: &'a Compiled) -> Self {
        Self {
            routes: compiled.table.listing(),
            tls: compiled.table.tls().listing(),
            served_ingresses: &compiled.served,
            diagnostics: &compiled.diagnostics,
        }
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} routes from {} Ingresses", self.routes.len(), self.served_ingresses.len());
        for r in &self.routes {
            let host = r.host.as_deref().unwrap_or("*");
            let (path, kind) = match (&r.path, r.path_type) {
                (Some(p), Some(PathKind::Exact)) => (p.as_str(), "Exact"),
                (Some(p), _) => (p.as_str(), "Prefix"),
                (None, _) => ("(default backend)", ""),
            };
            let endpoints: Vec<&str> = r.endpoints.iter().map(|e| e.as_ref()).collect();
            let endpoints = if endpoints.is_empty() { "no endpoints".to_owned() } else { endpoints.join(", ") };
            let _ = writeln!(out, "  {host} {path} {kind} -> {} [{endpoints}] ({})", r.backend, r.ingress);
        }
        for t in &self.tls {
            let secret = t.secret.as_deref().unwrap_or("no Secret");
            let state = if t.certificate_loaded { "" } else { " [unusable: default certificate served]" };
            let _ = writeln!(out, "  tls {} <- {secret}{state} ({})", t.host, t.ingress);
        }
        if !self.diagnostics.is_empty() {
            let _ = writeln!(out, "{} diagnostics", self.diagnostics.len());
            for d in self.diagnostics {
                let _ = writeln!(out, "  {d}");
            }
        }
        out
    }
}
