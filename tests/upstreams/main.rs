//! Upstream behaviour end to end, with real upstream servers on loopback: endpoints dying
//! and being replaced under steady traffic, timeouts, keep-alive races, load balancing,
//! health checks, WebSockets. Real time, with bounds; each test prints what it measured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::{Cond, ingress, join, ready, service};
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use lintel::run::Running;
use server::{Backend, KeepAlive, RawServer};
use support::{HttpClient, client, eventually, get, send, start_proxy, write_atomic};

struct Site {
    _dir: tempfile::TempDir,
    file: PathBuf,
    proxy: Running,
}

impl Site {
    async fn start(docs: &[String]) -> Self {
        Self::start_with(docs, |_| {}).await
    }

    async fn start_with(docs: &[String], tweak: impl FnOnce(&mut lintel::config::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.yaml");
        std::fs::write(&file, join(docs)).unwrap();
        let proxy = start_proxy(dir.path(), tweak).await;
        Self { _dir: dir, file, proxy }
    }

    fn rewrite(&self, docs: &[String]) {
        write_atomic(&self.file, &join(docs));
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.proxy.http_addr
    }

    /// The endpoints of `svc` in the table in service.
    fn endpoints(&self, svc: &str) -> Vec<String> {
        let live = self.proxy.live.load();
        let table = &live.compiled.table;
        table
            .backends()
            .iter()
            .find(|b| b.id.service == svc)
            .map(|b| b.endpoints.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    async fn wait_endpoints(&self, svc: &str, want: &[&Backend]) {
        let mut want: Vec<String> = want.iter().map(|b| b.addr.to_string()).collect();
        want.sort();
        eventually("the table has the new endpoints", Duration::from_secs(5), || {
            let mut got = self.endpoints(svc);
            got.sort();
            let done = got == want;
            async move { done }
        })
        .await;
    }
}

/// Steady traffic: `lanes` clients sending GETs back to back until stopped. Failures are
/// kept with the time they happened.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    lanes: Vec<tokio::task::JoinHandle<Vec<(Instant, StatusCode, String)>>>,
}

impl Load {
    fn start(proxy: std::net::SocketAddr, host: &'static str, lanes: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let lanes = (0..lanes)
            .map(|_| {
                let (stop, ok) = (stop.clone(), ok.clone());
                tokio::spawn(async move {
                    let c = client();
                    let mut failures = Vec::new();
                    // Bounded: the test stops it long before.
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let (status, _, body) = get(&c, proxy, host, "/").await;
                        if status == StatusCode::OK {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failures.push((Instant::now(), status, body));
                        }
                    }
                    failures
                })
            })
            .collect();
        Self { stop, ok, lanes }
    }

    async fn finish(self) -> (usize, Vec<(Instant, StatusCode, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for lane in self.lanes {
            failures.extend(lane.await.unwrap());
        }
        failures.sort_by_key(|f| f.0);
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_costs_errors_only_within_the_detection_window() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let site = Site::start(&[
        service("app", &ready(&[a.addr, b.addr, c.addr])),
        ingress("app", "app.example.com", "app", &[]),
    ])
    .await;
    let load = Load::start(site.addr(), "app.example.com", 8);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c_addr = c.addr.to_string();
    assert!(c.hits() > 0, "c served before it died");

    let killed = Instant::now();
    c.kill();
    // Detection: the proxy takes c out of rotation (passive ejection).
    let group = {
        let live = site.proxy.live.load();
        live.groups.iter().find(|g| g.name.contains("/app:")).unwrap().clone()
    };
    let endpoint = group.endpoints().iter().find(|e| e.authority.as_str() == c_addr).unwrap().clone();
    eventually("c is ejected", Duration::from_secs(5), || {
        let out = !endpoint.is_available(tokio::time::Instant::now());
        async move { out }
    })
    .await;
    let detected = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, failures) = load.finish().await;

    let window = detected + Duration::from_millis(100);
    let late: Vec<_> = failures.iter().filter(|f| f.0.duration_since(killed) > window).collect();
    eprintln!(
        "kill: {ok} ok, {} failed ({:?}), c ejected {detected:?} after the kill",
        failures.len(),
        failures.iter().map(|f| (f.0.saturating_duration_since(killed), f.1)).collect::<Vec<_>>()
    );
    assert!(late.is_empty(), "failures after the detection window: {late:?}");
    assert!(failures.iter().all(|f| f.0 >= killed), "no failure before the kill: {failures:?}");
    assert!(failures.len() <= 8, "at most the requests in flight on c when it died: {failures:?}");
    assert!(ok > 500, "traffic kept flowing: {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_replacement_fails_no_request() {
    let mut pods = vec![Backend::start("p0").await, Backend::start("p1").await];
    let names = ["p2", "p3", "p4"];
    let docs = |pods: &[(std::net::SocketAddr, Cond)]| {
        vec![service("app", pods), ingress("app", "app.example.com", "app", &[])]
    };
    let site = Site::start(&docs(&ready(&pods.iter().map(|p| p.addr).collect::<Vec<_>>()))).await;
    let load = Load::start(site.addr(), "app.example.com", 6);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in names {
        // A new pod turns ready.
        pods.push(Backend::start(name).await);
        site.rewrite(&docs(&ready(&pods.iter().map(|p| p.addr).collect::<Vec<_>>())));
        site.wait_endpoints("app", &pods.iter().collect::<Vec<_>>()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The oldest starts terminating (still serving), then leaves the slice and stops.
        let mut with_old: Vec<_> = ready(&pods.iter().map(|p| p.addr).collect::<Vec<_>>());
        with_old[0].1 = Cond::Terminating;
        site.rewrite(&docs(&with_old));
        site.wait_endpoints("app", &pods[1..].iter().collect::<Vec<_>>()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let old = pods.remove(0);
        site.rewrite(&docs(&ready(&pods.iter().map(|p| p.addr).collect::<Vec<_>>())));
        old.stop().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, failures) = load.finish().await;
    eprintln!("rolling replacement: {ok} ok, {} failed", failures.len());
    assert!(failures.is_empty(), "{failures:?}");
    assert!(pods.iter().all(|p| p.hits() > 0), "the new pods serve");
}

#[tokio::test]
async fn a_slow_upstream_gets_504_at_the_configured_timeout() {
    let slow = Backend::start("slow").await;
    let site = Site::start(&[
        service("slow", &ready(&[slow.addr])),
        ingress("a", "a.example.com", "slow", &[("lintel.dev/response-timeout", "1s")]),
        ingress("b", "b.example.com", "slow", &[("nginx.ingress.kubernetes.io/proxy-read-timeout", "2")]),
    ])
    .await;
    let c = client();
    for (host, limit) in [("a.example.com", 1.0), ("b.example.com", 2.0)] {
        let started = Instant::now();
        let (status, _, body) = get(&c, site.addr(), host, "/slow/10000").await;
        let took = started.elapsed().as_secs_f64();
        eprintln!("{host}: {status} after {took:.3} s (timeout {limit} s)");
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert!(body.contains("response header in time"), "{body}");
        assert!((limit..limit + 0.5).contains(&took), "answered after {took} s, timeout {limit} s");
    }
    let (status, _, _) = get(&c, site.addr(), "a.example.com", "/slow/500").await;
    assert_eq!(status, StatusCode::OK, "under the timeout is fine");
}

#[tokio::test]
async fn a_body_gap_longer_than_the_idle_timeout_is_cut_there() {
    let b = Backend::start("b").await;
    let site = Site::start(&[
        service("b", &ready(&[b.addr])),
        ingress("b", "b.example.com", "b", &[("lintel.dev/idle-timeout", "500ms")]),
    ])
    .await;
    let req = Request::get(format!("http://{}/stall", site.addr()))
        .header("host", "b.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client().request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.data_ref().unwrap().as_ref(), b"first chunk\n");
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("cut, not hung");
    let took = started.elapsed().as_secs_f64();
    eprintln!("idle body cut after {took:.3} s (idle timeout 0.5 s)");
    assert!(!matches!(end, Some(Ok(_))), "the body must not go on: {end:?}");
    assert!((0.5..1.0).contains(&took), "{took}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_the_upstream_keepalive_edge_never_get_502() {
    // gunicorn closes idle keep-alive connections after 2 s; these upstreams after 200 ms,
    // and the proxy keeps pooled connections for 15 s. Each lane has its own upstream, so
    // its pooled connection has been idle exactly as long as the lane's gap: gaps spread
    // over the edge make reuse race the close.
    let edge = Duration::from_millis(200);
    let lanes = 20;
    let mut upstreams = Vec::new();
    let mut docs = Vec::new();
    for i in 0..lanes {
        let upstream = RawServer::start(KeepAlive::CloseIdleAfter(edge)).await;
        docs.push(service(&format!("g{i}"), &[(upstream.addr, Cond::Ready)]));
        docs.push(ingress(&format!("g{i}"), &format!("g{i}.example.com"), &format!("g{i}"), &[]));
        upstreams.push(upstream);
    }
    let _ = tracing_subscriber::fmt().with_env_filter("lintel=debug").with_test_writer().try_init();
    // A request stuck on a connection would show as a 504 after 10 s rather than 3 minutes.
    let site = Site::start_with(&docs, |c| c.timeouts.response_header = Duration::from_secs(10)).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..lanes as u64 {
        let addr = site.addr();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let host = format!("g{lane}.example.com");
            let mut statuses = Vec::new();
            for i in 0..50u64 {
                // Gaps from 185 to 215 ms, spread over the edge.
                let gap = 185 + (lane * 7 + i * 13) % 31;
                tokio::time::sleep(Duration::from_millis(gap)).await;
                let t = Instant::now();
                let (status, _, body) = get(&c, addr, &host, "/").await;
                if status != StatusCode::OK || t.elapsed() > Duration::from_millis(500) {
                    eprintln!("lane {lane} request {i} gap {gap}: {status} after {:?}: {body}", t.elapsed());
                }
                statuses.push(status);
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    let bad: Vec<_> = statuses.iter().filter(|s| **s != StatusCode::OK).collect();
    let connections: usize = upstreams.iter().map(|u| u.connections.load(Ordering::Relaxed)).sum();
    let answered: usize = upstreams.iter().map(|u| u.requests.load(Ordering::Relaxed)).sum();
    let retries: u64 =
        site.proxy.live.load().groups.iter().flat_map(|g| g.endpoints()).map(|e| e.stale_retries()).sum();
    eprintln!(
        "keep-alive edge: {} requests in {:?}, {} not 200, {answered} answered upstream over {connections} connections, {retries} retried on a fresh connection after the upstream closed a pooled one",
        statuses.len(),
        started.elapsed(),
        bad.len(),
    );
    assert_eq!(statuses.len(), 1000);
    assert!(bad.is_empty(), "{bad:?}");
    let (_, _, metrics) = get(&client(), site.proxy.admin_addr, "localhost", "/metrics").await;
    // One series per backend: the lanes reach several Services.
    let counted = support::scrape::sum(&metrics, "lintel_upstream_retries_total", &[("reason", "stale")]);
    assert_eq!(counted, retries as f64, "every stale retry is counted");
    assert!(connections > 100, "the upstreams did close idle connections: {connections}");
}

#[tokio::test]
async fn pooled_connections_expire_before_the_announced_keepalive() {
    let upstream = RawServer::start(KeepAlive::Announce { seconds: 1 }).await;
    let site =
        Site::start(&[service("k", &[(upstream.addr, Cond::Ready)]), ingress("k", "k.example.com", "k", &[])]).await;
    let c = client();
    let post = || {
        Request::post(format!("http://{}/", site.addr()))
            .header("host", "k.example.com")
            .body(Full::new(Bytes::from_static(b"not idempotent")))
            .unwrap()
    };
    // The first answer announces the keep-alive; the pool is rebuilt once to follow it.
    assert_eq!(send(&c, post()).await.0, StatusCode::OK);
    assert_eq!(send(&c, post()).await.0, StatusCode::OK);
    let base = upstream.connections.load(Ordering::Relaxed);
    assert_eq!(send(&c, post()).await.0, StatusCode::OK);
    assert_eq!(upstream.connections.load(Ordering::Relaxed), base, "reused at once");
    // 0.9 s idle: within the upstream's 1 s, past the 0.75 s the pool keeps it.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(send(&c, post()).await.0, StatusCode::OK);
    assert_eq!(upstream.connections.load(Ordering::Relaxed), base + 1, "the pooled connection had expired");
}

#[tokio::test]
async fn plain_get_connections_expire_before_the_announced_keepalive() {
    // As above over the plain exchange (bodiless GET), which notes the header as it parses.
    let upstream = RawServer::start(KeepAlive::Announce { seconds: 1 }).await;
    let site =
        Site::start(&[service("k", &[(upstream.addr, Cond::Ready)]), ingress("k", "k.example.com", "k", &[])]).await;
    let c = client();
    assert_eq!(get(&c, site.addr(), "k.example.com", "/").await.0, StatusCode::OK);
    assert_eq!(get(&c, site.addr(), "k.example.com", "/").await.0, StatusCode::OK);
    let base = upstream.connections.load(Ordering::Relaxed);
    assert_eq!(get(&c, site.addr(), "k.example.com", "/").await.0, StatusCode::OK);
    assert_eq!(upstream.connections.load(Ordering::Relaxed), base, "reused at once");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(get(&c, site.addr(), "k.example.com", "/").await.0, StatusCode::OK);
    assert_eq!(upstream.connections.load(Ordering::Relaxed), base + 1, "the pooled connection had expired");
}

#[tokio::test]
async fn connection_close_answers_are_never_reused() {
    // Airflow 2's gunicorn says `Connection: close` on every answer. This upstream holds the
    // socket open for 2 s after saying so and never reads again: a reused connection would
    // hang for 2 s and then fail.
    let upstream = RawServer::start(KeepAlive::ConnectionClose).await;
    let site =
        Site::start(&[service("g", &[(upstream.addr, Cond::Ready)]), ingress("g", "g.example.com", "g", &[])]).await;
    let c = client();
    let started = Instant::now();
    for _ in 0..20 {
        let (status, _, body) = get(&c, site.addr(), "g.example.com", "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
    let took = started.elapsed();
    eprintln!("connection: close: 20 requests in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(upstream.connections.load(Ordering::Relaxed), 20, "one connection per request");
}

/// Runs `n` GETs over `lanes` concurrent clients; returns the hits of each backend.
async fn spread(site: &Site, host: &'static str, lanes: usize, n: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..lanes {
        let (addr, next) = (site.addr(), next.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                assert_eq!(get(&c, addr, host, "/").await.0, StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_keeps_a_slow_endpoint_lightly_loaded() {
    let fast1 = Backend::start("fast1").await;
    let fast2 = Backend::start("fast2").await;
    let slow = Backend::start("slow").await;
    slow.set_delay(Duration::from_millis(100));
    let svc = service("app", &ready(&[fast1.addr, fast2.addr, slow.addr]));
    let site = Site::start(&[
        svc,
        ingress("p2c", "p2c.example.com", "app", &[]),
        ingress("rr", "rr.example.com", "app", &[("lintel.dev/load-balance", "round-robin")]),
    ])
    .await;
    let started = Instant::now();
    spread(&site, "p2c.example.com", 8, 600).await;
    let p2c_time = started.elapsed();
    let p2c = [fast1.hits(), fast2.hits(), slow.hits()];
    let started = Instant::now();
    spread(&site, "rr.example.com", 8, 600).await;
    let rr_time = started.elapsed();
    let rr = [fast1.hits() - p2c[0], fast2.hits() - p2c[1], slow.hits() - p2c[2]];
    let share = |h: [usize; 3]| h[2] as f64 / h.iter().sum::<usize>() as f64;
    eprintln!(
        "P2C: fast/fast/slow = {p2c:?} (slow {:.1} %) in {p2c_time:?}; round robin: {rr:?} (slow {:.1} %) in {rr_time:?}",
        share(p2c) * 100.0,
        share(rr) * 100.0
    );
    assert!(share(p2c) < 0.12, "P2C sent {:.1} % to the slow endpoint", share(p2c) * 100.0);
    assert!(share(rr) > 0.30, "round robin takes turns");
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let b = Backend::start("ws").await;
    let site = Site::start(&[service("ws", &ready(&[b.addr])), ingress("ws", "ws.example.com", "ws", &[])]).await;
    let stream = tokio::net::TcpStream::connect(site.addr()).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("ws://ws.example.com/ws", stream).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    use tokio_tungstenite::tungstenite::Message;
    for i in 0..10 {
        let text = format!("hello {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    let big = vec![7u8; 300_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed.into_data().as_ref(), big.as_slice());
    ws.close(None).await.unwrap();
}

/// A WebSocket upgrade after a plain `GET` on the same connection: the own HTTP/1.1 server
/// answers the `GET`, then hands the connection to hyper for the upgrade.
#[tokio::test]
async fn websocket_upgrade_after_a_get_on_the_same_connection() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let b = Backend::start("ws").await;
    let site = Site::start(&[service("ws", &ready(&[b.addr])), ingress("ws", "ws.example.com", "ws", &[])]).await;
    let mut stream = tokio::net::TcpStream::connect(site.addr()).await.unwrap();
    stream.write_all(b"GET /before HTTP/1.1\r\nHost: ws.example.com\r\n\r\n").await.unwrap();
    // Read exactly that answer (nothing else is sent until the next request).
    let mut reader = tokio::io::BufReader::new(&mut stream);
    let mut length = 0;
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    assert!(reader.buffer().is_empty());
    drop(reader);
    let (mut ws, response) = tokio_tungstenite::client_async("ws://ws.example.com/ws", stream).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("after a get")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, Message::text("after a get"));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_quiet_websocket_is_closed_after_the_idle_timeout() {
    let b = Backend::start("ws").await;
    let site = Site::start(&[
        service("ws", &ready(&[b.addr])),
        ingress("ws", "ws.example.com", "ws", &[("lintel.dev/idle-timeout", "300ms")]),
    ])
    .await;
    let stream = tokio::net::TcpStream::connect(site.addr()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://ws.example.com/ws", stream).await.unwrap();
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed, not hung");
    let took = started.elapsed().as_secs_f64();
    eprintln!("quiet WebSocket closed after {took:.3} s (idle timeout 0.3 s): {end:?}");
    assert!(!matches!(end, Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))));
    // The proxy's clock starts when it sets the tunnel up, a moment before this client has
    // read the 101: the lower bound allows for that, and still catches an early close.
    assert!((0.25..3.0).contains(&took), "{took}");
}

fn health_annotations() -> Vec<(&'static str, &'static str)> {
    vec![
        ("lintel.dev/health-check-path", "/health"),
        ("lintel.dev/health-check-interval", "100ms"),
        ("lintel.dev/health-check-timeout", "1s"),
        ("lintel.dev/health-check-healthy-threshold", "2"),
        ("lintel.dev/health-check-unhealthy-threshold", "2"),
        ("lintel.dev/health-check-expect-json", "metadatabase.status=healthy"),
    ]
}

async fn names(c: &HttpClient, site: &Site, host: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (status, _, body) = get(c, site.addr(), host, "/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        out.push(body);
    }
    out
}

#[tokio::test]
async fn health_checks_take_an_endpoint_out_and_bring_it_back() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let site = Site::start(&[
        service("app", &ready(&[a.addr, b.addr])),
        ingress("app", "app.example.com", "app", &health_annotations()),
    ])
    .await;
    let c = client();
    assert!(names(&c, &site, "app.example.com", 20).await.contains(&"b".to_owned()));

    // The body says unhealthy while the status stays 200, as Airflow's does.
    b.set_healthy(false);
    let flipped = Instant::now();
    eventually("b leaves the rotation", Duration::from_secs(3), || async {
        names(&c, &site, "app.example.com", 10).await.iter().all(|n| n == "a")
    })
    .await;
    eprintln!("unhealthy endpoint out after {:?}", flipped.elapsed());
    assert!(names(&c, &site, "app.example.com", 50).await.iter().all(|n| n == "a"));

    // Every endpoint unhealthy: fail open, traffic still flows to all.
    a.set_healthy(false);
    eventually("both serve again (fail open)", Duration::from_secs(3), || async {
        let seen = names(&c, &site, "app.example.com", 20).await;
        seen.contains(&"a".to_owned()) && seen.contains(&"b".to_owned())
    })
    .await;

    a.set_healthy(true);
    b.set_healthy(true);
    eventually("b is back", Duration::from_secs(3), || async {
        names(&c, &site, "app.example.com", 20).await.contains(&"b".to_owned())
    })
    .await;
}

#[tokio::test]
async fn one_checker_per_endpoint_that_stops_with_the_endpoint() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let docs = |eps: &[std::net::SocketAddr]| {
        vec![
            service("app", &ready(eps)),
            ingress("one", "one.example.com", "app", &health_annotations()),
            ingress("two", "two.example.com", "app", &health_annotations()),
        ]
    };
    let site = Site::start(&docs(&[a.addr, b.addr])).await;
    let (a0, b0) = (a.health_hits(), b.health_hits());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (a1, b1) = (a.health_hits() - a0, b.health_hits() - b0);
    eprintln!("health probes in 1 s at a 100 ms interval, two Ingresses: a {a1}, b {b1}");
    // Two checkers per endpoint would probe ~20 times.
    assert!((5..=13).contains(&a1) && (5..=13).contains(&b1), "one checker each: a {a1}, b {b1}");

    site.rewrite(&docs(&[a.addr]));
    site.wait_endpoints("app", &[&a]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = b.health_hits();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.health_hits(), stopped, "the removed endpoint's checker stopped");
    assert!(a.health_hits() > a0 + a1, "the kept endpoint is still checked");
}

#[tokio::test]
async fn a_failed_connect_is_retried_on_another_endpoint_with_the_body() {
    // An address where connects are refused for the whole test.
    let refusing = support::RefusingPort::new();
    let dead = refusing.addr;
    let live = Backend::start("live").await;
    let site = Site::start(&[
        service("app", &ready(&[dead, live.addr])),
        ingress("app", "app.example.com", "app", &[("lintel.dev/load-balance", "round-robin")]),
    ])
    .await;
    let c = client();
    for i in 0..10 {
        let body = format!("payload {i}").repeat(1000);
        let req = Request::post(format!("http://{}/count-body", site.addr()))
            .header("host", "app.example.com")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let (status, _, answer) = send(&c, req).await;
        assert_eq!((status, answer), (StatusCode::OK, format!("live {}", body.len())));
    }
    assert_eq!(live.hits(), 10);
    let (_, _, metrics) = get(&c, site.proxy.admin_addr, "localhost", "/metrics").await;
    let retries =
        support::scrape::value(&metrics, "lintel_upstream_retries_total", &[("service", "app"), ("reason", "connect")]);
    assert!(retries.is_some_and(|n| n >= 1.0), "{retries:?}");
}
