//! Header names read off the wire by the own HTTP/1.1 server's parser (the plain client passes
//! a response's names on as text, see `upstream::passed`). The names nearly every request and response carry, written the usual two ways,
//! are recognised by length and bytes; anything else goes through `HeaderName::from_bytes`,
//! which lowercases into a scratch buffer and matches against every standard name (about 120
//! instructions a name, several times per request).

use http::HeaderName;
use http::header::{
    ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, ACCEPT_RANGES, CACHE_CONTROL, CONNECTION, CONTENT_ENCODING,
    CONTENT_LENGTH, CONTENT_TYPE, COOKIE, DATE, ETAG, HOST, InvalidHeaderName, LAST_MODIFIED, REFERER, SERVER,
    SET_COOKIE, TRANSFER_ENCODING, USER_AGENT, VARY,
};

/// The name `raw` spells, as `HeaderName::from_bytes` would give it.
pub fn parse(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    let known = match raw.len() {
        4 => match raw {
            b"Host" | b"host" => Some(HOST),
            b"Date" | b"date" => Some(DATE),
            b"Vary" | b"vary" => Some(VARY),
            b"ETag" | b"etag" => Some(ETAG),
            _ => None,
        },
        6 => match raw {
            b"Server" | b"server" => Some(SERVER),
            b"Accept" | b"accept" => Some(ACCEPT),
            b"Cookie" | b"cookie" => Some(COOKIE),
            _ => None,
        },
        7 => match raw {
            b"Referer" | b"referer" => Some(REFERER),
            _ => None,
        },
        10 => match raw {
            b"Connection" | b"connection" => Some(CONNECTION),
            b"User-Agent" | b"user-agent" => Some(USER_AGENT),
            b"Set-Cookie" | b"set-cookie" => Some(SET_COOKIE),
            _ => None,
        },
        12 => match raw {
            b"Content-Type" | b"content-type" => Some(CONTENT_TYPE),
            _ => None,
        },
        13 => match raw {
            b"Cache-Control" | b"cache-control" => Some(CACHE_CONTROL),
            b"Last-Modified" | b"last-modified" => Some(LAST_MODIFIED),
            b"Accept-Ranges" | b"accept-ranges" => Some(ACCEPT_RANGES),
            _ => None,
        },
        14 => match raw {
            b"Content-Length" | b"content-length" => Some(CONTENT_LENGTH),
            _ => None,
        },
        15 => match raw {
            b"Accept-Encoding" | b"accept-encoding" => Some(ACCEPT_ENCODING),
            b"Accept-Language" | b"accept-language" => Some(ACCEPT_LANGUAGE),
            _ => None,
        },
        16 => match raw {
            b"Content-Encoding" | b"content-encoding" => Some(CONTENT_ENCODING),
            _ => None,
        },
        17 => match raw {
            b"Transfer-Encoding" | b"transfer-encoding" => Some(TRANSFER_ENCODING),
            _ => None,
        },
        _ => None,
    };
    match known {
        Some(name) => Ok(name),
        None => HeaderName::from_bytes(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_gives_what_from_bytes_gives() {
        let names = [
            "Host",
            "Date",
            "Vary",
            "ETag",
            "Server",
            "Accept",
            "Cookie",
            "Referer",
            "Connection",
            "User-Agent",
            "Set-Cookie",
            "Content-Type",
            "Cache-Control",
            "Last-Modified",
            "Accept-Ranges",
            "Content-Length",
            "Accept-Encoding",
            "Accept-Language",
            "Content-Encoding",
            "Transfer-Encoding",
            "X-Custom",
            "Keep-Alive",
        ];
        for name in names {
            for spelled in [name.to_owned(), name.to_ascii_lowercase(), name.to_ascii_uppercase()] {
                let expected = HeaderName::from_bytes(spelled.as_bytes()).unwrap();
                assert_eq!(parse(spelled.as_bytes()).unwrap(), expected, "{spelled}");
            }
        }
        for bad in ["", "Bad Name", "Host:", "Ho\x00st", "Content-Length "] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
