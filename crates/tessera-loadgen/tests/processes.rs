//! The two binaries as processes over loopback: the upstream answers the
//! load generator's closed and open loops; an upstream answering 503 and a
//! port nobody listens on make the run fail loudly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tessera-loadgen");

/// The upstream process; killed on drop.
struct Upstream {
    child: Child,
    url: String,
}

impl Upstream {
    fn start() -> Upstream {
        let mut child = Command::new(BIN)
            .args(["upstream", "--listen", "127.0.0.1:0", "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the upstream");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Upstream { child, url }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("run")
        .args(args)
        .output()
        .expect("run the load generator")
}

/// `key=value` of the result line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn closed_loop_by_count_and_open_loop_by_rate() {
    let upstream = Upstream::start();
    let url = format!("{}/v1/orders?x=1", upstream.url);

    let out = run(&[
        "--url",
        &url,
        "--method",
        "POST",
        "--connections",
        "4",
        "--requests",
        "500",
        "--label",
        "count",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&stdout, "requests"), "500");
    assert_eq!(field(&stdout, "errors"), "0");
    assert_eq!(field(&stdout, "body_bytes"), "1024");
    assert_eq!(field(&stdout, "signed"), "no");
    assert!(field(&stdout, "p99_us").parse::<u64>().expect("p99") > 0);

    // 400 req/s for 1 s after a 0.2 s warm-up: about 400 answers measured.
    let out = run(&[
        "--url",
        &url,
        "--rate",
        "400",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--connections",
        "4",
        "--label",
        "open",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&stdout, "mode"), "open:rate=400");
    let answered: u64 = field(&stdout, "requests").parse().expect("count");
    assert!((390..=410).contains(&answered), "{stdout}");
}

#[test]
fn non_2xx_answers_and_refused_connections_fail_the_run() {
    // A server answering 503 to everything, keep-alive.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                // One GET (no body) per read is enough for this test.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    let reply = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("http://{addr}/");
    let out = run(&["--url", &url, "--connections", "1", "--requests", "20"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(field(&stdout, "errors"), "20");
    assert!(
        stderr.contains("FAILED") && stderr.contains("HTTP 503 x20"),
        "{stderr}"
    );

    // Nobody listens: the run cannot start.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let out = run(&[
        "--url",
        &format!("http://127.0.0.1:{port}/"),
        "--requests",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("connect"));
}

#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["--url", "https://127.0.0.1:1/", "--requests", "1"][..],
        &["--url", "http://127.0.0.1:1/", "--duration", "9999"][..],
        &["--url", "http://127.0.0.1:1/", "--rate", "0"][..],
        &["--url", "http://127.0.0.1:1/", "--connections", "0"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
