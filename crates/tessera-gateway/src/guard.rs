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
//! trailers) without changing a byte. It never stops doing so: chunked
//! framing it cannot follow exactly (a chunk size over 16 significant hex
//! digits, a chunk-size or trailer line over [`MAX_CHUNK_LINE`] bytes, a
//! line not ending in CRLF, anything but CRLF after a chunk's data) ends
//! the connection: the body read fails, so the request is refused and
//! nothing of it is forwarded, and the rest of the client's bytes are
//! discarded. It also enforces the header timeout from the first byte of a
//! head while a head is incomplete.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
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
    /// `Transfer-Encoding` other than exactly one `chunked` coding, or in
    /// HTTP/1.0 (400).
    BadTransferEncoding,
    /// Not exactly one `Host` (400).
    Host,
    /// A request-target that is not a URI the server can read, such as
    /// `http:///x` (400).
    Target,
    /// Not a parseable request head (400).
    Malformed,
}

impl HeadRefusal {
    const ALL: [HeadRefusal; 9] = [
        HeadRefusal::TooLarge,
        HeadRefusal::TooManyFields,
        HeadRefusal::LengthAndChunked,
        HeadRefusal::DoubledLength,
        HeadRefusal::BadLength,
        HeadRefusal::BadTransferEncoding,
        HeadRefusal::Host,
        HeadRefusal::Target,
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
            HeadRefusal::Target => "target",
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

/// The most header fields a head may have (`limits.max_headers` is at
/// most this).
pub const MAX_FIELDS: usize = 500;

/// The longest chunk-size line (size, extensions, CRLF) or trailer line the
/// guard follows; a longer one is refused.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The reason a connection's guard refused a request body, once it has.
pub type BodyRefusal = std::sync::Arc<std::sync::OnceLock<&'static str>>;

/// The profile's verdict on a head the guard refused (spec §8.4, §11.2
/// step 5), when the profile names one: a target holding `#`, an octet
/// outside visible ASCII or no authority after `http://`, or, with served
/// authorities, several `Host` lines: `invalid_field_value`. The service
/// answers with it as a verifier would. (No `Host` at all is refused with
/// a plain 400, as RFC 9112 §3.2 requires, not with the verifier's 401.)
pub type HeadVerdict = std::sync::Arc<std::sync::OnceLock<tessera_core::Error>>;

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
    /// Whether the verifier checks `Host` against served authorities
    /// (false with a fixed authority, where the profile names no code for
    /// a missing or doubled `Host`).
    pub served_authorities: bool,
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
    /// After a refused head or body: swallow the rest.
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
    /// Why the body in progress was refused: reads fail with it, so the
    /// parser fails the body and the connection ends.
    refused_body: Option<&'static str>,
    /// The same reason, for the request handler, which answers with it
    /// (the parser only sees a failed read).
    body_refusal: BodyRefusal,
    /// The profile's code for a refused head, for the request handler.
    head_verdict: HeadVerdict,
    /// The head in `pending` is refused already (httparse refused it) and
    /// only waits for the rest of its line or fields, for the profile's
    /// code: at the header timeout, or when the client stops sending, it is
    /// answered as malformed, not dropped. (hyper's idle timer, which runs
    /// from the end of the previous answer and sees none of these bytes,
    /// may still close the connection first.)
    refused_waiting: bool,
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
            refused_body: None,
            body_refusal: BodyRefusal::default(),
            head_verdict: HeadVerdict::default(),
            refused_waiting: false,
            scratch: vec![0u8; 16 * 1024].into_boxed_slice(),
        }
    }

    /// Guards `inner`, whose first bytes were already read (`initial`, to
    /// detect HTTP/2): they are checked first, as if read from `inner`.
    pub fn with_initial(inner: IO, config: std::sync::Arc<GuardConfig>, initial: BytesMut) -> Self {
        let mut guard = Guard::new(inner, config);
        guard.pending = initial;
        guard
    }

    /// Where the guard leaves the reason when it refuses a request body it
    /// cannot follow (chunk framing), for the request handler to answer with.
    pub fn body_refusal(&self) -> BodyRefusal {
        std::sync::Arc::clone(&self.body_refusal)
    }

    /// Where the guard leaves the profile's verdict on a head it refused,
    /// when the profile names one (see [`HeadVerdict`]).
    pub fn head_verdict(&self) -> HeadVerdict {
        std::sync::Arc::clone(&self.head_verdict)
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
                State::ChunkEnd => {
                    if self.pending.len() < 2 {
                        if self.pending[..] != b"\r"[..] {
                            self.refuse_body("a chunk's data is not followed by CRLF");
                        }
                        break;
                    }
                    if self.pending[..2] != b"\r\n"[..] {
                        self.refuse_body("a chunk's data is not followed by CRLF");
                        continue;
                    }
                    self.ready.extend_from_slice(&self.pending[..2]);
                    self.pending.advance(2);
                    self.state = State::ChunkSize;
                }
                State::ChunkSize | State::Trailers => {
                    let Some(at) = self
                        .pending
                        .iter()
                        .take(MAX_CHUNK_LINE)
                        .position(|&b| b == b'\n')
                    else {
                        if self.pending.len() >= MAX_CHUNK_LINE {
                            self.refuse_body(if self.state == State::ChunkSize {
                                "a chunk-size line (with its extensions) is over 4096 bytes"
                            } else {
                                "a trailer line is over 4096 bytes"
                            });
                            continue;
                        }
                        break;
                    };
                    let next = match chunk_line(&self.pending[..at], self.state) {
                        Ok(next) => next,
                        Err(why) => {
                            self.refuse_body(why);
                            continue;
                        }
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

    /// Refuses the body in progress: its framing cannot be followed exactly,
    /// so nothing after it can be trusted to be where the parser would look
    /// for the next head. What was classified before still goes to the
    /// parser; then reads fail, the parser fails the body (so the request
    /// is answered with a refusal and never forwarded), and the connection
    /// ends.
    fn refuse_body(&mut self, why: &'static str) {
        self.pending.clear();
        self.state = State::Discard;
        self.refused_body = Some(why);
        // Set once: the connection ends with the first refused body.
        let _ = self.body_refusal.set(why);
    }

    /// Hands the parser a head that the request handler answers with
    /// `refusal`, and discards the rest of the connection's bytes.
    fn refuse(&mut self, refusal: HeadRefusal) {
        let head = format!(
            "GET / HTTP/1.1\r\nhost: gateway.invalid\r\n{}: {}\r\n\r\n",
            self.config.marker,
            refusal.token()
        );
        self.ready.extend_from_slice(head.as_bytes());
        self.pending.clear();
        self.state = State::Discard;
    }

    /// Handles a head in `pending`; false when it is still incomplete.
    fn head(&mut self) -> bool {
        // Empty lines before a request line are ignored (RFC 9112 §2.2); a
        // bare CR is not one (it stays, and the head is refused).
        let empty = tessera_core::RequestLine::empty_lines(&self.pending);
        self.pending.advance(empty);
        // Nothing yet, or a CR whose LF has not arrived.
        if self.pending.is_empty() || self.pending[..] == b"\r"[..] {
            return false;
        }
        if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.config.header_timeout)));
        }
        // On the stack and left uninitialized: a head is parsed on every
        // request, and a zeroed vector of the configured maximum would be
        // allocated and cleared each time.
        let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
        let max_fields = self.config.max_headers.min(MAX_FIELDS);
        // Every verdict is taken on the first `max_head_bytes` bytes alone:
        // a head not decided within them is too large, whatever lies
        // beyond, so the answer does not depend on how much of the rest had
        // arrived in the same read.
        let max_head_bytes = self.config.max_head_bytes;
        let over_limit = self.pending.len() > max_head_bytes;
        let window = &self.pending[..self.pending.len().min(max_head_bytes)];
        let mut request = httparse::Request::new(&mut []);
        let parsed = request.parse_with_uninit_headers(window, &mut fields[..max_fields]);
        let verdict = match parsed {
            Ok(httparse::Status::Partial) => {
                if over_limit {
                    Err(HeadRefusal::TooLarge)
                } else {
                    return false;
                }
            }
            Err(httparse::Error::TooManyHeaders) => Err(HeadRefusal::TooManyFields),
            Err(_) => {
                // httparse refuses an octet outside visible ASCII in the
                // target along with every other malformed line: the
                // profile names that one. It refuses as soon as it reads
                // the bad byte, so the line (or the fields after it) may not
                // all be here yet: the verdict waits for them, so that it
                // does not depend on how the bytes were cut into reads.
                match verdict_of_request_line(window, max_fields, self.config.served_authorities) {
                    LineVerdict::Incomplete if !over_limit => {
                        self.refused_waiting = true;
                        return false;
                    }
                    // Over the limit whatever its line says, as a valid head
                    // of that size is, however its bytes arrived.
                    LineVerdict::Incomplete => Err(HeadRefusal::TooLarge),
                    // As many fields as a valid line's head is refused for.
                    LineVerdict::TooManyFields => Err(HeadRefusal::TooManyFields),
                    LineVerdict::Decided { verdict } => {
                        if let Some(verdict) = verdict {
                            let _ = self.head_verdict.set(verdict);
                        }
                        Err(HeadRefusal::Malformed)
                    }
                }
            }
            Ok(httparse::Status::Complete(len)) => {
                let checked = check_target(request.path)
                    .and_then(|()| check_framing(&request))
                    .map(|framing| (len, framing));
                if let Err(HeadRefusal::Target | HeadRefusal::Host) = checked {
                    let fields: Vec<(&str, &[u8])> =
                        request.headers.iter().map(|h| (h.name, h.value)).collect();
                    let method = request.method.unwrap_or_default().as_bytes();
                    let target = request.path.unwrap_or_default().as_bytes();
                    if let Some(verdict) =
                        profile_verdict(method, target, &fields, self.config.served_authorities)
                    {
                        let _ = self.head_verdict.set(verdict);
                    }
                }
                checked
            }
        };
        self.deadline = None;
        self.refused_waiting = false;
        match verdict {
            Ok((len, framing)) => {
                // Copied, not split off: splitting would turn both buffers
                // into shared ones and allocate on every request.
                self.ready.extend_from_slice(&self.pending[..len]);
                self.pending.advance(len);
                self.state = framing;
            }
            Err(refusal) => self.refuse(refusal),
        }
        true
    }
}

