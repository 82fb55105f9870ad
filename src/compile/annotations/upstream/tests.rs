//! Upstream annotations: each key, its nginx/ALB twin, precedence, profiles, bad values.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::diagnostic::Severity;

fn parse(pairs: &[(&str, &str)]) -> (UpstreamPolicy, Vec<Diagnostic>) {
    let annotations: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let mut diagnostics = Vec::new();
    let policy = policy(&annotations, &Subject::object("Ingress", "default", "a"), &mut diagnostics);
    (policy, diagnostics)
}

fn parse_clean(pairs: &[(&str, &str)]) -> UpstreamPolicy {
    let (policy, diagnostics) = parse(pairs);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    policy
}

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

#[test]
fn no_annotations_means_every_default() {
    assert_eq!(parse_clean(&[]), UpstreamPolicy::default());
}

#[test]
fn lintel_timeouts_are_durations_with_units() {
    let p = parse_clean(&[
        ("lintel.dev/connect-timeout", "2s"),
        ("lintel.dev/response-timeout", "2m"),
        ("lintel.dev/idle-timeout", "1m30s"),
        ("lintel.dev/upstream-keepalive-timeout", "500ms"),
    ]);
    assert_eq!(p.connect_timeout, secs(2));
    assert_eq!(p.response_timeout, secs(120));
    assert_eq!(p.idle_timeout, secs(90));
    assert_eq!(p.keepalive_idle, Some(Duration::from_millis(500)));
}

#[test]
fn nginx_timeouts_are_seconds() {
    let p = parse_clean(&[
        ("nginx.ingress.kubernetes.io/proxy-connect-timeout", "3"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "300"),
        ("nginx.ingress.kubernetes.io/proxy-send-timeout", "60"),
    ]);
    assert_eq!(p.connect_timeout, secs(3));
    assert_eq!(p.response_timeout, secs(300), "read timeout bounds the wait for the header");
    assert_eq!(p.idle_timeout, secs(300), "the longer of read and send bounds the body gaps");
    let p = parse_clean(&[("nginx.ingress.kubernetes.io/proxy-send-timeout", "90")]);
    assert_eq!((p.response_timeout, p.idle_timeout), (None, secs(90)));
}

#[test]
fn alb_idle_timeout_comes_from_the_attributes() {
    let (p, d) = parse(&[(
        "alb.ingress.kubernetes.io/load-balancer-attributes",
        "idle_timeout.timeout_seconds=600, routing.http2.enabled=true",
    )]);
    assert_eq!((p.idle_timeout, p.response_timeout), (secs(600), secs(600)));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].severity, Severity::Warning);
    assert!(d[0].message.contains("routing.http2.enabled"), "{}", d[0].message);
}

#[test]
fn lintel_keys_beat_nginx_and_alb() {
    let p = parse_clean(&[
        ("lintel.dev/idle-timeout", "5s"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "300"),
        ("lintel.dev/health-check-path", "/ready"),
        ("alb.ingress.kubernetes.io/healthcheck-path", "/alb"),
    ]);
    assert_eq!(p.idle_timeout, secs(5));
    assert_eq!(p.response_timeout, secs(300));
    assert_eq!(p.health_check.unwrap().path, "/ready");
}

#[test]
fn bad_values_are_errors_naming_the_annotation() {
    for (key, value) in [
        ("lintel.dev/connect-timeout", "5"),
        ("lintel.dev/response-timeout", "soon"),
        ("lintel.dev/idle-timeout", "0s"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "60s"),
        ("lintel.dev/load-balance", "ewma"),
        ("lintel.dev/profile", "superset"),
    ] {
        let (p, d) = parse(&[(key, value)]);
        assert_eq!(p, UpstreamPolicy::default(), "{key}: {value}");
        assert_eq!(d.len(), 1, "{key}: {d:?}");
        assert_eq!(d[0].severity, Severity::Error);
        assert!(d[0].field.contains(key), "{}", d[0].field);
    }
}

#[test]
fn load_balance_round_robin() {
    assert_eq!(parse_clean(&[("lintel.dev/load-balance", "round-robin")]).balance, Balance::RoundRobin);
    assert_eq!(parse_clean(&[("lintel.dev/load-balance", "p2c")]).balance, Balance::PowerOfTwoChoices);
}

#[test]
fn health_check_from_lintel_keys() {
    let p = parse_clean(&[
        ("lintel.dev/health-check-path", "/api/v2/monitor/health"),
        ("lintel.dev/health-check-port", "9090"),
        ("lintel.dev/health-check-interval", "3s"),
        ("lintel.dev/health-check-timeout", "1s"),
        ("lintel.dev/health-check-healthy-threshold", "4"),
        ("lintel.dev/health-check-unhealthy-threshold", "1"),
        ("lintel.dev/health-check-success-codes", "200,204-206"),
        ("lintel.dev/health-check-expect-json", "metadatabase.status=healthy"),
    ]);
    let c = p.health_check.unwrap();
    assert_eq!(c.path, "/api/v2/monitor/health");
    assert_eq!(c.port, Some(9090));
    assert_eq!((c.interval, c.timeout), (Duration::from_secs(3), Duration::from_secs(1)));
    assert_eq!((c.healthy_threshold, c.unhealthy_threshold), (4, 1));
    assert_eq!(c.success_codes, SuccessCodes(vec![(200, 200), (204, 206)]));
    let expect = c.expect_json.as_ref().unwrap();
    assert_eq!(expect.path, ["metadatabase", "status"]);
    assert_eq!(expect.value, "healthy");
}

