//! `X-Request-ID`: kept when the client sent a sane one, generated otherwise (32 hex digits,
//! as ingress-nginx's `$req_id`), passed upstream and returned to the client.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::upstream::AddedValue;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id kept; longer ones are replaced.
const MAX_LEN: usize = 128;

/// The request's id: the client's, left in `headers`, when it sent exactly one usable one;
/// otherwise a new one (`true`), with whatever the client sent removed: the caller adds it
/// to the upstream request beside the map (see `AddedHeaders`), which costs no insert.
pub fn ensure(headers: &mut HeaderMap) -> (AddedValue, bool) {
    if let Some(id) = headers.get(&X_REQUEST_ID) {
        if is_sane(id) && headers.get_all(&X_REQUEST_ID).iter().count() == 1 {
            return (AddedValue::Header(id.clone()), false);
        }
        headers.remove(&X_REQUEST_ID);
    }
    (generate(), true)
}

fn is_sane(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// 128 random bits as 32 lower-case hex digits, inline (no allocation).
pub fn generate() -> AddedValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut out = [0u8; 32];
    for byte in out.iter_mut().rev() {
        *byte = HEX.get((n & 0xf) as usize).copied().unwrap_or(b'0');
        n >>= 4;
    }
    AddedValue::inline(&out).unwrap_or_else(|| AddedValue::Header(HeaderValue::from_static("0")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_sane_client_id() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        let (id, generated) = ensure(&mut h);
        assert_eq!((id.as_bytes(), generated), (&b"abc-123"[..], false));
        assert_eq!(h[&X_REQUEST_ID], "abc-123", "it goes upstream as the client sent it");
    }

    #[test]
    fn generates_when_absent_or_unusable() {
        let mut h = HeaderMap::new();
        let (id, generated) = ensure(&mut h);
        assert!(generated);
        assert_eq!(id.as_bytes().len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert!(h.is_empty(), "the caller adds it");
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(ensure(&mut h).0.as_bytes(), b"has space");
        assert!(h.is_empty());
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, HeaderValue::from_static("a"));
        h.append(X_REQUEST_ID, HeaderValue::from_static("b"));
        assert!(ensure(&mut h).1);
        assert!(h.is_empty());
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate().as_bytes(), generate().as_bytes());
    }
}
