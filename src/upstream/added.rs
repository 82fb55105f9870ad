//! Headers the proxy adds to a request on its way upstream (`X-Forwarded-*`, `X-Real-IP`, a
//! generated `X-Request-ID`),
//! kept beside the request's header map rather than in it: the plain exchange writes them
//! straight after the client's headers, hyper's path inserts them. Inserting five names into a
//! map parsed with room for the client's few headers rehashed it into a bigger one on every
//! request, and hashed each name (about 2k instructions of the 33k a request cost).

use http::{HeaderMap, HeaderName, HeaderValue};

/// At most this many headers are added.
const MAX: usize = 6;

#[derive(Debug, Clone, Default)]
pub struct AddedHeaders {
    pairs: [Option<(HeaderName, HeaderValue)>; MAX],
}

impl AddedHeaders {
    /// Adds `name: value`; the caller has removed any `name` the client sent. Past the sixth,
    /// a header is dropped (no caller adds more).
    pub fn push(&mut self, name: HeaderName, value: HeaderValue) {
        if let Some(slot) = self.pairs.iter_mut().find(|p| p.is_none()) {
            *slot = Some((name, value));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.pairs.iter().flatten().map(|(n, v)| (n, v))
    }

    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Into `headers`, replacing what is there under the same names.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        for (name, value) in self.pairs.into_iter().flatten() {
            headers.insert(name, value);
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
        added.push(HeaderName::from_static("x-b"), HeaderValue::from_static("2"));
        assert_eq!(added.get(&HeaderName::from_static("x-b")).unwrap(), "2");
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("old"));
        added.insert_into(&mut headers);
        assert_eq!(headers["x-a"], "1");
        assert_eq!(headers["x-b"], "2");
        assert_eq!(headers.len(), 2);
    }
}
