//! What every gateway test needs: the Python upstream, the gateway binary
//! as a process, keys, signed requests, and a small raw HTTP/1.1 client
//! (so that malformed and hostile requests can be sent byte for byte).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tessera_client::Signer;
use tessera_core::SecretKey;

/// The gateway binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_tessera-gateway");

/// The `tessera` command (tessera-cli), built next to the gateway binary
/// (built here when missing).
pub fn tessera_cli() -> PathBuf {
    let path = Path::new(BIN).with_file_name("tessera");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "tessera-cli"])
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p tessera-cli failed");
    }
    path
}

/// A fresh directory under the target tmp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "gateway-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python upstream (tests/upstream.py) and its request log.
pub struct Upstream {
    pub proc: Proc,
    pub port: u16,
    pub log: PathBuf,
}

impl Upstream {
    /// Starts the upstream in `dir`.
    pub fn start(dir: &Path) -> Upstream {
        let log = dir.join(format!("upstream-{}.log", rand::random::<u32>()));
        std::fs::write(&log, "").unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("upstream said {line:?}"))
            .parse()
            .unwrap();
        Upstream {
            proc: Proc { child },
            port,
            log,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The paths of every request the upstream received, in order.
    pub fn paths(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["path"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

/// A running gateway.
pub struct Gateway {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub stderr: PathBuf,
}

impl Gateway {
    /// Starts `tessera-gateway ARGS` and waits for `listening on`.
    pub fn start(dir: &Path, args: &[&str]) -> Gateway {
        Self::start_with_env(dir, args, &[])
    }

    /// Starts the gateway terminating TLS with the files of [`tls_files`],
    /// in front of `upstream`, with `keys.json` in `dir`.
    pub fn start_tls(dir: &Path, upstream: &Upstream) -> Gateway {
        let config = dir.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "upstream = \"{}\"\n[keys]\nfile = \"keys.json\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
                upstream.url()
            ),
        )
        .unwrap();
        Self::start(dir, &["--config", config.to_str().unwrap()])
    }

    /// Starts the gateway in front of `upstream` with the keys file `keys`
    /// and the further arguments `more`.
    pub fn start_for(dir: &Path, upstream: &Upstream, keys: &Path, more: &[&str]) -> Gateway {
        let url = upstream.url();
        let mut args = vec!["--upstream", &url, "--keys", keys.to_str().unwrap()];
        args.extend_from_slice(more);
        Self::start(dir, &args)
    }

    /// [`Gateway::start`] with environment variables.
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        Self::start_command(Command::new(BIN), dir, args, env)
    }

    /// Starts `COMMAND ARGS` (the gateway binary or `tessera gateway`).
    pub fn start_command(
        mut command: Command,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let stderr = dir.join(format!("gateway-{}.stderr", rand::random::<u32>()));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(addr) = line
            .trim()
            .strip_prefix("listening on http://")
            .or_else(|| line.trim().strip_prefix("listening on https://"))
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gateway said {line:?}; stderr: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        let addr: SocketAddr = addr.parse().unwrap();
        let admin = if args.contains(&"--admin") {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            let rest = line
                .trim()
                .strip_prefix("admin on http://")
                .unwrap()
                .to_owned();
            Some(rest.split(' ').next().unwrap().parse().unwrap())
        } else {
            None
        };
        Gateway {
            proc: Proc { child },
            addr,
            admin,
            stderr,
        }
    }

    /// The gateway's standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits up to 5 s until standard error holds `text` `times` times
    /// (or more); fails the test with the log otherwise.
    pub fn await_log(&self, text: &str, times: usize) {
        assert!(
            eventually(Duration::from_secs(5), || self
                .stderr()
                .matches(text)
                .count()
                >= times),
            "{text:?} not logged {times} time(s):\n{}",
            self.stderr()
        );
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.proc.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A key: id and hex secret.
#[derive(Clone)]
pub struct Key {
    pub id: String,
    pub secret_hex: String,
}

impl Key {
    /// A random key with this id.
    pub fn random(id: &str) -> Key {
        let bytes: [u8; 32] = rand::random();
        Key {
            id: id.to_owned(),
            secret_hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// A signer for the key.
    pub fn signer(&self) -> Signer {
        Signer::new(&self.id, &SecretKey::from_hex(&self.secret_hex).unwrap()).unwrap()
    }
}

/// Writes a keys file: (key, user, scopes, revoked).
pub fn keys_file(dir: &Path, keys: &[(&Key, &str, &[&str], bool)]) -> PathBuf {
    let entries: Vec<Value> = keys
        .iter()
        .map(|(k, user, scopes, revoked)| {
            serde_json::json!({
                "key_id": k.id, "secret_hex": k.secret_hex, "user": user,
                "scopes": scopes, "not_after": null, "revoked": revoked,
            })
        })
        .collect();
    let path = dir.join("keys.json");
    std::fs::write(&path, serde_json::json!({ "keys": entries }).to_string()).unwrap();
    path
}

/// A response as received.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The values of a header the upstream echoed (from its JSON body).
    pub fn echoed(&self, name: &str) -> Vec<String> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|pair| pair[1].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Sends raw bytes, reads until the server closes (or `timeout`), parses
/// the first response.
pub fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                if let Some(reply) = parse(&received) {
                    if complete(&reply, &received) {
                        return Some(reply);
                    }
                }
            }
            Err(_) => break,
        }
    }
    parse(&received)
}

fn complete(reply: &Reply, _received: &[u8]) -> bool {
    match reply
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) => reply.body.len() >= n,
        None => false,
    }
}

