//! A read-side guard in front of the HTTP parser: it sees every request
//! head as the client sent it, before hyper does.
//!
//! hyper quietly normalizes some request-smuggling shapes (it drops a
//! `Content-Length` next to `Transfer-Encoding`, merges identical doubled
//! `Content-Length` lines) and answers an oversized head with an empty 431
//! and a closed connection. A proxy must refuse those shapes outright and
//! explain itself, so the guard parses each head with `httparse` first.
//! A head it refuses is replaced by a small synthetic head carrying a
//! per-process marker header with the reason; the service answers that
//! request with a problem+json refusal and closes the connection, and the
//! rest of the client's bytes are discarded.
//!
//! To know where the next head starts, the guard follows the body framing
//! (`Content-Length` bytes, or chunked coding up to the last chunk and
//! trailers) without changing a byte. It also enforces the header timeout
//! from the first byte of a head while a head is incomplete.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why the guard refused a head; the marker header carries its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadRefusal {
    /// The head is over the byte limit (431).
    TooLarge,
    /// The head has too many fields (431).
    TooManyFields,
    /// `Content-Length` and `Transfer-Encoding` together (400).
    LengthAndChunked,
    /// More than one `Content-Length` line or value (400).
    DoubledLength,
    /// A `Content-Length` that is not a number (400).
    BadLength,
    /// `Transfer-Encoding` other than a final `chunked`, or in HTTP/1.0 (400).
    BadTransferEncoding,
    /// Not exactly one `Host` (400).
    Host,
    /// Not a parseable request head (400).
    Malformed,
}

impl HeadRefusal {
    const ALL: [HeadRefusal; 8] = [
        HeadRefusal::TooLarge,
        HeadRefusal::TooManyFields,
        HeadRefusal::LengthAndChunked,
        HeadRefusal::DoubledLength,
        HeadRefusal::BadLength,
        HeadRefusal::BadTransferEncoding,
        HeadRefusal::Host,
        HeadRefusal::Malformed,
    ];

