//! An HTTP/1.x response head, parsed in one pass that hands each header line to the caller
//! as it is found. It accepts and refuses exactly what httparse does with its default
//! settings (a property test holds it to that), without httparse's array of header slots:
//! filling that array and reading it again in `passed` cost more than finding the lines.
//!
//! Accepted, as by httparse: empty lines before the status line, a bare `\n` as a line end,
//! a status line without a reason, whitespace around values (trimmed). Refused: any version
//! but `HTTP/1.0` and `HTTP/1.1`, a status code not of three digits, whitespace before a
//! header's colon, folded lines, and bytes that are not a token in a name or are controls
//! (other than tab) in a value or reason.

/// A head as far as the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Parsed {
    /// More bytes are needed; lines handed out so far are to be forgotten.
    Partial,
    /// The head is whole: its length in bytes (blank line included), its minor version
    /// (0 or 1) and its three-digit status code.
    Complete { len: usize, version: u8, code: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadError {
    Malformed,
    TooManyHeaders,
}

impl HeadError {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed response head",
            Self::TooManyHeaders => "too many header lines",
        }
    }
}

/// Bytes a header name may hold (RFC 9110 `tchar`).
static TOKEN: [bool; 256] = {
    let mut map = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        map[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+')
            || matches!(c, b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    map
};

/// Bytes a header value or a reason may hold: tab, visible ASCII, space, obs-text.
static TEXT: [bool; 256] = {
    let mut map = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        map[b] = c == b'\t' || (c >= b' ' && c != 0x7f);
        b += 1;
    }
    map
};

/// A header line: its name, its value without the whitespace around it, and the line as it
/// came, line end included.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

impl Line<'_> {
    /// Whether the line came as `name: value\r\n`, the way the proxy writes lines: then it can
    /// be copied whole.
    pub(super) fn is_canonical(&self) -> bool {
        // The value is the line's trimmed rest, so the lengths leave room for nothing else.
        self.raw.len() == self.name.len() + self.value.len() + 4
            && self.raw.get(self.name.len() + 1) == Some(&b' ')
            && self.raw.ends_with(b"\r\n")
    }
}

/// What went wrong at a position: the bytes ran out (more may come) or one was refused.
enum Stop {
    Partial,
    Malformed,
}

type Step<T> = Result<T, Stop>;

/// Parses the head at the start of `buf`, handing each header line to `line`. At most
/// `max_headers` lines: one more is `TooManyHeaders`.
pub(super) fn parse<'a>(
    buf: &'a [u8],
    max_headers: usize,
    mut line: impl FnMut(Line<'a>),
) -> Result<Parsed, HeadError> {
    let result = (|| {
        let mut at = skip_empty_lines(buf)?;
        let version = version(buf, &mut at)?;
        expect(buf, &mut at, b' ')?;
        let code = code(buf, &mut at)?;
        match next(buf, &mut at)? {
            b' ' => reason(buf, &mut at)?,
            b'\r' => expect(buf, &mut at, b'\n')?,
            b'\n' => {}
            _ => return Err(Stop::Malformed),
        }
        let mut count = 0;
        loop {
            match next(buf, &mut at)? {
                b'\r' => {
                    expect(buf, &mut at, b'\n')?;
                    return Ok(Ok(Parsed::Complete { len: at, version, code }));
                }
                b'\n' => return Ok(Ok(Parsed::Complete { len: at, version, code })),
                b if TOKEN[usize::from(b)] => {}
                _ => return Err(Stop::Malformed),
            }
            let name_start = at - 1;
            at += buf.get(at..).map_or(0, |rest| rest.iter().take_while(|&&b| TOKEN[usize::from(b)]).count());
            let name_end = at;
            expect(buf, &mut at, b':')?;
            let (start, end) = value(buf, &mut at)?;
            if count == max_headers {
                return Ok(Err(HeadError::TooManyHeaders));
            }
            count += 1;
            line(Line { name: &buf[name_start..name_end], value: &buf[start..end], raw: &buf[name_start..at] });
        }
    })();
    match result {
        Ok(done) => done,
        Err(Stop::Partial) => Ok(Parsed::Partial),
        Err(Stop::Malformed) => Err(HeadError::Malformed),
    }
}

fn next(buf: &[u8], at: &mut usize) -> Step<u8> {
    let b = *buf.get(*at).ok_or(Stop::Partial)?;
    *at += 1;
    Ok(b)
}

fn expect(buf: &[u8], at: &mut usize, want: u8) -> Step<()> {
    if next(buf, at)? == want { Ok(()) } else { Err(Stop::Malformed) }
}

/// Where the status line starts, past any empty lines.
fn skip_empty_lines(buf: &[u8]) -> Step<usize> {
    let mut at = 0;
    loop {
        match buf.get(at) {
            Some(b'\r') => {
                at += 1;
                expect(buf, &mut at, b'\n')?;
            }
            Some(b'\n') => at += 1,
            Some(_) => return Ok(at),
            None => return Err(Stop::Partial),
        }
    }
}

/// `HTTP/1.0` or `HTTP/1.1`, as the minor version; a shorter prefix of them is partial.
fn version(buf: &[u8], at: &mut usize) -> Step<u8> {
    let rest = &buf[*at..];
    match rest.get(..8) {
        Some(b"HTTP/1.0") => {}
        Some(b"HTTP/1.1") => {}
        Some(_) => return Err(Stop::Malformed),
        // httparse looks at the first seven bytes only until the eighth arrives.
        None if b"HTTP/1.".starts_with(&rest[..rest.len().min(7)]) => return Err(Stop::Partial),
        None => return Err(Stop::Malformed),
    }
    *at += 8;
    Ok(rest[7] - b'0')
}

fn code(buf: &[u8], at: &mut usize) -> Step<u16> {
    let mut code = 0;
    for _ in 0..3 {
        let b = next(buf, at)?;
        if !b.is_ascii_digit() {
            return Err(Stop::Malformed);
        }
        code = code * 10 + u16::from(b - b'0');
    }
    Ok(code)
}

/// Skips the reason phrase and its line end.
fn reason(buf: &[u8], at: &mut usize) -> Step<()> {
    loop {
        match next(buf, at)? {
            b'\r' => return expect(buf, at, b'\n'),
            b'\n' => return Ok(()),
            b if TEXT[usize::from(b)] => {}
            _ => return Err(Stop::Malformed),
        }
    }
}

/// A value after its colon, through its line end: where it starts and ends, trimmed.
fn value(buf: &[u8], at: &mut usize) -> Step<(usize, usize)> {
    while matches!(buf.get(*at), Some(b' ' | b'\t')) {
        *at += 1;
    }
    let start = *at;
    *at += buf.get(start..).map_or(0, text_len);
    let mut end = *at;
    match next(buf, at)? {
        b'\r' => expect(buf, at, b'\n')?,
        b'\n' => {}
        _ => return Err(Stop::Malformed),
    }
    while end > start && matches!(buf[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    Ok((start, end))
}

/// How many bytes at the start of `bytes` are `TEXT`. Eight at a time while none is a control
/// byte (tab included) or DEL: values are mostly plain, and often tens of bytes long.
fn text_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut n = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else { break };
        let word = u64::from_ne_bytes(word);
        // A byte below 0x20 (a set high bit is obs-text, allowed), or one equal to 0x7f.
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        let del = word ^ (ONES * 0x7f);
        if control | (del.wrapping_sub(ONES) & !del & HIGH) != 0 {
            break;
        }
        n += 8;
    }
    n + bytes[n..].iter().take_while(|&&b| TEXT[usize::from(b)]).count()
}

#[cfg(test)]
mod tests;
