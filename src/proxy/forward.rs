//! Rewriting a request for the upstream and a response for the client: hop-by-hop headers
//! removed, `X-Forwarded-*` and `X-Real-IP` set (client-sent ones replaced, never trusted),
//! `Host` passed through unchanged. `Upgrade` and `Connection: upgrade` are kept on upgrade
//! requests and on the `101` that accepts them.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};

use super::client_addr::Origin;
use crate::upstream::{AddedHeaders, AddedValue};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the proxy knows about the client side of one request.
#[derive(Debug, Clone, Copy)]
pub struct ClientSide {
    /// The client address (after PROXY protocol and trusted `X-Forwarded-For`).
    pub address: IpAddr,
    pub origin: Origin,
    /// `http` or `https`: the scheme the client used.
    pub scheme: &'static str,
}

/// Turns the client's request into the upstream's, with an origin-form URI (the endpoint is
/// chosen later, per attempt). `host` is the client's `Host` (or `:authority`) exactly as
/// sent; `path`, when set, replaces the path (normalised). Says whether the request asks to
/// switch protocols (an upgrade it keeps), so the caller need not look again.
pub fn upstream_request<B>(
    req: &mut Request<B>,
    path: Option<&str>,
    client: ClientSide,
    host: &HeaderValue,
    added: &mut AddedHeaders,
) -> Result<bool, http::Error> {
    let path = match (path, req.uri().query()) {
        (Some(p), Some(q)) => http::uri::PathAndQuery::try_from(format!("{p}?{q}"))?,
        (Some(p), None) => http::uri::PathAndQuery::try_from(p)?,
        // Moved out of the old URI, not cloned (a reference count up and down again).
        (None, _) => std::mem::take(req.uri_mut())
            .into_parts()
            .path_and_query
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    };
    *req.uri_mut() = Uri::from(path);
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    let present = Present::scan(headers);
    let upgrade =
        if present.has(CONNECTION_BIT) && present.has(UPGRADE_BIT) { upgrade_protocol(headers) } else { None };
    let present = remove_hop_by_hop(headers, present);
    let upgrades = upgrade.is_some();
    if let Some(protocol) = upgrade {
        // Upgrade requests (WebSocket) keep the two headers that ask for the switch.
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if !present.has(HOST_BIT) {
        // HTTP/2 clients send `:authority` only; HTTP/1.1 upstreams need it as `Host`.
        headers.insert(header::HOST, host.clone());
    }
    set_forwarded(headers, present, client, host, added);
    Ok(upgrades)
}

/// Strips hop-by-hop headers from the upstream's response; everything else passes untouched.
pub fn client_response<B>(mut response: Response<B>) -> Response<B> {
    let present = Present::scan(response.headers());
    let upgrade = (response.status() == http::StatusCode::SWITCHING_PROTOCOLS
        && present.has(CONNECTION_BIT)
        && present.has(UPGRADE_BIT))
    .then(|| upgrade_protocol(response.headers()))
    .flatten();
    remove_hop_by_hop(response.headers_mut(), present);
    if let Some(protocol) = upgrade {
        response.headers_mut().insert(header::UPGRADE, protocol);
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // The client's protocol is the listener's business, not the upstream's (an HTTP/1.0
    // upstream must not turn the answer into HTTP/1.0).
    *response.version_mut() = Version::default();
    response
}

/// Takes the client's own copies of the headers the proxy sets out of `headers` (they are never
/// trusted) and puts the proxy's into `added`: earlier `X-Forwarded-For` hops are kept, joined, with the
/// client address after them.
fn set_forwarded(
    headers: &mut HeaderMap,
    present: Present,
    client: ClientSide,
    host: &HeaderValue,
    added: &mut AddedHeaders,
) {
    // An address always makes a valid header value; one value serves both headers below.
    let address = address_value(client.address);
    // Earlier hops are kept for the record (joined, as several headers mean one list).
    let mut earlier = String::new();
    if present.has(X_FORWARDED_FOR_BIT) {
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = value.to_str() {
                let v = v.trim();
                if !v.is_empty() {
                    earlier.push_str(v);
                    earlier.push_str(", ");
                }
            }
        }
        headers.remove(&X_FORWARDED_FOR);
    }
    let forwarded_for = match &address {
        Some(address) if earlier.is_empty() => Some(address.clone()),
        Some(address) => {
            earlier.push_str(std::str::from_utf8(address.as_bytes()).unwrap_or_default());
            HeaderValue::try_from(earlier).ok().map(AddedValue::Header)
        }
        None => None,
    };
    // Removing costs a hash and a probe each; most requests carry none of these.
    for (bit, name) in [
        (X_REAL_IP_BIT, &X_REAL_IP),
        (X_FORWARDED_PROTO_BIT, &X_FORWARDED_PROTO),
        (X_FORWARDED_HOST_BIT, &X_FORWARDED_HOST),
        (X_FORWARDED_PORT_BIT, &X_FORWARDED_PORT),
        (X_FORWARDED_PREFIX_BIT, &X_FORWARDED_PREFIX),
        (FORWARDED_BIT, &header::FORWARDED),
    ] {
        if present.has(bit) {
            headers.remove(name);
        }
    }
    if let Some(v) = forwarded_for {
        added.push(X_FORWARDED_FOR, v);
    }
    if let Some(v) = address {
        added.push(X_REAL_IP, v);
    }
    added.push(X_FORWARDED_PROTO, HeaderValue::from_static(client.scheme));
    // Copied when short (nearly always), not shared: no reference count to take and drop.
    added.push(
        X_FORWARDED_HOST,
        AddedValue::inline(host.as_bytes()).unwrap_or_else(|| AddedValue::Header(host.clone())),
    );
    added.push(X_FORWARDED_PORT, forwarded_port(host, client.scheme));
}

/// An address as a header value, inline. IPv4 is written by hand: `Display` goes through the
/// formatting machinery, a measurable share of a proxied request's CPU.
fn address_value(address: IpAddr) -> Option<AddedValue> {
    let IpAddr::V4(v4) = address else {
        use std::io::Write;
        let mut text = [0u8; 46];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        write!(cursor, "{address}").ok()?;
        let len = usize::try_from(cursor.position()).ok()?;
        return AddedValue::inline(text.get(..len)?);
    };
    let mut out = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            out[len] = b'0' + d;
            len += 1;
        }
    }
    AddedValue::inline(out.get(..len)?)
}

