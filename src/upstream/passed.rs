//! A plain exchange's response header lines, kept as the text they are written to the client
//! as rather than built into a `HeaderMap` and encoded again: that round trip was about a
//! fifth of Lintel's own instructions per proxied request (callgrind). Reading the head, only
//! what the proxy acts on is looked at: framing, the connection's reuse, the hop-by-hop set,
//! `Date`. Headers the proxy sets itself (`X-Request-ID`, `Strict-Transport-Security`) go in
//! the response's map and win over lines of the same name here.
//!
//! Lintel's own HTTP/1.1 server writes the text as it is; anything else that serves the
//! response (hyper, for HTTP/2 clients) has it moved into the map first ([`move_into`]).
//!
//! [`move_into`]: PassedHeaders::move_into

use http::{HeaderMap, HeaderName, HeaderValue};

use super::response_head::Line;

/// The lines of a response head that pass to the client, with what was read from the rest.
#[derive(Debug, Default)]
pub struct PassedHeaders {
    /// `name: value\r\n` for each line passed on, names lowercased. Its capacity is kept from
    /// one response of a connection to the next.
    text: Vec<u8>,
    /// Where each line starts in `text`, and its name's length: names are compared without
    /// scanning the text.
    index: Vec<(u32, u32)>,
    /// The upstream's `Content-Length` (the first that is plain digits): framing is the
    /// server's to write, and a `HEAD` answer keeps the length a `GET` would have had.
    pub(super) length: Option<u64>,
    /// Whether a `Date` passes (the server adds one otherwise).
    dated: bool,
    /// Names a `Connection` line lists besides its usual tokens, lowercased: rare.
    listed: Vec<Vec<u8>>,
}

/// What the proxy reads from a head's lines for framing and reuse.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    pub transfer_encoding: bool,
    /// The last transfer coding of the last `Transfer-Encoding` line is `chunked`.
    pub chunked: bool,
    /// `None` without `Content-Length`; else every value agreed on one plain number, or not.
    pub content_length: Option<Result<u64, ()>>,
    /// `Connection` says `close`.
    pub close: bool,
    /// `timeout=N` of the first `Keep-Alive` line.
    pub keep_alive_timeout: Option<u64>,
}

/// The names read rather than passed. `Proxy-Connection`, `TE`, `Trailer` and `Upgrade` are
/// hop-by-hop (a `101`, the one answer that keeps `Upgrade`, never comes this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    HopByHop,
    Date,
    Other,
}

impl Kind {
    fn of(name: &[u8]) -> Self {
        // The two usual spellings compare as whole words; any other needs the byte-wise one.
        let is = |title: &str, lower: &str| {
            name == title.as_bytes() || name == lower.as_bytes() || name.eq_ignore_ascii_case(lower.as_bytes())
        };
        match name.len() {
            2 if is("TE", "te") => Self::HopByHop,
            4 if is("Date", "date") => Self::Date,
            7 if is("Trailer", "trailer") || is("Upgrade", "upgrade") => Self::HopByHop,
            10 if is("Connection", "connection") => Self::Connection,
            10 if is("Keep-Alive", "keep-alive") => Self::KeepAlive,
            14 if is("Content-Length", "content-length") => Self::ContentLength,
            16 if is("Proxy-Connection", "proxy-connection") => Self::HopByHop,
            17 if is("Transfer-Encoding", "transfer-encoding") => Self::TransferEncoding,
            _ => Self::Other,
        }
    }
}

impl PassedHeaders {
    /// Forgets the last head's lines, for the next head's.
    pub(super) fn begin(&mut self) {
        self.text.clear();
        self.index.clear();
        self.listed.clear();
        self.length = None;
        self.dated = false;
    }

    /// Reads one line of a head: into `seen` if the proxy acts on it, else into the text.
    /// Nothing here can fail: the head's parser has checked that names are tokens and values
    /// hold no control bytes (the bytes `HeaderValue` refuses too).
    #[inline]
    pub(super) fn take(&mut self, seen: &mut Seen, line: Line<'_>) {
        let value = line.value;
        match Kind::of(line.name) {
            Kind::Connection => {
                // `keep-alive` alone (nginx says it on every answer) needs no splitting.
                if value.eq_ignore_ascii_case(b"keep-alive") {
                    return;
                }
                for token in connection_tokens(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        seen.close = true;
                    } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.eq_ignore_ascii_case(b"upgrade") {
                        // Rare: noted here, and the lines it names dropped at the end.
                        self.listed.push(token.to_ascii_lowercase());
                    }
                }
            }
            Kind::KeepAlive => {
                if seen.keep_alive_timeout.is_none() {
                    seen.keep_alive_timeout = super::send::keepalive_timeout(value);
                }
            }
            Kind::TransferEncoding => {
                seen.transfer_encoding = true;
                seen.chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Kind::ContentLength => {
                for part in value.split(|&b| b == b',') {
                    seen.content_length = Some(match (seen.content_length, parse_length(part.trim_ascii())) {
                        (None, Some(n)) => Ok(n),
                        (Some(Ok(m)), Some(n)) if m == n => Ok(n),
                        _ => Err(()),
                    });
                }
                if self.length.is_none() && value.iter().all(u8::is_ascii_digit) {
                    self.length = parse_length(value);
                }
            }
            Kind::HopByHop => {}
            Kind::Date => {
                self.dated = true;
                self.push_line(line);
            }
            Kind::Other => self.push_line(line),
        }
    }

