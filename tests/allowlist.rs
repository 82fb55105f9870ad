//! Source allowlists end to end over raw TCP: the socket address, PROXY protocol v1/v2,
//! spoofed and trusted `X-Forwarded-For`, IPv6, deny lists, fail-closed and report modes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step fails the test")]

mod support;

use std::net::IpAddr;

use support::*;

struct Site {
    _dir: tempfile::TempDir,
    upstream: Upstream,
    proxy: lintel::run::Running,
}

/// `site.example.com` with `/` under `annotations`, and `/open` in a second Ingress with none.
async fn site(annotations: &[(&str, &str)], tweak: impl FnOnce(&mut lintel::config::Config)) -> Site {
    let upstream = Upstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = [
        CLASS_YAML.to_owned(),
        service_yaml("app", &[upstream.addr]),
        annotated_ingress_yaml("guarded", "site.example.com", &[("/", "Prefix", "app")], annotations),
        ingress_yaml("open", "site.example.com", &[("/open", "Prefix", "app")]),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("site.yaml"), yaml).unwrap();
    let proxy = start_proxy(dir.path(), tweak).await;
    Site { _dir: dir, upstream, proxy }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: site.example.com\r\nConnection: close\r\n\r\n";

fn get_with(extra: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: site.example.com\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn allowlist_admits_listed_addresses_and_refuses_others_before_the_upstream() {
    let s = site(&[("lintel.dev/allow-source-cidrs", "127.0.0.2/32, 10.0.0.0/8")], |_| {}).await;
    let refused = raw(s.proxy.http_addr, Some(ip("127.0.0.1")), GET).await;
    assert_eq!(status_of(&refused), 403, "{refused}");
    assert!(refused.ends_with("403 Forbidden: client address not allowed\n"), "{refused}");
    assert_eq!(s.upstream.hits(), 0, "nothing refused reaches the upstream");
    let admitted = raw(s.proxy.http_addr, Some(ip("127.0.0.2")), GET).await;
    assert_eq!(status_of(&admitted), 200, "{admitted}");
    assert!(admitted.contains("\"x-real-ip\":\"127.0.0.2\""), "{admitted}");
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn each_ingress_guards_only_its_own_paths_on_a_shared_host() {
    let s = site(&[("nginx.ingress.kubernetes.io/whitelist-source-range", "10.0.0.0/8")], |_| {}).await;
    assert_eq!(status_of(&raw(s.proxy.http_addr, None, GET).await), 403);
    let open = b"GET /open/x HTTP/1.1\r\nHost: site.example.com\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&raw(s.proxy.http_addr, None, open).await), 200);
}

#[tokio::test]
async fn denylist_refuses_listed_addresses() {
    let s = site(&[("nginx.ingress.kubernetes.io/denylist-source-range", "127.0.0.3")], |_| {}).await;
    assert_eq!(status_of(&raw(s.proxy.http_addr, Some(ip("127.0.0.3")), GET).await), 403);
    assert_eq!(status_of(&raw(s.proxy.http_addr, Some(ip("127.0.0.4")), GET).await), 200);
}

#[tokio::test]
async fn ipv6_clients_are_matched_against_ipv6_ranges() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let s =
        site(&[("alb.ingress.kubernetes.io/inbound-cidrs", "::1/128")], |c| c.http_addr = "[::1]:0".parse().unwrap())
            .await;
    assert_eq!(status_of(&raw(s.proxy.http_addr, None, GET).await), 200);
    let s = site(&[("alb.ingress.kubernetes.io/inbound-cidrs", "127.0.0.0/8, fd00::/8")], |c| {
        c.http_addr = "[::1]:0".parse().unwrap()
    })
    .await;
    assert_eq!(status_of(&raw(s.proxy.http_addr, None, GET).await), 403);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_not_believed() {
    let s = site(&[("lintel.dev/allow-source-cidrs", "10.0.0.0/8")], |_| {}).await;
    let answer = raw(s.proxy.http_addr, None, &get_with("X-Forwarded-For: 10.1.1.1\r\n")).await;
    assert_eq!(status_of(&answer), 403);
    let s = site(&[], |_| {}).await;
    let answer = raw(s.proxy.http_addr, None, &get_with("X-Forwarded-For: 10.1.1.1\r\n")).await;
    assert!(answer.contains("\"x-forwarded-for\":\"10.1.1.1, 127.0.0.1\""), "kept for the record, appended: {answer}");
    assert!(answer.contains("\"x-real-ip\":\"127.0.0.1\""), "{answer}");
}

#[tokio::test]
async fn trusted_proxies_hand_over_the_rightmost_untrusted_hop() {
    let trust =
        |c: &mut lintel::config::Config| c.client_address.trusted_proxies = Some("127.0.0.0/8".parse().unwrap());
    let s = site(&[("lintel.dev/allow-source-cidrs", "10.0.0.0/8")], trust).await;
    let answer = raw(s.proxy.http_addr, None, &get_with("X-Forwarded-For: 6.6.6.6, 10.1.1.1, 127.0.0.5\r\n")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.contains("\"x-real-ip\":\"10.1.1.1\""), "{answer}");
    assert!(answer.contains("\"x-forwarded-for\":\"6.6.6.6, 10.1.1.1, 127.0.0.5, 10.1.1.1\""), "{answer}");
    let answer = raw(s.proxy.http_addr, None, &get_with("X-Forwarded-For: 10.1.1.1, 6.6.6.6\r\n")).await;
    assert_eq!(status_of(&answer), 403, "the hop next to us is the untrusted 6.6.6.6");
}

fn v2_header(source: &str) -> Vec<u8> {
    let addresses =
        ppp::v2::IPv4::new(source.parse::<std::net::Ipv4Addr>().unwrap(), std::net::Ipv4Addr::LOCALHOST, 40000, 80);
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        addresses,
    )
    .build()
    .unwrap()
}

#[tokio::test]
async fn required_proxy_protocol_v1_and_v2_give_the_client_address() {
    let s = site(&[("lintel.dev/allow-source-cidrs", "10.0.0.0/8")], |c| c.client_address.proxy_protocol = true).await;
    let v1 = [b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 80\r\n".as_slice(), GET].concat();
    let answer = raw(s.proxy.http_addr, None, &v1).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.contains("\"x-real-ip\":\"10.9.8.7\""), "{answer}");
    let answer = raw(s.proxy.http_addr, None, &[v2_header("10.6.5.4"), GET.to_vec()].concat()).await;
    assert!(answer.contains("\"x-real-ip\":\"10.6.5.4\""), "{answer}");
    let answer = raw(s.proxy.http_addr, None, &[v2_header("192.0.2.1"), GET.to_vec()].concat()).await;
    assert_eq!(status_of(&answer), 403);
    // No header, or a broken one: the connection is closed without an answer.
    assert_eq!(raw(s.proxy.http_addr, None, GET).await, "");
    assert_eq!(raw(s.proxy.http_addr, None, b"PROXY TCP4 nonsense\r\nGET / HTTP/1.1\r\n\r\n").await, "");
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn optional_proxy_protocol_is_believed_only_from_listed_peers() {
    let s = site(&[], |c| c.client_address.proxy_protocol_from = Some("127.0.0.1/32".parse().unwrap())).await;
    let v1 = [b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 80\r\n".as_slice(), GET].concat();
    let answer = raw(s.proxy.http_addr, Some(ip("127.0.0.1")), &v1).await;
    assert!(answer.contains("\"x-real-ip\":\"10.9.8.7\""), "{answer}");
    let answer = raw(s.proxy.http_addr, Some(ip("127.0.0.1")), GET).await;
    assert!(answer.contains("\"x-real-ip\":\"127.0.0.1\""), "no header is fine: {answer}");
    assert_eq!(raw(s.proxy.http_addr, Some(ip("127.0.0.9")), &v1).await, "", "a header from elsewhere is refused");
}

#[tokio::test]
async fn an_allowlist_that_does_not_parse_fails_closed_with_a_diagnostic() {
    let s = site(&[("lintel.dev/allow-source-cidrs", "10.0.0.0/8, office-vpn")], |_| {}).await;
    assert_eq!(status_of(&raw(s.proxy.http_addr, Some(ip("127.0.0.2")), GET).await), 403);
    let (_, _, routes) = get(&client(), s.proxy.admin_addr, "admin", "/routes").await;
    assert!(routes.contains("\\\"office-vpn\\\" is not an IP address or CIDR"), "{routes}");
    assert_eq!(s.upstream.hits(), 0);
}

#[tokio::test]
async fn report_mode_lets_refused_requests_through() {
    let s =
        site(&[("lintel.dev/allow-source-cidrs", "10.0.0.0/8"), ("lintel.dev/allow-source-mode", "report")], |_| {})
            .await;
    assert_eq!(status_of(&raw(s.proxy.http_addr, None, GET).await), 200);
}

#[tokio::test]
async fn the_default_allowlist_applies_where_an_ingress_sets_none() {
    let s = site(&[], |c| c.default_allow_source_cidrs = Some("10.0.0.0/8".parse().unwrap())).await;
    assert_eq!(status_of(&raw(s.proxy.http_addr, None, GET).await), 403);
    let open = b"GET /open HTTP/1.1\r\nHost: site.example.com\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&raw(s.proxy.http_addr, None, open).await), 403, "the other Ingress sets none either");
}
