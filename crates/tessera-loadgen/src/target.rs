//! What a run sends: one URL, one method, one body, optionally signed.

use std::net::{SocketAddr, ToSocketAddrs};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use tessera_client::{BodyDigest, Signer};

/// The request template of a run.
pub(crate) struct Target {
    /// Where to connect.
    pub(crate) addr: SocketAddr,
    /// The absolute URL (what is signed).
    url: String,
    /// The origin-form target on the request line.
    path: Uri,
    /// The `Host` header.
    host: HeaderValue,
    method: Method,
    body: Bytes,
    digest: BodyDigest,
    /// Round robin over these; none: unsigned requests.
    signers: Vec<Signer>,
}

impl Target {
    /// A template for `method url` with a body of `body_bytes` bytes (JSON,
    /// `Content-Type: application/json`, when not empty).
    pub(crate) fn new(
        url: &str,
        method: Method,
        body_bytes: usize,
        signers: Vec<Signer>,
    ) -> Result<Target, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "invalid URL {url:?}: only http:// is supported (loopback benchmarks)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("invalid URL {url:?}: no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = (authority.host(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", authority.host()))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", authority.host()))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("invalid path in {url:?}: {e}"))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("invalid host in {url:?}: {e}"))?;
        let body = Bytes::from(json_body(body_bytes));
        Ok(Target {
            addr,
            url: uri.to_string(),
            path,
            host,
            digest: BodyDigest::of(&body),
            method,
            body,
            signers,
        })
    }

    /// Whether requests are signed.
    pub(crate) fn signed(&self) -> bool {
        !self.signers.is_empty()
    }

    /// Request number `n`: signed (fresh nonce, current time) by signer
    /// `n mod count` when there are signers.
    pub(crate) fn request(&self, n: u64) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.path.clone())
            .header(http::header::HOST, self.host.clone());
        if !self.body.is_empty() {
            request = request.header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let mut request = request
            .body(Full::new(self.body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        if !self.signers.is_empty() {
            let count = self.signers.len() as u64;
            let index = usize::try_from(n % count).unwrap_or(0);
            let signer = &self.signers[index];
            let signed = signer
                .sign(
                    self.method.as_str(),
                    self.url.as_str(),
                    request.headers(),
                    &self.digest,
                )
                .map_err(|e| format!("cannot sign {}: {e}", self.url))?;
            signed.apply_to_headers(request.headers_mut());
        }
        Ok(request)
    }
}

/// A JSON object of exactly `len` bytes when `len >= 12`
/// (`{"pad":"aaa…"}`), else `len` bytes of `a`.
fn json_body(len: usize) -> Vec<u8> {
    const FRAME: usize = "{\"pad\":\"\"}".len();
    if len < FRAME + 2 {
        return vec![b'a'; len];
    }
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(b"{\"pad\":\"");
    body.resize(len - 2, b'a');
    body.extend_from_slice(b"\"}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_length() {
        for len in [0, 1, 11, 12, 13, 1024] {
            assert_eq!(json_body(len).len(), len);
        }
        let body = json_body(1024);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert!(value["pad"].is_string());
    }

    #[test]
    fn urls() {
        let t = Target::new("http://127.0.0.1:9/a?b=1", Method::GET, 0, vec![]).expect("ok");
        assert_eq!(t.addr.port(), 9);
        assert_eq!(t.path, "/a?b=1");
        assert!(Target::new("https://127.0.0.1:9/", Method::GET, 0, vec![]).is_err());
        assert!(Target::new("not a url", Method::GET, 0, vec![]).is_err());
    }
}
