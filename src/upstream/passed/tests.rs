use super::*;

fn read(lines: &[(&'static str, &'static str)]) -> (PassedHeaders, Seen) {
    let mut passed = PassedHeaders::default();
    let seen = passed.read(lines.iter().map(|(name, value)| (name.as_bytes(), value.as_bytes())));
    (passed, seen)
}

fn text(passed: &PassedHeaders) -> String {
    String::from_utf8(passed.text.clone()).unwrap()
}

#[test]
fn hop_by_hop_and_framing_lines_are_read_not_passed() {
    let (passed, seen) = read(&[
        ("Server", "nginx"),
        ("Date", "Mon, 07 Dec 2026 11:00:00 GMT"),
        ("Content-Length", "12"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "x-sum"),
        ("Upgrade", "websocket"),
        ("Set-Cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]);
    assert_eq!(
        text(&passed),
        "server: nginx\r\ndate: Mon, 07 Dec 2026 11:00:00 GMT\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n"
    );
    assert!(passed.dated());
    assert_eq!(passed.length(), Some(12));
    assert_eq!(seen.content_length, Some(Ok(12)));
    assert_eq!(seen.keep_alive_timeout, Some(5));
    assert!(!seen.close && !seen.transfer_encoding);
    let lines: Vec<_> = passed.lines().collect();
    assert_eq!(lines[2], (&b"set-cookie"[..], &b"a=1"[..]));
    assert!(passed.has("server") && !passed.has("content-length") && !passed.has("x-request-id"));
}

#[test]
fn lengths_must_agree_and_only_plain_digits_are_written_again() {
    let length = |lines| read(lines).1.content_length;
    assert_eq!(length(&[("content-length", "5, 5")]), Some(Ok(5)));
    assert_eq!(length(&[("content-length", "5"), ("Content-Length", "5")]), Some(Ok(5)));
    assert_eq!(length(&[("content-length", "5, 6")]), Some(Err(())));
    assert_eq!(length(&[("content-length", "5"), ("content-length", "6")]), Some(Err(())));
    assert_eq!(length(&[("content-length", "+5")]), Some(Err(())));
    assert_eq!(length(&[("content-length", "")]), Some(Err(())));
    assert_eq!(length(&[("content-length", "99999999999999999999")]), Some(Err(())));
    assert_eq!(length(&[]), None);
    assert_eq!(read(&[("content-length", "5, 5")]).0.length(), None, "the server writes its own");
    assert_eq!(read(&[("content-length", "x"), ("content-length", "7")]).0.length(), Some(7));
}

#[test]
fn transfer_codings_and_close_are_seen() {
    let (_, seen) = read(&[("Transfer-Encoding", "gzip, Chunked"), ("Connection", "Keep-Alive, close")]);
    assert!(seen.transfer_encoding && seen.chunked && seen.close);
    let (_, seen) = read(&[("transfer-encoding", "chunked"), ("transfer-encoding", "gzip")]);
    assert!(seen.transfer_encoding && !seen.chunked, "the last coding decides");
}

#[test]
fn names_listed_in_connection_are_dropped() {
    let (passed, seen) = read(&[
        ("X-Secret", "1"),
        ("Date", "Mon, 07 Dec 2026 11:00:00 GMT"),
        ("Connection", "close, x-secret, DATE, Content-Length"),
        ("Content-Length", "3"),
        ("X-Kept", "2"),
    ]);
    assert!(seen.close);
    assert_eq!(text(&passed), "x-kept: 2\r\n");
    assert!(!passed.dated(), "a listed Date is not the client's");
    assert_eq!(passed.length(), None);
    assert_eq!(seen.content_length, Some(Ok(3)), "framing still follows it");
}

#[test]
fn the_proxys_own_headers_win_over_passed_lines() {
    let (passed, _) = read(&[("Server", "nginx"), ("Strict-Transport-Security", "max-age=1"), ("Vary", "a")]);
    let mut out = Vec::new();
    passed.write_to(&mut out, &HeaderMap::new());
    assert_eq!(out, b"server: nginx\r\nstrict-transport-security: max-age=1\r\nvary: a\r\n");
    let mut set = HeaderMap::new();
    set.insert("x-request-id", HeaderValue::from_static("r"));
    out.clear();
    passed.write_to(&mut out, &set);
    assert_eq!(out, b"server: nginx\r\nstrict-transport-security: max-age=1\r\nvary: a\r\n");
    set.insert(http::header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=2"));
    out.clear();
    passed.write_to(&mut out, &set);
    assert_eq!(out, b"server: nginx\r\nvary: a\r\n");
}

#[test]
fn moved_into_a_map_the_lines_come_first_and_the_map_wins() {
    let (mut passed, _) = read(&[
        ("Server", "nginx"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Request-ID", "upstream"),
        ("Content-Length", "4"),
    ]);
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", HeaderValue::from_static("proxy"));
    headers.append("x-many", HeaderValue::from_static("1"));
    headers.append("x-many", HeaderValue::from_static("2"));
    passed.move_into(&mut headers, true);
    let all: Vec<_> = headers.iter().map(|(n, v)| format!("{n}={}", v.to_str().unwrap())).collect();
    assert_eq!(
        all,
        [
            "server=nginx",
            "set-cookie=a=1",
            "set-cookie=b=2",
            "content-length=4",
            "x-request-id=proxy",
            "x-many=1",
            "x-many=2"
        ]
    );
    assert!(passed.lines().next().is_none() && passed.length().is_none(), "nothing is left to write twice");
}

#[test]
fn lines_as_they_came_are_written_the_proxys_way() {
    let head =
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nX-A:tight\r\nX-B:\t spaced \t\r\nX-Bare: lf\nX-Empty:\r\nX-Sp: \r\n\r\n";
    let mut passed = PassedHeaders::default();
    let mut seen = Seen::default();
    passed.begin();
    let parsed = super::super::response_head::parse(head, 100, |line| passed.take(&mut seen, line)).unwrap();
    passed.end();
    assert!(matches!(parsed, super::super::response_head::Parsed::Complete { len, .. } if len == head.len()));
    assert_eq!(text(&passed), "server: nginx\r\nx-a: tight\r\nx-b: spaced\r\nx-bare: lf\r\nx-empty: \r\nx-sp: \r\n");
    let names: Vec<_> = passed.lines().map(|(name, _)| name.to_vec()).collect();
    assert_eq!(names, [&b"server"[..], b"x-a", b"x-b", b"x-bare", b"x-empty", b"x-sp"]);
}
