//! `X-Request-ID`: kept when the client sent a sane one, generated otherwise (32 hex digits,
//! as ingress-nginx's `$req_id`), passed upstream and returned to the client.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id kept; longer ones are replaced.
const MAX_LEN: usize = 128;

/// Makes sure `headers` carries exactly one usable request id, and returns it.
pub fn ensure(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&X_REQUEST_ID)
        && is_sane(id)
        && headers.get_all(&X_REQUEST_ID).iter().count() == 1
    {
        return id.clone();
    }
    let id = generate();
    headers.insert(X_REQUEST_ID, id.clone());
    id
}

fn is_sane(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// 128 random bits as 32 lower-case hex digits.
pub fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut out = [0u8; 32];
    for byte in out.iter_mut().rev() {
        *byte = HEX.get((n & 0xf) as usize).copied().unwrap_or(b'0');
        n >>= 4;
    }
    // Owned in place: one allocation, and the clones for the request and the answer share it
    // (`from_bytes` copies into a buffer that its first clone copies again).
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(out)).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_sane_client_id() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ensure(&mut h), "abc-123");
    }

    #[test]
    fn generates_when_absent_or_unusable() {
        let mut h = HeaderMap::new();
        let id = ensure(&mut h);
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(h[&X_REQUEST_ID], id);
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(ensure(&mut h), "has space");
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, HeaderValue::from_static("a"));
        h.append(X_REQUEST_ID, HeaderValue::from_static("b"));
        ensure(&mut h);
        assert_eq!(h.get_all(&X_REQUEST_ID).iter().count(), 1);
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate(), generate());
    }
}
