//! The plain exchange (bodiless GET and HEAD, read by the proxy itself) against an upstream
//! that answers scripted raw bytes: every body framing, answers cut into single bytes, interim
//! answers, invalid answers, and connections the upstream closes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer: its bytes, written `piece` bytes at a time, and what the upstream does
/// with the connection afterwards.
#[derive(Clone)]
struct Reply {
    bytes: Vec<u8>,
    piece: usize,
    after: After,
}

#[derive(Clone, Copy, PartialEq)]
enum After {
    Keep,
    Close,
    /// Keeps the connection idle this long, then closes it.
    CloseWhenIdleFor(Duration),
    /// Reads the next request and closes without answering.
    CloseOnNextRequest,
}

fn reply(text: &str) -> Reply {
    Reply { bytes: text.as_bytes().to_vec(), piece: usize::MAX, after: After::Keep }
}

impl Reply {
    fn bytewise(self) -> Self {
        Self { piece: 1, ..self }
    }

    fn then(self, after: After) -> Self {
        Self { after, ..self }
    }
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    heads: Mutex<Vec<String>>,
    accepted: AtomicUsize,
}

/// A raw upstream: reads request heads and answers from the script, in order.
async fn scripted(replies: Vec<Reply>) -> (SocketAddr, Arc<Script>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(Script { replies: Mutex::new(replies.into()), ..Script::default() });
    let shared = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, shared.clone()));
        }
    });
    (addr, script)
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn serve(mut stream: TcpStream, script: Arc<Script>) {
    stream.set_nodelay(true).unwrap();
    loop {
        let Some(head) = read_head(&mut stream).await else { return };
        script.heads.lock().unwrap().push(head);
        let Some(reply) = script.replies.lock().unwrap().pop_front() else { return };
        for piece in reply.bytes.chunks(reply.piece.min(reply.bytes.len().max(1))) {
            if stream.write_all(piece).await.is_err() {
                return;
            }
            if reply.piece == 1 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        match reply.after {
            After::Keep => {}
            After::Close => return,
            After::CloseWhenIdleFor(idle) => {
                tokio::time::sleep(idle).await;
                return;
            }
            After::CloseOnNextRequest => {
                if let Some(head) = read_head(&mut stream).await {
                    script.heads.lock().unwrap().push(head);
                }
                return;
            }
        }
    }
}

struct Site {
    _dir: tempfile::TempDir,
    proxy: lintel::run::Running,
    script: Arc<Script>,
}

async fn site(replies: Vec<Reply>) -> Site {
    let (addr, script) = scripted(replies).await;
    let dir = tempfile::tempdir().unwrap();
    let manifests = [
        CLASS_YAML.to_owned(),
        service_yaml("raw", &[addr]),
        ingress_yaml("raw", "raw.example.com", &[("/", "Prefix", "raw")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("raw.yaml"), manifests).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    Site { _dir: dir, proxy, script }
}

/// A request through the proxy: status, headers and body, or the error that cut it.
async fn request(
    client: &HttpClient,
    site: &Site,
    method: Method,
    path: &str,
) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", site.proxy.http_addr))
        .header("host", "raw.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response =
        tokio::time::timeout(Duration::from_secs(5), client.request(req)).await.unwrap().map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .unwrap()
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

#[tokio::test]
async fn chunked_answers_cut_into_single_bytes_arrive_whole_and_keep_the_connection() {
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let s = site(vec![
        reply(chunked).bytewise(),
        reply(chunked),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").bytewise(),
    ])
    .await;
    let c = client();
    for expected in ["hello world", "hello world", "ok"] {
        let (status, headers, body) = request(&c, &s, Method::GET, "/a").await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, expected);
        assert!(!headers.contains_key("x-trailer"), "trailers are not headers");
    }
    assert_eq!(s.script.accepted.load(Ordering::SeqCst), 1, "one upstream connection carried all three");
    let heads = s.script.heads.lock().unwrap().clone();
    assert!(heads[0].starts_with("GET /a HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(heads[0].contains("host: raw.example.com\r\n") && heads[0].contains("x-forwarded-for: 127.0.0.1\r\n"));
}

/// A small answer usually arrives whole with its head (the server copies its body straight
/// behind the head); a larger one, or one in pieces, is streamed: both whole, on one connection.
#[tokio::test]
async fn length_answers_whole_or_in_pieces_arrive_whole_and_keep_the_connection() {
    let big = "x".repeat(40_000);
    let s = site(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"),
        reply(&format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}", big.len())),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond").bytewise(),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"),
    ])
    .await;
    let c = client();
    for expected in ["first", &big, "second", "last"] {
        let (status, headers, body) = request(&c, &s, Method::GET, "/a").await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, expected.as_bytes());
        assert_eq!(headers["content-length"], expected.len().to_string());
    }
    assert_eq!(s.script.accepted.load(Ordering::SeqCst), 1, "one upstream connection carried all four");
}

#[tokio::test]
async fn a_length_beside_a_transfer_coding_is_not_passed_on() {
    let s = site(vec![
        reply(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
        ),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"),
    ])
    .await;
    let c = client();
    let (status, headers, body) = request(&c, &s, Method::GET, "/").await.unwrap();
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"hello world"[..]));
    assert_ne!(headers.get("content-length").map(|v| v.as_bytes()), Some(&b"3"[..]), "the overridden length");
    assert_eq!(request(&c, &s, Method::GET, "/").await.unwrap().2, "next");
    assert_eq!(s.script.accepted.load(Ordering::SeqCst), 2, "a connection that sent both is not kept");
}

