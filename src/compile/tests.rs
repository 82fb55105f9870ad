//! Compile-level tests: YAML fixtures in, table and diagnostics out. One behaviour per test.

use super::*;
use crate::diagnostic::Severity;
use crate::source::manifests::load_str;

/// Our IngressClass (default), and Services `web`, `api`, `other` in `default`, each with one
/// ready endpoint on 10.0.0.{1,2,3}:8080 behind Service port 80 named `http`.
const CLUSTER: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: lintel
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: lintel.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {ports: [{name: http, port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: api}, spec: {ports: [{name: http, port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: other}, spec: {ports: [{name: http, port: 80}]}}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints: [{addresses: [10.0.0.1]}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: api-1, labels: {kubernetes.io/service-name: api}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints: [{addresses: [10.0.0.2]}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: other-1, labels: {kubernetes.io/service-name: other}}
  addressType: IPv4
  ports: [{name: http, port: 8080}]
  endpoints: [{addresses: [10.0.0.3]}]
"#;

fn compile_yaml(yaml: &str) -> Compiled {
    let loaded = load_str("fixture.yaml", &format!("{CLUSTER}\n---\n{yaml}"));
    assert!(loaded.diagnostics.is_empty(), "fixture does not parse: {:?}", loaded.diagnostics);
    compile(&loaded.snapshot, &CompileOptions::default())
}

/// An Ingress with one rule: `paths` is a list of `(path, pathType, service)`.
fn ingress(name: &str, host: Option<&str>, paths: &[(&str, &str, &str)]) -> String {
    let host = host.map(|h| format!("host: \"{h}\"")).unwrap_or_default();
    let paths: String = paths
        .iter()
        .map(|(p, t, svc)| {
            format!("      - {{path: \"{p}\", pathType: {t}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n")
        })
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  rules:\n  - {host}\n    http:\n      paths:\n{paths}"
    )
}

/// The service a request goes to, or `None` for Lintel's own 404.
fn service_for(compiled: &Compiled, host: &str, path: &str) -> Option<String> {
    let host = crate::table::normalize_host(host)?;
    let route = compiled.table.find(&host, path)?;
    Some(compiled.table.backend(route.backend)?.id.service.clone())
}

fn errors(compiled: &Compiled) -> Vec<&Diagnostic> {
    compiled.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect()
}

#[test]
fn exact_path_matches_only_the_whole_path_case_sensitively() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/foo", "Exact", "web")]));
    assert_eq!(service_for(&c, "foo.com", "/foo").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/foo/"), None);
    assert_eq!(service_for(&c, "foo.com", "/FOO"), None);
    assert_eq!(service_for(&c, "foo.com", "/foo/bar"), None);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

#[test]
fn prefix_matches_whole_path_elements() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/aaa", "Prefix", "web")]));
    for hit in ["/aaa", "/aaa/", "/aaa/bbb", "/aaa/bbb/"] {
        assert_eq!(service_for(&c, "foo.com", hit).as_deref(), Some("web"), "{hit}");
    }
    for miss in ["/aaaccc", "/aa", "/", "/AAA", "/bbb/aaa"] {
        assert_eq!(service_for(&c, "foo.com", miss), None, "{miss}");
    }
}

#[test]
fn prefix_trailing_slash_in_rule_is_ignored() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/foo/", "Prefix", "web")]));
    assert_eq!(service_for(&c, "foo.com", "/foo").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/foo/x").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/foox"), None);
}

#[test]
fn root_prefix_matches_everything() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/", "Prefix", "web")]));
    for path in ["/", "/x", "/x/y/", "//"] {
        assert_eq!(service_for(&c, "foo.com", path).as_deref(), Some("web"), "{path}");
    }
}

