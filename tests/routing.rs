//! End-to-end routing through the real proxy: real upstreams, real clients, loopback only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::*;

struct Setup {
    _dir: tempfile::TempDir,
    web: Upstream,
    api: Upstream,
    proxy: lintel::run::Running,
}

/// `site.example.com`: `/` → web, `/api` Prefix → api, `/health` Exact → api; plus a Service
/// without endpoints at `/empty` and a missing Service at `/missing`.
async fn setup(tweak: impl FnOnce(&mut lintel::config::Config)) -> Setup {
    let web = Upstream::start("web").await;
    let api = Upstream::start("api").await;
    let dir = tempfile::tempdir().unwrap();
    let manifests = [
        CLASS_YAML.to_owned(),
        service_yaml("web", &[web.addr]),
        service_yaml("api", &[api.addr]),
        service_yaml("empty", &[]),
        ingress_yaml(
            "site",
            "site.example.com",
            &[
                ("/", "Prefix", "web"),
                ("/api", "Prefix", "api"),
                ("/health", "Exact", "api"),
                ("/empty", "Prefix", "empty"),
                ("/missing", "Prefix", "missing"),
            ],
        ),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("site.yaml"), manifests).unwrap();
    let proxy = start_proxy(dir.path(), tweak).await;
    Setup { _dir: dir, web, api, proxy }
}

#[tokio::test]
async fn routes_by_host_and_path() {
    let s = setup(|_| {}).await;
    let c = client();
    let addr = s.proxy.http_addr;
    let (status, _, body) = get(&c, addr, "site.example.com", "/dags?x=1").await;
    assert_eq!(status, 200);
    assert_eq!(echo(&body)["name"], "web");
    assert_eq!(echo(&body)["uri"], "/dags?x=1");
    let (_, _, body) = get(&c, addr, "SITE.example.com:8080", "/api/v1/dags").await;
    assert_eq!(echo(&body)["name"], "api");
    let (_, _, body) = get(&c, addr, "site.example.com", "/health").await;
    assert_eq!(echo(&body)["name"], "api");
    let (_, _, body) = get(&c, addr, "site.example.com", "/health/").await;
    assert_eq!(echo(&body)["name"], "web", "Exact /health does not match /health/");
    let (_, _, body) = get(&c, addr, "site.example.com", "/apiary").await;
    assert_eq!(echo(&body)["name"], "web", "Prefix /api does not match /apiary");
}

#[tokio::test]
async fn upstream_sees_host_unchanged_and_forwarded_headers_set_by_the_proxy() {
    let s = setup(|_| {}).await;
    let req = Request::post(format!("http://{}/api/login", s.proxy.http_addr))
        .header("host", "site.example.com:8443")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-host", "evil.example.com")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "1")
        .header("x-forwarded-prefix", "/evil")
        .header("x-real-ip", "203.0.113.8")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .header("te", "trailers")
        .header("cookie", "a=b")
        .body(Full::new(Bytes::from_static(b"user=me")))
        .unwrap();
    let (status, headers, body) = send(&client(), req).await;
    assert_eq!(status, 200);
    let seen = &echo(&body)["headers"];
    assert_eq!(seen["host"], "site.example.com:8443");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], "site.example.com:8443");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-port"], "8443");
    assert_eq!(seen["cookie"], "a=b");
    assert_eq!(seen["content-length"], "7");
    for gone in ["x-forwarded-prefix", "x-hop", "te", "connection"] {
        assert!(seen.get(gone).is_none(), "{gone} must not reach the upstream: {seen}");
    }
    assert_eq!(headers["set-cookie"], "session=abc; Path=/", "responses pass through untouched");
}

#[tokio::test]
async fn forwarded_port_defaults_to_the_scheme_port_not_the_listen_port() {
    let s = setup(|_| {}).await;
    let (_, _, body) = get(&client(), s.proxy.http_addr, "site.example.com", "/").await;
    assert_eq!(echo(&body)["headers"]["x-forwarded-port"], "80");
}

async fn expect_answer(s: &Setup, host: &str, path: &str, status: StatusCode, text: &str) {
    let (got, headers, body) = get(&client(), s.proxy.http_addr, host, path).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(body.contains(text), "{body:?} lacks {text:?}");
    assert!(body.ends_with('\n') && body.lines().count() == 1, "one line: {body:?}");
}

#[tokio::test]
async fn unknown_host_gets_404_that_does_not_echo_the_request() {
    let s = setup(|_| {}).await;
    expect_answer(&s, "other.example.com", "/%3Cscript%3E", StatusCode::NOT_FOUND, "no Ingress rule matches").await;
    let (_, _, body) = get(&client(), s.proxy.http_addr, "other.example.com", "/%3Cscript%3E").await;
    assert!(!body.contains("script") && !body.contains("other.example.com"));
}

#[tokio::test]
async fn service_without_ready_endpoints_gets_503() {
    let s = setup(|_| {}).await;
    expect_answer(
        &s,
        "site.example.com",
        "/empty",
        StatusCode::SERVICE_UNAVAILABLE,
        "no ready endpoint for backend default/empty:80",
    )
    .await;
    expect_answer(
        &s,
        "site.example.com",
        "/missing/x",
        StatusCode::SERVICE_UNAVAILABLE,
        "Service default/missing not found",
    )
    .await;
}

