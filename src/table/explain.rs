//! Why a request goes where it goes: every host rule and path rule that could have taken it,
//! which one did, and why each other one lost. Pure, like the rest of the table; the answer
//! itself always comes from [`RouteTable::find`], so the explanation cannot disagree with it.

use super::{PathKind, Route, RouteTable, VirtualHost};

/// How a host rule relates to the request's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostMatch {
    Exact,
    Wildcard,
    /// Rules without a host.
    AnyHost,
}

/// A host rule that covers the request's host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostCandidate {
    /// As an Ingress writes it: `a.example.com`, `*.example.com`, or `*` for rules without host.
    pub rule: String,
    pub kind: HostMatch,
    pub chosen: bool,
    pub why: &'static str,
}

/// A path rule that matches the request's path, under one of the host candidates.
#[derive(Debug, Clone)]
pub struct PathCandidate<'a> {
    pub host_rule: String,
    pub route: &'a Route,
    pub chosen: bool,
    pub why: String,
}

/// Everything [`RouteTable::explain`] found.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    pub hosts: Vec<HostCandidate>,
    /// Best first within the chosen host; then those of the hosts that lost.
    pub paths: Vec<PathCandidate<'a>>,
    /// What [`RouteTable::find`] answers.
    pub route: Option<&'a Route>,
    /// True when that answer is the default backend.
    pub default_backend: bool,
}

impl RouteTable {
    /// Explains the routing of a normalised host (see `normalize_host`) and a path.
    pub fn explain(&self, host: &str, path: &str) -> Explanation<'_> {
        let mut vhosts: Vec<(String, HostMatch, &VirtualHost)> = Vec::new();
        if let Some(v) = self.exact_hosts.get(host) {
            vhosts.push((host.to_owned(), HostMatch::Exact, v));
        }
        if let Some((first, rest)) = host.split_once('.')
            && !first.is_empty()
            && let Some(v) = self.wildcard_hosts.get(rest)
        {
            vhosts.push((format!("*.{rest}"), HostMatch::Wildcard, v));
        }
        if let Some(v) = &self.any_host {
            vhosts.push(("*".to_owned(), HostMatch::AnyHost, v));
        }
        let hosts: Vec<HostCandidate> = vhosts
            .iter()
            .enumerate()
            .map(|(i, (rule, kind, _))| HostCandidate {
                rule: rule.clone(),
                kind: *kind,
                chosen: i == 0,
                why: host_reason(*kind, i == 0),
            })
            .collect();
        let mut paths = Vec::new();
        for (i, (rule, _, vhost)) in vhosts.iter().enumerate() {
            let mut matching: Vec<&Route> =
                vhost.exact.values().chain(vhost.prefix.values()).filter(|r| r.rule.matches(path)).collect();
            matching.sort_by_key(|r| precedence(r));
            let best = matching.first().copied();
            for route in matching {
                let chosen = i == 0 && best.is_some_and(|b| std::ptr::eq(b, route));
                let why = if i > 0 {
                    "its host rule lost (see hosts)".to_owned()
                } else if chosen {
                    match route.rule.kind() {
                        PathKind::Exact => "Exact match".to_owned(),
                        PathKind::Prefix => "longest matching Prefix".to_owned(),
                    }
                } else {
                    best.map(|b| path_reason(b, route)).unwrap_or_default()
                };
                paths.push(PathCandidate { host_rule: rule.clone(), route, chosen, why });
            }
        }
        let route = self.find(host, path);
        let default_backend = match (route, &self.default_backend) {
            (Some(r), Some(d)) => std::ptr::eq(r, d),
            _ => false,
        };
        Explanation { hosts, paths, route, default_backend }
    }
}

/// Sort key: longer match key first, then Exact before Prefix.
fn precedence(route: &Route) -> (std::cmp::Reverse<usize>, u8) {
    let kind = match route.rule.kind() {
        PathKind::Exact => 0,
        PathKind::Prefix => 1,
    };
    (std::cmp::Reverse(route.rule.key().len()), kind)
}

fn host_reason(kind: HostMatch, chosen: bool) -> &'static str {
    match (kind, chosen) {
        (HostMatch::Exact, _) => "exact host match",
        (HostMatch::Wildcard, true) => "wildcard covering exactly one more label; no exact host rule",
        (HostMatch::Wildcard, false) => "an exact host rule beats a wildcard",
        (HostMatch::AnyHost, true) => "no host rule matches, so the rules without a host apply",
        (HostMatch::AnyHost, false) => "rules without a host apply only when no host rule matches",
    }
}

fn path_reason(best: &Route, loser: &Route) -> String {
    let shown = |r: &Route| format!("{:?} {}", r.rule.kind(), r.rule.path());
    if best.rule.key().len() == loser.rule.key().len() {
        format!("Exact beats Prefix at equal length ({} wins)", shown(best))
    } else {
        format!("shorter than {}: the longest match wins", shown(best))
    }
}
