//! Reading a request head for Lintel's own HTTP/1.1 server. Only the plain case is taken:
//! `GET` or `HEAD`, HTTP/1.1, an origin-form target, no body framing, no upgrade, no `Expect`,
//! no `Connection` other than `keep-alive`. Everything else, malformed heads included, is
//! declined and left to hyper with the bytes read so far, so the answers to odd or hostile
//! requests (400, 414, 431, h2c, WebSocket) stay hyper's.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use smallvec::SmallVec;

use crate::proxy::ClientBody;

/// Header lines read at most; a request with more is declined (hyper applies the limit).
const MAX_HEADERS: usize = 128;

#[expect(clippy::large_enum_variant, reason = "one per request, moved once; a box would cost an allocation")]
#[derive(Debug)]
pub(super) enum Parsed {
    /// A whole head, taken off the front of the buffer.
    Request(Request<ClientBody>),
    /// The head is not complete yet.
    Partial,
    /// Not the plain case; the buffer is as it was.
    Decline,
}

/// Where a head's parts sit in the buffer, read before the buffer is cut.
#[derive(Default)]
struct Layout {
    method: Method,
    len: usize,
    path: (usize, usize),
    /// Inline for the usual handful of headers: no allocation per request.
    headers: SmallVec<[(HeaderName, usize, usize); 16]>,
}

/// Parses the head at the front of `buf`. Heads longer than `max_bytes` or with more than
/// `max_headers` lines are declined, so hyper answers them (431) under its own limits.
pub(super) fn parse(buf: &mut BytesMut, max_headers: usize, max_bytes: usize) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    // Filled in place and drained, never moved: with its inline header list it is most of a
    // kilobyte, and each move of it was a copy.
    let mut layout = Layout::default();
    match fill(&mut layout, buf, max_headers.min(MAX_HEADERS)) {
        Ok(true) if layout.len <= max_bytes => {}
        Ok(true) => return Parsed::Decline,
        Ok(false) => return Parsed::Partial,
        Err(Declined) => return Parsed::Decline,
    }
    let head = buf.split_to(layout.len).freeze();
    match build(&head, &mut layout) {
        Some(req) => Parsed::Request(req),
        None => {
            // Rare (a target `Uri` refuses): put the head back for hyper.
            let mut back = BytesMut::with_capacity(head.len() + buf.len());
            back.extend_from_slice(&head);
            back.extend_from_slice(buf);
            *buf = back;
            Parsed::Decline
        }
    }
}

struct Declined;

/// Reads the head at the front of `buf` into `layout`: `Ok(false)` when it is not whole yet.
fn fill(layout: &mut Layout, buf: &[u8], max_headers: usize) -> Result<bool, Declined> {
    // Uninitialised: filling the slots on every request would cost more than the parse.
    let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_request_with_uninit_headers(&mut parsed, buf, &mut lines[..max_headers]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(false),
        Err(_) => return Err(Declined),
    };
    layout.method = match parsed.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Err(Declined),
    };
    let path = parsed.path.unwrap_or_default();
    if parsed.version != Some(1) || !path.starts_with('/') {
        return Err(Declined);
    }
    let base = buf.as_ptr() as usize;
    let offsets = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start, start + s.len())
    };
    for line in parsed.headers.iter() {
        let name = crate::header_name::parse(line.name.as_bytes()).map_err(|_| Declined)?;
        if name == CONTENT_LENGTH
            || name == TRANSFER_ENCODING
            || name == UPGRADE
            || name == EXPECT
            || (name == CONNECTION && !line.value.eq_ignore_ascii_case(b"keep-alive"))
        {
            return Err(Declined);
        }
        let (start, end) = offsets(line.value);
        layout.headers.push((name, start, end));
    }
    layout.len = len;
    layout.path = offsets(path.as_bytes());
    Ok(true)
}

/// The request, its target and header values sharing the head's bytes.
fn build(head: &Bytes, layout: &mut Layout) -> Option<Request<ClientBody>> {
    let uri = Uri::from_maybe_shared(head.slice(layout.path.0..layout.path.1)).ok()?;
    // Room for the `X-Request-ID` the proxy adds, so the map does not grow for it.
    let mut headers = crate::header_maps::take(layout.headers.len() + 1);
    for (name, start, end) in layout.headers.drain(..) {
        headers.append(name, HeaderValue::from_maybe_shared(head.slice(start..end)).ok()?);
    }
    let mut req = Request::new(None);
    *req.method_mut() = std::mem::take(&mut layout.method);
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(text);
        (parse(&mut buf, 100, 1000), buf)
    }

    #[test]
    fn a_plain_get_is_taken_and_the_rest_of_the_buffer_kept() {
        let (parsed, rest) =
            parse_str("GET /a/b?c=d HTTP/1.1\r\nHost: x.test\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET / HTTP/1.1\r\n");
        let Parsed::Request(req) = parsed else { panic!("not taken: {parsed:?}") };
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "/a/b?c=d");
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "x.test");
        assert_eq!(req.headers().get_all("x-two").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert!(req.body().is_none());
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn a_partial_head_waits() {
        let (parsed, rest) = parse_str("HEAD / HTTP/1.1\r\nHost: x");
        assert!(matches!(parsed, Parsed::Partial));
        assert_eq!(&rest[..], b"HEAD / HTTP/1.1\r\nHost: x");
        assert!(matches!(parse_str("").0, Parsed::Partial));
    }

    #[test]
    fn anything_but_the_plain_case_is_left_to_hyper_untouched() {
        for text in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
            "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nFolded: a\r\n b\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let (parsed, rest) = parse_str(text);
            assert!(matches!(parsed, Parsed::Decline), "{text:?} was {parsed:?}");
            assert_eq!(&rest[..], text.as_bytes(), "{text:?} must reach hyper whole");
        }
    }

    #[test]
    fn keep_alive_is_the_one_connection_option_taken() {
        let (parsed, _) = parse_str("GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(matches!(parsed, Parsed::Request(_)));
    }

    #[test]
    fn more_header_lines_than_allowed_are_declined() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..5 {
            text.push_str(&format!("h{i}: v\r\n"));
        }
        text.push_str("\r\n");
        let mut buf = BytesMut::from(text.as_str());
        assert!(matches!(parse(&mut buf, 4, 1000), Parsed::Decline));
        assert!(matches!(parse(&mut buf, 5, 1000), Parsed::Request(_)));
    }

    #[test]
    fn a_head_longer_than_allowed_is_declined_even_when_whole() {
        let text = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut buf = BytesMut::from(text);
        assert!(matches!(parse(&mut buf, 100, text.len() - 1), Parsed::Decline));
        assert_eq!(&buf[..], text.as_bytes());
        assert!(matches!(parse(&mut buf, 100, text.len()), Parsed::Request(_)));
    }
}
