//! Writing a response for Lintel's own HTTP/1.1 server, framed the way hyper's server frames
//! it: `HEAD`, 204 and 304 carry no body; an empty body is `content-length: 0`; a body whose
//! length is known (the upstream's `Content-Length`, or the size of an answer of our own) is
//! sent with that length; anything else is chunked. A `date` is added when missing.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Method, StatusCode};
use http_body::Body;

use crate::proxy::ObservedBody;

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body at all (`HEAD`, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    Chunked,
}

/// Appends the response head to `out` and says how the body must follow.
pub(super) fn head(
    out: &mut Vec<u8>,
    method: &Method,
    parts: &http::response::Parts,
    body: &mut ObservedBody,
    close: bool,
) -> Framing {
    let status = parts.status;
    let head_request = *method == Method::HEAD;
    let no_content = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let end = body.is_end_stream();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut length = None;
    let mut dated = false;
    // The upstream's lines, as text (a plain exchange's); the map holds the proxy's own.
    if let Some(passed) = body.passed_headers() {
        passed.write_to(out, &parts.headers);
        dated = passed.dated();
        if head_request || !end {
            length = passed.length();
            if let Some(n) = length {
                length_line(out, n);
            }
        }
    }
    for (name, value) in &parts.headers {
        if *name == CONTENT_LENGTH {
            // One length only; an empty body of a non-HEAD answer says 0 below instead.
            let keep = length.is_none() && (head_request || !end);
            match parse_length(value.as_bytes()) {
                Some(n) if keep => length = Some(n),
                _ => continue,
            }
        } else if *name == TRANSFER_ENCODING || *name == CONNECTION {
            // Framing and the connection are this server's to say.
            continue;
        } else if *name == DATE {
            dated = true;
        }
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(id) = body.request_id() {
        line(out, b"x-request-id", id);
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    let framing = if head_request || no_content {
        if head_request && length.is_none() && !end {
            if let Some(n) = body.size_hint().exact().filter(|n| *n > 0) {
                length_line(out, n);
            }
        }
        Framing::None
    } else if end {
        out.extend_from_slice(b"content-length: 0\r\n");
        Framing::Length(0)
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if let Some(n) = body.size_hint().exact() {
        length_line(out, n);
        Framing::Length(n)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn length_line(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    digits(out, n, 10);
    out.extend_from_slice(b"\r\n");
}

/// Opens a chunk of `len` bytes (its size line).
pub(super) fn chunk_start(out: &mut Vec<u8>, len: usize) {
    digits(out, len as u64, 16);
    out.extend_from_slice(b"\r\n");
}

fn digits(out: &mut Vec<u8>, mut n: u64, base: u64) {
    let mut text = [0u8; 20];
    let mut at = text.len();
    loop {
        at -= 1;
        text[at] = b"0123456789abcdef"[(n % base) as usize];
        n /= base;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&text[at..]);
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

thread_local! {
    /// The formatted date, redone once a second (as hyper does).
    static DATE_CACHE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

fn http_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE_CACHE.with_borrow_mut(|(at, text)| {
        if *at != second || text.is_empty() {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_in_both_bases() {
        let mut out = Vec::new();
        for (n, base) in [(0, 10), (7, 10), (18_446_744_073_709_551_615, 10), (0, 16), (255, 16), (65536, 16)] {
            digits(&mut out, n, base);
            out.push(b' ');
        }
        assert_eq!(String::from_utf8(out).unwrap(), "0 7 18446744073709551615 0 ff 10000 ");
    }

    #[test]
    fn lengths_are_plain_digits() {
        assert_eq!(parse_length(b"12"), Some(12));
        for bad in [&b""[..], b"+1", b"1,1", b" 1", b"99999999999999999999"] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