    /// The marker value.
    pub fn token(self) -> &'static str {
        match self {
            HeadRefusal::TooLarge => "too-large",
            HeadRefusal::TooManyFields => "too-many-fields",
            HeadRefusal::LengthAndChunked => "length-and-chunked",
            HeadRefusal::DoubledLength => "doubled-length",
            HeadRefusal::BadLength => "bad-length",
            HeadRefusal::BadTransferEncoding => "bad-transfer-encoding",
            HeadRefusal::Host => "host",
            HeadRefusal::Malformed => "malformed",
        }
    }

    /// The refusal a marker value names.
    pub fn from_token(token: &[u8]) -> Option<HeadRefusal> {
        Self::ALL
            .into_iter()
            .find(|r| r.token().as_bytes() == token)
    }

    /// HTTP status of the refusal.
    pub fn status(self) -> http::StatusCode {
        match self {
            HeadRefusal::TooLarge | HeadRefusal::TooManyFields => {
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// The guard's settings, shared by every connection.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The marker header name (random per process, so no client can send it).
    pub marker: String,
    /// Largest head in bytes.
    pub max_head_bytes: usize,
    /// Most fields in a head.
    pub max_headers: usize,
    /// Time from the first byte of a head (or from accept) to its end.
    pub header_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a request head.
    Head,
    /// `n` more body bytes.
    Body(u64),
    /// A chunk-size line.
    ChunkSize,
    /// `n` more chunk bytes, then the chunk's CRLF.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines up to an empty line.
    Trailers,
    /// Framing is beyond us (hyper will refuse it); pass bytes unchanged.
    Passthrough,
    /// After a refused head: swallow the rest.
    Discard,
}

/// The guarded connection.
pub struct Guard<IO> {
    inner: IO,
    config: std::sync::Arc<GuardConfig>,
    state: State,
    /// Bytes read but not yet classified.
    pending: BytesMut,
    /// Bytes ready for the parser.
    ready: BytesMut,
    /// Header deadline, armed while a head is incomplete (and from accept).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    eof: bool,
    /// Read buffer, allocated once per connection.
    scratch: Box<[u8]>,
}

impl<IO> std::fmt::Debug for Guard<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<IO> Guard<IO> {
    /// Guards `inner`; the header timeout runs from now until the first head is complete.
    pub fn new(inner: IO, config: std::sync::Arc<GuardConfig>) -> Self {
        let deadline = Some(Box::pin(tokio::time::sleep(config.header_timeout)));
        Guard {
            inner,
            config,
            state: State::Head,
            pending: BytesMut::new(),
            ready: BytesMut::new(),
            deadline,
            eof: false,
            scratch: vec![0u8; 16 * 1024].into_boxed_slice(),
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// Classifies pending bytes; returns whether progress was made.
    fn advance(&mut self) -> bool {
        let before = (self.pending.len(), self.ready.len());
        loop {
            if self.pending.is_empty() {
                break;
            }
            match self.state {
                State::Passthrough => {
                    self.ready.extend_from_slice(&self.pending);
                    self.pending.clear();
                }
                State::Discard => self.pending.clear(),
                State::Body(n) => {
                    let take = usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(self.pending.len());
                    self.ready.extend_from_slice(&self.pending[..take]);
                    self.pending.advance(take);
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Body(left)
                    };
                }
                State::ChunkData(n) => {
                    let take = usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(self.pending.len());
                    self.ready.extend_from_slice(&self.pending[..take]);
                    self.pending.advance(take);
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(at) = self.pending.iter().position(|&b| b == b'\n') else {
                        if self.pending.len() > 4096 {
                            // No sane chunk line is this long; hyper refuses it.
                            self.state = State::Passthrough;
                            continue;
                        }
                        break;
                    };
                    let line = &self.pending[..=at];
                    let text = line.strip_suffix(b"\n").unwrap_or(line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    let next = match self.state {
                        State::ChunkEnd => State::ChunkSize,
                        State::Trailers if text.is_empty() => State::Head,
                        State::Trailers => State::Trailers,
                        _ => match chunk_size(text) {
                            Some(0) => State::Trailers,
                            Some(n) => State::ChunkData(n),
                            None => State::Passthrough,
                        },
                    };
                    self.ready.extend_from_slice(&self.pending[..=at]);
                    self.pending.advance(at + 1);
                    self.state = next;
                }
                State::Head => {
                    if !self.head() {
                        break;
                    }
                }
            }
        }
        before != (self.pending.len(), self.ready.len())
    }

    /// Handles a head in `pending`; false when it is still incomplete.
    fn head(&mut self) -> bool {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        while self
            .pending
            .first()
            .is_some_and(|&b| b == b'\r' || b == b'\n')
        {
            self.pending.advance(1);
        }
        if self.pending.is_empty() {
            return false;
        }
        if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.config.header_timeout)));
        }
        let max_fields = self.config.max_headers;
        let mut fields = vec![httparse::EMPTY_HEADER; max_fields];
        let mut request = httparse::Request::new(&mut fields);
        let parsed = request.parse(&self.pending);
        let verdict = match parsed {
            Ok(httparse::Status::Partial) => {
                if self.pending.len() > self.config.max_head_bytes {
                    Err(HeadRefusal::TooLarge)
                } else {
                    return false;
                }
            }
            Err(httparse::Error::TooManyHeaders) => Err(HeadRefusal::TooManyFields),
            Err(_) => Err(HeadRefusal::Malformed),
            Ok(httparse::Status::Complete(len)) if len > self.config.max_head_bytes => {
                Err(HeadRefusal::TooLarge)
            }
            Ok(httparse::Status::Complete(len)) => {
                check_framing(&request).map(|framing| (len, framing))
            }
        };
        self.deadline = None;
        match verdict {
            Ok((len, framing)) => {
                // Copied, not split off: splitting would turn both buffers
                // into shared ones and allocate on every request.
                self.ready.extend_from_slice(&self.pending[..len]);
                self.pending.advance(len);
                self.state = framing;
            }
            Err(refusal) => {
                let head = format!(
                    "GET / HTTP/1.1\r\nhost: gateway.invalid\r\n{}: {}\r\n\r\n",
                    self.config.marker,
                    refusal.token()
                );
                self.ready.extend_from_slice(head.as_bytes());
                self.pending.clear();
                self.state = State::Discard;
            }
        }
        true
    }
}