    /// After a head's last line: drops the lines a `Connection` line named.
    pub(super) fn end(&mut self) {
        if !self.listed.is_empty() {
            self.drop_listed();
        }
    }

    /// Reads a whole head's lines (`begin`, `take` each, `end`).
    #[cfg(test)]
    pub(super) fn read<'a>(&mut self, lines: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Seen {
        self.begin();
        let mut seen = Seen::default();
        for (name, value) in lines {
            let raw = [name, b": ", value, b"\r\n"].concat();
            self.take(&mut seen, Line { name, value, raw: &raw });
        }
        self.end();
        seen
    }

    /// A line as it came when it reads `name: value\r\n` (one copy), else rebuilt so.
    fn push_line(&mut self, line: Line<'_>) {
        if !line.is_canonical() {
            return self.push(line.name, line.value);
        }
        let start = self.text.len();
        self.index.push((start as u32, line.name.len() as u32));
        self.text.extend_from_slice(line.raw);
        if let Some(name) = self.text.get_mut(start..start + line.name.len()) {
            name.make_ascii_lowercase();
        }
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.text.len();
        self.text.reserve(name.len() + value.len() + 4);
        // Heads are at most 64 KiB (`plain::MAX_HEAD`).
        self.index.push((start as u32, name.len() as u32));
        self.text.extend_from_slice(name);
        self.text[start..].make_ascii_lowercase();
        self.text.extend_from_slice(b": ");
        self.text.extend_from_slice(value);
        self.text.extend_from_slice(b"\r\n");
    }

    /// Removes the lines whose names a `Connection` line lists (they are for this hop only).
    fn drop_listed(&mut self) {
        let names = std::mem::take(&mut self.listed);
        if names.iter().any(|n| n == b"content-length") {
            self.length = None;
        }
        let text = std::mem::take(&mut self.text);
        let index = std::mem::take(&mut self.index);
        self.dated = false;
        for (name, value) in Lines(&text, &index) {
            if !names.iter().any(|n| n == name) {
                self.dated |= name == b"date";
                self.push(name, value);
            }
        }
        self.listed = names;
    }

    /// The lines as `(name, value)`, names lowercased.
    pub fn lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        Lines(&self.text, &self.index)
    }

    /// Whether a line of this (lowercase) name passes.
    pub fn has(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.index.iter().any(|&(at, len)| {
            len as usize == name.len() && self.text.get(at as usize..(at + len) as usize) == Some(name)
        })
    }

    pub fn dated(&self) -> bool {
        self.dated
    }

    /// The upstream's plain-digits `Content-Length`, if it had one.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// Appends the lines to `out`, except those named in `set` (the proxy's own, which win).
    pub fn write_to(&self, out: &mut Vec<u8>, set: &HeaderMap) {
        if set.keys().all(|name| !self.has(name.as_str())) {
            out.extend_from_slice(&self.text);
            return;
        }
        for (name, value) in self.lines().filter(|(name, _)| !set.keys().any(|n| n.as_str().as_bytes() == *name)) {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Moves the lines into `headers`, before the ones it holds (which win over lines of the
    /// same name), with the `Content-Length` when `keep_length`. Leaves nothing to write.
    pub fn move_into(&mut self, headers: &mut HeaderMap, keep_length: bool) {
        let mut merged = HeaderMap::with_capacity(headers.len() + 8);
        for (name, value) in self.lines() {
            // Both were checked when the head was parsed; a line that still fails is dropped.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
                && !headers.contains_key(&name)
            {
                merged.append(name, value);
            }
        }
        if let Some(n) = self.length.filter(|_| keep_length)
            && !headers.contains_key(http::header::CONTENT_LENGTH)
        {
            merged.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        let mut last = None;
        for (name, value) in std::mem::take(headers) {
            // `None` repeats the name before (a second value of the same header).
            let name = match name {
                Some(name) => last.insert(name).clone(),
                None => match &last {
                    Some(name) => name.clone(),
                    None => continue,
                },
            };
            merged.append(name, value);
        }
        *headers = merged;
        self.begin();
    }
}

/// The lines of `text` as `(name, value)`, by the index.
struct Lines<'a>(&'a [u8], &'a [(u32, u32)]);

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&(at, len), rest) = self.1.split_first()?;
        self.1 = rest;
        let end = rest.first().map_or(self.0.len(), |&(next, _)| next as usize);
        // `name: value\r\n`
        let (at, len) = (at as usize, len as usize);
        let name = self.0.get(at..at + len)?;
        let value = self.0.get(at + len + 2..end.saturating_sub(2))?;
        Some((name, value))
    }
}

fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests;