#[test]
fn longest_match_wins_and_exact_beats_prefix_on_a_tie() {
    let c = compile_yaml(&ingress(
        "a",
        Some("foo.com"),
        &[("/", "Prefix", "web"), ("/api", "Prefix", "api"), ("/api/v1", "Prefix", "other"), ("/api", "Exact", "web")],
    ));
    assert_eq!(service_for(&c, "foo.com", "/api").as_deref(), Some("web"), "Exact beats Prefix of the same length");
    assert_eq!(service_for(&c, "foo.com", "/api/").as_deref(), Some("api"));
    assert_eq!(service_for(&c, "foo.com", "/api/v1/dags").as_deref(), Some("other"));
    assert_eq!(service_for(&c, "foo.com", "/api/v10").as_deref(), Some("api"));
    assert_eq!(service_for(&c, "foo.com", "/apix").as_deref(), Some("web"));
}

#[test]
fn implementation_specific_is_prefix_and_alb_star_means_the_prefix_before_it() {
    let c = compile_yaml(&ingress(
        "a",
        Some("foo.com"),
        &[("/static", "ImplementationSpecific", "web"), ("/api/*", "ImplementationSpecific", "api")],
    ));
    assert_eq!(service_for(&c, "foo.com", "/static/app.js").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/staticx"), None);
    assert_eq!(service_for(&c, "foo.com", "/api").as_deref(), Some("api"));
    assert_eq!(service_for(&c, "foo.com", "/api/v1").as_deref(), Some("api"));
    assert_eq!(service_for(&c, "foo.com", "/apiary"), None);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

#[test]
fn prefix_with_a_star_is_literal_and_gets_a_warning() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/api/*", "Prefix", "api")]));
    assert_eq!(service_for(&c, "foo.com", "/api/*/x").as_deref(), Some("api"));
    assert_eq!(service_for(&c, "foo.com", "/api/v1"), None);
    let [d] = c.diagnostics.as_slice() else { panic!("{:?}", c.diagnostics) };
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("matches a literal `*` segment"), "{d}");
    assert_eq!(d.field, "spec.rules[0].http.paths[0].path");
}

#[test]
fn hosts_match_case_insensitively_without_port_or_trailing_dot() {
    let c = compile_yaml(&ingress("a", Some("Foo.COM"), &[("/", "Prefix", "web")]));
    for host in ["foo.com", "FOO.com", "foo.com:8080", "foo.com.", "FOO.COM.:80"] {
        assert_eq!(service_for(&c, host, "/").as_deref(), Some("web"), "{host}");
    }
    assert_eq!(service_for(&c, "bar.com", "/"), None);
}

#[test]
fn wildcard_matches_exactly_one_extra_label() {
    let c = compile_yaml(&ingress("a", Some("*.foo.com"), &[("/", "Prefix", "web")]));
    assert_eq!(service_for(&c, "bar.foo.com", "/").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "BAR.foo.com:443", "/").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/"), None);
    assert_eq!(service_for(&c, "baz.bar.foo.com", "/"), None);
    assert_eq!(service_for(&c, ".foo.com", "/"), None);
}

#[test]
fn exact_host_wins_over_wildcard() {
    let yaml = format!(
        "{}\n---\n{}",
        ingress("wild", Some("*.foo.com"), &[("/", "Prefix", "web")]),
        ingress("exact", Some("app.foo.com"), &[("/", "Prefix", "api")])
    );
    let c = compile_yaml(&yaml);
    assert_eq!(service_for(&c, "app.foo.com", "/").as_deref(), Some("api"));
    assert_eq!(service_for(&c, "other.foo.com", "/").as_deref(), Some("web"));
}

#[test]
fn hostless_rules_serve_hosts_that_no_host_rule_matched() {
    let yaml = format!(
        "{}\n---\n{}",
        ingress("any", None, &[("/", "Prefix", "web")]),
        ingress("named", Some("foo.com"), &[("/api", "Prefix", "api")])
    );
    let c = compile_yaml(&yaml);
    assert_eq!(service_for(&c, "anything.example", "/x").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "127.0.0.1:8080", "/").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/api").as_deref(), Some("api"));
    // A matched host whose paths do not match does not fall through to host-less rules.
    assert_eq!(service_for(&c, "foo.com", "/x"), None);
}

