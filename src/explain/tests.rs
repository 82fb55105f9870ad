//! Explain: each precedence rule is named in the answer, and the answer is always the route
//! the table itself picks.

use super::*;
use crate::compile::{CompileOptions, compile};
use crate::source::manifests::load_str;
use crate::table::HostMatch;

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: lintel}\nspec: {controller: lintel.dev/ingress-controller}\n";

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [\"10.0.0.1\"]}}]\n"
    )
}

/// An Ingress created at `ts` with rules `(host, path, pathType, service)`; host "" means none.
fn ingress(name: &str, ts: &str, rules: &[(&str, &str, &str, &str)]) -> String {
    let rules: String = rules
        .iter()
        .map(|(host, path, kind, svc)| {
            let host = if host.is_empty() { String::new() } else { format!("host: \"{host}\", ") };
            format!("  - {{{host}http: {{paths: [{{path: \"{path}\", pathType: {kind}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}}}\n")
        })
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, creationTimestamp: \"{ts}\"}}\nspec:\n  ingressClassName: lintel\n  rules:\n{rules}"
    )
}

fn compiled(docs: &[String]) -> Compiled {
    let mut all = vec![CLASS.to_owned()];
    all.extend(["web", "api", "other"].map(service));
    all.extend_from_slice(docs);
    let loaded = load_str("test.yaml", &all.join("---\n"));
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    compile(&loaded.snapshot, &CompileOptions::default())
}

fn ask(compiled: &Compiled, host: &str, path: &str) -> ExplainReport {
    let report = explain(compiled, None, Question { host: host.into(), path: path.into(), client: None });
    let table_says = normalize_host(host).and_then(|h| compiled.table.find(&h, path)).map(|r| r.ingress.to_string());
    assert_eq!(report.answer.ingress, table_says, "explain agrees with the table");
    report
}

fn chosen(report: &ExplainReport) -> &PathView {
    report.paths.iter().find(|p| p.chosen).unwrap()
}

#[test]
fn longest_prefix_wins_and_the_shorter_one_says_why() {
    let c = compiled(&[ingress(
        "a",
        "2024-01-01T00:00:00Z",
        &[("a.example.com", "/", "Prefix", "web"), ("a.example.com", "/api", "Prefix", "api")],
    )]);
    let r = ask(&c, "a.example.com:8080", "/api/v1");
    assert_eq!(r.answer.kind, "route");
    assert_eq!(chosen(&r).path, "/api");
    assert_eq!(chosen(&r).backend, "default/api:80");
    let lost = r.paths.iter().find(|p| p.path == "/").unwrap();
    assert!(lost.why.contains("longest match wins"), "{}", lost.why);
    assert_eq!(r.backend.as_ref().unwrap().endpoints[0].address, "10.0.0.1:8080");
}

#[test]
fn exact_beats_prefix_of_the_same_length() {
    let c = compiled(&[ingress(
        "a",
        "2024-01-01T00:00:00Z",
        &[("a.example.com", "/health", "Prefix", "web"), ("a.example.com", "/health", "Exact", "api")],
    )]);
    let r = ask(&c, "a.example.com", "/health");
    assert_eq!(chosen(&r).path_type, PathKind::Exact);
    let lost = r.paths.iter().find(|p| !p.chosen).unwrap();
    assert!(lost.why.contains("Exact beats Prefix"), "{}", lost.why);
}

#[test]
fn exact_host_beats_wildcard_beats_hostless() {
    let c = compiled(&[ingress(
        "a",
        "2024-01-01T00:00:00Z",
        &[
            ("a.example.com", "/", "Prefix", "web"),
            ("*.example.com", "/", "Prefix", "api"),
            ("", "/", "Prefix", "other"),
        ],
    )]);
    let r = ask(&c, "a.example.com", "/x");
    let kinds: Vec<_> = r.hosts.iter().map(|h| (h.kind, h.chosen)).collect();
    assert_eq!(kinds, [(HostMatch::Exact, true), (HostMatch::Wildcard, false), (HostMatch::AnyHost, false)]);
    assert!(r.hosts[1].why.contains("exact host rule beats a wildcard"));
    assert!(r.paths.iter().filter(|p| !p.chosen).all(|p| p.why.contains("host rule lost")));
    let r = ask(&c, "b.example.com", "/x");
    assert_eq!(r.hosts[0].kind, HostMatch::Wildcard);
    assert_eq!(chosen(&r).backend, "default/api:80");
    let r = ask(&c, "deep.b.example.com", "/x");
    assert_eq!(r.hosts[0].kind, HostMatch::AnyHost, "a wildcard covers exactly one label");
    assert_eq!(chosen(&r).backend, "default/other:80");
}

#[test]
fn the_older_ingress_wins_a_shared_path_and_the_loser_is_listed() {
    let c = compiled(&[
        ingress("new", "2024-06-01T00:00:00Z", &[("a.example.com", "/app", "Prefix", "api")]),
        ingress("old", "2024-01-01T00:00:00Z", &[("a.example.com", "/app", "Prefix", "web")]),
    ]);
    let r = ask(&c, "a.example.com", "/app");
    assert_eq!(r.answer.ingress.as_deref(), Some("default/old"));
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    assert!(r.conflicts[0].contains("Ingress default/new") && r.conflicts[0].contains("older Ingress default/old"));
}

#[test]
fn unmatched_requests_say_404_or_bad_host() {
    let c = compiled(&[ingress("a", "2024-01-01T00:00:00Z", &[("a.example.com", "/api", "Prefix", "api")])]);
    let r = ask(&c, "a.example.com", "/other");
    assert_eq!(r.answer.kind, "not_found");
    assert!(r.backend.is_none() && r.policy.is_none());
    let r = explain(&c, None, Question { host: "bad host".into(), path: "/".into(), client: None });
    assert_eq!(r.answer.kind, "bad_host");
}

#[test]
fn policy_section_prints_the_tables_policy_and_the_client() {
    let c = compiled(&[ingress("a", "2024-01-01T00:00:00Z", &[("a.example.com", "/", "Prefix", "web")])]);
    let q = Question { host: "a.example.com".into(), path: "/".into(), client: Some("192.0.2.1".parse().unwrap()) };
    let r = explain(&c, None, q);
    let policy = r.policy.as_ref().unwrap();
    assert!(policy.parsed.starts_with("Policy"), "{}", policy.parsed);
    assert!(policy.allowlist.contains("192.0.2.1"));
    let text = r.to_text();
    assert!(text.contains("answer: Prefix / of Ingress default/a -> default/web:80"), "{text}");
    assert!(text.contains("policy: Policy"), "{text}");
}
