//! # tessera-gateway
//!
//! A verifying reverse proxy for the `tessera-v1` profile of RFC 9421 HTTP
//! Message Signatures: put one process in front of an API written in any
//! language, and every request that reaches the API was signed with a
//! valid, unrevoked key, within the window, never replayed, with its body
//! digest checked.
//!
//! * Verification is `tessera-server`'s `Verifier`,
//!   not a second implementation: the same checks, the same problem+json
//!   rejections (`WWW-Authenticate`, the clock-skew challenge). Rejections
//!   are answered by the gateway and never reach the upstream.
//! * The request body is read whole (under the body limit and the body
//!   deadline) and its digest checked before anything is forwarded; the
//!   response streams back without buffering. Each client connection keeps
//!   at most one idle keep-alive connection to the upstream (an HTTP/2 one
//!   uses up to 8 at once for its streams), each driven in its own task
//!   ([`upstream`]).
//! * Connections are served by workers, each an event loop on a thread of
//!   its own, that one acceptor hands connections to, the least busy first
//!   ([`server`]).
//! * Forwarded requests carry identity fields (`Tessera-Key-Id`,
//!   `Tessera-Owner`, `Tessera-Scopes` by default) set from the verified
//!   key, after every client copy was removed, and `Forwarded` /
//!   `X-Forwarded-For` / `X-Forwarded-Proto` / `X-Forwarded-Host` set by the
//!   gateway (appended to only when the peer is a configured trusted proxy).
//!   Hop-by-hop fields are removed both ways.
//! * Hardening: a head guard in front of the HTTP parser refuses oversized
//!   heads (431 with a problem+json body), request-smuggling shapes
//!   (`Content-Length` with `Transfer-Encoding`, doubled `Content-Length`)
//!   and anything but exactly one `Host` (400); header, body and idle
//!   timeouts; a connection cap; graceful drain on SIGTERM; configuration
//!   reload on SIGHUP, reaching open connections too.
//! * An admin listener with Prometheus `/metrics`, `/healthz` and `/readyz`;
//!   JSON logs with the key id, owner, code and latency, never a secret, a
//!   signature or a signature base.
//!
//! Run it with [`cli::Args`] (`tessera-gateway` or `tessera gateway`), or
//! from code with [`config::FileConfig::validate`] and [`run`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod body_budget;
pub mod cli;
pub mod client_cap;
pub mod config;
pub mod deadline;
pub mod forward;
pub mod guard;
pub mod http2;
pub mod idle_body;
pub mod method_override;
pub mod problem;
pub mod proxy;
pub mod routes;
pub mod send_stall;
pub mod server;
pub mod stores;
pub mod tls;
pub mod upstream;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;
use tessera_server::{SystemClock, Verifier};

use crate::config::Settings;
use crate::guard::GuardConfig;

/// The boxed error of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends (streamed from the
/// upstream, or a complete problem document).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// How [`run`] runs, besides the configuration.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Forward without verifying (loopback listen addresses only; for
    /// measuring the proxy path alone).
    pub unverified_benchmark_mode: bool,
    /// Where a reload on SIGHUP reads the configuration; `None`: SIGHUP
    /// is not handled.
    pub reload: Option<ReloadSource>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("unverified_benchmark_mode", &self.unverified_benchmark_mode)
            .field("reload", &self.reload.is_some())
            .finish()
    }
}

/// Raises the soft limit on open files to the hard limit (as nginx's
/// `worker_rlimit_nofile` and Go's runtime do): each client connection can
/// hold a socket to the upstream as well, so `max_connections` needs about
/// twice as many descriptors, and a default soft limit of 1,024 would run
/// out first (`accept` failing with "Too many open files"). Says so when the
/// hard limit is too low.
fn raise_open_files_limit(max_connections: usize) {
    // Client and upstream sockets, the admin listener's connections, and
    // room for the stores, log files and listeners.
    let wanted = 2 * max_connections as u64 + admin::MAX_ADMIN_CONNECTIONS as u64 + 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            open_files = limit,
            wanted,
            "the open-files limit is below what limits.max_connections needs (two sockets per client connection); raise `ulimit -n` (LimitNOFILE= under systemd) or lower limits.max_connections"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-files limit"),
    }
}

