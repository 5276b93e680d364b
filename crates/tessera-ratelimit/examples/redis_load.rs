//! Redis decisions per second and their latency (p50, p99), with 64 tasks
//! sharing one multiplexed connection, bounded in count and time.
//!
//! Run (a redis-server on PATH, or `TESSERA_TEST_REDIS_URL`):
//! `cargo run --release -p tessera-ratelimit --features redis --example redis_load -- [decisions] [tasks]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tessera_ratelimit::MicroClock;
use tessera_ratelimit::{Plan, RateStore, RedisRateStore, Subject, SystemMicroClock};

/// Tasks sharing the connection unless the second argument says otherwise.
const DEFAULT_TASKS: usize = 64;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    // One task: the latency a decision adds to a request on an idle
    // connection; many: throughput, with queueing in the latency.
    let task_count: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_TASKS);
    let (url, mut child) = match std::env::var("TESSERA_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .stdout(Stdio::null())
                .spawn()?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            (format!("redis://127.0.0.1:{port}/"), Some(child))
        }
    };
    let store = RedisRateStore::connect(&url, "tessera-load").await?;
    let plan = Plan::new("load", "1000000/s".parse()?, 1_000_000)?;
    let per_task = total / task_count;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for t in 0..task_count {
        let (store, plan) = (store.clone(), plan.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            let id = format!("key-{t}");
            for _ in 0..per_task {
                if Instant::now() > deadline {
                    break;
                }
                let t0 = Instant::now();
                let d = store
                    .decide(
                        Subject::new("key", &id),
                        &plan,
                        1,
                        SystemMicroClock.now_micros(),
                    )
                    .await;
                latencies.push(t0.elapsed());
                assert!(d.is_ok_and(|d| d.allowed), "Redis answered and allowed");
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await?);
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "redis_load: {} decisions by {task_count} tasks in {:.2} s: {:.0} decisions/s, p50 {:?}, p99 {:?}",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
    if let Some(child) = child.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}
