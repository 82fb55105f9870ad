//! The query string of `/explain`: `host`, `path` and an optional `client`, percent-decoded.

use crate::explain::Question;

/// `None` when `host` or `path` is missing or `client` is not an IP address.
pub fn question(query: &str) -> Option<Question> {
    let (mut host, mut path, mut client) = (None, None, None);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        match key {
            "host" => host = Some(value),
            "path" => path = Some(value),
            "client" if !value.is_empty() => client = Some(value.parse().ok()?),
            _ => {}
        }
    }
    let path = path.filter(|p| p.starts_with('/'))?;
    Some(Question { host: host?, path, client })
}

/// Percent-decoding, `+` as a space; `None` for invalid escapes or UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_host_path_and_client() {
        let q = question("host=a.example.com&path=%2Fapi%2Fv1&client=10.0.0.1").unwrap();
        assert_eq!(q.host, "a.example.com");
        assert_eq!(q.path, "/api/v1");
        assert_eq!(q.client, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(question("host=a&path=/").unwrap().client, None);
    }

    #[test]
    fn refuses_incomplete_or_bad_questions() {
        assert!(question("host=a").is_none());
        assert!(question("path=/").is_none());
        assert!(question("host=a&path=nope").is_none());
        assert!(question("host=a&path=/&client=me").is_none());
        assert!(question("host=%zz&path=/").is_none());
    }
}
