//! Upstream servers for the upstream tests: a hyper backend that can be killed outright or
//! stopped gracefully, with a switchable JSON health endpoint and a WebSocket echo; and a
//! raw HTTP/1.1 server whose keep-alive behaviour (idle close, `Keep-Alive` announcement,
//! `Connection: close`) is set exactly.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type Body = BoxBody<Bytes, Infallible>;

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

/// What a backend counts and how it behaves; shared with its connection tasks.
#[derive(Default)]
pub struct State {
    /// Requests other than health probes.
    pub hits: AtomicUsize,
    pub health_hits: AtomicUsize,
    pub unhealthy: AtomicBool,
    /// Every answer waits this long first (ms).
    pub delay_ms: AtomicUsize,
}

/// A hyper HTTP/1.1 backend on 127.0.0.1. Routes:
/// - `/health`: `{"metadatabase":{"status":"healthy"|"unhealthy"}}`, always 200;
/// - `/slow/MS`: answers after MS ms; `/stall`: one chunk, then nothing;
/// - `/count-body`: the length of the request body; `/ws`: WebSocket echo;
/// - anything else: the backend's name.
pub struct Backend {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let (s, token) = (state.clone(), stop.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok((stream, _)) => stream, Err(_) => return },
                    () = token.cancelled() => break,
                };
                let (s, token) = (s.clone(), token.clone());
                conns.spawn(async move {
                    let service = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(answer(name, &s, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        () = token.cancelled() => conn.as_mut().graceful_shutdown(),
                    }
                    let _ = conn.await;
                });
            }
            // Graceful stop: the listener is closed; connections finish what they have.
            drop(listener);
            while conns.join_next().await.is_some() {}
        });
        Self { addr, state, stop, tasks }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::Relaxed)
    }

    pub fn health_hits(&self) -> usize {
        self.state.health_hits.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.state.unhealthy.store(!healthy, Ordering::Relaxed);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(usize::try_from(delay.as_millis()).unwrap(), Ordering::Relaxed);
    }

    /// A crash: the listener and every connection vanish at once.
    pub fn kill(mut self) {
        self.tasks.abort_all();
    }

    /// A graceful stop: no new connections, requests in flight finish, idle keep-alive
    /// connections are closed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn answer(name: &'static str, state: &State, mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/health" {
        state.health_hits.fetch_add(1, Ordering::Relaxed);
        let status = if state.unhealthy.load(Ordering::Relaxed) { "unhealthy" } else { "healthy" };
        return Response::new(full(format!(r#"{{"metadatabase":{{"status":"{status}"}}}}"#)));
    }
    state.hits.fetch_add(1, Ordering::Relaxed);
    let delay = state.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return Response::new(full("slow done"));
    }
    if path == "/stall" {
        let stream = futures_util::stream::unfold(0, |i| async move {
            if i > 0 {
                std::future::pending::<()>().await;
            }
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"first chunk\n"))), i + 1))
        });
        return Response::new(BodyExt::boxed(StreamBody::new(stream)));
    }
    if path == "/count-body" {
        let body = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(usize::MAX);
        return Response::new(full(format!("{name} {body}")));
    }
    if path == "/ws" {
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else { return status(StatusCode::BAD_REQUEST) };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let role = tokio_tungstenite::tungstenite::protocol::Role::Server;
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), role, None).await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_close() || ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", accept)
            .body(full(""))
            .unwrap();
    }
    Response::new(full(name))
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(""));
    *r.status_mut() = code;
    r
}

/// How the raw server treats a connection after answering.
#[derive(Debug, Clone, Copy)]
pub enum KeepAlive {
    /// Waits for the next request this long, then closes (gunicorn gevent: 2 s).
    CloseIdleAfter(Duration),
    /// As above, and says so in `Keep-Alive: timeout=N`.
    Announce { seconds: u64 },
    /// `Connection: close` on every answer (gunicorn sync workers); the socket is held open
    /// for a while, never read again.
    ConnectionClose,
}

/// A raw HTTP/1.1 server: reads a request head (and a `Content-Length` body), answers
/// `200 ok`, and treats the connection as `mode` says. Counts connections and requests.
pub struct RawServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    pub async fn start(mode: KeepAlive) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                conns.spawn(raw_connection(stream, mode, r.clone()));
            }
        });
        Self { addr, connections, requests, task }
    }
}

async fn raw_connection(mut stream: TcpStream, mode: KeepAlive, requests: Arc<AtomicUsize>) {
    let idle = match mode {
        KeepAlive::CloseIdleAfter(d) => d,
        KeepAlive::Announce { seconds } => Duration::from_secs(seconds),
        KeepAlive::ConnectionClose => Duration::from_secs(60),
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Read one request head (within the idle time when none has started) and its body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let read = if buf.is_empty() {
                match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
                    Ok(r) => r,
                    Err(_) => return, // idle: close, as gunicorn does
                }
            } else {
                stream.read(&mut chunk).await
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        requests.fetch_add(1, Ordering::Relaxed);
        let extra = match mode {
            KeepAlive::Announce { seconds } => format!("Keep-Alive: timeout={seconds}\r\n"),
            KeepAlive::ConnectionClose => "Connection: close\r\n".to_owned(),
            KeepAlive::CloseIdleAfter(_) => String::new(),
        };
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{extra}\r\nok");
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        if let KeepAlive::ConnectionClose = mode {
            // Never read again; close late. A client that reused this connection would wait.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return;
        }
    }
}