/// What the profile says of a request the guard refuses, if it names a
/// code for it: the verifier's own step 5 (the rule's one home), run on the
/// head as received under the gateway's authority mode. Only
/// `invalid_field_value` is kept: with no authority served, any other head
/// would fail as `authority_mismatch`, which says nothing of it, and a
/// missing `Host` (which step 5 answers `authority_mismatch`, 401) is
/// refused as RFC 9112 §3.2 requires, with a plain 400.
fn profile_verdict(
    method: &[u8],
    target: &[u8],
    fields: &[(&str, &[u8])],
    served_authorities: bool,
) -> Option<tessera_core::Error> {
    let received = tessera_core::ReceivedRequest::new(method, target, fields);
    let authorities = if served_authorities {
        tessera_core::Authorities::Served(&[])
    } else {
        tessera_core::Authorities::Fixed("gateway.invalid")
    };
    let error = received
        .view(tessera_core::Scheme::Https, authorities)
        .err()?;
    (error.code() == tessera_core::ErrorCode::InvalidFieldValue).then_some(error)
}

/// What the guard can say of a head httparse refused.
enum LineVerdict {
    /// The request line, or the fields after a line with a defect the
    /// profile names, have not all arrived.
    Incomplete,
    /// A line with a defect the profile names, followed by more fields than
    /// the guard takes.
    TooManyFields,
    /// Refused as malformed: with [`profile_verdict`] if the profile names
    /// the defect.
    Decided {
        verdict: Option<tessera_core::Error>,
    },
}

