//! Lintel's own HTTP/1.1 server (plain keep-alive GET and HEAD) against hyper's: the same
//! scripted connections, pipelined and mixed with requests it hands over to hyper, must get
//! the same answers from both; and it keeps hyper's conduct on idle connections, slow heads
//! and clients that go away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lintel::config::{Config, Http1Server};
use lintel::run::Running;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Site {
    _dir: tempfile::TempDir,
    _upstream: Upstream,
    proxy: Running,
}

async fn site(server: Http1Server, tweak: impl FnOnce(&mut Config)) -> Site {
    let upstream = Upstream::start("up").await;
    site_to(server, upstream.addr, tweak, Some(upstream)).await
}

async fn site_to(
    server: Http1Server,
    to: SocketAddr,
    tweak: impl FnOnce(&mut Config),
    upstream: Option<Upstream>,
) -> Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("class.yaml"), CLASS_YAML).unwrap();
    std::fs::write(dir.path().join("svc.yaml"), service_yaml("up", &[to])).unwrap();
    std::fs::write(dir.path().join("ing.yaml"), ingress_yaml("a", "a.test", &[("/", "Prefix", "up")])).unwrap();
    let proxy = start_proxy(dir.path(), |config| {
        config.http1_server = server;
        tweak(config);
    })
    .await;
    let upstream = upstream.unwrap_or_else(|| panic!("an upstream is needed to wait for the routes"));
    let addr = proxy.http_addr;
    eventually("the route is served", Duration::from_secs(10), || async move {
        status_of(&raw(addr, None, b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await) == 200
    })
    .await;
    Site { _dir: dir, _upstream: upstream, proxy }
}

/// One answer as a client reads it: status line, headers (names lowercased, `date` left out,
/// in name order with duplicates kept in order), and the body with its framing undone.
#[derive(Debug, PartialEq)]
struct Answer {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Request ids are random; they appear in headers and in echoed bodies.
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() == 32 { "<id>" } else { &run });
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Splits a connection's bytes into answers; `heads[i]` says the i-th request was HEAD.
fn answers(mut bytes: &[u8], heads: &[bool]) -> Vec<Answer> {
    let mut all = Vec::new();
    while !bytes.is_empty() {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        bytes = &bytes[end..];
        let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
        let status = lines.next().unwrap().to_owned();
        let mut headers: Vec<(String, String)> = lines
            .map(|l| {
                let (name, value) = l.split_once(':').unwrap();
                (name.to_ascii_lowercase(), without_ids(value.trim()))
            })
            .filter(|(name, _)| name != "date")
            .collect();
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let code: u16 = status.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = Vec::new();
        if heads.get(all.len()).copied().unwrap_or(false) || code == 204 || code == 304 {
        } else if find("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
                let size = usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).unwrap(), 16).unwrap();
                bytes = &bytes[line_end + 2..];
                body.extend_from_slice(&bytes[..size]);
                bytes = &bytes[size + 2..];
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = find("content-length") {
            let length: usize = length.parse().unwrap();
            body.extend_from_slice(&bytes[..length]);
            bytes = &bytes[length..];
        } else {
            body.extend_from_slice(bytes);
            bytes = &[];
        }
        all.push(Answer { status, headers, body: without_ids(&String::from_utf8_lossy(&body)) });
    }
    all
}

/// Writes `script` on one connection and reads until the proxy closes it.
async fn exchange(server: Http1Server, proxy: SocketAddr, script: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(proxy).await.unwrap();
    conn.write_all(script).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let shown: String = String::from_utf8_lossy(script).chars().take(200).collect();
    assert!(closed.is_ok(), "{server:?}: not closed after {shown:?}; read: {:?}", String::from_utf8_lossy(&answer));
    answer
}

