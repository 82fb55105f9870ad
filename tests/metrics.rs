//! `/metrics` scraped while traffic flows, parsed by the reference OpenMetrics parser
//! (prometheus_client from PyPI, installed by scripts/install-test-tools.sh): every family has
//! HELP, units where they apply, and the request families count what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;

/// The interpreter with prometheus_client, or `None` (after saying why) without python3.
fn parser_python() -> Option<String> {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed, so /metrics cannot be checked with the reference parser");
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash").arg(root.join("scripts/install-test-tools.sh")).output().unwrap();
    assert!(out.status.success(), "install-test-tools.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

/// Parses an exposition with the reference parser; panics with its message when invalid.
fn parse(python: &str, text: &str) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/parse-metrics.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n--- exposition ---\n{text}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    parsed["families"].as_array().unwrap().clone()
}

fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no family {name}"))
}

/// The value of the sample `name` whose labels include all of `labels`.
fn sample(families: &[Value], family_name: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    family(families, family_name)["samples"].as_array().unwrap().iter().find_map(|s| {
        let matches = s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v);
        matches.then(|| s[2].as_f64().unwrap())
    })
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    let (status, headers, body) = get(&client(), admin, "localhost", "/metrics").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    body
}

#[tokio::test]
async fn metrics_parse_during_traffic_and_count_requests() {
    let Some(python) = parser_python() else { return };
    let web = Upstream::start("web").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[web.addr]),
        ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web")]),
        annotated_ingress_yaml(
            "locked",
            "locked.example.com",
            &[("/", "Prefix", "web")],
            &[("lintel.dev/allow-source-cidrs", "192.0.2.0/24")],
        ),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("site.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |c| c.access_log.enabled = false).await;
    let (http, admin) = (proxy.http_addr, proxy.admin_addr);

    // Traffic in the background while scraping: every scrape must parse.
    let traffic = tokio::spawn(async move {
        let c = client();
        for _ in 0..40 {
            let (status, _, _) = get(&c, http, "site.example.com", "/bytes/1000").await;
            assert_eq!(status, 200);
        }
    });
    for _ in 0..3 {
        parse(&python, &scrape(admin).await);
    }
    traffic.await.unwrap();
    let (status, _, _) = get(&client(), http, "nowhere.example.com", "/").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&client(), http, "locked.example.com", "/").await;
    assert_eq!(status, 403);

    let families = parse(&python, &scrape(admin).await);
    for f in &families {
        assert!(!f["help"].as_str().unwrap_or_default().is_empty(), "{} has no HELP", f["name"]);
    }
    for (name, unit) in [
        ("lintel_request_duration_seconds", "seconds"),
        ("lintel_request_size_bytes", "bytes"),
        ("lintel_response_size_bytes", "bytes"),
        ("lintel_upstream_response_duration_seconds", "seconds"),
        ("lintel_table_rebuild_duration_seconds", "seconds"),
        ("lintel_last_successful_sync_timestamp_seconds", "seconds"),
        ("lintel_tls_certificate_expiry_timestamp_seconds", "seconds"),
        ("lintel_startup_duration_seconds", "seconds"),
    ] {
        assert_eq!(family(&families, name)["unit"], unit, "{name}");
    }
    // Families that other parts of the proxy fill are listed from the start.
    for name in [
        "lintel_tls_handshakes",
        "lintel_tls_handshake_errors",
        "lintel_allowlist_rejections",
        "lintel_limit_rejections",
        "lintel_upstream_retries",
        "lintel_source_watch_restarts",
        "lintel_source_api_errors",
        "lintel_leader",
    ] {
        family(&families, name);
    }

    let web_2xx =
        [("namespace", "default"), ("ingress", "site"), ("service", "web"), ("method", "GET"), ("status", "2xx")];
    assert_eq!(sample(&families, "lintel_requests", "lintel_requests_total", &web_2xx), Some(40.0));
    let count = "lintel_request_duration_seconds_count";
    assert_eq!(sample(&families, "lintel_request_duration_seconds", count, &web_2xx), Some(40.0));
    let sum = sample(&families, "lintel_response_size_bytes", "lintel_response_size_bytes_sum", &web_2xx[..3]);
    assert_eq!(sum, Some(40_000.0));
    let unrouted = [("ingress", ""), ("status", "4xx")];
    assert_eq!(sample(&families, "lintel_requests", "lintel_requests_total", &unrouted), Some(1.0));
    assert_eq!(
        sample(&families, "lintel_proxy_errors", "lintel_proxy_errors_total", &[("kind", "no_route")]),
        Some(1.0)
    );
    let locked = [("namespace", "default"), ("ingress", "locked")];
    let rejections = "lintel_allowlist_rejections_total";
    assert_eq!(sample(&families, "lintel_allowlist_rejections", rejections, &locked), Some(1.0));
    let accepted =
        sample(&families, "lintel_connections_accepted", "lintel_connections_accepted_total", &[("listener", "http")]);
    assert!(accepted.unwrap() >= 1.0);
    let swapped = [("outcome", "swapped")];
    assert_eq!(sample(&families, "lintel_table_rebuilds", "lintel_table_rebuilds_total", &swapped), Some(1.0));
    let routes = sample(&families, "lintel_table_objects", "lintel_table_objects", &[("kind", "routes")]);
    assert_eq!(routes, Some(2.0));
    let endpoints = [("service", "web"), ("state", "healthy")];
    assert_eq!(sample(&families, "lintel_upstream_endpoints", "lintel_upstream_endpoints", &endpoints), Some(1.0));
    let sync = "lintel_last_successful_sync_timestamp_seconds";
    assert!(sample(&families, sync, sync, &[]).unwrap() > 1.7e9);
}

