//! `bind`: endpoints reused by address across tables, and the settings of an endpoint shared
//! by Ingresses that disagree.

use std::time::Duration;

use super::*;
use crate::compile::{CompileOptions, compile};
use crate::source::manifests::load_str;

/// Service `app` with endpoints 10.0.0.1:8080 and 10.0.0.2:8080, and Ingresses on it, each
/// with its annotations.
fn table(ingresses: &[(&str, &[(&str, &str)])]) -> RouteTable {
    let mut yaml = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: lintel, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}\nspec: {controller: lintel.dev/ingress-controller}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec: {ports: [{name: http, port: 80}]}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: app-1, labels: {kubernetes.io/service-name: app}}\naddressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]\n",
    );
    for (name, annotations) in ingresses {
        let annotations: String = annotations.iter().map(|(k, v)| format!("{k}: \"{v}\", ")).collect();
        yaml.push_str(&format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\nspec: {{rules: [{{host: {name}.example.com, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: app, port: {{number: 80}}}}}}}}]}}}}]}}\n"
        ));
    }
    let loaded = load_str("t.yaml", &yaml);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let compiled = compile(&loaded.snapshot, &CompileOptions::default());
    assert!(compiled.diagnostics.is_empty(), "{:?}", compiled.diagnostics);
    compiled.table
}

#[test]
fn endpoints_survive_a_rebind_by_address() {
    let upstreams = Upstreams::new(UpstreamSettings::default());
    let first = upstreams.bind(&table(&[("a", &[])]));
    let second = upstreams.bind(&table(&[("a", &[]), ("b", &[])]));
    assert_eq!(first[0].endpoints().len(), 2);
    for (x, y) in first[0].endpoints().iter().zip(second[0].endpoints()) {
        assert!(Arc::ptr_eq(x, y), "{} was rebuilt", x.authority);
    }
    drop((first, second));
    let third = upstreams.bind(&table(&[("a", &[])]));
    assert_eq!(Arc::strong_count(&third[0].endpoints()[0]), 1, "only the new group holds it");
}

#[test]
fn a_shared_endpoint_gets_the_longest_connect_and_the_shortest_keepalive() {
    let upstreams = Upstreams::new(UpstreamSettings::default());
    let groups = upstreams.bind(&table(&[
        ("a", &[("lintel.dev/connect-timeout", "20s"), ("lintel.dev/upstream-keepalive-timeout", "30s")]),
        ("b", &[("lintel.dev/upstream-keepalive-timeout", "2s")]),
    ]));
    let asked = groups[0].endpoints()[0].conn_settings();
    assert_eq!(asked.connect_timeout, Duration::from_secs(20));
    assert_eq!(asked.keepalive_idle, Duration::from_secs(2));

    let groups = upstreams.bind(&table(&[("a", &[])]));
    let asked = groups[0].endpoints()[0].conn_settings();
    let defaults = UpstreamSettings::default();
    assert_eq!(asked.connect_timeout, defaults.connect_timeout, "back to the default when the annotation goes");
    assert_eq!(asked.keepalive_idle, defaults.keepalive_idle);
}