#[test]
fn one_host_merges_paths_across_ingresses() {
    let yaml = format!(
        "{}\n---\n{}",
        ingress("ui", Some("foo.com"), &[("/", "Prefix", "web")]),
        ingress("api", Some("foo.com"), &[("/api", "Prefix", "api")])
    );
    let c = compile_yaml(&yaml);
    assert_eq!(service_for(&c, "foo.com", "/").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/api/x").as_deref(), Some("api"));
    assert_eq!(c.served, ["default/api", "default/ui"]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

fn with_timestamp(yaml: String, ts: &str) -> String {
    yaml.replacen("metadata: {name: ", &format!("metadata: {{creationTimestamp: \"{ts}\", name: "), 1)
}

#[test]
fn conflicting_path_goes_to_the_older_ingress() {
    let older =
        with_timestamp(ingress("zzz-old", Some("foo.com"), &[("/app", "Prefix", "web")]), "2024-01-01T00:00:00Z");
    let newer =
        with_timestamp(ingress("aaa-new", Some("foo.com"), &[("/app", "Prefix", "api")]), "2025-01-01T00:00:00Z");
    let c = compile_yaml(&format!("{newer}\n---\n{older}"));
    assert_eq!(service_for(&c, "foo.com", "/app").as_deref(), Some("web"));
    let [d] = errors(&c).try_into().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(d.subject, Subject::object("Ingress", "default", "aaa-new"));
    assert_eq!(d.field, "spec.rules[0].http.paths[0].path");
    assert!(d.message.contains("default/zzz-old"), "{d}");
}

#[test]
fn conflict_between_equally_old_ingresses_goes_by_namespace_and_name() {
    let yaml = format!(
        "{}\n---\n{}",
        ingress("b", Some("foo.com"), &[("/app", "Exact", "api")]),
        ingress("a", Some("foo.com"), &[("/app", "Exact", "web")])
    );
    let c = compile_yaml(&yaml);
    assert_eq!(service_for(&c, "foo.com", "/app").as_deref(), Some("web"));
    assert_eq!(errors(&c).len(), 1);
}

#[test]
fn same_path_with_different_types_is_not_a_conflict() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/app", "Exact", "web"), ("/app", "Prefix", "api")]));
    assert_eq!(service_for(&c, "foo.com", "/app").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/app/x").as_deref(), Some("api"));
    assert!(c.diagnostics.is_empty());
}

fn default_backend_ingress(name: &str, ts: &str, svc: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, creationTimestamp: \"{ts}\"}}\nspec:\n  defaultBackend: {{service: {{name: {svc}, port: {{name: http}}}}}}\n"
    )
}

#[test]
fn default_backend_catches_unmatched_requests_and_the_oldest_wins() {
    let yaml = format!(
        "{}\n---\n{}\n---\n{}",
        default_backend_ingress("new", "2025-01-01T00:00:00Z", "api"),
        default_backend_ingress("old", "2020-01-01T00:00:00Z", "other"),
        ingress("site", Some("foo.com"), &[("/", "Exact", "web")])
    );
    let c = compile_yaml(&yaml);
    assert_eq!(service_for(&c, "foo.com", "/").as_deref(), Some("web"));
    assert_eq!(service_for(&c, "foo.com", "/nope").as_deref(), Some("other"));
    assert_eq!(service_for(&c, "elsewhere.com", "/").as_deref(), Some("other"));
    let d = c.diagnostics.iter().find(|d| d.field == "spec.defaultBackend").expect("a diagnostic for the loser");
    assert_eq!(d.subject, Subject::object("Ingress", "default", "new"));
}

#[test]
fn without_default_backend_unmatched_requests_find_nothing() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/", "Exact", "web")]));
    assert_eq!(service_for(&c, "foo.com", "/x"), None);
    assert_eq!(service_for(&c, "bar.com", "/"), None);
}

const PORTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: multi}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9090}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: multi-abc, labels: {kubernetes.io/service-name: multi}}
addressType: IPv4
ports: [{name: metrics, port: 9091}, {name: http, port: 8080}]
endpoints:
- {addresses: [10.1.0.1], conditions: {ready: true}}
- {addresses: [10.1.0.2], conditions: {ready: false}}
- {addresses: [10.1.0.3], conditions: {ready: false, serving: true, terminating: true}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: multi-def, labels: {kubernetes.io/service-name: multi}}
addressType: IPv6
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: ["fd00::1"]}
"#;

