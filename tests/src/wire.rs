//! Raw HTTP/1.1 over TCP: a recording tap in front of a server, and a
//! byte-exact sender for replays.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A response read off a raw connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Status line and header lines, as received.
    pub head: String,
    /// The body (de-chunked if it was chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        if n.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Reads one HTTP/1.1 message (head plus a `Content-Length` or chunked body).
async fn read_message(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in the head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        while find(&buf[head_end..], b"0\r\n\r\n").is_none() {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut body = Vec::new();
        let mut rest = &buf[head_end..];
        while let Some(line_end) = find(rest, b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            let start = line_end + 2;
            body.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
            rest = &rest[(start + size + 2).min(rest.len())..];
        }
        return Ok((head, body, buf));
    }
    let len = content_length(&head).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..(head_end + len).min(buf.len())].to_vec();
    Ok((head, body, buf))
}

/// Writes `request` byte for byte to `addr` on a new connection and reads one response.
///
/// # Errors
/// I/O errors, or a time-out after 10 seconds.
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<RawResponse> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let (head, body, _) = read_message(&mut stream).await?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(RawResponse { status, head, body })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response in 10 s"))?
}

/// A TCP forwarder that records the exact bytes of the first request on
/// every connection before passing everything through to `upstream`.
#[derive(Debug, Clone)]
pub struct Tap {
    /// Where clients connect.
    pub addr: SocketAddr,
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Tap {
    /// Starts a tap in front of `upstream` on 127.0.0.1, on a free port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Tap> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let tap = Tap {
            addr: listener.local_addr()?,
            captured: Arc::default(),
        };
        let captured = tap.captured.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let captured = captured.clone();
                tokio::spawn(async move {
                    let Ok((_, _, raw)) = read_message(&mut client).await else {
                        return;
                    };
                    if let Ok(mut c) = captured.lock() {
                        c.push(raw.clone());
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    if server.write_all(&raw).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(tap)
    }

    /// The first request of each connection so far, byte for byte.
    pub fn captured(&self) -> Vec<Vec<u8>> {
        self.captured.lock().map(|c| c.clone()).unwrap_or_default()
    }
}
