//! `GET /explain?host=H&path=P&client=IP` and `lintel explain`: for one request, which
//! Ingress and rule matched and why the others lost, the backend and its endpoints, and the
//! policy that applies. The routing facts come from `RouteTable::explain`; this file only
//! shapes them for people (JSON and text).
//!
//! Placeholders, filled by the features that own them: the allowlist verdict for `client`,
//! effective timeouts and endpoint health. The `policy` section prints the table's `Policy`
//! as it is, so every field a feature adds shows up here at once.

use std::fmt::Write;
use std::net::IpAddr;

use serde::Serialize;

use crate::compile::Compiled;
use crate::table::{HostCandidate, PathKind, Route, normalize_host};
use crate::upstream::Group;

/// The request being explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    pub host: String,
    pub path: String,
    pub client: Option<IpAddr>,
}

#[derive(Debug, Serialize)]
pub struct ExplainReport {
    pub question: Question,
    /// The host as matched: port and trailing dot removed, lower case. `None`: not a host.
    pub normalized_host: Option<String>,
    pub hosts: Vec<HostCandidate>,
    pub paths: Vec<PathView>,
    pub answer: Answer,
    /// Diagnostics about the rules involved (e.g. a newer Ingress that lost the same path).
    pub conflicts: Vec<String>,
    pub backend: Option<BackendView>,
    pub policy: Option<PolicyView>,
}

