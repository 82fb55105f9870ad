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
    // One pass over the headers rather than a hashed lookup for each of the three names:
    // most requests carry none of the framing ones.
    let (mut lengths, mut codings, mut hosts) = (0usize, 0usize, 0usize);
    let mut host = None;
    for (name, value) in headers {
        if *name == CONTENT_LENGTH {
            lengths += 1;
        } else if *name == TRANSFER_ENCODING {
            codings += 1;
        } else if *name == HOST {
            hosts += 1;
            host.get_or_insert(value);
        }
    }
    if lengths > 1 {
        return Err(ProxyError::BadRequest("more than one Content-Length"));
    }
    if codings > 0 {
        if lengths > 0 {
            return Err(ProxyError::BadRequest("both Content-Length and Transfer-Encoding"));
        }
        // HTTP/1.1 request bodies are chunked or not at all; anything else is a framing trick.
        let chunked = codings == 1
            && headers.get(TRANSFER_ENCODING).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
        if !chunked || req.version() != Version::HTTP_11 {
            return Err(ProxyError::BadRequest("unsupported Transfer-Encoding"));
        }
    }
    if hosts > 1 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &'static str)]) -> Request<()> {
        let mut req = Request::get("/").body(()).unwrap();
        for (name, value) in headers {
            req.headers_mut().append(*name, HeaderValue::from_static(value));
        }
        req
    }

    fn refusal(headers: &[(&'static str, &'static str)]) -> Option<&'static str> {
        match check(&request(headers)) {
            Err(ProxyError::BadRequest(why)) => Some(why),
            _ => None,
        }
    }

    #[test]
    fn ambiguous_framing_and_hosts_are_refused() {
        let h = ("host", "a.example.com");
        assert_eq!(
            refusal(&[h, ("content-length", "1"), ("content-length", "1")]),
            Some("more than one Content-Length")
        );
        assert_eq!(
            refusal(&[h, ("transfer-encoding", "chunked"), ("content-length", "1")]),
            Some("both Content-Length and Transfer-Encoding")
        );
        assert_eq!(refusal(&[h, ("transfer-encoding", "gzip")]), Some("unsupported Transfer-Encoding"));
        assert_eq!(
            refusal(&[h, ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]),
            Some("unsupported Transfer-Encoding")
        );
        assert_eq!(refusal(&[h, ("host", "b.example.com")]), Some("more than one Host"));
        assert_eq!(refusal(&[h, ("transfer-encoding", "Chunked"), ("content-type", "x")]), None);
        assert!(matches!(check(&request(&[])), Err(ProxyError::BadHost)));
    }

    #[test]
    fn the_host_is_the_first_and_only_host_header() {
        let req = request(&[("x-a", "1"), ("host", "a.example.com"), ("content-length", "0")]);
        assert_eq!(check(&req).unwrap(), "a.example.com");
    }
}
