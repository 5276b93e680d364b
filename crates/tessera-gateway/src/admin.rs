//! The admin listener: Prometheus `/metrics`, `/healthz` (the process
//! runs) and `/readyz` (the nonce store and the key store answer, and the
//! rate-limit store when budgets live in Redis).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tessera_ratelimit::FailureMode;
use tessera_server::NonceStore;
use tokio::net::TcpListener;

use crate::problem::full;
use crate::send_stall::SendStall;
use crate::stores::{probe_keys, probe_nonces, probe_rate_store, Keys, RateLimit};
use crate::Body;

/// Buckets of the latency histograms, seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// How often the recorded samples are folded into the histograms.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Installs the Prometheus recorder (once per process) and returns its handle.
///
/// # Errors
/// A recorder is already installed.
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    metrics::describe_counter!(
        "gateway_requests_total",
        "Requests by outcome (forwarded, public, rejected, refused, upstream_error) and error code"
    );
    metrics::describe_histogram!(
        "gateway_verify_seconds",
        "Time to verify a request, body read included"
    );
    metrics::describe_histogram!(
        "gateway_upstream_seconds",
        "Time to the upstream's response head"
    );
    metrics::describe_counter!(
        "gateway_store_errors_total",
        "Requests refused because the nonce or key store could not answer"
    );
    metrics::describe_gauge!("gateway_connections", "Client connections open");
    metrics::describe_gauge!(
        crate::body_budget::BYTES_IN_PROGRESS,
        "Request body bytes charged to the body budget while bodies are read (whole KiB, at most the body limit per body), by sender (public: to public routes; key: signed; unknown: neither)"
    );
    metrics::describe_counter!(
        "gateway_connections_refused_total",
        "Client connections closed at accept, by reason (per_client_cap: the client address held limits.max_connections_per_client)"
    );
    metrics::describe_counter!(
        crate::send_stall::CLOSED_METRIC,
        "Client connections closed by the send limits, by listener (main, admin) and reason (send_stall: no response byte taken for the body timeout; slow_reader: under limits.min_send_bytes_per_sec over a body timeout of waiting writes)"
    );
    metrics::describe_counter!(
        "gateway_upstream_connects_total",
        "Connections opened to the upstream (one per client connection, kept alive)"
    );
    metrics::describe_gauge!(
        "gateway_key_cache_hits",
        "SQL key store: resolves answered from the cache"
    );
    metrics::describe_gauge!(
        "gateway_key_db_lookups",
        "SQL key store: resolves sent to the database"
    );
    // Upkeep folds the latency samples recorded since the last run into the
    // histograms: work proportional to the request rate (about 10,000
    // samples a second at 5,000 requests/s). On a thread of its own, so
    // that it never stalls a worker's event loop (the first worker shares
    // the main runtime), and every second, so that each run is short.
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        })
        .map_err(|e| format!("metrics: cannot start the upkeep thread: {e}"))?;
    Ok(handle)
}

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    /// The metrics.
    pub metrics: PrometheusHandle,
    /// The nonce store to probe.
    pub nonces: Arc<dyn NonceStore>,
    /// The key store to probe.
    pub keys: Keys,
    /// The rate limiter (its Redis store to probe).
    pub rate: Option<RateLimit>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        match request.uri().path() {
            "/metrics" => {
                if let Some(sql) = &self.keys.sql {
                    let stats = sql.stats();
                    metrics::gauge!("gateway_key_cache_hits").set(stats.cache_hits as f64);
                    metrics::gauge!("gateway_key_db_lookups").set(stats.db_lookups as f64);
                }
                // Rate-limit decisions are counted by the limiter itself
                // (`tessera_rate_limit_decisions_total{outcome}`).
                text(
                    StatusCode::OK,
                    self.metrics.render(),
                    "text/plain; version=0.0.4",
                )
            }
            "/healthz" => text(StatusCode::OK, "ok\n".to_owned(), "text/plain"),
            "/readyz" => {
                let rate_probe = async {
                    match self.rate.as_ref().and_then(|r| r.redis.as_ref()) {
                        Some(store) => probe_rate_store(store).await,
                        None => Ok(()),
                    }
                };
                let (nonces, keys, rate) = tokio::join!(
                    probe_nonces(&*self.nonces),
                    probe_keys(&self.keys),
                    rate_probe
                );
                // Fail-open limits keep the gateway serving (unlimited)
                // while their store is down: still ready, but said so.
                // Fail-closed limits refuse every limited request: not ready.
                let fail_open = self
                    .rate
                    .as_ref()
                    .is_none_or(|r| r.on_store_failure == FailureMode::Open);
                let (rate_blocks, rate_note) = match rate {
                    Ok(()) => (None, None),
                    Err(e) if fail_open => (None, Some(e)),
                    Err(e) => (Some(e), None),
                };
                match (nonces, keys, rate_blocks) {
                    (Ok(()), Ok(()), None) => {
                        let body = match rate_note {
                            None => "ready\n".to_owned(),
                            Some(e) => format!(
                                "ready (degraded: {e}; rate limits are not enforced while it is down)\n"
                            ),
                        };
                        text(StatusCode::OK, body, "text/plain")
                    }
                    (n, k, r) => {
                        let mut why = String::from("not ready");
                        for e in [n.err(), k.err(), r].into_iter().flatten() {
                            why.push_str(": ");
                            why.push_str(&e);
                        }
                        why.push('\n');
                        text(StatusCode::SERVICE_UNAVAILABLE, why, "text/plain")
                    }
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found\n".to_owned(),
                "text/plain",
            ),
        }
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Admin connections served at once; more are closed at accept. Scrapers
/// and probes need a few; the cap keeps a flood of them from taking the
/// file descriptors the main listener and the upstream connections need.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// How long an admin connection may wait for a request head, and a
/// response wait for the client to take it.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the admin endpoints on `listener` until the process ends.
pub async fn serve(listener: TcpListener, admin: Admin) {
    let admin = Arc::new(admin);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Closed at once rather than queued: a probe retries.
            drop(stream);
            continue;
        };
        let admin = Arc::clone(&admin);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let admin = Arc::clone(&admin);
                async move { Ok::<_, Infallible>(admin.handle(request).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(ADMIN_TIMEOUT);
            let _ = crate::send_stall::limit_unsent(socket2::SockRef::from(&stream));
            let io = SendStall::new(
                stream,
                ADMIN_TIMEOUT,
                crate::config::DEFAULT_MIN_SEND_BYTES_PER_SEC,
                "admin",
                peer,
            );
            let _ = http.serve_connection(TokioIo::new(io), service).await;
            drop(slot);
        });
    }
}

/// The admin address for the start-up line.
pub fn describe(addr: SocketAddr) -> String {
    format!("admin on http://{addr} (/metrics /healthz /readyz)")
}
