//! What the Kubernetes tests share besides the API server: upstreams that answer with their
//! name, Lintel started against the API server, plain HTTP requests, bounded waiting.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lintel::config::Config;
use lintel::run::Running;
use tokio::net::TcpListener;

use super::apiserver::ApiServer;

/// An upstream on 127.0.0.1:0 answering every request with `name`.
pub async fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(name.as_bytes()))))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Lintel with its API source pointed at `server`, authenticated as `token`.
pub async fn start_lintel(server: &ApiServer, dir: &Path, token: &str, edit: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        https_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        kubeconfig: Some(server.kubeconfig(dir, token)),
        election_namespace: Some("lintel".to_owned()),
        grace_period: Duration::from_secs(1),
        shutdown_delay: Duration::ZERO,
        ..Config::default()
    };
    edit(&mut config);
    logs();
    lintel::run::start(&config).await.unwrap()
}

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// GET `path` on `addr` with `Host: host`; the status and body.
pub async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (StatusCode, String) {
    let req = Request::get(format!("http://{addr}{path}")).header("host", host).body(Empty::new()).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await.unwrap().unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Polls `check` every 10 ms until it is true; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