#[tokio::test]
async fn upstream_pool_counts_one_connection_and_every_later_request_as_a_reuse() {
    use support::scrape::value;

    let web = Upstream::start("web").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[web.addr]),
        ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("site.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |c| {
        c.access_log.enabled = false;
        c.timeouts.upstream_keepalive_idle = std::time::Duration::from_millis(500);
    })
    .await;
    const N: usize = 10;
    let c = client();
    for _ in 0..N {
        let (status, _, _) = get(&c, proxy.http_addr, "site.example.com", "/").await;
        assert_eq!(status, 200);
    }
    let web_labels = [("namespace", "default"), ("service", "web")];
    let text = scrape_metrics(&proxy).await;
    let opened = value(&text, "lintel_upstream_connections_opened_total", &web_labels);
    let reused = value(&text, "lintel_upstream_connections_reused_total", &web_labels);
    assert_eq!((opened, reused), (Some(1.0), Some((N - 1) as f64)), "{text}");
    assert_eq!(value(&text, "lintel_upstream_connections_open", &web_labels), Some(1.0), "{text}");

    // Idle past the pool's keep-alive: the connection closes and the gauge follows.
    eventually("the idle upstream connection to close", std::time::Duration::from_secs(10), || async {
        value(&scrape_metrics(&proxy).await, "lintel_upstream_connections_open", &web_labels) == Some(0.0)
    })
    .await;
    let (status, _, _) = get(&c, proxy.http_addr, "site.example.com", "/").await;
    assert_eq!(status, 200);
    let text = scrape_metrics(&proxy).await;
    assert_eq!(value(&text, "lintel_upstream_connections_opened_total", &web_labels), Some(2.0), "{text}");
    assert_eq!(value(&text, "lintel_upstream_connections_reused_total", &web_labels), Some((N - 1) as f64));
    proxy.shutdown();
}

