//! Metrics: every family is listed with HELP before it has series, per-route handles record
//! under the route owner's labels, and owners that leave the table leave the output.

use std::time::Duration;

use http::Method;

use super::*;
use crate::compile::{CompileOptions, compile};
use crate::fixtures;

fn outcome(status: u16) -> Outcome {
    Outcome {
        method: MethodClass::of(&Method::GET),
        status,
        elapsed: Duration::from_millis(30),
        bytes_in: 0,
        bytes_out: 2000,
    }
}

#[test]
fn every_family_has_help_and_type_before_any_series() {
    let text = Metrics::new().encode().unwrap();
    for family in [
        "lintel_requests",
        "lintel_request_duration_seconds",
        "lintel_tls_handshake_errors",
        "lintel_allowlist_rejections",
        "lintel_upstream_retries",
        "lintel_source_watch_restarts",
        "lintel_leader",
        "lintel_tls_certificate_expiry_timestamp_seconds",
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family} missing:\n{text}");
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} missing:\n{text}");
    }
    assert!(text.contains("# UNIT lintel_request_duration_seconds seconds"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn route_handles_record_under_the_route_owner() {
    let metrics = Metrics::new();
    let table = compile(&fixtures::snapshot(2, 3, 2), &CompileOptions::default()).table;
    let index = metrics.bind_routes(&table);
    let route = table.find(&fixtures::host(1), "/api/x").unwrap();
    let handles = index.find(route).unwrap();
    handles.record(&outcome(200));
    handles.record(&outcome(204));
    handles.record(&outcome(503));
    let text = metrics.encode().unwrap();
    let ns = handles.namespace();
    let labels = format!(
        "namespace=\"{ns}\",ingress=\"{}\",service=\"{}\",method=\"GET\",status=\"2xx\"",
        handles.ingress(),
        handles.service()
    );
    assert!(text.contains(&format!("lintel_requests_total{{{labels}}} 2")), "{text}");
    assert!(text.contains("status=\"5xx\"} 1"), "{text}");
    assert!(!text.contains("method=\"POST\""), "unused slots export nothing");
    assert!(text.contains("lintel_response_size_bytes_sum{"), "{text}");
}

#[test]
fn owners_that_leave_the_table_leave_the_output() {
    let metrics = Metrics::new();
    let big = compile(&fixtures::snapshot(3, 1, 3), &CompileOptions::default()).table;
    let index = metrics.bind_routes(&big);
    index.find(big.find(&fixtures::host(2), "/").unwrap()).unwrap().record(&outcome(200));
    assert_eq!(metrics.encode().unwrap().matches("lintel_requests_total{").count(), 1);
    let small = compile(&fixtures::snapshot(2, 1, 3), &CompileOptions::default()).table;
    let _ = metrics.bind_routes(&small);
    assert_eq!(metrics.encode().unwrap().matches("lintel_requests_total{").count(), 0);
}

#[test]
fn handles_survive_a_rebind_of_the_same_owner() {
    let metrics = Metrics::new();
    let table = compile(&fixtures::snapshot(1, 2, 1), &CompileOptions::default()).table;
    let first = metrics.bind_routes(&table);
    let second = metrics.bind_routes(&table);
    let route = table.find(&fixtures::host(0), "/").unwrap();
    assert!(Arc::ptr_eq(first.find(route).unwrap(), second.find(route).unwrap()));
}

#[test]
fn diagnostic_reasons_are_bounded_words() {
    let subject = Subject::object("Ingress", "ns", "a");
    let reason = |field: &str, msg: &str| diagnostic_reason(&Diagnostic::error(subject.clone(), field, msg));
    assert_eq!(reason("spec.rules[0].host", "bad"), "host");
    assert_eq!(reason("spec.rules[0].http.paths[1].path", "already served by the older Ingress x"), "conflict");
    assert_eq!(reason("metadata.annotations[\"nginx.ingress.kubernetes.io/anything\"]", "x"), "annotation");
    assert_eq!(reason("spec.rules[0].http.paths[0].backend.service", "x"), "backend");
}

/// Series of backend Services and Ingresses (connect errors, retries, timeouts, the upstream
/// pool, allowlist rejections) leave with their owner; a backend's once no endpoint counts
/// its connections under it.
#[test]
fn backend_and_ingress_series_leave_with_their_owner() {
    let metrics = Arc::new(Metrics::new());
    let big = compile(&fixtures::snapshot(3, 1, 3), &CompileOptions::default()).table;
    let small = compile(&fixtures::snapshot(2, 1, 2), &CompileOptions::default()).table;
    let gone = big.find(&fixtures::host(2), "/").unwrap();
    let stays = big.find(&fixtures::host(0), "/").unwrap();
    let (gone_ns, gone_ingress) = gone.ingress.split_once('/').unwrap();
    let gone_service = &big.backend(gone.backend).unwrap().id.service;
    let stays_service = &big.backend(stays.backend).unwrap().id.service;
    assert_ne!(gone_service, stays_service);
    assert!(small.backends().iter().all(|b| b.id.service != *gone_service));

    metrics.set_live_owners(&big);
    for service in [gone_service, stays_service] {
        metrics.upstream_connect_error("default", service);
        metrics.upstream_retry("default", service, "connect");
        metrics.upstream_timeout("default", service, "response_header");
    }
    metrics.allowlist_rejected(gone_ns, gone_ingress);
    let held = metrics.pool("default", gone_service);
    drop(held.opened());
    let series = |text: &str, service: &str| {
        text.lines().filter(|l| !l.starts_with('#') && l.contains(&format!("service=\"{service}\""))).count()
    };
    let text = metrics.encode().unwrap();
    assert_eq!(series(&text, gone_service), 6, "{text}");
    assert_eq!(series(&text, stays_service), 3, "{text}");
    assert!(text.contains(&format!("ingress=\"{gone_ingress}\"")), "{text}");

    metrics.set_live_owners(&small);
    let text = metrics.encode().unwrap();
    assert_eq!(series(&text, gone_service), 6, "an endpoint still counts under it:\n{text}");
    assert!(text.contains(&format!(
        "lintel_upstream_connections_opened_total{{namespace=\"default\",service=\"{gone_service}\"}} 1"
    )));
    assert_eq!(series(&text, stays_service), 3, "{text}");
    assert!(!text.contains(&format!("ingress=\"{gone_ingress}\"")), "{text}");

    drop(held);
    let text = metrics.encode().unwrap();
    assert_eq!(series(&text, gone_service), 0, "the last endpoint gone takes the series:\n{text}");
    assert_eq!(series(&text, stays_service), 3, "{text}");
}
