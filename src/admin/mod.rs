//! The admin listener, apart from traffic: `/healthz`, `/readyz`, `/routes`, `/metrics`,
//! `/explain`.

mod query;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::live::SharedLive;
use crate::metrics::Metrics;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    pub live: SharedLive,
    pub ready: Arc<AtomicBool>,
    /// Set when shutdown starts: `/readyz` turns 503 at once.
    pub draining: CancellationToken,
    pub metrics: Arc<Metrics>,
}

pub async fn serve(listener: TcpListener, state: AdminState, shutdown: CancellationToken) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(%err, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(answer(&state, &req)) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn answer(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.draining.is_cancelled() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else if state.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no route table loaded yet\n")
            }
        }
        "/routes" => {
            let live = state.live.load_full();
            json(&crate::report::RoutesReport::new(&live.compiled))
        }
        "/metrics" => match scrape(state) {
            Ok(body) => {
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
                response
            }
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n"),
        },
        "/explain" => {
            let Some(question) = query::question(req.uri().query().unwrap_or_default()) else {
                return text(StatusCode::BAD_REQUEST, "usage: /explain?host=HOST&path=/PATH[&client=IP]\n");
            };
            let live = state.live.load_full();
            let report = crate::explain::explain(&live.compiled, Some(&live.groups), question);
            json(&report)
        }
        _ => text(StatusCode::NOT_FOUND, "not found (try /healthz, /readyz, /routes, /metrics, /explain)\n"),
    }
}

/// The metrics text, with endpoint health states read as of now.
fn scrape(state: &AdminState) -> Result<String, std::fmt::Error> {
    let live = state.live.load();
    state.metrics.refresh_endpoint_states(&live.compiled.table, &live.groups);
    state.metrics.encode()
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render the answer\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
