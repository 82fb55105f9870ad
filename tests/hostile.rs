//! A table of hostile requests, each with the answer it must get, sent over raw TCP. The
//! upstream counts what reaches it: nothing that was refused may.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use support::*;

/// What a case must get: a status, or the connection closed with no answer (0).
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// Whether the request (or its head) may reach the upstream.
    reaches: bool,
    /// Text the answer (for 200s, the upstream's echo of what it received) must not contain.
    absent: &'static [&'static str],
}

fn case(name: &'static str, request: impl Into<Vec<u8>>, status: u16) -> Case {
    Case { name, request: request.into(), status, reaches: status == 200, absent: &[] }
}

/// A request hyper normalises as RFC 9112 asks of an intermediary: forwarded with exactly one,
/// unambiguous framing (and, for CL+TE, the client connection closed after it).
fn normalised(name: &'static str, request: Vec<u8>, absent: &'static [&'static str]) -> Case {
    Case { absent, ..case(name, request, 200) }
}

/// A request with `head` lines between the request line and the blank line.
pub fn req(line: &str, head: &str) -> Vec<u8> {
    format!("{line}\r\nHost: h.example.com\r\n{head}Connection: close\r\n\r\n").into_bytes()
}

fn get(path: &str) -> Vec<u8> {
    req(&format!("GET {path} HTTP/1.1"), "")
}

fn cases() -> Vec<Case> {
    let big_header = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_uri = format!("/{}", "a".repeat(40 * 1024));
    vec![
        // Baselines: the table is only meaningful if good requests pass.
        case("plain GET", get("/"), 200),
        case(
            "POST with a body",
            req("POST /echo HTTP/1.1", "Content-Length: 5\r\n").into_iter().chain(*b"hello").collect::<Vec<u8>>(),
            200,
        ),
        case(
            "chunked POST",
            [req("POST /echo HTTP/1.1", "Transfer-Encoding: chunked\r\n"), b"5\r\nhello\r\n0\r\n\r\n".to_vec()]
                .concat(),
            200,
        ),
        case("absolute-form with the same authority", req("GET http://h.example.com/x HTTP/1.1", ""), 200),
        case(
            "transfer-encoding with spaces around chunked",
            [req("POST / HTTP/1.1", "Transfer-Encoding:  chunked \r\n"), b"0\r\n\r\n".to_vec()].concat(),
            200,
        ),
        case("guarded path from outside its allowlist", get("/admin"), 403),
        case("guarded path with a trailing slash", get("/admin/"), 403),
        // Request smuggling: ambiguous framing.
        normalised(
            "content-length and transfer-encoding",
            [req("POST / HTTP/1.1", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"), b"0\r\n\r\n".to_vec()]
                .concat(),
            &["\"content-length\""],
        ),
        normalised(
            "transfer-encoding and content-length",
            [req("POST / HTTP/1.1", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"), b"0\r\n\r\n".to_vec()]
                .concat(),
            &["\"content-length\""],
        ),
        normalised(
            "duplicate equal content-length",
            [req("POST / HTTP/1.1", "Content-Length: 3\r\nContent-Length: 3\r\n"), b"abc".to_vec()].concat(),
            &["3 | 3", "3, 3"],
        ),
        case(
            "pipelined request after a chunked body is routed on its own",
            [
                b"POST / HTTP/1.1\r\nHost: h.example.com\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h.example.com\r\nConnection: close\r\n\r\n".to_vec(),
            ]
            .concat(),
            200,
        ),
        case(
            "duplicate different content-length",
            [req("POST / HTTP/1.1", "Content-Length: 3\r\nContent-Length: 4\r\n"), b"abcd".to_vec()].concat(),
            400,
        ),
        case(
            "content-length list",
            [req("POST / HTTP/1.1", "Content-Length: 3, 3\r\n"), b"abc".to_vec()].concat(),
            400,
        ),
        case("negative content-length", req("POST / HTTP/1.1", "Content-Length: -1\r\n"), 400),
        case(
            "content-length with a plus sign",
            [req("POST / HTTP/1.1", "Content-Length: +3\r\n"), b"abc".to_vec()].concat(),
            400,
        ),
        case("content-length not a number", req("POST / HTTP/1.1", "Content-Length: abc\r\n"), 400),
        case("content-length in hex", req("POST / HTTP/1.1", "Content-Length: 0x3\r\n"), 400),
        case(
            "transfer-encoding chunked twice in one value",
            [req("POST / HTTP/1.1", "Transfer-Encoding: chunked, chunked\r\n"), b"0\r\n\r\n".to_vec()].concat(),
            400,
        ),
        case(
            "transfer-encoding gzip then chunked",
            [req("POST / HTTP/1.1", "Transfer-Encoding: gzip, chunked\r\n"), b"0\r\n\r\n".to_vec()].concat(),
            400,
        ),
        case(
            "transfer-encoding chunked then gzip",
            req("POST / HTTP/1.1", "Transfer-Encoding: chunked, gzip\r\n"),
            400,
        ),
        case("transfer-encoding xchunked", req("POST / HTTP/1.1", "Transfer-Encoding: xchunked\r\n"), 400),
        case(
            "two transfer-encoding headers",
            [
                req("POST / HTTP/1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"),
                b"0\r\n\r\n".to_vec(),
            ]
            .concat(),
            400,
        ),
        case(
            "transfer-encoding on HTTP/1.0",
            [req("POST / HTTP/1.0", "Transfer-Encoding: chunked\r\n"), b"0\r\n\r\n".to_vec()].concat(),
            400,
        ),
        case("obs-fold transfer-encoding", req("POST / HTTP/1.1", "Transfer-Encoding:\r\n chunked\r\n"), 400),
        case("obs-fold in any header", req("GET / HTTP/1.1", "X-Foo: a\r\n b\r\n"), 400),
        case("space before the colon", req("GET / HTTP/1.1", "Content-Length : 0\r\n"), 400),
        case("space in a header name", req("GET / HTTP/1.1", "X Foo: 1\r\n"), 400),
        case("invalid character in a header name", req("GET / HTTP/1.1", "X(Foo): 1\r\n"), 400),
        case("NUL in a header value", req("GET / HTTP/1.1", "X-Foo: a\0b\r\n"), 400),
        case("bare CR in a header value", req("GET / HTTP/1.1", "X-Foo: a\rb\r\n"), 400),
        case("empty header name", req("GET / HTTP/1.1", ": x\r\n"), 400),
        case(
            "h2c upgrade is not passed on",
            req(
                "GET / HTTP/1.1",
                "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n",
            ),
            200,
        ),
        // Hosts and targets.
        case("absolute-form with another authority", req("GET http://other.example.com/ HTTP/1.1", ""), 400),
        case("absolute-form authority for the guarded host", req("GET http://h.example.com/admin HTTP/1.1", ""), 403),
        case("absolute-form with user info", req("GET http://user@h.example.com/ HTTP/1.1", ""), 400),
        case("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(), 400),
        case("two Host headers", req("GET / HTTP/1.1", "Host: other.example.com\r\n"), 400),
        case(
            "Host with a path",
            b"GET / HTTP/1.1\r\nHost: h.example.com/admin\r\nConnection: close\r\n\r\n".to_vec(),
            400,
        ),
        case(
            "Host with user info",
            b"GET / HTTP/1.1\r\nHost: x@h.example.com\r\nConnection: close\r\n\r\n".to_vec(),
            400,
        ),
        case("empty Host", b"GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n".to_vec(), 400),
        case("Host that is only a port", b"GET / HTTP/1.1\r\nHost: :80\r\nConnection: close\r\n\r\n".to_vec(), 400),
        case(
            "CONNECT",
            b"CONNECT h.example.com:443 HTTP/1.1\r\nHost: h.example.com:443\r\nConnection: close\r\n\r\n".to_vec(),
            400,
        ),
        case("asterisk-form", req("OPTIONS * HTTP/1.1", ""), 400),
        // Path normalisation: no spelling reaches /admin past its allowlist.
        case("dot-dot into the guarded path", get("/public/../admin"), 400),
        case("encoded dot-dot", get("/%2e%2e/admin"), 400),
        case("mixed-case encoded dot-dot", get("/public/%2E./admin"), 400),
        case("single dot segment", get("/./admin"), 400),
        case("double slash", get("//admin"), 403),
        case("many slashes", get("///admin///x"), 403),
        case("path parameter", get("/admin;x=1"), 400),
        case("encoded unreserved letters", get("/%61dmin"), 403),
        case("encoded slash", get("/public%2f..%2fadmin"), 400),
        case("encoded slash after the guarded name", get("/admin%2fx"), 400),
        case("encoded backslash", get("/admin%5cx"), 400),
        case("raw backslash", get("/public\\..\\admin"), 400),
        case("encoded NUL", get("/admin%00"), 400),
        case("encoded CRLF", get("/x%0d%0aSet-Cookie:%20a"), 400),
        case("malformed escape", get("/%zz"), 400),
        case("truncated escape", get("/admin%2"), 400),
        case("different case is a different path", get("/ADMIN"), 200),
        // Sizes.
        case("header larger than the limit", req("GET / HTTP/1.1", &big_header), 431),
        case("more headers than the limit", req("GET / HTTP/1.1", &many_headers), 431),
        case("request target larger than the limit", get(&long_uri), 431),
        case(
            "declared body over the limit",
            [req("POST /upload HTTP/1.1", "Content-Length: 2048\r\n"), vec![b'x'; 2048]].concat(),
            413,
        ),
        // Malformed request lines.
        case("not HTTP at all", b"HELLO\r\n\r\n".to_vec(), 400),
        case("invalid method characters", b"G(T / HTTP/1.1\r\nHost: h.example.com\r\n\r\n".to_vec(), 400),
        case("HTTP/0.9", b"GET /\r\n".to_vec(), 400),
        case("unknown HTTP version", b"GET / HTTP/1.7\r\nHost: h.example.com\r\n\r\n".to_vec(), 400),
        case("HTTP/2 version on an HTTP/1 connection", b"GET / HTTP/2.0\r\nHost: h.example.com\r\n\r\n".to_vec(), 400),
        case("NUL in the request line", b"GET /\0 HTTP/1.1\r\nHost: h.example.com\r\n\r\n".to_vec(), 400),
        case("space in the request target", b"GET /a b HTTP/1.1\r\nHost: h.example.com\r\n\r\n".to_vec(), 400),
        case("only blank lines", b"\r\n\r\n".to_vec(), 0),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_answer_and_never_reach_the_upstream() {
    let upstream = Upstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("app", &[upstream.addr]),
        ingress_yaml("open", "h.example.com", &[("/", "Prefix", "app")]),
        annotated_ingress_yaml(
            "guarded",
            "h.example.com",
            &[("/admin", "Prefix", "app")],
            &[("lintel.dev/allow-source-cidrs", "10.0.0.0/8")],
        ),
        annotated_ingress_yaml(
            "upload",
            "h.example.com",
            &[("/upload", "Prefix", "app")],
            &[("lintel.dev/max-body-size", "1k")],
        ),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("h.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let before = upstream.hits();
        let answer = raw(proxy.http_addr, None, &c.request).await;
        let status = status_of(&answer);
        let reached = upstream.hits() - before;
        if status != c.status {
            failures.push(format!("{}: expected {}, got {status}: {:.200}", c.name, c.status, answer));
        } else if reached > 0 && !c.reaches {
            failures.push(format!("{}: answered {status} but reached the upstream", c.name));
        } else if c.name.starts_with("h2c") && answer.to_ascii_lowercase().contains("\"upgrade\"") {
            failures.push(format!("{}: the upgrade header reached the upstream", c.name));
        } else if let Some(found) = c.absent.iter().find(|a| answer.contains(*a)) {
            failures.push(format!("{}: {found} reached the upstream: {answer}", c.name));
        } else if c.name.starts_with("pipelined") && !answer.contains("403 Forbidden") {
            failures.push(format!("{}: the pipelined request was not refused on its own: {answer}", c.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_gets_413() {
    let upstream = Upstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("app", &[upstream.addr]),
        annotated_ingress_yaml(
            "upload",
            "h.example.com",
            &[("/", "Prefix", "app")],
            &[("nginx.ingress.kubernetes.io/proxy-body-size", "1k")],
        ),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("h.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    let body = format!("{chunk}{chunk}0\r\n\r\n");
    let request = [req("POST /count-body HTTP/1.1", "Transfer-Encoding: chunked\r\n"), body.into_bytes()].concat();
    let answer = raw(proxy.http_addr, None, &request).await;
    assert_eq!(status_of(&answer), 413, "{answer}");
    let small = [req("POST /count-body HTTP/1.1", "Transfer-Encoding: chunked\r\n"), b"3\r\nabc\r\n0\r\n\r\n".to_vec()]
        .concat();
    let answer = raw(proxy.http_addr, None, &small).await;
    assert!(answer.ends_with("\r\n\r\n3"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_slow_connections_do_not_stop_a_normal_client() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("app", &[upstream.addr]),
        ingress_yaml("open", "h.example.com", &[("/", "Prefix", "app")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("h.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), |_| {}).await;
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut conn = tokio::net::TcpStream::connect(proxy.http_addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: h.exa").await.unwrap();
        slow.push(conn);
    }
    let answer = raw(proxy.http_addr, None, &req("GET / HTTP/1.1", "")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(upstream.hits(), 1);
    drop(slow);
}
