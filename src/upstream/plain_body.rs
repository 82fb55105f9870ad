//! The body of a plain exchange's response, read straight from the upstream socket by whoever
//! polls it: a known length, chunks, or everything until the upstream closes. At its end the
//! connection is handed back for the next request when the framing allows it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};

use super::error::BodyError;
use super::plain::{PlainConn, PlainError};

/// Longest chunk-size line or trailer section accepted.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` (0 for `HEAD`, `204`, `304`): the bytes still to come.
    Length(u64),
    Chunked {
        state: Chunk,
        keep: bool,
    },
    /// No length: the body ends when the upstream closes; the connection is not kept.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Waiting for a chunk-size line.
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one (dropped).
    Trailers,
}

impl Framing {
    pub fn chunked(keep: bool) -> Self {
        Self::Chunked { state: Chunk::Size, keep }
    }
}

#[derive(Debug)]
pub struct PlainBody {
    /// The connection while the body is read; still here at the end when it can be kept.
    /// Boxed: the body travels inside the response, moved several times a request.
    conn: Option<Box<PlainConn>>,
    framing: Framing,
    done: bool,
    /// Cleared when the response said not to keep the connection, or the body failed.
    reuse: bool,
}

impl PlainBody {
    pub(super) fn new(conn: Box<PlainConn>, framing: Framing) -> Self {
        let done = framing == Framing::Length(0);
        Self { conn: Some(conn), framing, done, reuse: true }
    }

    /// The response's header lines, while the connection is here (until the body ends).
    pub fn passed_headers(&mut self) -> Option<&mut super::PassedHeaders> {
        self.conn.as_mut().map(|conn| &mut conn.passed)
    }

    /// The connection is closed at the end instead of kept.
    pub fn forget_connection_at_end(&mut self) {
        self.reuse = false;
    }

    /// The connection, once the body has ended cleanly and its framing lets it carry another
    /// request.
    pub fn take_reusable(&mut self) -> Option<Box<PlainConn>> {
        let keep = match self.framing {
            Framing::Length(_) => true,
            Framing::Chunked { keep, .. } => keep,
            Framing::UntilClose => false,
        };
        if self.done && keep && self.reuse { self.conn.take() } else { None }
    }

    /// The rest of a body of known length, appended to `out`, when the buffer already holds
    /// all of it and it is at most `max` bytes (a small answer arrives with its head): one
    /// copy, no frame. Its length, or `None` (nothing taken) when it must be polled.
    pub fn take_buffered_rest(&mut self, out: &mut Vec<u8>, max: usize) -> Option<usize> {
        let (Framing::Length(left), Some(conn)) = (&mut self.framing, self.conn.as_mut()) else { return None };
        let n = usize::try_from(*left).ok().filter(|&n| n > 0 && n <= conn.buf.len().min(max) && !self.done)?;
        out.extend_from_slice(conn.buf.get(..n)?);
        conn.buf.advance(n);
        *left = 0;
        self.done = true;
        Some(n)
    }

    /// The next frame, or `None` at the end. A frame comes from what the buffer holds when it
    /// holds something for the body; the socket is read only when it does not.
    fn next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, PlainError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(None) };
            match &mut self.framing {
                Framing::Length(left) => {
                    if let Some(data) = take(conn, left) {
                        self.done = *left == 0;
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Framing::UntilClose => {
                    if !conn.buf.is_empty() {
                        return Poll::Ready(Some(Ok(conn.buf.split().freeze())));
                    }
                }
                Framing::Chunked { state, .. } => match *state {
                    Chunk::Size => match httparse::parse_chunk_size(&conn.buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            conn.buf.advance(used);
                            *state = if size == 0 { Chunk::Trailers } else { Chunk::Data(size) };
                            continue;
                        }
                        Ok(httparse::Status::Partial) if conn.buf.len() > MAX_LINE => {
                            return Poll::Ready(Some(Err(PlainError::Invalid("chunk size line too long"))));
                        }
                        Ok(httparse::Status::Partial) => {}
                        Err(_) => return Poll::Ready(Some(Err(PlainError::Invalid("bad chunk size")))),
                    },
                    Chunk::Data(mut left) => {
                        if let Some(data) = take(conn, &mut left) {
                            *state = if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) };
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                    Chunk::DataEnd => {
                        if conn.buf.len() >= 2 {
                            if !conn.buf.starts_with(b"\r\n") {
                                return Poll::Ready(Some(Err(PlainError::Invalid("chunk not followed by CRLF"))));
                            }
                            conn.buf.advance(2);
                            *state = Chunk::Size;
                            continue;
                        }
                    }
                    Chunk::Trailers => {
                        if conn.buf.starts_with(b"\r\n") {
                            conn.buf.advance(2);
                            self.done = true;
                            continue;
                        }
                        if let Some(end) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            conn.buf.advance(end + 4);
                            self.done = true;
                            continue;
                        }
                        if conn.buf.len() > MAX_TRAILERS {
                            return Poll::Ready(Some(Err(PlainError::Invalid("trailers too large"))));
                        }
                    }
                },
            }
            // The buffer holds nothing more for the body: read.
            match conn.poll_read(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(PlainError::Io(err)))),
                Poll::Ready(Ok(0)) if self.framing == Framing::UntilClose => self.done = true,
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Err(PlainError::Incomplete))),
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

/// Up to `left` bytes from the buffer, when it holds any.
fn take(conn: &mut PlainConn, left: &mut u64) -> Option<Bytes> {
    if conn.buf.is_empty() || *left == 0 {
        return None;
    }
    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(conn.buf.len());
    *left -= n as u64;
    Some(conn.buf.split_to(n).freeze())
}

impl Body for PlainBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match this.next(cx) {
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Err(err))) => {
                // The connection is in no state to reuse.
                this.conn = None;
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            _ if self.done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