#[tokio::test]
async fn refused_connection_gets_502() {
    let refusing = support::RefusingPort::new();
    let closed = refusing.addr;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("gone", &[closed]),
        ingress_yaml("g", "g.example.com", &[("/", "Prefix", "gone")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("g.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let (status, _, body) = get(&client(), proxy.http_addr, "g.example.com", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "502 Bad Gateway: upstream connect failed\n");
}

#[tokio::test]
async fn upstream_protocol_garbage_gets_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let garbage = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(b"this is not HTTP\r\n\r\n").await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("junk", &[addr]),
        ingress_yaml("j", "j.example.com", &[("/", "Prefix", "junk")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("j.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let (status, _, body) = get(&client(), proxy.http_addr, "j.example.com", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.starts_with("502 Bad Gateway: upstream sent an invalid response"), "{body}");
    garbage.abort();
}

#[tokio::test]
async fn slow_upstream_gets_504_at_the_response_timeout() {
    let s = setup(|c| c.timeouts.response_header = Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    expect_answer(
        &s,
        "site.example.com",
        "/slow/5000",
        StatusCode::GATEWAY_TIMEOUT,
        "did not send a response header in time",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(4), "answered at the timeout, not when the upstream finished");
    let (status, _, _) = get(&client(), s.proxy.http_addr, "site.example.com", "/slow/10").await;
    assert_eq!(status, 200, "a quick answer is not cut");
}

/// Each exchange on a pooled upstream connection gets the whole timeout from its own start
/// (the connection's timer, armed by an earlier exchange, fires before the later deadline and
/// must not cut the later exchange), and a shorter wait still ends at its own deadline.
#[tokio::test]
async fn the_response_timeout_counts_from_each_request_on_a_reused_connection() {
    let s = setup(|c| c.timeouts.response_header = Duration::from_millis(600)).await;
    let client = client();
    let (status, _, _) = get(&client, s.proxy.http_addr, "site.example.com", "/slow/1").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Ends 800 ms after the first exchange began: past its deadline, within its own.
    let (status, _, body) = get(&client, s.proxy.http_addr, "site.example.com", "/slow/400").await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    let (status, _, _) = get(&client, s.proxy.http_addr, "site.example.com", "/slow/3000").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(550) && took < Duration::from_millis(2500), "{took:?}");
    assert!(s.web.hits() >= 3);
}

#[tokio::test]
async fn missing_host_gets_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup(|_| {}).await;
    let mut conn = tokio::net::TcpStream::connect(s.proxy.http_addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(s.web.hits() + s.api.hits(), 0);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let s = setup(|_| {}).await;
    let tcp = tokio::net::TcpStream::connect(s.proxy.http_addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for path in ["/api/x", "/"] {
        let req = Request::get(format!("http://site.example.com{path}")).body(Full::new(Bytes::new())).unwrap();
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let seen = echo(&String::from_utf8_lossy(&body));
        assert_eq!(seen["name"], if path == "/" { "web" } else { "api" });
        // The HTTP/1.1 upstream gets the client's :authority as Host.
        assert_eq!(seen["headers"]["host"], "site.example.com");
        assert_eq!(seen["headers"]["x-forwarded-port"], "80");
    }
}

#[tokio::test]
async fn chunked_responses_stream_as_they_arrive() {
    use http_body_util::BodyExt;
    let s = setup(|_| {}).await;
    let req = Request::get(format!("http://{}/drip/5", s.proxy.http_addr))
        .header("host", "site.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = std::time::Instant::now();
    let response = client().request(req).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = started.elapsed();
    assert_eq!(first, "chunk 0\n");
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        rest.extend_from_slice(&frame.unwrap().into_data().unwrap_or_default());
    }
    assert_eq!(String::from_utf8(rest).unwrap(), "chunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    assert!(first_at < started.elapsed() - Duration::from_millis(200), "the first chunk came before the last was sent");
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_routes() {
    let s = setup(|_| {}).await;
    let c = client();
    let admin = s.proxy.admin_addr;
    let (status, _, _) = get(&c, admin, "admin", "/healthz").await;
    assert_eq!(status, 200);
    let (status, _, _) = get(&c, admin, "admin", "/readyz").await;
    assert_eq!(status, 200);
    let (status, headers, body) = get(&c, admin, "admin", "/routes").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let routes: serde_json::Value = serde_json::from_str(&body).unwrap();
    let api = routes["routes"].as_array().unwrap().iter().find(|r| r["path"] == "/api").unwrap();
    assert_eq!(api["host"], "site.example.com");
    assert_eq!(api["path_type"], "Prefix");
    assert_eq!(api["backend"], "default/api:80");
    assert_eq!(api["endpoints"][0], s.api.addr.to_string());
    assert_eq!(api["ingress"], "default/site");
    let diags = routes["diagnostics"].as_array().unwrap();
    assert!(diags.iter().any(|d| d["message"].as_str().unwrap().contains("default/missing not found")), "{diags:?}");
    s.proxy.shutdown();
    s.proxy.wait().await;
}
