//! A real `redis-server` for the Redis tests and the benchmark, on loopback.
//!
//! * [`shared`]: the server named by `TESSERA_TEST_REDIS_URL` (scripts/test
//!   starts one), else a child `redis-server` of this process when it is on
//!   PATH.
//! * [`RedisServer::spawn`]: always a child of this process on its own free
//!   port, for tests that stop and restart it.
//!
//! Without any Redis the tests print "skipped: no redis-server" and pass,
//! except under `CI=true`, where a missing Redis fails them.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const URL_VAR: &str = "TESSERA_TEST_REDIS_URL";

/// A `redis-server` child process; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    extra: Vec<String>,
}

/// Where the tests find Redis.
pub enum TestRedis {
    /// `TESSERA_TEST_REDIS_URL`.
    External(String),
    /// A child of this process.
    Own(RedisServer),
}

impl TestRedis {
    pub fn url(&self) -> String {
        match self {
            TestRedis::External(url) => url.clone(),
            TestRedis::Own(server) => server.url(),
        }
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports that Redis is missing: a panic in CI, a skip message otherwise.
pub fn skip(test: &str) {
    let msg =
        format!("skipped: no redis-server ({test}): set {URL_VAR} or put redis-server on PATH");
    assert!(!in_ci(), "CI=true and Redis is missing: {msg}");
    // Straight to stderr: the test harness would capture `eprintln!`.
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The shared Redis, or `None` after reporting a skip.
pub fn shared(test: &str) -> Option<TestRedis> {
    if let Ok(url) = std::env::var(URL_VAR) {
        if !url.is_empty() {
            return Some(TestRedis::External(url));
        }
    }
    RedisServer::spawn(test).map(TestRedis::Own)
}

fn on_path() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// Relative to this file, wherever it is included from.
#[path = "ports.rs"]
mod ports;
pub use ports::free_port;

impl RedisServer {
    /// A new server on a free loopback port, or `None` after reporting a skip.
    pub fn spawn(test: &str) -> Option<RedisServer> {
        RedisServer::spawn_with(test, &[])
    }

    /// Like [`RedisServer::spawn`] with extra `redis-server` arguments.
    pub fn spawn_with(test: &str, extra: &[&str]) -> Option<RedisServer> {
        if !on_path() {
            skip(test);
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.start();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (or restarts) the server on its port and waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            // Without persistence, no replication file either (spec §14.2).
            .args(["--rdb-del-sync-files", "yes"])
            .args(["--daemonize", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not come up",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces the extra `redis-server` arguments used by the next
    /// [`RedisServer::start`].
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGSTOP (`pause = true`) or SIGCONT to the server: a Redis that
    /// accepts connections but does not answer.
    pub fn pause(&self, pause: bool) {
        let pid = self.pid().expect("running").to_string();
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// True when something on the port answers an inline PING with +PONG or
    /// an authentication error (a server with `requirepass`).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 64];
        match stream.read(&mut reply) {
            Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
            Err(_) => false,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