/// The client-facing port: the one in `Host`, else the scheme's default. Never our listen
/// port, which the client never saw (Airflow 2 compares it with the Referer).
fn forwarded_port(host: &HeaderValue, scheme: &str) -> AddedValue {
    let default = || AddedValue::Header(HeaderValue::from_static(if scheme == "https" { "443" } else { "80" }));
    // A byte search: `str::rfind` with a char pattern costs several times more.
    let host = host.as_bytes();
    let port = match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => &host[i + 1..],
        _ => return default(),
    };
    if !port.is_empty() && port.iter().all(u8::is_ascii_digit) {
        AddedValue::inline(port).unwrap_or_else(default)
    } else {
        default()
    }
}

/// The fixed hop-by-hop set, plus `Connection` (which may list more). The bit of each name in
/// [`Present`] is its index here.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const CONNECTION_BIT: usize = 0;
const UPGRADE_BIT: usize = 6;
/// The other names the rewrites look for, after the hop-by-hop set (the scan matches them as
/// text; this list checks in the tests that the bits agree).
#[cfg(test)]
const REWRITTEN: [HeaderName; 8] = [
    header::HOST,
    X_FORWARDED_FOR,
    X_FORWARDED_PREFIX,
    header::FORWARDED,
    X_REAL_IP,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_FORWARDED_PORT,
];
const HOST_BIT: usize = 7;
const X_FORWARDED_FOR_BIT: usize = 8;
const X_FORWARDED_PREFIX_BIT: usize = 9;
const FORWARDED_BIT: usize = 10;
const X_REAL_IP_BIT: usize = 11;
const X_FORWARDED_PROTO_BIT: usize = 12;
const X_FORWARDED_HOST_BIT: usize = 13;
const X_FORWARDED_PORT_BIT: usize = 14;