#[tokio::test]
async fn the_upstreams_connection_headers_stay_between_proxy_and_upstream() {
    let s = site(vec![
        reply("HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nX-End: 1\r\nContent-Length: 1\r\n\r\na"),
        reply("HTTP/1.1 200 OK\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nContent-Length: 1\r\n\r\nb"),
        reply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nc"),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd"),
    ])
    .await;
    let c = client();
    for expected in ["a", "b", "c", "d"] {
        let (status, headers, body) = request(&c, &s, Method::GET, "/").await.unwrap();
        assert_eq!((status, body.as_ref()), (StatusCode::OK, expected.as_bytes()));
        for hop in ["connection", "x-hop", "keep-alive"] {
            assert!(!headers.contains_key(hop), "{hop} reached the client with {expected:?}: {headers:?}");
        }
        if expected == "a" {
            assert_eq!(headers["x-end"], "1", "end-to-end headers pass");
        }
    }
    assert_eq!(
        s.script.accepted.load(Ordering::SeqCst),
        2,
        "keep-alive (in any case, beside other options) keeps the connection, close ends it"
    );
}

#[tokio::test]
async fn an_answer_without_length_ends_when_the_upstream_closes() {
    let s = site(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end").bytewise().then(After::Close),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"),
    ])
    .await;
    let c = client();
    let (status, _, body) = request(&c, &s, Method::GET, "/").await.unwrap();
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"until the end"[..]));
    let (status, _, body) = request(&c, &s, Method::GET, "/").await.unwrap();
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"next"[..]));
    assert_eq!(s.script.accepted.load(Ordering::SeqCst), 2, "a close-delimited answer's connection is not kept");
}

#[tokio::test]
async fn head_204_and_304_carry_no_body_and_keep_the_connection() {
    let s = site(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        reply("HTTP/1.1 204 No Content\r\n\r\n"),
        reply("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n"),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"),
    ])
    .await;
    let c = client();
    let (status, headers, body) = request(&c, &s, Method::HEAD, "/").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "10", "HEAD keeps the length of what GET would send");
    assert!(body.is_empty());
    let (status, _, body) = request(&c, &s, Method::GET, "/").await.unwrap();
    assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
    let (status, headers, body) = request(&c, &s, Method::GET, "/").await.unwrap();
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_eq!(headers["etag"], "\"x\"");
    let (_, _, body) = request(&c, &s, Method::GET, "/").await.unwrap();
    assert_eq!(body, "last");
    assert_eq!(s.script.accepted.load(Ordering::SeqCst), 1);
    assert!(s.script.heads.lock().unwrap()[0].starts_with("HEAD / HTTP/1.1\r\n"));
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let s = site(vec![reply(
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
    .bytewise()])
    .await;
    let (status, headers, body) = request(&client(), &s, Method::GET, "/").await.unwrap();
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"ok"[..]));
    assert!(!headers.contains_key("link"), "the interim answer's headers stay with it");
}

#[tokio::test]
async fn invalid_answers_get_502_and_their_connection_is_dropped() {
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let huge_header = format!("X-Big: {}\r\n", "a".repeat(70 * 1024));
    let bad = [
        "NOT HTTP AT ALL\r\n\r\n".to_owned(),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok".to_owned(),
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".to_owned(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n".to_owned(),
        format!("HTTP/1.1 200 OK\r\n{many_headers}\r\n"),
        format!("HTTP/1.1 200 OK\r\n{huge_header}\r\n"),
    ];
    let s = site(bad.iter().map(|b| reply(b)).collect()).await;
    let c = client();
    for b in &bad {
        let (status, _, body) = request(&c, &s, Method::GET, "/").await.unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{:.60}", b);
        assert!(String::from_utf8_lossy(&body).contains("invalid response"), "{body:?}");
    }
    assert_eq!(s.script.accepted.load(Ordering::SeqCst), bad.len(), "no broken connection is reused");
}

