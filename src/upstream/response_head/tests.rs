use proptest::prelude::*;

use super::*;

type Lines = Vec<(Vec<u8>, Vec<u8>)>;

/// What httparse (default settings) makes of `buf`, in this module's terms.
fn httparse_says(buf: &[u8], max: usize) -> Result<(Parsed, Lines), HeadError> {
    let mut slots = vec![httparse::EMPTY_HEADER; max];
    let mut parsed = httparse::Response::new(&mut slots);
    match parsed.parse(buf) {
        Ok(httparse::Status::Partial) => Ok((Parsed::Partial, Vec::new())),
        Ok(httparse::Status::Complete(len)) => {
            let lines = parsed.headers.iter().map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec())).collect();
            let (version, code) = (parsed.version.unwrap_or(9), parsed.code.unwrap_or(0));
            Ok((Parsed::Complete { len, version, code }, lines))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(_) => Err(HeadError::Malformed),
    }
}

fn we_say(buf: &[u8], max: usize) -> Result<(Parsed, Lines), HeadError> {
    let mut lines = Vec::new();
    let parsed = parse(buf, max, |line| {
        let raw = [line.name, b": ", line.value, b"\r\n"].concat();
        assert_eq!(line.is_canonical(), line.raw == raw, "{line:?}");
        lines.push((line.name.to_vec(), line.value.to_vec()));
    })?;
    if parsed == Parsed::Partial {
        lines.clear();
    }
    Ok((parsed, lines))
}

fn agree(buf: &[u8], max: usize) {
    for end in 0..=buf.len() {
        let prefix = &buf[..end];
        assert_eq!(we_say(prefix, max), httparse_says(prefix, max), "{:?}", String::from_utf8_lossy(prefix));
    }
}

#[test]
fn a_usual_head_is_read_line_by_line() {
    let head = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length:  2 \r\nX-Empty:\r\n\r\nok";
    let (parsed, lines) = we_say(head, 100).unwrap();
    assert_eq!(parsed, Parsed::Complete { len: head.len() - 2, version: 1, code: 200 });
    let lines: Vec<_> = lines.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    assert_eq!(lines, [(&b"Server"[..], &b"nginx"[..]), (b"Content-Length", b"2"), (b"X-Empty", b"")]);
    agree(head, 100);
}

#[test]
fn odd_but_accepted_and_refused_heads_match_httparse() {
    for head in [
        &b"\r\n\nHTTP/1.0 404\nA: b\n\n"[..],
        b"HTTP/1.1 204 \r\n\r\n",
        b"HTTP/1.1 200 caf\xc3\xa9\tok\r\nX: \xff\x80 \t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n:v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA\r\n\r\n",
        b"HTTP/1.1 200 OK\r\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1  200 OK\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"http/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 20x OK\r\n\r\n",
        b"HTTP/1.1 200 OK\x01\r\n\r\n",
        b"\rHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA:\t b\t\r\nB:\t\r\n\r\n",
    ] {
        for max in [0, 1, 2, 3, 100] {
            agree(head, max);
        }
    }
}

/// Pieces a head is made of, some of them wrong.
const PIECES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 304\n",
    b"HTTP/1.1 101 Switching Protocols\r\n",
    b"\r\n",
    b"\n",
    b"Content-Length: 12\r\n",
    b"connection:close\n",
    b"X-Many:  a, b \t\r\n",
    b"Empty:\r\n",
    b"Tabs:\t v\t\r\n",
    b" ",
    b"\t",
    b":",
];

/// A piece, random bytes or a generated line; a generated head strings a few together and
/// then changes some bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(PIECES).prop_map(<[u8]>::to_vec),
        proptest::collection::vec(any::<u8>(), 0..6),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}: [ -~]{0,12}\r\n".prop_map(String::into_bytes),
    ]
}

fn head() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(piece(), 1..8),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(pieces, changes)| {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            head.extend(pieces.concat());
            head.extend_from_slice(b"\r\n");
            for (at, byte) in changes {
                let at = at.index(head.len());
                head[at] = byte;
            }
            head
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every prefix of every head: the same verdict, length, status and lines as httparse.
    #[test]
    fn agrees_with_httparse_on_every_prefix(head in head(), max in 0usize..6) {
        agree(&head, max);
    }

    #[test]
    fn agrees_with_httparse_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        agree(&bytes, 100);
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.extend(bytes);
        agree(&head, 100);
    }
}

proptest! {
    /// The eight-at-a-time scan stops where the byte-wise one does.
    #[test]
    fn text_len_is_the_bytewise_count(bytes in proptest::collection::vec(
        prop_oneof![Just(b'a'), Just(b' '), Just(b'\t'), Just(0x7f), Just(0x80), Just(0xff), Just(0x1f), Just(b'\r'), any::<u8>()],
        0..40,
    )) {
        let bytewise = bytes.iter().take_while(|&&b| TEXT[usize::from(b)]).count();
        prop_assert_eq!(text_len(&bytes), bytewise);
    }
}
