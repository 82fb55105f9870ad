//! Shared pieces for the end-to-end tests: real upstream servers, a proxy started in-process
//! on loopback ports from :0, manifests written to a temporary directory, real HTTP clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lintel::config::Config;
use lintel::run::Running;
use tokio::net::TcpListener;

pub mod scrape;

/// A real HTTP/1.1 upstream on 127.0.0.1. It answers:
/// - `/slow/MS`: waits MS milliseconds, then answers;
/// - `/bytes/N`: streams N bytes in 64 KiB chunks;
/// - `/drip/N`: N chunks, 100 ms apart;
/// - `/count-body`: reads the whole request body and answers its length;
/// - anything else: a JSON echo of the request (`name`, `method`, `uri`, `headers`).
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: &'static str,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(body: impl Into<Bytes>) -> UpBody {
    Full::new(body.into()).boxed()
}

async fn upstream_answer(name: &'static str, req: Request<Incoming>) -> Response<UpBody> {
    let path = req.uri().path().to_owned();
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return Response::new(full("slow done"));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let total: usize = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_util::stream::unfold(total, move |left| {
            let chunk = chunk.clone();
            async move {
                if left == 0 {
                    return None;
                }
                let n = left.min(chunk.len());
                Some((Ok::<_, Infallible>(Frame::data(chunk.slice(..n))), left - n))
            }
        });
        return Response::new(StreamBody::new(stream).boxed());
    }
    if let Some(n) = path.strip_prefix("/drip/") {
        let count: usize = n.parse().unwrap_or(0);
        let stream = futures_util::stream::unfold(0, move |i| async move {
            if i == count {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(format!("chunk {i}\n")))), i + 1))
        });
        return Response::new(StreamBody::new(stream).boxed());
    }
    if path == "/count-body" {
        let mut body = req.into_body();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => total += f.data_ref().map_or(0, |d| d.len()),
                Err(_) => return Response::builder().status(400).body(full("body error")).unwrap(),
            }
        }
        return Response::new(full(total.to_string()));
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .keys()
        .map(|k| {
            let values: Vec<_> =
                req.headers().get_all(k).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
            (k.as_str().to_owned(), serde_json::Value::from(values.join(" | ")))
        })
        .collect();
    let echo = serde_json::json!({"name": name, "method": req.method().as_str(), "uri": req.uri().to_string(), "headers": headers});
    let mut response = Response::new(full(echo.to_string()));
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    response.headers_mut().insert("set-cookie", "session=abc; Path=/".parse().unwrap());
    response
}

impl Upstream {
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        async move { Ok::<_, Infallible>(upstream_answer(name, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, name, hits, task }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

/// Writes a Service named `svc` in `default` with one port (80, named `http`) and an
/// EndpointSlice listing `endpoints` (all ready, all on the same port).
pub fn service_yaml(svc: &str, endpoints: &[SocketAddr]) -> String {
    let port = endpoints.first().map_or(1, |a| a.port());
    let addresses: String = endpoints.iter().map(|a| format!("  - addresses: [\"{}\"]\n", a.ip())).collect();
    let endpoints =
        if addresses.is_empty() { "endpoints: []\n".to_owned() } else { format!("endpoints:\n{addresses}") };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {svc}-1, labels: {{kubernetes.io/service-name: {svc}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: {port}}}]\n{endpoints}"
    )
}

/// An Ingress for `host` with `(path, pathType, service)` rules.
pub fn ingress_yaml(name: &str, host: &str, paths: &[(&str, &str, &str)]) -> String {
    let paths: String = paths
        .iter()
        .map(|(p, t, svc)| {
            format!("      - {{path: \"{p}\", pathType: {t}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n")
        })
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: lintel\n  rules:\n  - host: \"{host}\"\n    http:\n      paths:\n{paths}"
    )
}

pub const CLASS_YAML: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: lintel}\nspec: {controller: lintel.dev/ingress-controller}\n";

/// Writes a file atomically (write + rename), as editors and `kubectl` tooling do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A proxy on loopback ports from :0, serving `dir`.
pub async fn start_proxy(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        https_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        manifests: Some(dir.to_owned()),
        shutdown_delay: Duration::ZERO,
        ..Config::default()
    };
    tweak(&mut config);
    lintel::run::start(&config).await.expect("proxy starts")
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// Sends a GET with `host` to the proxy and returns status, headers and the whole body.
pub async fn get(
    client: &HttpClient,
    proxy: SocketAddr,
    host: &str,
    path: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::get(format!("http://{proxy}{path}")).header("host", host).body(Full::new(Bytes::new())).unwrap();
    send(client, req).await
}

pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    let response = client.request(req).await.expect("proxy answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("whole body").to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

/// The JSON echo of a request as the upstream saw it.
pub fn echo(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not an echo ({e}): {body}"))
}

/// Waits (bounded) until `check` holds, polling every 20 ms.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Sends raw bytes on a new connection (from `source` when given, any loopback address) and
/// returns everything the proxy answers until it closes (bounded by 5 s). Requests should
/// carry `Connection: close`.
pub async fn raw(proxy: SocketAddr, source: Option<std::net::IpAddr>, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket =
        if proxy.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }.unwrap();
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let mut conn = socket.connect(proxy).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code of a raw HTTP/1.x answer (0 when there is none).
pub fn status_of(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// An Ingress like [`ingress_yaml`] with annotations (`key: value` pairs).
pub fn annotated_ingress_yaml(
    name: &str,
    host: &str,
    paths: &[(&str, &str, &str)],
    annotations: &[(&str, &str)],
) -> String {
    let notes: String = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    ingress_yaml(name, host, paths).replacen(
        &format!("metadata: {{name: {name}}}\n"),
        &format!("metadata:\n  name: {name}\n  annotations:\n{notes}"),
        1,
    )
}

/// Peak resident memory of this process (KiB). A test that checks it runs in its own binary,
/// so the figure is its own.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A loopback port where a connect is refused, for as long as this value lives: the socket is
/// bound but never listens, so the kernel answers RST and no concurrently running test can be
/// handed the same port (a bound-then-closed port can be, which made connect tests flaky).
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl RefusingPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        Self { _socket: socket, addr }
    }
}

/// The `/metrics` text of a running proxy, scraped from its admin listener.
pub async fn scrape_metrics(running: &Running) -> String {
    let (status, _, body) = get(&client(), running.admin_addr, "localhost", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    body
}