fn endpoints_for(c: &Compiled, host: &str, path: &str) -> Vec<String> {
    let route = c.table.find(host, path).expect("route");
    c.table.backend(route.backend).expect("backend").endpoints.iter().map(|e| e.to_string()).collect()
}

fn port_ingress(port: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: p}}\nspec:\n  rules:\n  - host: foo.com\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: multi, port: {port}}}}}}}\n"
    )
}

#[test]
fn service_port_by_number_resolves_through_the_slice_port_of_the_same_name() {
    let c = compile_yaml(&format!("{PORTS}\n---\n{}", port_ingress("{number: 80}")));
    assert_eq!(endpoints_for(&c, "foo.com", "/"), ["10.1.0.1:8080", "[fd00::1]:8080"]);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
}

#[test]
fn service_port_by_name_resolves_the_same_way() {
    let c = compile_yaml(&format!("{PORTS}\n---\n{}", port_ingress("{name: metrics}")));
    assert_eq!(endpoints_for(&c, "foo.com", "/"), ["10.1.0.1:9091"]);
}

#[test]
fn terminating_endpoints_are_used_only_when_nothing_is_ready() {
    let yaml = PORTS
        .replace("- {addresses: [10.1.0.1], conditions: {ready: true}}", "")
        .replace("- {addresses: [\"fd00::1\"]}", "[]");
    let yaml = yaml.replace("endpoints:\n[]", "endpoints: []");
    let c = compile_yaml(&format!("{yaml}\n---\n{}", port_ingress("{number: 80}")));
    assert_eq!(endpoints_for(&c, "foo.com", "/"), ["10.1.0.3:8080"]);
    let route = c.table.find("foo.com", "/").unwrap();
    assert!(c.table.backend(route.backend).unwrap().terminating_fallback);
}

#[test]
fn unknown_service_port_keeps_the_route_with_no_endpoints_and_a_diagnostic() {
    let c = compile_yaml(&format!("{PORTS}\n---\n{}", port_ingress("{number: 81}")));
    let route = c.table.find("foo.com", "/").expect("the route stays, answering 503");
    let backend = c.table.backend(route.backend).unwrap();
    assert!(backend.endpoints.is_empty());
    assert!(backend.unresolved.as_deref().unwrap().contains("has no port 81"));
    let [d] = errors(&c).try_into().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(d.field, "spec.rules[0].http.paths[0].backend.service");
}

#[test]
fn missing_service_does_not_fall_through_to_another_rule() {
    let c = compile_yaml(&ingress("a", Some("foo.com"), &[("/", "Prefix", "web"), ("/admin", "Prefix", "missing")]));
    assert_eq!(service_for(&c, "foo.com", "/admin/x").as_deref(), Some("missing"));
    let route = c.table.find("foo.com", "/admin").unwrap();
    assert!(c.table.backend(route.backend).unwrap().unresolved.as_deref().unwrap().contains("not found"));
    assert_eq!(service_for(&c, "foo.com", "/x").as_deref(), Some("web"));
    assert_eq!(errors(&c).len(), 1);
}

#[test]
fn external_name_service_resolves_by_dns_name() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: docs.example.net, ports: [{name: http, port: 8000}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: e}
spec:
  rules:
  - host: foo.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ext, port: {name: http}}}}
"#;
    let c = compile_yaml(yaml);
    assert_eq!(endpoints_for(&c, "foo.com", "/"), ["docs.example.net:8000"]);
}