#[derive(Debug, Serialize)]
pub struct PathView {
    pub host_rule: String,
    pub path: String,
    pub path_type: PathKind,
    pub ingress: String,
    pub backend: String,
    pub chosen: bool,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Answer {
    /// `route`, `default_backend`, `not_found` or `bad_host`.
    pub kind: &'static str,
    pub ingress: Option<String>,
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct BackendView {
    pub name: String,
    pub endpoints: Vec<EndpointView>,
    /// True when only serving+terminating endpoints were left.
    pub terminating_fallback: bool,
    pub unresolved: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub address: String,
    /// Placeholder until health checks land: every listed endpoint takes traffic.
    pub health: &'static str,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    /// The route's `Policy` as the table holds it (Debug form).
    pub parsed: String,
    /// Placeholder: the allowlist verdict for `client`, once allowlists exist.
    pub allowlist: String,
    /// Placeholder: per-route timeouts, once annotations set them (global ones apply).
    pub timeouts: &'static str,
}

const HEALTH_PLACEHOLDER: &str = "unknown (no health checks in this build; every endpoint takes traffic)";

/// Explains `question` against a compiled table; `groups` (the live upstream groups, indexed
/// like the table's backends) add the endpoints as bound, when serving.
pub fn explain(compiled: &Compiled, groups: Option<&[std::sync::Arc<Group>]>, question: Question) -> ExplainReport {
    let table = &compiled.table;
    let Some(host) = normalize_host(&question.host).map(|h| h.into_owned()) else {
        let answer = Answer { kind: "bad_host", ingress: None, summary: "not a valid host: Lintel answers 400".into() };
        return ExplainReport {
            question,
            normalized_host: None,
            hosts: Vec::new(),
            paths: Vec::new(),
            answer,
            conflicts: Vec::new(),
            backend: None,
            policy: None,
        };
    };
    let found = table.explain(&host, &question.path);
    let backend_name = |r: &Route| table.backend(r.backend).map(|b| b.id.to_string()).unwrap_or_default();
    let paths: Vec<PathView> = found
        .paths
        .iter()
        .map(|c| PathView {
            host_rule: c.host_rule.clone(),
            path: c.route.rule.path().to_owned(),
            path_type: c.route.rule.kind(),
            ingress: c.route.ingress.to_string(),
            backend: backend_name(c.route),
            chosen: c.chosen,
            why: c.why.clone(),
        })
        .collect();
    let answer = match found.route {
        Some(route) if found.default_backend => Answer {
            kind: "default_backend",
            ingress: Some(route.ingress.to_string()),
            summary: format!(
                "no path rule of the chosen host matches; the default backend of Ingress {} (the oldest with one) answers",
                route.ingress
            ),
        },
        Some(route) => Answer {
            kind: "route",
            ingress: Some(route.ingress.to_string()),
            summary: format!(
                "{:?} {} of Ingress {} -> {}",
                route.rule.kind(),
                route.rule.path(),
                route.ingress,
                backend_name(route)
            ),
        },
        None => Answer {
            kind: "not_found",
            ingress: None,
            summary: "no rule matches and no Ingress has a defaultBackend: Lintel answers 404".into(),
        },
    };
    let conflicts = conflicts(compiled, &paths, found.default_backend);
    let backend = found.route.and_then(|route| {
        let b = table.backend(route.backend)?;
        let addresses: Vec<String> = match groups.and_then(|g| g.get(route.backend)) {
            Some(group) => group.endpoints().iter().map(|e| e.authority.to_string()).collect(),
            None => b.endpoints.iter().map(|e| e.to_string()).collect(),
        };
        Some(BackendView {
            name: b.id.to_string(),
            endpoints: addresses
                .into_iter()
                .map(|address| EndpointView { address, health: HEALTH_PLACEHOLDER })
                .collect(),
            terminating_fallback: b.terminating_fallback,
            unresolved: b.unresolved.clone(),
        })
    });
    let policy = found.route.map(|route| PolicyView {
        parsed: format!("{:?}", route.policy),
        allowlist: match question.client {
            Some(ip) => format!("client {ip}: not evaluated (no allowlists in this build)"),
            None => "no client given".to_owned(),
        },
        timeouts: "the global timeouts apply (no per-Ingress timeouts in this build)",
    });
    ExplainReport {
        question,
        normalized_host: Some(host),
        hosts: found.hosts,
        paths,
        answer,
        conflicts,
        backend,
        policy,
    }
}

/// Diagnostics about rules that lost to an older Ingress on the same host and path, or about
/// a default backend that lost.
fn conflicts(compiled: &Compiled, paths: &[PathView], default_backend: bool) -> Vec<String> {
    let lost_path = |m: &str| {
        m.contains("older Ingress")
            && paths.iter().any(|p| {
                let host = if p.host_rule == "*" { "any host" } else { p.host_rule.as_str() };
                m.contains(&format!("path {} on {host} ", p.path))
            })
    };
    compiled
        .diagnostics
        .iter()
        .filter(|d| {
            lost_path(&d.message)
                || (default_backend && d.message.contains("the default backend comes from the older Ingress"))
        })
        .map(ToString::to_string)
        .collect()
}

impl ExplainReport {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let q = &self.question;
        let _ = writeln!(out, "request: host {:?} path {:?}", q.host, q.path);
        let _ = writeln!(out, "answer: {}", self.answer.summary);
        if !self.hosts.is_empty() {
            let _ = writeln!(out, "hosts:");
            for h in &self.hosts {
                let mark = if h.chosen { "*" } else { " " };
                let _ = writeln!(out, "  {mark} {} ({:?}): {}", h.rule, h.kind, h.why);
            }
        }
        if !self.paths.is_empty() {
            let _ = writeln!(out, "paths that match:");
            for p in &self.paths {
                let mark = if p.chosen { "*" } else { " " };
                let _ = writeln!(
                    out,
                    "  {mark} {} {:?} {} ({} -> {}): {}",
                    p.host_rule, p.path_type, p.path, p.ingress, p.backend, p.why
                );
            }
        }
        for c in &self.conflicts {
            let _ = writeln!(out, "conflict: {c}");
        }
        if let Some(b) = &self.backend {
            let _ = writeln!(out, "backend: {}", b.name);
            if let Some(why) = &b.unresolved {
                let _ = writeln!(out, "  unresolved: {why}");
            }
            if b.terminating_fallback {
                let _ = writeln!(out, "  only terminating endpoints are left; they take traffic");
            }
            if b.endpoints.is_empty() {
                let _ = writeln!(out, "  no endpoints: Lintel answers 503");
            }
            for e in &b.endpoints {
                let _ = writeln!(out, "  endpoint {} health: {}", e.address, e.health);
            }
        }
        if let Some(p) = &self.policy {
            let _ = writeln!(out, "policy: {}", p.parsed);
            let _ = writeln!(out, "  allowlist: {}", p.allowlist);
            let _ = writeln!(out, "  timeouts: {}", p.timeouts);
        }
        out
    }
}

#[cfg(test)]
mod tests;