/// [`profile_verdict`] for a head httparse refused: only when its request
/// line ([`tessera_core::RequestLine`], as `tessera verify` reads it) names
/// a defect the profile has a code for (a method that is not a token, a
/// target octet outside visible ASCII), once its fields are all in. A field
/// line that does not parse makes the head malformed, as in `tessera
/// verify`.
fn verdict_of_request_line(
    head: &[u8],
    max_fields: usize,
    served_authorities: bool,
) -> LineVerdict {
    let Some(line) = tessera_core::RequestLine::split(head) else {
        let line_complete = head[tessera_core::RequestLine::empty_lines(head)..].contains(&b'\n');
        return if !line_complete && tessera_core::RequestLine::may_become_one(head) {
            LineVerdict::Incomplete
        } else {
            LineVerdict::Decided { verdict: None }
        };
    };
    if !line.names_a_profile_defect() {
        return LineVerdict::Decided { verdict: None };
    }
    let mut storage = vec![httparse::EMPTY_HEADER; max_fields];
    match httparse::parse_headers(&head[line.fields_start..], &mut storage) {
        Ok(httparse::Status::Complete((_, headers))) => {
            let fields: Vec<(&str, &[u8])> = headers.iter().map(|h| (h.name, h.value)).collect();
            LineVerdict::Decided {
                verdict: profile_verdict(line.method, line.target, &fields, served_authorities),
            }
        }
        Ok(httparse::Status::Partial) => LineVerdict::Incomplete,
        Err(httparse::Error::TooManyHeaders) => LineVerdict::TooManyFields,
        // A field line that does not parse: malformed, as in `tessera verify`.
        Err(_) => LineVerdict::Decided { verdict: None },
    }
}