/// Which of the names the rewrites care about a message carries, found in one pass over its
/// names: most requests carry none of them but `Host`, most responses only `Connection`, and
/// every probe or removal of an absent name would cost a hash and a lookup.
#[derive(Debug, Clone, Copy)]
struct Present(u16);

impl Present {
    fn scan(headers: &HeaderMap) -> Self {
        let mut bits = 0u16;
        for name in headers.keys() {
            // A `match` on the text: a length switch, then at most a compare or two, where
            // comparing with each name in turn cost eleven compares per header.
            let bit = match name.as_str() {
                "connection" => 0,
                "keep-alive" => 1,
                "proxy-connection" => 2,
                "te" => 3,
                "trailer" => 4,
                "transfer-encoding" => 5,
                "upgrade" => 6,
                "host" => 7,
                "x-forwarded-for" => 8,
                "x-forwarded-prefix" => 9,
                "forwarded" => 10,
                "x-real-ip" => 11,
                "x-forwarded-proto" => 12,
                "x-forwarded-host" => 13,
                "x-forwarded-port" => 14,
                _ => continue,
            };
            bits |= 1 << bit;
        }
        Self(bits)
    }

    fn has(self, bit: usize) -> bool {
        self.0 & (1 << bit) != 0
    }

    fn any_hop_by_hop(self) -> bool {
        self.0 & ((1 << HOP_BY_HOP.len()) - 1) != 0
    }
}

/// The `Upgrade` protocol of a message that asks to switch (`Connection: upgrade`). Never
/// `h2c`: an upstream speaking HTTP/2 directly with the client would bypass every rule here.
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(header::UPGRADE).filter(|_| asks)?;
    let h2c = protocol.to_str().map_or(true, |p| p.split(',').any(|t| t.trim().eq_ignore_ascii_case("h2c")));
    if h2c { None } else { Some(protocol.clone()) }
}