/// Parses one response (body by Content-Length, chunked, or to the end).
pub fn parse(bytes: &[u8]) -> Option<Reply> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    let httparse::Status::Complete(len) = response.parse(bytes).ok()? else {
        return None;
    };
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = &bytes[len..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = if chunked {
        dechunk(rest)
    } else if let Some(n) = length {
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Some(Reply {
        status: response.code?,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&rest[..end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
        else {
            return out;
        };
        rest = &rest[end + 2..];
        if size == 0 || rest.len() < size {
            out.extend_from_slice(&rest[..size.min(rest.len())]);
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
}

/// A request to `url` with the `extra` fields, signed by `key`.
pub fn signed_request(
    key: &Key,
    method: &str,
    url: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(body.to_vec()).unwrap();
    key.signer().sign_request(&mut request).unwrap();
    request
}

/// A request signed by `key` for `authority`, serialized with `Connection: close`.
pub fn signed(
    key: &Key,
    method: &str,
    authority: &str,
    path: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let url = format!("http://{authority}{path}");
    serialize(&signed_request(key, method, &url, body, extra), authority)
}

/// Writes a throwaway CA (`ca.pem`) and a certificate for `localhost`
/// signed by it (`cert.pem`, `key.pem`) into `dir`, with openssl.
pub fn tls_files(dir: &Path) {
    let script = "set -e
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\
          -keyout ca.key -out ca.pem -days 1 -subj /CN=gateway-test-ca
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\
          -keyout key.pem -out leaf.csr -subj /CN=localhost
        printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > leaf.ext
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \\
          -out cert.pem -days 1 -extfile leaf.ext";
    let status = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Serializes a request in origin form with `Host` and `Connection: close`.
pub fn serialize(request: &http::Request<Vec<u8>>, authority: &str) -> Vec<u8> {
    let mut out = format!(
        "{} {} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n",
        request.method(),
        request.uri().path_and_query().unwrap()
    )
    .into_bytes();
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !request.body().is_empty() || request.method() != http::Method::GET {
        out.extend_from_slice(format!("content-length: {}\r\n", request.body().len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(request.body());
    out
}

/// Sends a signed request to the gateway and reads the reply.
pub fn send_signed(
    gateway: &Gateway,
    key: &Key,
    method: &str,
    path: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Reply {
    let authority = gateway.addr.to_string();
    let bytes = signed(key, method, &authority, path, body, extra);
    raw(gateway.addr, &bytes, Duration::from_secs(20)).expect("a reply")
}

/// A plain GET through the admin listener.
pub fn admin_get(admin: SocketAddr, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n");
    raw(admin, request.as_bytes(), Duration::from_secs(10)).expect("admin reply")
}

/// A free loopback TCP port, below the ephemeral range (see `ports.rs`).
pub fn free_port() -> u16 {
    ports::free_port()
}

#[path = "../../../tessera-server/tests/support/ports.rs"]
mod ports;

/// A `redis-server` child on `port` without persistence, once it accepts
/// connections; `None` when redis-server is not installed.
pub fn spawn_redis(port: u16) -> Option<Proc> {
    spawn_redis_with(port, &[])
}

/// [`spawn_redis`] with further `redis-server` arguments.
pub fn spawn_redis_with(port: u16, extra: &[&str]) -> Option<Proc> {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--rdb-del-sync-files",
            "yes",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let proc = Proc { child };
    assert!(
        eventually(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "redis-server did not start on port {port}"
    );
    Some(proc)
}

/// Waits until `check` holds, up to `timeout`.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A signed GET that keeps the connection open (no `Connection: close`).
pub fn keep_alive_get(key: &Key, addr: SocketAddr, path: &str) -> Vec<u8> {
    let bytes = signed(key, "GET", &addr.to_string(), path, b"", &[]);
    String::from_utf8(bytes)
        .unwrap()
        .replacen("connection: close\r\n", "", 1)
        .into_bytes()
}

/// Reads one complete response (by Content-Length) from a kept-alive stream.
pub fn read_reply(stream: &mut TcpStream) -> Reply {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed before a complete answer: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        if let Some(reply) = parse(&received) {
            // No Content-Length: a 204, which has no body.
            let length: usize = reply
                .header("content-length")
                .map_or(0, |l| l.parse().unwrap());
            if reply.body.len() >= length {
                return reply;
            }
        }
    }
}
