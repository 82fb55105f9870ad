//! Checks on a request before anything is sent upstream: framing that could smuggle a second
//! request past us (conflicting or duplicate lengths), and a target whose authority disagrees
//! with its `Host`. hyper's parser already refuses malformed syntax; these are the
//! well-formed-but-ambiguous cases it leaves to the application.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Version};

use super::error::ProxyError;

/// The client's host, as sent, once the request is known to be unambiguous.
pub fn check(req: &Request<impl Sized>) -> Result<HeaderValue, ProxyError> {
    let headers = req.headers();
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    if let (Some(_), Some(_)) = (lengths.next(), lengths.next()) {
        return Err(ProxyError::BadRequest("more than one Content-Length"));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(ProxyError::BadRequest("both Content-Length and Transfer-Encoding"));
        }
        // HTTP/1.1 request bodies are chunked or not at all; anything else is a framing trick.
        let chunked = headers.get_all(TRANSFER_ENCODING).iter().count() == 1
            && headers.get(TRANSFER_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
        if !chunked || req.version() != Version::HTTP_11 {
            return Err(ProxyError::BadRequest("unsupported Transfer-Encoding"));
        }
    }
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host"));
    }
    match (req.uri().authority(), host) {
        (Some(authority), Some(host)) if !same_authority(authority.as_str(), host) => {
            Err(ProxyError::BadRequest("request target and Host disagree"))
        }
        (Some(authority), _) => {
            if authority.as_str().contains('@') {
                return Err(ProxyError::BadRequest("request target carries user information"));
            }
            HeaderValue::from_str(authority.as_str()).map_err(|_| ProxyError::BadHost)
        }
        (None, Some(host)) => Ok(host.clone()),
        (None, None) => Err(ProxyError::BadHost),
    }
}

fn same_authority(authority: &str, host: &HeaderValue) -> bool {
    host.to_str().is_ok_and(|h| h.eq_ignore_ascii_case(authority))
}