const CLOSE: &str = "GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_answer_the_same_connections_alike() {
    let big = format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\n\r\n", "a".repeat(40_000));
    // (script, which requests are HEAD, the statuses expected)
    let scripts: Vec<(String, Vec<bool>, Vec<u16>)> = vec![
        (
            [
                "GET /x?y=1 HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n",
                "HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
                "GET /x HTTP/1.1\r\nHost: nope.test\r\n\r\n",
                "GET /a/../b HTTP/1.1\r\nHost: a.test\r\n\r\n",
                "GET /bytes/70000 HTTP/1.1\r\nHost: a.test\r\n\r\n",
                "GET /drip/3 HTTP/1.1\r\nHost: A.TEST:80\r\nConnection: keep-alive\r\n\r\n",
                "GET /x HTTP/1.1\r\n\r\n",
                "POST /count-body HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello",
                "GET /after-post HTTP/1.1\r\nHost: a.test\r\n\r\n",
                CLOSE,
            ]
            .concat(),
            vec![false, true],
            vec![200, 200, 404, 400, 200, 200, 400, 200, 200, 200],
        ),
        (
            ["GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n", "GET / HTTP/1.1\r\nHost: a.test\r\nBad Header\r\n\r\n"]
                .concat(),
            vec![],
            vec![200, 400],
        ),
        (
            [
                "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
                "GET http://a.test/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
                CLOSE,
            ]
            .concat(),
            vec![],
            vec![200, 200, 200],
        ),
        (big.clone(), vec![], vec![431]),
        ("GET /x HTTP/1.0\r\nHost: a.test\r\n\r\n".to_owned(), vec![], vec![200]),
        (
            "HEAD /x HTTP/1.1\r\nHost: nope.test\r\n\r\nHEAD /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
                .to_owned(),
            vec![true, true],
            vec![404, 200],
        ),
    ];
    let own = site(Http1Server::Lintel, |_| {}).await;
    let hyper = site(Http1Server::Hyper, |_| {}).await;
    for (script, heads, statuses) in &scripts {
        let from_own = answers(&exchange(Http1Server::Lintel, own.proxy.http_addr, script.as_bytes()).await, heads);
        let from_hyper = answers(&exchange(Http1Server::Hyper, hyper.proxy.http_addr, script.as_bytes()).await, heads);
        let got: Vec<u16> = from_own.iter().map(|a| a.status.split(' ').nth(1).unwrap().parse().unwrap()).collect();
        assert_eq!(&got, statuses, "{script:?}: {from_own:#?}");
        assert_eq!(from_own, from_hyper, "{script:?}");
    }
    // The header limit holds for a head that arrives whole behind another request, too
    // (hyper's holds only for heads it reads in pieces: it would forward this one).
    let script = ["GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n", big.as_str()].concat();
    let from_own = answers(&exchange(Http1Server::Lintel, own.proxy.http_addr, script.as_bytes()).await, &[]);
    let got: Vec<&str> = from_own.iter().map(|a| a.status.as_str()).collect();
    assert_eq!(got, ["HTTP/1.1 200 OK", "HTTP/1.1 431 Request Header Fields Too Large"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_timeout_closes_idle_and_slow_connections() {
    for server in [Http1Server::Lintel, Http1Server::Hyper] {
        let site = site(server, |c| c.timeouts.client_header = Duration::from_millis(300)).await;
        // Idle after an answer.
        let mut conn = TcpStream::connect(site.proxy.http_addr).await.unwrap();
        conn.write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{server:?}: an idle connection is closed"))
            .unwrap();
        assert_eq!(status_of(&String::from_utf8_lossy(&answer)), 200, "{server:?}");
        assert!(started.elapsed() >= Duration::from_millis(250), "{server:?}: closed too early");
        // A head that never ends gets no answer.
        let answer = raw(site.proxy.http_addr, None, b"GET /x HTTP/1.1\r\nHost: a.te").await;
        assert_eq!(answer, "", "{server:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_ends_the_upstream_request() {
    for server in [Http1Server::Lintel, Http1Server::Hyper] {
        // An upstream that reads a request, never answers, and reports when the proxy hangs up.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hung_up, mut on_hang_up) = tokio::sync::mpsc::unbounded_channel();
        let silent = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let hung_up = hung_up.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let mut seen = Vec::new();
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = hung_up.send(String::from_utf8_lossy(&seen).into_owned());
                });
            }
        });
        let guide = Upstream::start("guide").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("class.yaml"), CLASS_YAML).unwrap();
        std::fs::write(dir.path().join("guide.yaml"), service_yaml("guide", &[guide.addr])).unwrap();
        std::fs::write(dir.path().join("silent.yaml"), service_yaml("silent", &[addr])).unwrap();
        let routes = ingress_yaml("a", "a.test", &[("/", "Prefix", "guide"), ("/silent", "Prefix", "silent")]);
        std::fs::write(dir.path().join("ing.yaml"), routes).unwrap();
        let proxy = start_proxy(dir.path(), |c| c.http1_server = server).await;
        let proxy_addr = proxy.http_addr;
        eventually("the route is served", Duration::from_secs(10), || async move {
            status_of(&raw(proxy_addr, None, b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await)
                == 200
        })
        .await;
        let mut conn = TcpStream::connect(proxy_addr).await.unwrap();
        conn.write_all(b"GET /silent/wait HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
        // Only once the upstream has the request does the client leave.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(conn);
        let seen = tokio::time::timeout(Duration::from_secs(5), on_hang_up.recv())
            .await
            .unwrap_or_else(|_| panic!("{server:?}: the upstream request is not ended"))
            .unwrap();
        assert!(seen.starts_with("GET /silent/wait HTTP/1.1\r\n"), "{server:?}: {seen:?}");
        silent.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_lets_a_busy_one_finish() {
    let site = site(Http1Server::Lintel, |c| c.grace_period = Duration::from_secs(10)).await;
    let addr = site.proxy.http_addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    let mut first = vec![0; 4096];
    let n = idle.read(&mut first).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&first[..n])), 200);
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /slow/700 HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    site.proxy.shutdown();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), busy.read_to_end(&mut answer))
        .await
        .expect("the busy connection is closed after its answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("slow done"), "{answer}");
}
