//! Rewriting a request for the upstream and a response for the client: hop-by-hop headers
//! removed, `X-Forwarded-*` and `X-Real-IP` set (client-sent ones replaced, never trusted),
//! `Host` passed through unchanged.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};

use super::body::RequestBody;
use super::client_addr::Origin;
use crate::upstream::Endpoint;

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

/// Turns the client's request into the upstream's. `host` is the client's `Host` (or
/// `:authority`) exactly as sent; `path`, when set, replaces the path (normalised).
pub fn upstream_request(
    req: Request<RequestBody>,
    path: Option<&str>,
    endpoint: &Endpoint,
    client: ClientSide,
    host: &HeaderValue,
) -> Result<Request<RequestBody>, http::Error> {
    let (mut parts, body) = req.into_parts();
    let path = match (path, parts.uri.query()) {
        (Some(p), Some(q)) => http::uri::PathAndQuery::try_from(format!("{p}?{q}"))?,
        (Some(p), None) => http::uri::PathAndQuery::try_from(p)?,
        (None, _) => parts.uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    };
    parts.uri = Uri::builder().scheme("http").authority(endpoint.authority.clone()).path_and_query(path).build()?;
    parts.version = Version::HTTP_11;
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    if !headers.contains_key(header::HOST) {
        // HTTP/2 clients send `:authority` only; HTTP/1.1 upstreams need it as `Host`.
        headers.insert(header::HOST, host.clone());
    }
    set_forwarded(headers, client, host);
    Ok(Request::from_parts(parts, body))
}

/// Strips hop-by-hop headers from the upstream's response; everything else passes untouched.
pub fn client_response<B>(mut response: Response<B>) -> Response<B> {
    remove_hop_by_hop(response.headers_mut());
    // The client's protocol is the listener's business, not the upstream's (an HTTP/1.0
    // upstream must not turn the answer into HTTP/1.0).
    *response.version_mut() = Version::default();
    response
}

fn set_forwarded(headers: &mut HeaderMap, client: ClientSide, host: &HeaderValue) {
    let address = client.address.to_string();
    // Earlier hops are kept for the record (joined, as several headers mean one list).
    let mut forwarded_for = String::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(v) = value.to_str() {
            let v = v.trim();
            if !v.is_empty() {
                forwarded_for.push_str(v);
                forwarded_for.push_str(", ");
            }
        }
    }
    forwarded_for.push_str(&address);
    headers.remove(&X_FORWARDED_FOR);
    if let Ok(v) = HeaderValue::try_from(forwarded_for) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if let Ok(v) = HeaderValue::try_from(address) {
        headers.insert(X_REAL_IP, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.scheme));
    headers.insert(X_FORWARDED_HOST, host.clone());
    headers.insert(X_FORWARDED_PORT, forwarded_port(host, client.scheme));
    headers.remove(X_FORWARDED_PREFIX);
    headers.remove(header::FORWARDED);
}

/// The client-facing port: the one in `Host`, else the scheme's default. Never our listen
/// port, which the client never saw (Airflow 2 compares it with the Referer).
fn forwarded_port(host: &HeaderValue, scheme: &str) -> HeaderValue {
    let default = || HeaderValue::from_static(if scheme == "https" { "443" } else { "80" });
    let Ok(host) = host.to_str() else { return default() };
    let port = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[i + 1..],
        _ => return default(),
    };
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        HeaderValue::from_str(port).unwrap_or_else(|_| default())
    } else {
        default()
    }
}

/// Removes `Connection`, the headers it lists, and the fixed hop-by-hop set.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, header::TE, header::TRAILER, header::TRANSFER_ENCODING, header::UPGRADE]
    {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_port_comes_from_host_or_scheme() {
        let port = |h: &'static str, s| forwarded_port(&HeaderValue::from_static(h), s);
        assert_eq!(port("a.example.com:8080", "http"), "8080");
        assert_eq!(port("a.example.com", "http"), "80");
        assert_eq!(port("a.example.com", "https"), "443");
        assert_eq!(port("[::1]", "https"), "443");
        assert_eq!(port("[::1]:9443", "https"), "9443");
        assert_eq!(port("a.example.com:x", "http"), "80");
    }

    #[test]
    fn connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