/// Refuses a request-target the server behind would not parse as a URI
/// (it would answer with a bare 400 and no problem body), or that holds a
/// `#`: a fragment is never sent (RFC 9112 §3.2), spec §8.4 refuses it, and
/// the URI parser behind would drop it silently, so this is the only place
/// that sees it.
fn check_target(target: Option<&str>) -> Result<(), HeadRefusal> {
    let target = target.unwrap_or_default();
    // A `#`, or an octet outside visible ASCII (spec §8.4, §8.5: httparse
    // takes UTF-8 in a target): refused here, with the profile's code.
    if target.contains('#') || !target.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(HeadRefusal::Target);
    }
    // The common case without a second parse: an origin-form target of
    // RFC 3986 path and query characters (unreserved, sub-delims, `:`, `@`,
    // `/`, `?` and `%`, by byte range), which every URI parser takes.
    let plain = target.starts_with('/')
        && target.bytes().all(
            |b| matches!(b, b'!' | b'$'..=b';' | b'=' | b'?'..=b'Z' | b'_' | b'a'..=b'z' | b'~'),
        );
    if plain || http::Uri::try_from(target).is_ok() {
        Ok(())
    } else {
        Err(HeadRefusal::Target)
    }
}

/// The largest `Content-Length` the guard lets through (2^53 - 1).
const MAX_CONTENT_LENGTH: u64 = (1 << 53) - 1;

/// The state after a valid head, or why the head is refused.
fn check_framing(request: &httparse::Request<'_, '_>) -> Result<State, HeadRefusal> {
    let mut lengths = 0usize;
    let mut length = None;
    // Every coding of every Transfer-Encoding line, in order.
    let mut codings: Option<Vec<&[u8]>> = None;
    let mut hosts = 0usize;
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let text = std::str::from_utf8(field.value).map_err(|_| HeadRefusal::BadLength)?;
            if text.contains(',') {
                return Err(HeadRefusal::DoubledLength);
            }
            // OWS only (SP, HTAB): `str::trim` would also take a no-break
            // space, which the parser behind does not.
            let text = text.trim_matches([' ', '\t']);
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadRefusal::BadLength);
            }
            // Far beyond any body limit, and beyond what the parser behind
            // takes as a length (it answers those without a problem body).
            let parsed = text
                .parse::<u64>()
                .ok()
                .filter(|&n| n <= MAX_CONTENT_LENGTH);
            length = Some(parsed.ok_or(HeadRefusal::BadLength)?);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            codings
                .get_or_insert_with(Vec::new)
                .extend(field.value.split(|&b| b == b',').map(trim_ows));
        } else if field.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if lengths > 1 {
        return Err(HeadRefusal::DoubledLength);
    }
    if lengths > 0 && codings.is_some() {
        return Err(HeadRefusal::LengthAndChunked);
    }
    if hosts != 1 {
        return Err(HeadRefusal::Host);
    }
    match codings {
        // Exactly one coding, `chunked`: any other coding (`gzip, chunked`)
        // would reach the upstream still encoded, and a list hyper reads
        // differently (`chunked,`, `chunked, chunked`) is not ours to guess.
        Some(codings)
            if request.version == Some(1)
                && matches!(codings.as_slice(), [only] if only.eq_ignore_ascii_case(b"chunked")) =>
        {
            Ok(State::ChunkSize)
        }
        Some(_) => Err(HeadRefusal::BadTransferEncoding),
        None => match length {
            Some(n) if n > 0 => Ok(State::Body(n)),
            _ => Ok(State::Head),
        },
    }
}

/// A field value element without the optional whitespace around it.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |at| at + 1);
    &value[start..end.max(start)]
}

/// The state after a complete chunk-size or trailer line (`line` is without
/// its LF), or why the line is refused.
///
/// Lines must end in CRLF with no other CR or LF in them: hyper refuses a
/// bare LF in a chunk-size line but takes one inside a trailer line, and a
/// guard that split lines differently would look for the next head where
/// the parser does not.
fn chunk_line(line: &[u8], state: State) -> Result<State, &'static str> {
    let Some(text) = line.strip_suffix(b"\r") else {
        return Err("a chunk-size or trailer line does not end in CRLF");
    };
    if text.contains(&b'\r') {
        return Err("a chunk-size or trailer line has a CR before its end");
    }
    match state {
        State::Trailers if text.is_empty() => Ok(State::Head),
        State::Trailers => Ok(State::Trailers),
        _ => match chunk_size(text)? {
            0 => Ok(State::Trailers),
            n => Ok(State::ChunkData(n)),
        },
    }
}