#[test]
fn ingress_class_selection() {
    let with_class = |name: &str, class: &str| {
        ingress(name, Some(&format!("{name}.com")), &[("/", "Prefix", "web")]).replacen(
            "spec:\n",
            &format!("spec:\n  ingressClassName: {class}\n"),
            1,
        )
    };
    let legacy = |name: &str, class: &str| {
        ingress(name, Some(&format!("{name}.com")), &[("/", "Prefix", "web")]).replacen(
            &format!("metadata: {{name: {name}}}"),
            &format!("metadata: {{name: {name}, annotations: {{kubernetes.io/ingress.class: {class}}}}}"),
            1,
        )
    };
    let yaml = [
        with_class("ours", "lintel"),
        with_class("theirs", "nginx"),
        with_class("ghost", "nonexistent"),
        ingress("noclass", Some("noclass.com"), &[("/", "Prefix", "web")]),
        legacy("legacyours", "lintel"),
        legacy("legacytheirs", "nginx"),
    ]
    .join("\n---\n");
    let c = compile_yaml(&yaml);
    assert_eq!(c.served, ["default/legacyours", "default/noclass", "default/ours"]);
    let warnings: Vec<_> = c.diagnostics.iter().map(|d| (&d.subject, d.field.as_str())).collect();
    assert_eq!(warnings, [(&Subject::object("Ingress", "default", "ghost"), "spec.ingressClassName")]);
}

#[test]
fn without_a_default_class_classless_ingresses_are_not_ours() {
    let loaded = load_str(
        "f.yaml",
        &format!(
            "{}\n---\n{}",
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: lintel}\nspec: {controller: lintel.dev/ingress-controller}",
            ingress("noclass", Some("foo.com"), &[("/", "Prefix", "web")])
        ),
    );
    let c = compile(&loaded.snapshot, &CompileOptions::default());
    assert!(c.served.is_empty());
}

#[test]
fn invalid_host_drops_only_its_rule() {
    let bad = ingress("a", Some("bad_host!.com"), &[("/", "Prefix", "web")]);
    let good = ingress("b", Some("good.com"), &[("/", "Prefix", "web")]);
    let c = compile_yaml(&format!("{bad}\n---\n{good}"));
    assert_eq!(service_for(&c, "good.com", "/").as_deref(), Some("web"));
    let [d] = errors(&c).try_into().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(d.field, "spec.rules[0].host");
    assert_eq!(c.table.route_count(), 1);
}

#[test]
fn bad_paths_and_path_types_are_dropped_with_diagnostics() {
    let c = compile_yaml(&ingress(
        "a",
        Some("foo.com"),
        &[("relative", "Prefix", "web"), ("/ok", "Regex", "web"), ("/fine", "Exact", "web")],
    ));
    assert_eq!(c.table.route_count(), 1);
    let fields: Vec<_> = errors(&c).iter().map(|d| d.field.clone()).collect();
    assert_eq!(fields, ["spec.rules[0].http.paths[0].path", "spec.rules[0].http.paths[1].pathType"]);
}

#[test]
fn unsupported_annotations_under_known_prefixes_are_listed() {
    let yaml = ingress("a", Some("foo.com"), &[("/", "Prefix", "web")]).replacen(
        "metadata: {name: a}",
        "metadata: {name: a, annotations: {nginx.ingress.kubernetes.io/rewrite-target: /, example.com/other: x}}",
        1,
    );
    let c = compile_yaml(&yaml);
    let [d] = c.diagnostics.as_slice() else { panic!("{:?}", c.diagnostics) };
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("nginx.ingress.kubernetes.io/rewrite-target"));
    assert_eq!(c.table.route_count(), 1, "an unsupported annotation does not drop the Ingress");
}

#[test]
fn identical_snapshots_compile_to_equal_tables() {
    let yaml = ingress("a", Some("foo.com"), &[("/", "Prefix", "web"), ("/api", "Exact", "api")]);
    assert_eq!(compile_yaml(&yaml), compile_yaml(&yaml));
}