#[tokio::test]
async fn a_body_cut_short_cuts_the_client_answer() {
    let s = site(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b").then(After::Close),
        reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").then(After::Close),
        reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").then(After::Close),
    ])
    .await;
    let c = client();
    for _ in 0..3 {
        let outcome = request(&c, &s, Method::GET, "/").await;
        assert!(outcome.is_err(), "a cut body must not look complete: {outcome:?}");
    }
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_used() {
    let s = site(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
            .then(After::CloseWhenIdleFor(Duration::from_millis(50))),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"),
    ])
    .await;
    let c = client();
    assert_eq!(request(&c, &s, Method::GET, "/").await.unwrap().2, "first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(request(&c, &s, Method::GET, "/").await.unwrap().2, "second");
    let retries: u64 = s.proxy.live.load().groups.iter().flat_map(|g| g.endpoints()).map(|e| e.stale_retries()).sum();
    assert_eq!(retries, 0, "the closed connection was noticed before use, not retried after");
    assert_eq!(s.script.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_pooled_connection_closed_under_the_request_is_retried_on_a_fresh_one() {
    let s = site(vec![
        reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst").then(After::CloseOnNextRequest),
        reply("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"),
    ])
    .await;
    let c = client();
    assert_eq!(request(&c, &s, Method::GET, "/").await.unwrap().2, "first");
    let (status, _, body) = request(&c, &s, Method::GET, "/").await.unwrap();
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"second"[..]));
    let retries: u64 = s.proxy.live.load().groups.iter().flat_map(|g| g.endpoints()).map(|e| e.stale_retries()).sum();
    assert_eq!(retries, 1);
    assert_eq!(s.script.heads.lock().unwrap().len(), 3, "sent twice: once on the closed connection, once fresh");
}

/// The answer's head as the client gets it from Lintel's own HTTP/1.1 server, raw.
async fn raw_head(site: &Site, method: &str) -> String {
    let mut conn = TcpStream::connect(site.proxy.http_addr).await.unwrap();
    let req = format!("{method} / HTTP/1.1\r\nHost: raw.example.com\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), read_head(&mut conn)).await.unwrap().unwrap()
}

#[tokio::test]
async fn header_lines_pass_as_sent_minus_the_hop_by_hop_ones_on_both_servers() {
    let head = "HTTP/1.1 200 OK\r\nServer: Scripted\r\nX-Secret: 1\r\nDate: Mon, 07 Dec 2026 11:00:00 GMT\r\n\
                Connection: keep-alive, X-Secret\r\nKeep-Alive: timeout=30\r\nX-Request-ID: upstream-id\r\n\
                Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 4\r\nProxy-Connection: keep-alive\r\n\
                Upgrade: h2c\r\nX-Empty:\r\n\r\n";
    let s = site(vec![reply(&format!("{head}body")), reply(head), reply(&format!("{head}body"))]).await;
    // Lintel's own server writes them as text, names lowercased as hyper's server would.
    let got = raw_head(&s, "GET").await;
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nserver: Scripted\r\ndate: Mon, 07 Dec 2026 11:00:00 GMT\r\n\
         x-request-id: upstream-id\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-empty: \r\ncontent-length: 4\r\n\r\n",
        "the upstream's own X-Request-ID is kept, once"
    );
    // A HEAD answer keeps the length a GET would have had.
    assert!(raw_head(&s, "HEAD").await.ends_with("content-length: 4\r\n\r\n"));
    // hyper (HTTP/2 here) gets the same lines in its map.
    let tcp = TcpStream::connect(s.proxy.http_addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://raw.example.com/").body(Full::new(Bytes::new())).unwrap();
    let response = sender.send_request(req).await.unwrap();
    let headers = response.headers();
    assert_eq!(headers["server"], "Scripted");
    assert_eq!(headers.get_all("set-cookie").iter().collect::<Vec<_>>(), ["a=1", "b=2"]);
    assert_eq!(headers.get_all("x-request-id").iter().collect::<Vec<_>>(), ["upstream-id"]);
    assert_eq!(headers["content-length"], "4");
    for gone in ["x-secret", "connection", "keep-alive", "proxy-connection", "upgrade"] {
        assert!(!headers.contains_key(gone), "{gone}: {headers:?}");
    }
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "body");
}
