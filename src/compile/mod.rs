//! `compile`: the pure function from a [`Snapshot`] to a [`RouteTable`] and diagnostics.
//! Every rule that decides routing lives here. No I/O, no clock, no async.
//!
//! A bad object costs only itself: each rejected host, path or backend becomes a
//! [`Diagnostic`] naming the object and field, and the rest of the table is built as usual.

mod annotations;
mod backend;
mod class;
mod ssl;
#[cfg(test)]
mod tests;
mod tls;

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress};

use crate::diagnostic::{Diagnostic, Subject};
use crate::source::Snapshot;
use crate::table::{HostKey, PathKind, PathRule, Route, RouteTable, TableBuilder, validate_rule_host};
use crate::tls::cache::KeyCache;

pub use tls::SecretRef;

/// Which Ingresses are ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// Our IngressClass name, for the legacy `kubernetes.io/ingress.class` annotation.
    pub ingress_class: String,
    /// `spec.controller` of the IngressClasses we serve.
    pub controller_name: String,
    /// The allowlist of Ingresses that set none (`None`: open).
    pub default_allow: Option<crate::table::allow::CidrList>,
    /// The Secret served to TLS clients that match no host (`--default-certificate`).
    pub default_certificate: Option<SecretRef>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            ingress_class: "lintel".to_owned(),
            controller_name: "lintel.dev/ingress-controller".to_owned(),
            default_allow: None,
            default_certificate: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compiled {
    pub table: RouteTable,
    pub diagnostics: Vec<Diagnostic>,
    /// `namespace/name` of every Ingress this table serves, sorted.
    pub served: Vec<String>,
}

pub fn compile(snapshot: &Snapshot, options: &CompileOptions) -> Compiled {
    compile_cached(snapshot, options, &mut KeyCache::default())
}

/// [`compile`], reusing certificates parsed by earlier rebuilds (the result is the same).
pub fn compile_cached(snapshot: &Snapshot, options: &CompileOptions, keys: &mut KeyCache) -> Compiled {
    let mut diagnostics = Vec::new();
    let ingresses = class::select(snapshot, options, &mut diagnostics);
    let mut resolver = backend::Resolver::new(snapshot);
    let mut builder = TableBuilder::default();
    let mut served = Vec::with_capacity(ingresses.len());
    let mut certs = tls::Certs::new(snapshot, keys);
    for ingress in ingresses {
        let name = ingress_name(ingress);
        add_ingress(ingress, &name, options, &mut resolver, &mut builder, &mut diagnostics);
        certs.add_ingress(ingress, &name, builder.tls_mut(), &mut diagnostics);
        served.push(name.to_string());
    }
    let default_cert = certs.default_cert(options.default_certificate.as_ref(), &mut diagnostics);
    builder.tls_mut().set_default(default_cert);
    keys.sweep();
    served.sort();
    diagnostics.sort();
    Compiled { table: builder.build(), diagnostics, served }
}

fn ingress_name(ingress: &Ingress) -> Arc<str> {
    let meta = &ingress.metadata;
    format!("{}/{}", meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default()).into()
}

