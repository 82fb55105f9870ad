//! Headers the proxy adds to a request on its way upstream (`X-Forwarded-*`, `X-Real-IP`, a
//! generated `X-Request-ID`),
//! kept beside the request's header map rather than in it: the plain exchange writes them
//! straight after the client's headers, hyper's path inserts them. Inserting five names into a
//! map parsed with room for the client's few headers rehashed it into a bigger one on every
//! request, and hashed each name (about 2k instructions of the 33k a request cost).

use http::{HeaderMap, HeaderName, HeaderValue};

/// At most this many headers are added.
const MAX: usize = 6;
/// The longest value kept inline: an IPv6 address with an embedded IPv4 one is 45 bytes.
const INLINE: usize = 46;

/// A header value the proxy sends: one it was given (the client's `Host`, joined hops), or
/// one it made (an address, a port, a request id), kept inline so that making it allocates
/// nothing. It becomes a `HeaderValue`, with an allocation, only where a map needs one.
#[derive(Debug, Clone)]
pub enum AddedValue {
    Header(HeaderValue),
    Inline { bytes: [u8; INLINE], len: u8 },
}

impl AddedValue {
    /// `bytes` inline, if short enough; the caller writes only visible ASCII.
    pub fn inline(bytes: &[u8]) -> Option<Self> {
        let mut inline = [0u8; INLINE];
        inline.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Self::Inline { bytes: inline, len: bytes.len() as u8 })
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Header(value) => value.as_bytes(),
            Self::Inline { bytes, len } => bytes.get(..usize::from(*len)).unwrap_or_default(),
        }
    }

    pub fn to_header_value(&self) -> HeaderValue {
        match self {
            Self::Header(value) => value.clone(),
            Self::Inline { .. } => {
                HeaderValue::from_bytes(self.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
            }
        }
    }
}

impl From<HeaderValue> for AddedValue {
    fn from(value: HeaderValue) -> Self {
        Self::Header(value)
    }
}

#[derive(Debug, Clone, Default)]
pub struct AddedHeaders {
    pairs: [Option<(HeaderName, AddedValue)>; MAX],
}

impl AddedHeaders {
    /// Adds `name: value`; the caller has removed any `name` the client sent. Past the sixth,
    /// a header is dropped (no caller adds more).
    pub fn push(&mut self, name: HeaderName, value: impl Into<AddedValue>) {
        if let Some(slot) = self.pairs.iter_mut().find(|p| p.is_none()) {
            *slot = Some((name, value.into()));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &[u8])> {
        self.pairs.iter().flatten().map(|(n, v)| (n, v.as_bytes()))
    }

    /// The value added under `name`, as text.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Into `headers`, replacing what is there under the same names.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        for (name, value) in self.pairs.into_iter().flatten() {
            headers.insert(name, value.to_header_value());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_headers_replace_in_a_map() {
        let mut added = AddedHeaders::default();
        added.push(HeaderName::from_static("x-a"), HeaderValue::from_static("1"));
        added.push(HeaderName::from_static("x-b"), AddedValue::inline(b"2").unwrap());
        assert_eq!(added.get(&HeaderName::from_static("x-b")).unwrap(), "2");
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("old"));
        added.insert_into(&mut headers);
        assert_eq!(headers["x-a"], "1");
        assert_eq!(headers["x-b"], "2");
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn inline_values_are_bounded() {
        assert_eq!(AddedValue::inline(&[b'1'; 46]).unwrap().as_bytes(), &[b'1'; 46]);
        assert!(AddedValue::inline(&[b'1'; 47]).is_none());
        assert_eq!(AddedValue::inline(b"::1").unwrap().to_header_value(), "::1");
    }
}