/// Removes `Connection`, the headers it lists, and the fixed hop-by-hop set (those of it that
/// `present` found). Returns what is present afterwards.
fn remove_hop_by_hop(headers: &mut HeaderMap, present: Present) -> Present {
    if !present.any_hop_by_hop() {
        return present;
    }
    if present.has(CONNECTION_BIT) {
        // Names listed in `Connection` go too. The usual tokens (`keep-alive`, `close`,
        // `upgrade`) are in the fixed set or name no header: no lookup for them.
        let mut listed: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            // `keep-alive` alone (nginx says it on every answer) needs no splitting.
            if value.as_bytes().eq_ignore_ascii_case(b"keep-alive") {
                continue;
            }
            for token in value.to_str().into_iter().flat_map(|v| v.split(',')) {
                let token = token.trim();
                if token.is_empty() || ["keep-alive", "close", "upgrade"].iter().any(|t| token.eq_ignore_ascii_case(t))
                {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    listed.push(name);
                }
            }
        }
        if !listed.is_empty() {
            // Rare: a listed name may be one of the others looked for (`Host` even).
            for name in listed {
                headers.remove(name);
            }
            for name in &HOP_BY_HOP {
                headers.remove(name);
            }
            return Present::scan(headers);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present.has(i) {
            headers.remove(name);
        }
    }
    Present(present.0 & !((1 << HOP_BY_HOP.len()) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_port_comes_from_host_or_scheme() {
        let port = |h: &'static str, s| forwarded_port(&HeaderValue::from_static(h), s).to_header_value();
        assert_eq!(port("a.example.com:8080", "http"), "8080");
        assert_eq!(port("a.example.com", "http"), "80");
        assert_eq!(port("a.example.com", "https"), "443");
        assert_eq!(port("[::1]", "https"), "443");
        assert_eq!(port("[::1]:9443", "https"), "9443");
        assert_eq!(port("a.example.com:x", "http"), "80");
    }

    #[test]
    fn addresses_are_written_as_display_does() {
        for a in ["0.0.0.0", "1.2.3.4", "10.20.30.40", "100.200.255.9", "255.255.255.255", "::1", "2001:db8::7"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(address_value(ip).unwrap().as_bytes(), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn forwarded_for_appends_the_client_and_real_ip_is_the_client() {
        let client = ClientSide { address: [192, 0, 2, 7].into(), origin: Origin::Socket, scheme: "http" };
        let host = HeaderValue::from_static("a.example.com:8080");
        let mut h = HeaderMap::new();
        let present = Present::scan(&h);
        let mut added = AddedHeaders::default();
        set_forwarded(&mut h, present, client, &host, &mut added);
        assert_eq!(added.get(&X_FORWARDED_FOR).unwrap(), "192.0.2.7");
        assert_eq!(added.get(&X_REAL_IP).unwrap(), "192.0.2.7");
        assert_eq!(added.get(&X_FORWARDED_PROTO).unwrap(), "http");
        assert_eq!(added.get(&X_FORWARDED_HOST).unwrap(), "a.example.com:8080");
        assert_eq!(added.get(&X_FORWARDED_PORT).unwrap(), "8080");
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(" 10.0.0.2 "));
        h.insert(X_FORWARDED_PREFIX, HeaderValue::from_static("/sneaky"));
        h.insert(header::FORWARDED, HeaderValue::from_static("for=10.9.9.9"));
        h.insert(X_REAL_IP, HeaderValue::from_static("10.9.9.9"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        h.insert(X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
        h.insert(X_FORWARDED_PORT, HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let present = Present::scan(&h);
        let mut added = AddedHeaders::default();
        set_forwarded(&mut h, present, client, &host, &mut added);
        assert_eq!(added.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.1, 10.0.0.2, 192.0.2.7");
        assert_eq!(added.get(&X_REAL_IP).unwrap(), "192.0.2.7");
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"], "every client-sent copy is dropped");
        added.insert_into(&mut h);
        assert_eq!(h.len(), 6);
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn upgrades_keep_their_headers_except_h2c() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_protocol(&h), Some(HeaderValue::from_static("websocket")));
        h.insert(header::UPGRADE, HeaderValue::from_static("H2C"));
        assert_eq!(upgrade_protocol(&h), None);
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_protocol(&h), None, "no Connection: upgrade, no switch");
    }

    #[test]
    fn connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let present = Present::scan(&h);
        let left = remove_hop_by_hop(&mut h, present);
        assert!(!left.any_hop_by_hop());
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));

        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive, TE, Upgrade"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let present = Present::scan(&h);
        let left = remove_hop_by_hop(&mut h, present);
        assert!(!left.any_hop_by_hop());
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn the_scan_finds_each_name_at_its_bit() {
        for (i, name) in HOP_BY_HOP.iter().chain(&REWRITTEN).enumerate() {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            h.insert("x-other", HeaderValue::from_static("y"));
            assert_eq!(Present::scan(&h).0, 1 << i, "{name}");
        }
    }

    #[test]
    fn a_name_listed_in_connection_is_gone_from_what_is_present() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.example.com"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Host"));
        let before = Present::scan(&h);
        assert!(before.has(HOST_BIT) && before.has(CONNECTION_BIT));
        let after = remove_hop_by_hop(&mut h, before);
        assert!(!after.has(HOST_BIT), "Host was listed, so it is added back from the request");
        assert!(h.is_empty());
    }
}