#[test]
fn health_check_from_alb_keys() {
    let p = parse_clean(&[
        ("alb.ingress.kubernetes.io/healthcheck-path", "/health"),
        ("alb.ingress.kubernetes.io/healthcheck-port", "traffic-port"),
        ("alb.ingress.kubernetes.io/healthcheck-interval-seconds", "15"),
        ("alb.ingress.kubernetes.io/healthcheck-timeout-seconds", "5"),
        ("alb.ingress.kubernetes.io/healthy-threshold-count", "5"),
        ("alb.ingress.kubernetes.io/unhealthy-threshold-count", "2"),
        ("alb.ingress.kubernetes.io/success-codes", "200-299"),
    ]);
    let c = p.health_check.unwrap();
    assert_eq!(c.path, "/health");
    assert_eq!(c.port, None);
    assert_eq!(c.interval, Duration::from_secs(15));
    assert_eq!((c.healthy_threshold, c.unhealthy_threshold), (5, 2));
    assert_eq!(c.success_codes, SuccessCodes(vec![(200, 299)]));
}

#[test]
fn health_check_keys_without_a_path_say_so() {
    let (p, d) =
        parse(&[("lintel.dev/health-check-interval", "3s"), ("alb.ingress.kubernetes.io/success-codes", "200")]);
    assert!(p.health_check.is_none());
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|d| d.severity == Severity::Warning && d.message.contains("no effect")));
}

#[test]
fn bad_health_check_values_are_errors() {
    for (key, value) in [
        ("lintel.dev/health-check-path", "health"),
        ("lintel.dev/health-check-healthy-threshold", "0"),
        ("lintel.dev/health-check-success-codes", "200-100"),
        ("lintel.dev/health-check-success-codes", "ok"),
        ("lintel.dev/health-check-expect-json", "status"),
        ("lintel.dev/health-check-expect-json", "a..b=c"),
        ("lintel.dev/health-check-port", "70000"),
    ] {
        let (_, d) = parse(&[("lintel.dev/health-check-path", "/h"), (key, value)]);
        assert!(d.iter().any(|d| d.severity == Severity::Error && d.field.contains(key)), "{key}={value}: {d:?}");
    }
}

#[test]
fn airflow_2_profile() {
    let p = parse_clean(&[("lintel.dev/profile", "airflow"), ("lintel.dev/airflow-version", "2")]);
    let c = p.health_check.as_ref().unwrap();
    assert_eq!(c.path, "/health");
    assert_eq!(c.expect_json.as_ref().unwrap().path, ["metadatabase", "status"]);
    assert!(p.response_timeout.unwrap() > Duration::from_secs(121), "above gunicorn's worker timeout");
    assert!(p.keepalive_idle.unwrap() < Duration::from_secs(2), "below gunicorn's keep-alive");
    assert!(p.idle_timeout.unwrap() >= Duration::from_secs(300));
}

#[test]
fn airflow_3_profile_and_explicit_keys_win() {
    let p = parse_clean(&[
        ("lintel.dev/profile", "airflow"),
        ("lintel.dev/airflow-version", "3.0.2"),
        ("lintel.dev/response-timeout", "10m"),
        ("lintel.dev/health-check-interval", "30s"),
    ]);
    let c = p.health_check.as_ref().unwrap();
    assert_eq!(c.path, "/api/v2/monitor/health");
    assert_eq!(c.interval, Duration::from_secs(30));
    assert!(c.expect_json.is_some());
    assert_eq!(p.response_timeout, secs(600));
}

#[test]
fn airflow_profile_without_a_version_has_no_health_check() {
    let (p, d) = parse(&[("lintel.dev/profile", "airflow")]);
    assert!(p.health_check.is_none());
    assert!(p.response_timeout.is_some());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].severity, Severity::Warning);
    let (_, d) = parse(&[("lintel.dev/airflow-version", "2")]);
    assert!(d[0].message.contains("no effect"), "{d:?}");
    let (_, d) = parse(&[("lintel.dev/profile", "airflow"), ("lintel.dev/airflow-version", "1")]);
    assert_eq!(d.len(), 1, "a bad version is one error, not also a missing one: {d:?}");
}

#[test]
fn upstream_keys_are_not_listed_as_unsupported() {
    let annotations: BTreeMap<String, String> = KNOWN.iter().map(|k| ((*k).to_owned(), String::new())).collect();
    let mut diagnostics = Vec::new();
    let _ = crate::compile::annotations::policy(
        Some(&annotations),
        &crate::compile::CompileOptions::default(),
        &Subject::object("Ingress", "default", "a"),
        &mut diagnostics,
    );
    assert!(diagnostics.iter().all(|d| !d.message.contains("not supported")), "{diagnostics:?}");
}