/// The state after a valid head, or why the head is refused.
fn check_framing(request: &httparse::Request<'_, '_>) -> Result<State, HeadRefusal> {
    let mut lengths = 0usize;
    let mut length = None;
    let mut chunked = None;
    let mut hosts = 0usize;
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let text = std::str::from_utf8(field.value).map_err(|_| HeadRefusal::BadLength)?;
            if text.contains(',') {
                return Err(HeadRefusal::DoubledLength);
            }
            let text = text.trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadRefusal::BadLength);
            }
            length = Some(text.parse::<u64>().map_err(|_| HeadRefusal::BadLength)?);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = field
                .value
                .rsplit(|&b| b == b',')
                .next()
                .map(|v| v.trim_ascii())
                .unwrap_or_default();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if field.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if lengths > 1 {
        return Err(HeadRefusal::DoubledLength);
    }
    if lengths > 0 && chunked.is_some() {
        return Err(HeadRefusal::LengthAndChunked);
    }
    if hosts != 1 {
        return Err(HeadRefusal::Host);
    }
    match chunked {
        Some(true) if request.version == Some(1) => Ok(State::ChunkSize),
        Some(_) => Err(HeadRefusal::BadTransferEncoding),
        None => match length {
            Some(n) if n > 0 => Ok(State::Body(n)),
            _ => Ok(State::Head),
        },
    }
}

/// The size of a chunk-size line (`HEX[;ext]`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let hex_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if hex_end == 0 || hex_end > 16 {
        return None;
    }
    let text = std::str::from_utf8(&line[..hex_end]).ok()?;
    u64::from_str_radix(text, 16).ok()
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // An unfinished head goes to the parser as it is, which refuses it.
                if !this.pending.is_empty() && this.state != State::Discard {
                    this.ready.extend_from_slice(&this.pending);
                    this.pending.clear();
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            let mut read = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.pending.extend_from_slice(read.filled());
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if this.state == State::Head {
                        if let Some(deadline) = this.deadline.as_mut() {
                            if deadline.as_mut().poll(cx).is_ready() {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "no complete request head within the header timeout",
                                )));
                            }
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(head: &str) -> Result<State, HeadRefusal> {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut fields);
        request.parse(head.as_bytes()).expect("parses");
        check_framing(&request)
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let h = "POST / HTTP/1.1\r\nhost: a\r\n";
        assert_eq!(
            framing(&format!(
                "{h}content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"
            )),
            Err(HeadRefusal::LengthAndChunked)
        );
        assert_eq!(
            framing(&format!(
                "{h}content-length: 3\r\ncontent-length: 3\r\n\r\n"
            )),
            Err(HeadRefusal::DoubledLength)
        );
        assert_eq!(
            framing(&format!("{h}content-length: 3, 3\r\n\r\n")),
            Err(HeadRefusal::DoubledLength)
        );
        assert_eq!(
            framing(&format!("{h}transfer-encoding: chunked, gzip\r\n\r\n")),
            Err(HeadRefusal::BadTransferEncoding)
        );
        assert_eq!(
            framing("GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"),
            Err(HeadRefusal::Host)
        );
        assert_eq!(
            framing(&format!("{h}content-length: 3\r\n\r\n")),
            Ok(State::Body(3))
        );
        assert_eq!(
            framing(&format!("{h}transfer-encoding: chunked\r\n\r\n")),
            Ok(State::ChunkSize)
        );
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"0;ext=1"), Some(0));
        assert_eq!(chunk_size(b"zz"), None);
    }
}
