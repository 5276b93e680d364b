//! What every test of the `tessera` binary needs: running it, a scratch
//! directory, and keys from `tessera keygen`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera` with these arguments (bytes as the OS passes them), no
/// standard input and no `TESSERA_SECRET`.
pub fn run(args: &[&OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TESSERA_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// [`run`] with UTF-8 arguments.
pub fn tessera(args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run(&args)
}

/// Output bytes as text, for messages and matching.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory under the target tmp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A key from `keygen --json`, with its secret written to a file.
pub struct Key {
    /// The whole `keygen --json` entry, usable in a keys file.
    pub json: Value,
    /// The key id.
    pub id: String,
    /// The file holding the secret as hex.
    pub secret_file: PathBuf,
}

/// A new key for `user` with these comma-separated scopes.
pub fn keygen(dir: &Path, user: &str, scopes: &str) -> Key {
    let out = tessera(&["keygen", "--user", user, "--scopes", scopes, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let id = json["key_id"].as_str().unwrap().to_owned();
    let secret_file = dir.join(format!("{user}.hex"));
    std::fs::write(&secret_file, json["secret_hex"].as_str().unwrap()).unwrap();
    Key {
        json,
        id,
        secret_file,
    }
}

/// A `tessera serve` keys file holding `keys`.
pub fn keys_file(keys: &[&Key], dir: &Path) -> PathBuf {
    let file = dir.join("keys.json");
    let entries: Vec<Value> = keys.iter().map(|k| k.json.clone()).collect();
    std::fs::write(&file, serde_json::json!({ "keys": entries }).to_string()).unwrap();
    file
}

/// `tessera serve` for the duration of a test, its standard error in a file;
/// killed on drop, so also when an assertion fails.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://IP:PORT`.
    pub url: String,
    /// Its standard error.
    pub log: PathBuf,
}

impl Server {
    pub fn start(keys: &[&Key], dir: &Path, extra: &[&str]) -> Server {
        Server::start_at(keys, dir, "127.0.0.1:0", extra)
    }

    /// As [`Server::start`], listening on `addr`.
    pub fn start_at(keys: &[&Key], dir: &Path, addr: &str, extra: &[&str]) -> Server {
        let file = keys_file(keys, dir);
        let log = dir.join(format!(
            "serve-{}.log",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", addr, "--keys", file.to_str().unwrap()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line {line:?}")
            })
            .to_owned();
        let addr: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
        assert!(addr.ip().is_loopback(), "{url}");
        Server {
            child,
            addr,
            url,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Waits up to `wait` for a log line containing `needle`.
    pub fn log_line(&self, needle: &str, wait: Duration) -> String {
        let until = Instant::now() + wait;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(Instant::now() < until, "no {needle:?} in the log:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tessera serve` with exactly these arguments (after `serve`) and extra
/// environment variables; killed on drop.
pub fn serve_with(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
    let log = dir.join(format!(
        "serve-{}.log",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .args(args)
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_MASTER_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(url) = line.trim_end().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "unexpected first line {line:?}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    let url = url.to_owned();
    let addr: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    Server {
        child,
        addr,
        url,
        log,
    }
}

/// Runs `tessera` with these arguments and extra environment variables
/// (no TESSERA_MASTER_KEY unless given).
pub fn tessera_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("TESSERA_SECRET")
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_MASTER_KEY_FILE")
        .stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// The signature headers `tessera sign` prints for a GET of `url`, signed
/// now with `key_id` and the secret in `secret_file`, as CRLF-ended lines.
pub fn cli_signed_get(url: &str, key_id: &str, secret_file: &Path) -> String {
    cli_signed_get_with(url, key_id, secret_file, &[])
}

/// As [`cli_signed_get`], with more `tessera sign` arguments (`--created`).
pub fn cli_signed_get_with(url: &str, key_id: &str, secret_file: &Path, more: &[&str]) -> String {
    let mut args = vec![
        "sign",
        "GET",
        url,
        "--key-id",
        key_id,
        "--secret-file",
        secret_file.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    let out = tessera(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect()
}

/// The whole raw HTTP/1.1 answer to a GET of `path` with `headers` (CRLF
/// lines) sent to `addr` on a connection of its own.
pub fn raw_get_reply(addr: SocketAddr, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// As [`raw_get_reply`]: the status code and the body.
pub fn raw_get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let reply = raw_get_reply(addr, path, headers);
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {reply:?}"));
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}