/// Why [`run`] could not start the gateway. Its `Display` is the message
/// for the operator (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// Something the configuration names is unusable as it is (a keys file
    /// that does not parse, a wrong or malformed master key, a revocation
    /// list line that names no key, a key database without the schema):
    /// retrying cannot help until it is fixed. `tessera-gateway` exits with
    /// 2 for it, as `--check` does for the same file.
    Invalid(String),
    /// Something the gateway needs cannot be had now (a database or Redis
    /// that does not answer, an address already in use): a later start may
    /// succeed. `tessera-gateway` exits with 1.
    Unavailable(String),
}

impl StartError {
    /// The process exit status `tessera-gateway` gives it: 2 or 1.
    pub fn exit_status(&self) -> u8 {
        match self {
            StartError::Invalid(_) => 2,
            StartError::Unavailable(_) => 1,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Invalid(message) | StartError::Unavailable(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StartError {}

/// What was not there to be had: the default for the start-up steps that
/// reach a store, a socket or the terminal.
impl From<String> for StartError {
    fn from(message: String) -> Self {
        StartError::Unavailable(message)
    }
}

/// The configuration a reload starts from, and how to read it again.
#[derive(Clone)]
pub struct ReloadSource {
    /// The configuration the gateway started with.
    pub initial: config::FileConfig,
    /// Reads the configuration again (the file, with the command line's
    /// flags over it).
    pub read: Arc<dyn Fn() -> Result<config::FileConfig, String> + Send + Sync>,
}

/// Opens the stores, binds the listeners, prints `listening on
/// http://IP:PORT` (and the admin address) on standard output, and serves
/// until SIGTERM or SIGINT; reloads the configuration on SIGHUP when
/// `options.reload` says where to read it.
///
/// # Errors
/// [`StartError::Invalid`] for a file or key the configuration names that
/// is unusable (a key source that does not load; `--check` finds the same),
/// [`StartError::Unavailable`] for what cannot be had now: a store that
/// cannot be reached, an address that cannot be bound.
pub async fn run(settings: Settings, options: RunOptions) -> Result<(), StartError> {
    if options.unverified_benchmark_mode && !settings.listen.ip().is_loopback() {
        return Err(StartError::Invalid(format!(
            "--unverified-benchmark-mode only listens on loopback addresses, not {}",
            settings.listen
        )));
    }
    raise_open_files_limit(settings.limits.max_connections);
    let keys = stores::open_keys(&settings).await?;
    let (nonces, nonces_from, serves_from) = stores::open_nonces(&settings).await?;
    let rate = stores::open_rate_limit(&settings).await?;
    let metrics = admin::install_metrics()?;
    let certificate = match &settings.tls {
        Some(tls) => Some(Arc::new(tls::Certificate::load(tls)?)),
        None => None,
    };
    let tls = match &certificate {
        Some(certificate) => Some(certificate.acceptor(settings.http2)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;

    let verifier = if options.unverified_benchmark_mode {
        tracing::warn!(
            "UNVERIFIED BENCHMARK MODE: requests are forwarded WITHOUT signature verification; never use this outside a loopback benchmark"
        );
        eprintln!("tessera-gateway: WARNING: --unverified-benchmark-mode: NO SIGNATURE IS VERIFIED (loopback benchmark only)");
        None
    } else {
        Some(
            build_verifier(&settings, &keys, &nonces, rate.as_ref(), addr)
                .map_err(StartError::Invalid)?,
        )
    };
    let admin_addr = match settings.admin {
        Some(admin_addr) => {
            let admin_listener = tokio::net::TcpListener::bind(admin_addr)
                .await
                .map_err(|e| format!("cannot listen on {admin_addr} (admin): {e}"))?;
            let bound = admin_listener
                .local_addr()
                .map_err(|e| format!("cannot read the bound admin address: {e}"))?;
            let state = admin::Admin {
                metrics,
                nonces: Arc::clone(&nonces),
                keys: keys.clone(),
                rate: rate.clone(),
            };
            tokio::spawn(admin::serve(admin_listener, state));
            Some(bound)
        }
        None => None,
    };
    let marker = random_marker();
    let guard = Arc::new(GuardConfig {
        marker: marker.as_str().to_owned(),
        max_head_bytes: settings.limits.max_header_bytes,
        max_headers: settings.limits.max_headers,
        header_timeout: settings.limits.header_timeout,
        // Not reloadable (a reload that changes it is refused).
        served_authorities: settings.fixed_authority.is_none(),
    });
    // A memory nonce store vouches from its memory point (spec §14.1):
    // say "listening" only once a request signed now is accepted.
    while tessera_core::Clock::now_unix(&SystemClock::new()) < serves_from {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut stdout = std::io::stdout();
    let mut lines = format!("listening on {scheme}://{addr}\n");
    if let Some(admin_addr) = admin_addr {
        lines.push_str(&admin::describe(admin_addr));
        lines.push('\n');
    }
    stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to standard output: {e}"))?;
    warn_about_defaults(&settings, addr);
    let authorities = match &settings.fixed_authority {
        Some(fixed) => format!("{fixed} (fixed)"),
        None => served_authorities(&settings, addr).join(" "),
    };
    tracing::info!(
        listen = %addr,
        scheme = %settings.scheme.as_str(),
        authorities = %authorities,
        window_secs = settings.window,
        upstream = %settings.upstream,
        keys = %keys.description,
        nonces = %nonces_from,
        rate_limits = rate.as_ref().map_or("none", |r| r.description.as_str()),
        verify = !options.unverified_benchmark_mode,
        "tessera-gateway started"
    );
    let limits = settings.limits;
    let http2 = settings.http2;
    let workers = settings.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let (current, proxies) = tokio::sync::watch::channel(Arc::new(proxy::Proxy::new(
        verifier,
        settings,
        marker.clone(),
    )));
    if let Some(source) = options.reload {
        let rebuild = Rebuild {
            certificate,
            keys,
            nonces,
            rate,
            addr,
            marker,
            verify: !options.unverified_benchmark_mode,
        };
        tokio::spawn(reload_on_hangup(source, rebuild, current));
    }
    server::serve(listener, proxies, limits, http2, guard, tls, workers).await;
    Ok(())
}

/// The authorities requests may be signed for: the configured ones, or,
/// with none configured, the bound address and `localhost` on its port
/// (and `127.0.0.1` when bound to every address).
fn served_authorities(settings: &Settings, addr: SocketAddr) -> Vec<String> {
    if !settings.authorities.is_empty() {
        return settings.authorities.clone();
    }
    let port = addr.port();
    let mut served = vec![addr.to_string(), format!("localhost:{port}")];
    if addr.ip().is_unspecified() {
        served.push(format!("127.0.0.1:{port}"));
    }
    served
}

/// Start-up warnings for settings that work but are rarely what a
/// deployment wants: a port the system picked, and a gateway reachable
/// from other hosts that serves only its own address as authority.
fn warn_about_defaults(settings: &Settings, addr: SocketAddr) {
    if settings.listen.port() == 0 {
        tracing::warn!(
            listen = %addr,
            "no listening port configured (listen = \"IP:PORT\" or --listen): listening on a free port the system chose"
        );
    }
    if settings.fixed_authority.is_none()
        && settings.authorities.is_empty()
        && !addr.ip().is_loopback()
    {
        tracing::warn!(
            authorities = %served_authorities(settings, addr).join(" "),
            "no authorities configured (authorities = [...] or --authority): requests signed for this host's public name are refused with authority_mismatch"
        );
    }
}

/// What a reload builds a new proxy from besides the configuration: the
/// stores stay, so keys, nonces and rate-limit budgets carry over.
struct Rebuild {
    /// The certificate served, when the listener terminates TLS.
    certificate: Option<Arc<tls::Certificate>>,
    keys: stores::Keys,
    nonces: Arc<dyn tessera_server::NonceStore>,
    rate: Option<stores::RateLimit>,
    addr: SocketAddr,
    marker: HeaderName,
    verify: bool,
}

/// Reloads the configuration on each SIGHUP: the requests after it, on
/// new and open connections alike, are served under the new one; requests
/// in flight finish under the old. Changes a reload cannot apply
/// ([`config::FileConfig::restart_only_changes`]) and invalid files are
/// refused with an error in the log, and the running configuration stays.
#[cfg(unix)]
async fn reload_on_hangup(
    source: ReloadSource,
    rebuild: Rebuild,
    current: tokio::sync::watch::Sender<Arc<proxy::Proxy>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP; configuration reloads are off");
            return;
        }
    };
    let mut active = source.initial.clone();
    while hangups.recv().await.is_some() {
        match reload(&active, &source, &rebuild) {
            Ok((file, proxy)) => {
                current.send_replace(Arc::new(proxy));
                let changed = active.reloadable_changes(&file);
                active = file;
                let keys = rebuild.keys.file.as_ref().map(|(store, _)| store.len());
                // At warn, like the refusal below: an operator running with
                // --quiet still sees that the signal took effect.
                tracing::warn!(
                    changed = %if changed.is_empty() { "nothing in the file".to_owned() } else { changed.join(", ") },
                    keys_from_file = keys,
                    certificate = rebuild.certificate.is_some(),
                    "SIGHUP: configuration reloaded (and the keys file and TLS certificate, where used)"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: configuration NOT reloaded; the running one stays");
            }
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(
    _source: ReloadSource,
    _rebuild: Rebuild,
    _current: tokio::sync::watch::Sender<Arc<proxy::Proxy>>,
) {
}

/// The proxy of the configuration `source` reads now, if a reload from
/// `active` can apply it.
fn reload(
    active: &config::FileConfig,
    source: &ReloadSource,
    rebuild: &Rebuild,
) -> Result<(config::FileConfig, proxy::Proxy), String> {
    let file = (source.read)()?;
    let restart = active.restart_only_changes(&file);
    if !restart.is_empty() {
        return Err(format!(
            "{} changed, which only a restart applies",
            restart.join(", ")
        ));
    }
    let settings = file.validate().map_err(|e| e.to_string())?;
    // The keys file is read again too, and replaces the keys only if the
    // whole reload succeeds: an operator who revokes a key in the file and
    // sends SIGHUP gets it revoked, or an error, never a silent no-op.
    let keys_file = match &rebuild.keys.file {
        Some((store, path)) => {
            let (fresh, _) = tessera_server::load_keys_file(path).map_err(|e| e.to_string())?;
            Some((store, fresh))
        }
        None => None,
    };
    // So is the certificate: a renewal hook that replaces the files and
    // sends SIGHUP gets the new pair served to new connections.
    let pair = match (&rebuild.certificate, &settings.tls) {
        (Some(certificate), Some(tls)) => Some((certificate, certificate.read(tls)?)),
        _ => None,
    };
    let verifier = if rebuild.verify {
        Some(build_verifier(
            &settings,
            &rebuild.keys,
            &rebuild.nonces,
            rebuild.rate.as_ref(),
            rebuild.addr,
        )?)
    } else {
        None
    };
    if let Some((store, fresh)) = keys_file {
        store.replace_all(fresh);
    }
    if let Some((certificate, pair)) = pair {
        certificate.replace(pair);
    }
    Ok((
        file,
        proxy::Proxy::new(verifier, settings, rebuild.marker.clone()),
    ))
}

/// The verifier for `settings`, sharing `nonces` with `/readyz`.
fn build_verifier(
    settings: &Settings,
    keys: &stores::Keys,
    nonces: &Arc<dyn tessera_server::NonceStore>,
    rate: Option<&stores::RateLimit>,
    addr: SocketAddr,
) -> Result<Verifier, String> {
    let builder = Verifier::builder(Arc::clone(&keys.store))
        .nonce_store(Arc::clone(nonces))
        .scheme(settings.scheme)
        .body_limit(settings.body_limit);
    let builder = match &settings.fixed_authority {
        Some(fixed) => builder.fixed_authority(fixed.clone()),
        None => builder.authorities(served_authorities(settings, addr)),
    };
    let builder = if settings.window <= tessera_core::DEFAULT_WINDOW_SECS {
        builder.window(settings.window)
    } else {
        builder.dangerous_window(settings.window)
    };
    let builder = match rate {
        None => builder,
        Some(rate) => builder.admission(rate.limiter.clone()),
    };
    builder
        .build()
        .map_err(|e| format!("invalid verifier configuration: {e}"))
}

/// A header name no client can guess: the guard's marker for refused heads.
fn random_marker() -> HeaderName {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    HeaderName::from_bytes(format!("x-tessera-gateway-refused-{name}").as_bytes())
        .unwrap_or_else(|_| HeaderName::from_static("x-tessera-gateway-refused"))
}