#[tokio::test]
async fn endpoint_states_follow_active_checks_and_passive_ejection() {
    use support::scrape::value;

    let web = Upstream::start("web").await;
    // Connects to these are refused: `checked` fails its active health check, `flaky`
    // fails the requests sent to it.
    let (down_a, down_b) = (RefusingPort::new(), RefusingPort::new());
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[web.addr]),
        service_yaml("checked", &[down_a.addr]),
        service_yaml("flaky", &[down_b.addr]),
        ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web")]),
        annotated_ingress_yaml(
            "checked",
            "checked.example.com",
            &[("/", "Prefix", "checked")],
            &[
                ("lintel.dev/health-check-path", "/health"),
                ("lintel.dev/health-check-interval", "100ms"),
                ("lintel.dev/health-check-timeout", "1s"),
                ("lintel.dev/health-check-unhealthy-threshold", "2"),
            ],
        ),
        ingress_yaml("flaky", "flaky.example.com", &[("/", "Prefix", "flaky")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("site.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |c| c.access_log.enabled = false).await;
    let c = client();
    for _ in 0..3 {
        let (status, _, _) = get(&c, proxy.http_addr, "flaky.example.com", "/").await;
        assert_eq!(status, 502);
    }
    let state = |text: &str, service: &str, state: &str| {
        value(text, "lintel_upstream_endpoints", &[("service", service), ("state", state)])
    };
    let admin = proxy.admin_addr;
    eventually("the checked endpoint turns unhealthy", std::time::Duration::from_secs(5), || async move {
        let (_, _, text) = get(&client(), admin, "localhost", "/metrics").await;
        state(&text, "checked", "unhealthy") == Some(1.0)
    })
    .await;
    let (_, _, text) = get(&client(), admin, "localhost", "/metrics").await;
    assert_eq!(state(&text, "checked", "healthy"), Some(0.0));
    assert_eq!(state(&text, "flaky", "ejected"), Some(1.0), "three refused connects eject it");
    assert_eq!(state(&text, "flaky", "healthy"), Some(0.0));
    assert_eq!(state(&text, "web", "healthy"), Some(1.0));
    assert_eq!(state(&text, "web", "unhealthy"), Some(0.0));
}

#[tokio::test]
async fn a_quiet_manifests_directory_still_counts_as_synced() {
    use support::scrape::value;

    let dir = tempfile::tempdir().unwrap();
    let yaml =
        [CLASS_YAML.to_owned(), ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web")])].join("---\n");
    std::fs::write(dir.path().join("site.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |c| c.access_log.enabled = false).await;
    let admin = proxy.admin_addr;
    let sync = "lintel_last_successful_sync_timestamp_seconds";
    let (_, _, text) = get(&client(), admin, "localhost", "/metrics").await;
    let first = value(&text, sync, &[]).unwrap();
    // A rescan (one as the watch starts, then every 5 s) finds nothing new and says so.
    eventually("a rescan moves the sync time", std::time::Duration::from_secs(12), || async move {
        let (_, _, text) = get(&client(), admin, "localhost", "/metrics").await;
        value(&text, sync, &[]).is_some_and(|t| t > first)
    })
    .await;
    let (_, _, text) = get(&client(), admin, "localhost", "/metrics").await;
    assert_eq!(value(&text, "lintel_table_rebuilds_total", &[("outcome", "swapped")]), Some(1.0));
}

#[tokio::test]
async fn a_deleted_service_takes_its_upstream_series_with_it() {
    use support::scrape::value;

    let web = Upstream::start("web").await;
    let api = Upstream::start("api").await;
    let dir = tempfile::tempdir().unwrap();
    let web_only = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[web.addr]),
        ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web")]),
    ];
    let both = [
        web_only.to_vec(),
        vec![service_yaml("api", &[api.addr]), ingress_yaml("api", "api.example.com", &[("/", "Prefix", "api")])],
    ]
    .concat();
    std::fs::write(dir.path().join("site.yaml"), both.join("---\n")).unwrap();
    let proxy = start_proxy(dir.path(), |c| c.access_log.enabled = false).await;
    let c = client();
    for host in ["site.example.com", "api.example.com"] {
        let (status, _, _) = get(&c, proxy.http_addr, host, "/").await;
        assert_eq!(status, 200);
    }
    let opened = "lintel_upstream_connections_opened_total";
    let text = scrape_metrics(&proxy).await;
    assert_eq!(value(&text, opened, &[("service", "api")]), Some(1.0), "{text}");

    std::fs::write(dir.path().join("site.yaml"), web_only.join("---\n")).unwrap();
    eventually("the deleted Service's series to leave /metrics", std::time::Duration::from_secs(10), || async {
        !scrape_metrics(&proxy).await.contains("service=\"api\"")
    })
    .await;
    let (status, _, _) = get(&c, proxy.http_addr, "site.example.com", "/").await;
    assert_eq!(status, 200);
    let text = scrape_metrics(&proxy).await;
    assert_eq!(value(&text, opened, &[("service", "web")]), Some(1.0), "the other Service's stay:\n{text}");
    proxy.shutdown();
}
