//! Access logs and request ids end to end: one JSON line per request with the route owner,
//! upstream and sizes; `X-Request-ID` kept or generated, sent upstream and returned; sampling.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use lintel::proxy::access_log::Sample;
use serde_json::Value;
use support::*;

/// Log lines captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The JSON access-log lines so far.
    fn access_lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["target"] == "lintel::access")
            .collect()
    }
}

/// Runs `body` with JSON logs captured (current-thread runtime: the proxy's tasks share the
/// thread, so the thread-local subscriber sees them).
fn with_logs(body: impl std::future::Future<Output = ()>) -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(body);
    captured
}

async fn site(web: &Upstream) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[web.addr]),
        ingress_yaml("site", "site.example.com", &[("/", "Prefix", "web")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("site.yaml"), yaml).unwrap();
    dir
}

#[test]
fn one_line_per_request_and_request_ids_travel_both_ways() {
    let logs = with_logs(async {
        let web = Upstream::start("web").await;
        let dir = site(&web).await;
        let proxy = start_proxy(dir.path(), |_| {}).await;
        let c = client();
        let req = Request::post(format!("http://{}/count-body?token=secret", proxy.http_addr))
            .header("host", "site.example.com")
            .header("x-request-id", "client-id-1")
            .body(Full::new(Bytes::from_static(b"0123456789")))
            .unwrap();
        let (status, headers, body) = send(&c, req).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "10"));
        assert_eq!(headers["x-request-id"], "client-id-1");

        let (_, headers, body) = get(&c, proxy.http_addr, "site.example.com", "/echo").await;
        let generated = headers["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(generated.len(), 32);
        assert_eq!(echo(&body)["headers"]["x-request-id"], generated.as_str(), "the upstream sees the same id");

        let (status, headers, _) = get(&c, proxy.http_addr, "other.example.com", "/").await;
        assert_eq!(status, 404);
        assert!(headers.contains_key("x-request-id"), "answers of our own carry the id too");
    });
    let lines = logs.access_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let post = &lines.iter().find(|l| l["fields"]["method"] == "POST").unwrap()["fields"];
    assert_eq!(post["request_id"], "client-id-1");
    assert_eq!(post["path"], "/count-body", "no query string in logs");
    assert_eq!(post["host"], "site.example.com");
    assert_eq!(post["status"], 200);
    assert_eq!(post["bytes_in"], 10);
    assert_eq!(post["bytes_out"], 2);
    assert_eq!(post["client"], "127.0.0.1");
    assert_eq!(post["peer"], "-", "the peer is logged only when it differs from the client");
    assert_eq!(
        (&post["namespace"], &post["ingress"], &post["service"]),
        (&"default".into(), &"site".into(), &"web".into())
    );
    assert!(post["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(post["upstream_ms"].as_f64().unwrap() >= 0.0);
    assert!(post["duration_ms"].as_f64().unwrap() >= post["upstream_ms"].as_f64().unwrap());
    assert_eq!(post["protocol"], "HTTP/1.1");
    assert_eq!(post["tls_version"], "-");
    let miss = &lines.iter().find(|l| l["fields"]["status"] == 404).unwrap()["fields"];
    assert_eq!((&miss["ingress"], &miss["upstream"]), (&"-".into(), &"-".into()));
}

#[test]
fn sample_zero_or_disabled_logs_nothing() {
    for tweak in
        [(|c: &mut lintel::config::Config| c.access_log.sample = Sample::new(0.0).unwrap()) as fn(&mut _), |c| {
            c.access_log.enabled = false
        }]
    {
        let logs = with_logs(async {
            let web = Upstream::start("web").await;
            let dir = site(&web).await;
            let proxy = start_proxy(dir.path(), tweak).await;
            for _ in 0..5 {
                let (status, headers, _) = get(&client(), proxy.http_addr, "site.example.com", "/").await;
                assert_eq!(status, 200);
                assert!(headers.contains_key("x-request-id"));
            }
        });
        assert!(logs.access_lines().is_empty());
    }
}