/// The size of a chunk-size line (`HEX [WS] [;ext]`, without its CRLF), as
/// hyper reads it: leading zeros are allowed, the value must fit in 64 bits.
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let hex_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if hex_end == 0 {
        return Err("a chunk size is not a hex number");
    }
    let digits = &line[..hex_end];
    let first = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    let significant = &digits[first..];
    if significant.len() > 16 {
        return Err("a chunk size has more than 16 significant hex digits");
    }
    let size = significant.iter().fold(0u64, |size, &b| {
        // At most 16 hex digits: no overflow.
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        (size << 4) | u64::from(digit)
    });
    let rest = &line[hex_end..];
    let rest = &rest[rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len())..];
    if !rest.is_empty() && rest[0] != b';' {
        return Err("a chunk-size line has something other than an extension after the size");
    }
    Ok(size)
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
            if let Some(why) = this.refused_body {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
            }
            if this.eof {
                if this.refused_waiting {
                    // Refused already, and the rest will not come: answered
                    // as at the header timeout.
                    this.refused_waiting = false;
                    this.deadline = None;
                    this.refuse(HeadRefusal::Malformed);
                    continue;
                }
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
                                if this.refused_waiting {
                                    // Refused already: answered, not dropped.
                                    this.refused_waiting = false;
                                    this.deadline = None;
                                    this.refuse(HeadRefusal::Malformed);
                                    continue;
                                }
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
    #[test]
    fn the_profile_verdict_follows_the_authority_mode() {
        let host: &[(&str, &[u8])] = &[("Host", b"api.example")];
        let two_hosts: &[(&str, &[u8])] = &[("Host", b"api.example"), ("host", b"x.example")];
        let code = |target: &str, fields: &[(&str, &[u8])], served: bool| {
            profile_verdict(b"GET", target.as_bytes(), fields, served).map(|e| e.code())
        };
        let invalid = Some(tessera_core::ErrorCode::InvalidFieldValue);
        for served in [true, false] {
            assert_eq!(code("/a#b", host, served), invalid, "fragment");
            assert_eq!(code("/caf\u{e9}", host, served), invalid, "non-ASCII");
            // A valid head has no verdict (it would fail only as not served).
            assert_eq!(code("/a", host, served), None);
        }
        // Host rules exist only with served authorities; none is a plain 400.
        assert_eq!(code("/a", two_hosts, true), invalid);
        assert_eq!(code("/a", two_hosts, false), None);
        assert_eq!(code("/a", &[], true), None);
        assert_eq!(code("/a", &[], false), None);
    }

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
    fn targets_no_uri_parser_takes_are_refused() {
        for ok in [
            "/v1/orders?limit=50&cursor=abc%2Fdef",
            "/a\"b{c}",
            "*",
            "api.example.com:443",
            "http://api.example.com/x?y",
            "/caf%C3%A9",
        ] {
            assert_eq!(check_target(Some(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "http:///x",
            "http://",
            "http://[::1/x",
            "/a<b",
            "/a`b",
            "/a>b",
            "",
            "/p#x",
            "/p?a#b",
            "/p#",
            "http://api.example.com/x#y",
        ] {
            assert_eq!(check_target(Some(bad)), Err(HeadRefusal::Target), "{bad}");
        }
        assert_eq!(check_target(None), Err(HeadRefusal::Target));
    }

    #[test]
    fn transfer_codings_other_than_one_chunked_are_refused() {
        let h = "POST / HTTP/1.1\r\nhost: a\r\n";
        for te in [
            "transfer-encoding: gzip, chunked\r\n",
            "transfer-encoding: foo, chunked\r\n",
            "transfer-encoding: identity, chunked\r\n",
            "transfer-encoding: chunked, identity\r\n",
            "transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
            "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
            "transfer-encoding: chunked, chunked\r\n",
            "transfer-encoding: chunked,\r\n",
            "transfer-encoding: , chunked\r\n",
            "transfer-encoding: \r\n",
            "transfer-encoding: xchunked\r\n",
            "transfer-encoding: gzip\r\n",
        ] {
            assert_eq!(
                framing(&format!("{h}{te}\r\n")),
                Err(HeadRefusal::BadTransferEncoding),
                "{te:?}"
            );
        }
        for te in [
            "transfer-encoding: chunked\r\n",
            "transfer-encoding: CHUNKED\r\n",
            "transfer-encoding: Chunked \t \r\n",
        ] {
            assert_eq!(
                framing(&format!("{h}{te}\r\n")),
                Ok(State::ChunkSize),
                "{te:?}"
            );
        }
        assert_eq!(
            framing("POST / HTTP/1.0\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"),
            Err(HeadRefusal::BadTransferEncoding)
        );
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a"), Ok(26));
        assert_eq!(chunk_size(b"0;ext=1"), Ok(0));
        assert_eq!(chunk_size(b"0005;a=b"), Ok(5));
        assert_eq!(chunk_size(b"5 \t;a=b"), Ok(5));
        assert_eq!(chunk_size(b"000000000000000000005"), Ok(5));
        assert_eq!(chunk_size(b"ffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(chunk_size(b"0000ffffffffffffffff"), Ok(u64::MAX));
        assert!(chunk_size(b"10000000000000000").is_err());
        assert!(chunk_size(b"zz").is_err());
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b";a").is_err());
        assert!(chunk_size(b"5 6").is_err());
        assert!(chunk_size(b"5x").is_err());
    }

    #[test]
    fn chunk_lines_must_end_in_crlf() {
        assert_eq!(
            chunk_line(b"5;a=b\r", State::ChunkSize),
            Ok(State::ChunkData(5))
        );
        assert_eq!(chunk_line(b"0\r", State::ChunkSize), Ok(State::Trailers));
        assert_eq!(chunk_line(b"x: y\r", State::Trailers), Ok(State::Trailers));
        assert_eq!(chunk_line(b"\r", State::Trailers), Ok(State::Head));
        assert!(chunk_line(b"5", State::ChunkSize).is_err());
        assert!(chunk_line(b"", State::Trailers).is_err());
        assert!(chunk_line(b"x: y", State::Trailers).is_err());
        assert!(chunk_line(b"5;a\rb\r", State::ChunkSize).is_err());
    }

    /// Feeds `input` through a guard in `parts` (a pause between them) and
    /// returns what the parser would read, up to the end or an error.
    fn through_guard(parts: &[&[u8]]) -> (Vec<u8>, Option<io::Error>) {
        use tokio::io::AsyncReadExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let config = std::sync::Arc::new(GuardConfig {
                marker: "x-marker".to_owned(),
                max_head_bytes: 8192,
                max_headers: 50,
                header_timeout: Duration::from_secs(10),
                served_authorities: true,
            });
            let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for part in parts {
                    // The guard may have stopped reading: a refusal.
                    if client.write_all(&part).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            let mut guard = Guard::new(server, config);
            let mut out = Vec::new();
            let mut buf = [0u8; 1024];
            let error = loop {
                match guard.read(&mut buf).await {
                    Ok(0) => break None,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) => break Some(e),
                }
            };
            writer.abort();
            (out, error)
        })
    }

    #[test]
    fn framing_the_guard_cannot_follow_ends_the_connection() {
        let head = b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
        let next = b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        let long_ext = format!("5;x={}", "a".repeat(5000));
        let long_line = format!("{long_ext}\r\nhello\r\n0\r\n\r\n");
        let cases: [&[&[u8]]; 6] = [
            &[head, b"10000000000000000\r\n", next],
            &[head, long_ext.as_bytes(), b"\r\nhello\r\n0\r\n\r\n", next],
            &[head, long_line.as_bytes(), next],
            &[head, b"5\nhello\r\n0\r\n\r\n", next],
            &[head, b"5\r\nhelloXX0\r\n\r\n", next],
            &[head, b"0\r\n\n", next],
        ];
        for parts in cases {
            let (out, error) = through_guard(parts);
            let error = error.expect("the body is refused");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert!(out.starts_with(head), "{:?}", String::from_utf8_lossy(&out));
            assert!(
                !out.windows(14).any(|w| w == b"content-length"),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn chunked_framing_is_followed_to_the_next_head() {
        let first = b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n0005;a=b\r\nhello\r\n000000000000000000003\r\nabc\r\n0\r\nx: y\r\n\r\n";
        let second = b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        let (out, error) = through_guard(&[first, second]);
        assert!(error.is_none(), "{error:?}");
        assert!(out.starts_with(first));
        assert!(
            out.ends_with(b"x-marker: length-and-chunked\r\n\r\n"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
}
