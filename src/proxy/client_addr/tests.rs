use proptest::prelude::*;

use super::*;

fn v2_header(src: std::net::Ipv4Addr) -> Vec<u8> {
    let addresses = ppp::v2::IPv4::new(src, std::net::Ipv4Addr::LOCALHOST, 40000, 443);
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        addresses,
    )
    .build()
    .unwrap()
}

#[test]
fn parses_v1_headers() {
    let data = b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
    let Parsed::Header { len, source } = parse_header(data).unwrap() else { panic!() };
    assert_eq!(&data[len..len + 3], b"GET");
    assert_eq!(source, Some("203.0.113.9".parse().unwrap()));
    let v6 = b"PROXY TCP6 2001:db8::7 ::1 51000 443\r\n";
    assert!(matches!(parse_header(v6).unwrap(), Parsed::Header { source: Some(IpAddr::V6(_)), .. }));
    assert_eq!(parse_header(b"PROXY UNKNOWN\r\n").unwrap(), Parsed::Header { len: 15, source: None });
}

#[test]
fn parses_v2_headers() {
    let mut data = v2_header("198.51.100.4".parse().unwrap());
    let header_len = data.len();
    data.extend_from_slice(b"GET /");
    assert_eq!(
        parse_header(&data).unwrap(),
        Parsed::Header { len: header_len, source: Some("198.51.100.4".parse().unwrap()) }
    );
}

#[test]
fn partial_headers_ask_for_more_and_other_data_is_not_a_header() {
    let v2 = v2_header("198.51.100.4".parse().unwrap());
    for cut in 1..v2.len() {
        assert_eq!(parse_header(&v2[..cut]).unwrap(), Parsed::Incomplete, "cut at {cut}");
    }
    assert_eq!(parse_header(b"PROXY TCP4 1.2.3.4").unwrap(), Parsed::Incomplete);
    assert_eq!(parse_header(b"PRO").unwrap(), Parsed::Incomplete);
    assert_eq!(parse_header(b"GET / HTTP/1.1\r\n").unwrap(), Parsed::NotAHeader);
    assert_eq!(parse_header(b"\x16\x03\x01").unwrap(), Parsed::NotAHeader);
    assert!(parse_header(b"PROXY TCP4 nonsense here 1 2\r\n").is_err());
}

fn headers(xff: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in xff {
        h.append("x-forwarded-for", v.parse().unwrap());
    }
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn forwarded_for_is_ignored_from_untrusted_peers() {
    let trusted: CidrList = "10.0.0.0/8".parse().unwrap();
    let (addr, origin) = forwarded_client(&headers(&["1.1.1.1"]), ip("203.0.113.5"), Origin::Socket, Some(&trusted));
    assert_eq!((addr, origin), (ip("203.0.113.5"), Origin::Socket));
    let (addr, _) = forwarded_client(&headers(&["1.1.1.1"]), ip("10.0.0.1"), Origin::Socket, None);
    assert_eq!(addr, ip("10.0.0.1"));
}

#[test]
fn forwarded_for_takes_the_rightmost_untrusted_hop() {
    let trusted: CidrList = "10.0.0.0/8, fd00::/8".parse().unwrap();
    let h = headers(&["6.6.6.6, 203.0.113.5", "10.1.1.1, fd00::3"]);
    let (addr, origin) = forwarded_client(&h, ip("10.0.0.9"), Origin::Socket, Some(&trusted));
    assert_eq!(addr, ip("203.0.113.5"), "the spoofable 6.6.6.6 is never reached");
    assert_eq!(origin, Origin::ForwardedFor { hop: 3, via: ip("10.0.0.9") });
}

#[test]
fn forwarded_for_stops_at_garbage_and_accepts_ports() {
    let trusted: CidrList = "10.0.0.0/8".parse().unwrap();
    let (addr, _) =
        forwarded_client(&headers(&["203.0.113.5, junk, 10.2.2.2"]), ip("10.0.0.9"), Origin::Socket, Some(&trusted));
    assert_eq!(addr, ip("10.2.2.2"));
    let (addr, _) =
        forwarded_client(&headers(&["[2001:db8::1]:443, 10.2.2.2:80"]), ip("10.0.0.9"), Origin::Socket, Some(&trusted));
    assert_eq!(addr, ip("2001:db8::1"));
    let (addr, _) = forwarded_client(&headers(&["10.3.3.3"]), ip("10.0.0.9"), Origin::Socket, Some(&trusted));
    assert_eq!(addr, ip("10.3.3.3"), "all hops trusted: the left-most");
}

proptest! {
    #[test]
    fn parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_header(&data);
    }

    #[test]
    fn v1_prefix_with_noise_never_panics(rest in ".{0,120}") {
        let _ = parse_header(format!("PROXY {rest}").as_bytes());
    }

    #[test]
    fn a_header_never_claims_more_bytes_than_it_has(data in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Parsed::Header { len, .. }) = parse_header(&data) {
            prop_assert!(len <= data.len());
        }
    }
}