/// Adds one Ingress's rules. Ingresses arrive oldest first, so whatever is already in the
/// builder wins a conflict and the newcomer gets the diagnostic.
fn add_ingress(
    ingress: &Ingress,
    name: &Arc<str>,
    options: &CompileOptions,
    resolver: &mut backend::Resolver<'_>,
    builder: &mut TableBuilder,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let meta = &ingress.metadata;
    let namespace = meta.namespace.as_deref().unwrap_or("default");
    let subject = Subject::object("Ingress", namespace, meta.name.as_deref().unwrap_or_default());
    let policy = Arc::new(annotations::policy(meta.annotations.as_ref(), options, &subject, diagnostics));
    let Some(spec) = &ingress.spec else {
        diagnostics.push(Diagnostic::warning(subject, "spec", "Ingress has no spec; nothing to serve"));
        return;
    };
    let mut resolve =
        |backend, field: &str, diagnostics: &mut Vec<Diagnostic>, builder: &mut TableBuilder| match resolver
            .resolve(namespace, backend, builder)
        {
            Ok(resolved) => {
                if let Some(problem) = resolved.problem {
                    diagnostics.push(Diagnostic::error(subject.clone(), format!("{field}.service"), problem));
                }
                Some(resolved.idx)
            }
            Err(problem) => {
                diagnostics.push(Diagnostic::error(subject.clone(), field, format!("{problem}; ignored")));
                None
            }
        };

    if let Some(default) = &spec.default_backend
        && let Some(idx) = resolve(default, "spec.defaultBackend", diagnostics, builder)
    {
        let route = Route {
            backend: idx,
            ingress: name.clone(),
            rule: PathRule::new("/", PathKind::Prefix),
            policy: policy.clone(),
        };
        if let Err(winner) = builder.set_default_backend(route) {
            let msg = format!("ignored: the default backend comes from the older Ingress {}", winner.ingress);
            diagnostics.push(Diagnostic::warning(subject.clone(), "spec.defaultBackend", msg));
        }
    }

    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let host = match rule.host.as_deref() {
            None | Some("") => HostKey::Any,
            Some(h) => match validate_rule_host(h) {
                Ok(key) => key,
                Err(err) => {
                    diagnostics.push(Diagnostic::error(
                        subject.clone(),
                        format!("spec.rules[{i}].host"),
                        format!("{err}; rule ignored"),
                    ));
                    continue;
                }
            },
        };
        let Some(http) = &rule.http else { continue };
        for (j, path) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let Some(rule) = path_rule(path, &subject, &field, diagnostics) else { continue };
            let Some(idx) = resolve(&path.backend, &format!("{field}.backend"), diagnostics, builder) else { continue };
            let route = Route { backend: idx, ingress: name.clone(), rule, policy: policy.clone() };
            let shown = (route.rule.path().to_owned(), route.rule.kind());
            if let Err(winner) = builder.add_route(&host, route) {
                let msg = format!(
                    "{:?} path {} on {} is already served by the older Ingress {}; ignored",
                    shown.1,
                    shown.0,
                    host_display(&host),
                    winner.ingress
                );
                diagnostics.push(Diagnostic::error(subject.clone(), format!("{field}.path"), msg));
            }
        }
    }
}

fn host_display(host: &HostKey) -> String {
    match host {
        HostKey::Exact(h) => h.clone(),
        HostKey::Wildcard(h) => format!("*.{h}"),
        HostKey::Any => "any host".to_owned(),
    }
}

/// Parses a path and its type. `ImplementationSpecific` is Prefix, with ALB's `/foo/*` read as
/// the prefix `/foo`.
fn path_rule(
    path: &HTTPIngressPath,
    subject: &Subject,
    field: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<PathRule> {
    let written = path.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
    if !written.starts_with('/') {
        diagnostics.push(Diagnostic::error(
            subject.clone(),
            format!("{field}.path"),
            format!("path {written:?} must start with `/`; ignored"),
        ));
        return None;
    }
    let literal_star = || {
        Diagnostic::warning(
            subject.clone(),
            format!("{field}.path"),
            format!("path {written:?} matches a literal `*` segment; Prefix paths have no wildcards"),
        )
    };
    match path.path_type.as_str() {
        "Exact" => Some(PathRule::new(written, PathKind::Exact)),
        "Prefix" => {
            if written.contains('*') {
                diagnostics.push(literal_star());
            }
            Some(PathRule::new(written, PathKind::Prefix))
        }
        "ImplementationSpecific" | "" => {
            if let Some(prefix) = written.strip_suffix("/*") {
                let prefix = if prefix.is_empty() { "/" } else { prefix };
                if prefix.contains('*') {
                    diagnostics.push(literal_star());
                }
                return Some(PathRule::prefix_written_as(prefix, written));
            }
            if written.contains('*') {
                diagnostics.push(literal_star());
            }
            Some(PathRule::new(written, PathKind::Prefix))
        }
        other => {
            let msg = format!("unknown pathType {other:?} (expected Exact, Prefix or ImplementationSpecific); ignored");
            diagnostics.push(Diagnostic::error(subject.clone(), format!("{field}.pathType"), msg));
            None
        }
    }
}
