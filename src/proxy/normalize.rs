//! Request path normalisation. The path that rules and allowlists are matched against is
//! exactly the path sent upstream, so no spelling of a path can reach a route that guards
//! it differently:
//!
//! - percent-encoded unreserved characters (`%61` → `a`, `%2e` → `.`) are decoded;
//! - repeated slashes are merged (`//admin` → `/admin`);
//! - refused with 400: dot segments (`/a/../b`, `/./b`, also encoded), encoded `/` or `\`
//!   (`%2f`, `%5c`), a raw `\`, `;` (a path parameter some servers strip before routing),
//!   encoded control characters (`%00`), and malformed escapes (`%zz`).
//!
//! Everything else, including other escapes such as `%20`, passes unchanged.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is not absolute")]
    NotAbsolute,
    #[error("path has a `.` or `..` segment")]
    DotSegment,
    #[error("path has an encoded `/` or `\\`")]
    EncodedSeparator,
    #[error("path has a `\\`")]
    Backslash,
    #[error("path has a `;`")]
    Semicolon,
    #[error("path has an encoded control character")]
    ControlCharacter,
    #[error("path has a malformed percent escape")]
    BadEscape,
}

/// Normalises `path` (no query). Borrows when nothing changes, the common case.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    if is_simple(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    // Bytes, not chars: only ASCII is removed or added, so the result stays valid UTF-8
    // (non-ASCII characters pass through byte for byte).
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
                let value = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::BadEscape)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(value),
                    _ => {
                        out.push(b'%');
                        out.extend(hex.iter().map(u8::to_ascii_uppercase));
                    }
                }
                i += 3;
                continue;
            }
            b'/' if out.last() == Some(&b'/') => {} // merge repeated slashes
            b => out.push(b),
        }
        i += 1;
    }
    let out = String::from_utf8(out).map_err(|_| PathError::BadEscape)?;
    if out.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(PathError::DotSegment);
    }
    Ok(Cow::Owned(out))
}

/// Whether nothing in the path needs a look: no escape, `\` or `;`, no `//` or `/.`. One pass,
/// where two (one for the bytes, one for the pairs) cost twice the instructions.
fn is_simple(bytes: &[u8]) -> bool {
    let mut previous = 0;
    for &b in bytes {
        match b {
            b'%' | b'\\' | b';' => return false,
            b'/' | b'.' if previous == b'/' => return false,
            _ => previous = b,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ordinary_paths_are_borrowed_unchanged() {
        for p in ["/", "/api/v1/dags", "/a.b/c-d_e~f", "/x/", "/file.tar.gz", "/.well-known/acme-challenge/x"] {
            let n = normalize_path(p);
            assert_eq!(n, Ok(Cow::Borrowed(p)), "{p}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_slashes_merged() {
        assert_eq!(normalize_path("/%61dmin").unwrap(), "/admin");
        assert_eq!(normalize_path("//admin//x").unwrap(), "/admin/x");
        assert_eq!(normalize_path("/a%20b%c3%a9").unwrap(), "/a%20b%C3%A9");
        assert_eq!(normalize_path("/%7Euser").unwrap(), "/~user");
    }

    #[test]
    fn unsafe_forms_are_refused() {
        let cases = [
            ("/public/../admin", PathError::DotSegment),
            ("/public/./admin", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/%2e%2e/admin", PathError::DotSegment),
            ("/%2E./admin", PathError::DotSegment),
            ("/public%2f..%2fadmin", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::Backslash),
            ("/admin;x", PathError::Semicolon),
            ("/a%00", PathError::ControlCharacter),
            ("/a%0d%0a", PathError::ControlCharacter),
            ("/a%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("*", PathError::NotAbsolute),
            ("admin", PathError::NotAbsolute),
        ];
        for (path, err) in cases {
            assert_eq!(normalize_path(path), Err(err), "{path}");
        }
    }

    #[test]
    fn non_ascii_passes_through_unchanged() {
        // Found by the fuzzer: bytes were once pushed as chars, re-encoding UTF-8.
        assert_eq!(normalize_path("/./é").unwrap_err(), PathError::DotSegment);
        assert_eq!(normalize_path("//é/x").unwrap(), "/é/x");
        let odd = "/.+/\t/\t=\t=/\u{9c}k{/";
        let once = normalize_path(odd).unwrap();
        assert_eq!(normalize_path(&once).unwrap(), once);
    }

    #[test]
    fn dots_inside_names_are_fine() {
        assert_eq!(normalize_path("/a/..b/c..").unwrap(), "/a/..b/c..");
        assert_eq!(normalize_path("/.hidden").unwrap(), "/.hidden");
    }

    proptest! {
        /// The one-pass check says what the two plain ones say.
        #[test]
        fn the_simple_check_is_the_plain_one(path in "/[a-z/.%;\\\\]{0,12}") {
            let bytes = path.as_bytes();
            let plain = !bytes.iter().any(|&b| matches!(b, b'%' | b'\\' | b';'))
                && !bytes.windows(2).any(|w| w == b"//" || w == b"/.");
            prop_assert_eq!(is_simple(bytes), plain);
        }

        /// Whatever comes out is stable (normalising again changes nothing) and has no dot
        /// segment, encoded separator or repeated slash left to smuggle a different match.
        #[test]
        fn output_is_a_fixed_point(path in "/[a-zA-Z0-9./%;\\\\_~-]{0,40}") {
            if let Ok(normal) = normalize_path(&path) {
                let again = normalize_path(&normal).unwrap();
                prop_assert_eq!(again.as_ref(), normal.as_ref());
                prop_assert!(!normal.contains("//"));
                prop_assert!(!normal.split('/').any(|s| s == "." || s == ".."));
                let lower = normal.to_ascii_lowercase();
                prop_assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%2e"));
            }
        }
    }
}
