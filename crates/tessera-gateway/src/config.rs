//! The gateway's configuration: the TOML file (every table and key is
//! checked, unknown ones are errors) and its validation into [`Settings`].
//!
//! Errors name the key path (`limits.max_headers`, `routes[2].scopes`) and
//! what was expected, so a bad file is fixed at once rather than
//! discovered in production.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method};
use serde::Deserialize;
use tessera_core::Scheme;

use crate::routes::{PathMatch, RouteRule};

/// Most runtime worker threads `workers` may ask for.
pub const MAX_WORKERS: usize = 1024;
/// Default largest request head, bytes (request line plus name + value + 4 per field).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default most header fields in a request.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default seconds a connection has to send a complete request head.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default seconds the whole request body has from the end of its head.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
/// Default `limits.min_send_bytes_per_sec`: the least a client that keeps
/// the gateway's writes waiting must take, averaged over each body timeout
/// of waiting (the minimum rate Apache's mod_reqtimeout asks of request
/// bodies by default).
pub const DEFAULT_MIN_SEND_BYTES_PER_SEC: u64 = 500;
/// Largest `limits.min_send_bytes_per_sec` (1 GiB/s).
const MAX_MIN_SEND_BYTES_PER_SEC: u64 = 1 << 30;
/// Default seconds an idle keep-alive connection stays open.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default most client connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default seconds the upstream has to answer with a response head (then 504).
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 30;
/// Default seconds to connect to the upstream (then 502).
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SECS: u64 = 5;

/// The configuration file as written (`deny_unknown_fields` everywhere).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `IP:PORT` to listen on.
    #[serde(default, deserialize_with = "optional_socket_address")]
    pub listen: Option<SocketAddr>,
    /// Base URL of the upstream (`http://HOST:PORT`, optionally with a path prefix).
    pub upstream: Option<String>,
    /// The public scheme clients sign for: `http` or `https`.
    pub scheme: Option<String>,
    /// Authorities (`host[:port]`) clients sign for.
    #[serde(default)]
    pub authorities: Vec<String>,
    /// One fixed public authority used for every signature base.
    pub fixed_authority: Option<String>,
    /// Acceptance window, seconds.
    pub window: Option<u64>,
    /// Largest request body, bytes (413 above).
    pub body_limit: Option<usize>,
    /// Workers serving connections, each an event loop on its own thread
    /// (default: one per CPU the process may use).
    pub workers: Option<usize>,
    /// Accept HTTP/2 from clients (default true): negotiated with ALPN over
    /// TLS, by prior knowledge on a plain listener.
    pub http2: Option<bool>,
    /// Remove `Signature` and `Signature-Input` before forwarding.
    #[serde(default)]
    pub strip_signature_headers: bool,
    /// Ask the upstream to close its connection after every request with
    /// a body (default false: only after a body on a public route or on a
    /// method other than POST, PUT and PATCH), for upstreams whose
    /// handlers may leave a body unread on a kept-alive connection.
    #[serde(default)]
    pub upstream_close_after_body: bool,
    /// Peers (IPs or CIDR blocks) whose forwarding headers are appended to.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// More client-sent fields to drop before forwarding (in every spelling
    /// with another separator for `-`, such as `_` or `.`), besides those
    /// the gateway always drops: fields the application behind trusts
    /// because a proxy in front of it sets them.
    #[serde(default)]
    pub drop_client_fields: Vec<String>,
    /// Key store.
    pub keys: Option<KeysConfig>,
    /// Nonce store.
    pub nonce_store: Option<NonceStoreConfig>,
    /// Identity header names.
    #[serde(default)]
    pub identity_headers: IdentityHeadersConfig,
    /// Timeouts and limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Admin listener.
    pub admin: Option<AdminConfig>,
    /// TLS termination.
    pub tls: Option<TlsConfig>,
    /// Rate limits.
    pub rate_limit: Option<RateLimitConfig>,
    /// Routes and the scopes they require.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Routes that need no signature.
    #[serde(default)]
    pub public: Vec<PublicConfig>,
}

/// `[keys]`: exactly one of `file`, `db` and `derived_master_file`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// A JSON keys file (the `tessera serve --keys` format).
    pub file: Option<PathBuf>,
    /// A SQL key store URL (`sqlite://PATH`, `postgres://…`).
    pub db: Option<String>,
    /// Derived keys (`d1.` key ids carrying their owner, client, scopes and
    /// expiry): a file holding the hex master secret they are derived from.
    /// The secret itself never goes in the TOML.
    pub derived_master_file: Option<PathBuf>,
    /// With `derived_master_file`: revoked key ids, one a line (`#`
    /// comments), read at start-up and followed while the gateway runs (a
    /// newly listed id is refused within a second).
    pub derived_revoked_file: Option<PathBuf>,
    /// With `db`: the master key file (else `TESSERA_MASTER_KEY[_FILE]`).
    pub master_key_file: Option<PathBuf>,
    /// With `db`: seconds cached keys keep verifying while the database is down.
    pub max_staleness: Option<u64>,
}

/// `[nonce_store]`: memory (default), one Redis, or a Redis Cluster.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceStoreConfig {
    /// A `redis://` or `rediss://` URL.
    pub redis: Option<String>,
    /// Redis Cluster seed node URLs.
    pub cluster: Option<Vec<String>>,
    /// Key prefix in Redis.
    pub prefix: Option<String>,
    /// Per-command timeout, milliseconds.
    pub timeout_ms: Option<u64>,
    /// Connection timeout (start-up and reconnections), milliseconds.
    pub connect_timeout_ms: Option<u64>,
    /// Connect even when Redis reports an eviction policy other than
    /// `noeviction` (default false: refused at start-up).
    pub allow_evicting_policy: Option<bool>,
    /// Connect even when Redis persists so that a restart can restore the
    /// epoch keys without the last pairs: RDB snapshots, or an append-only
    /// file with `appendfsync` other than `always` (default false: refused
    /// at start-up).
    pub allow_lossy_persistence: Option<bool>,
}

/// `[identity_headers]`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersConfig {
    /// Default `Tessera-Key-Id`.
    pub key_id: Option<String>,
    /// Default `Tessera-Owner`.
    pub owner: Option<String>,
    /// Default `Tessera-Scopes`.
    pub scopes: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request head, bytes.
    pub max_header_bytes: Option<usize>,
    /// Most header fields.
    pub max_headers: Option<usize>,
    /// Seconds to send a complete request head.
    pub header_timeout_secs: Option<u64>,
    /// Seconds for the whole body.
    pub body_timeout_secs: Option<u64>,
    /// Bytes per second a client must take of its answers while the
    /// gateway's writes wait for it (0: no minimum).
    pub min_send_bytes_per_sec: Option<u64>,
    /// Seconds an idle keep-alive connection stays open.
    pub idle_timeout_secs: Option<u64>,
    /// Most connections at once.
    pub max_connections: Option<usize>,
    /// Most connections at once from one client address (an IPv6 client by
    /// its /64); none by default.
    pub max_connections_per_client: Option<usize>,
    /// Seconds the upstream has for its response head, and then for each
    /// wait for the next part of its body.
    pub upstream_timeout_secs: Option<u64>,
    /// Seconds to connect to the upstream.
    pub upstream_connect_timeout_secs: Option<u64>,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `IP:PORT` of the admin listener.
    #[serde(deserialize_with = "socket_address")]
    pub listen: SocketAddr,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[rate_limit]`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Default budget per subject: `10/s`, `100/m`, `1000/h`.
    pub rate: Option<String>,
    /// Requests at once after a quiet period.
    pub burst: Option<u32>,
    /// `key` (default) or `owner`.
    pub per: Option<String>,
    /// Where budgets are kept: absent for this process's memory, else a
    /// `redis://` (or `rediss://`, `redis+cluster://`) URL shared by every
    /// instance.
    pub redis: Option<String>,
    /// With `redis`: key prefix in Redis.
    pub prefix: Option<String>,
    /// With `redis`: per-decision timeout, milliseconds.
    pub timeout_ms: Option<u64>,
    /// What to do when the store cannot decide: `open` (admit, the
    /// default) or `closed` (refuse with `503 store_unavailable` and
    /// `Retry-After: 1`).
    pub on_store_failure: Option<String>,
    /// Per-route budgets.
    #[serde(default)]
    pub routes: Vec<RateRouteConfig>,
}

/// `[[rate_limit.routes]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRouteConfig {
    /// The plan's name, as clients see it in `RateLimit-Policy`
    /// (default `route0`, `route1`, … by position).
    pub name: Option<String>,
    /// Path prefix.
    pub prefix: String,
    /// Method, any when absent.
    pub method: Option<String>,
    /// Budget.
    pub rate: String,
    /// Burst.
    pub burst: Option<u32>,
}

/// A validated `[[rate_limit.routes]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRoute {
    /// The plan's name (`RateLimit-Policy`).
    pub name: String,
    /// Path prefix.
    pub prefix: String,
    /// Method, any when absent.
    pub method: Option<Method>,
    /// Budget.
    pub rate: tessera_ratelimit::Rate,
    /// Burst.
    pub burst: u32,
}

/// `[[routes]]`: a method and path (prefix or pattern) requiring scopes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Method, any when absent.
    pub method: Option<String>,
    /// Path prefix.
    pub prefix: Option<String>,
    /// Path pattern; `*` matches one segment.
    pub path: Option<String>,
    /// Scopes the key must hold (all of them).
    pub scopes: Vec<String>,
}

/// `[[public]]`: a method and path that needs no signature.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// Method, any when absent.
    pub method: Option<String>,
    /// Path prefix.
    pub prefix: Option<String>,
    /// Path pattern; `*` matches one segment.
    pub path: Option<String>,
}

/// A configuration error: where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key path (`limits.max_headers`), or empty for the whole file.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses a configuration file (no semantic checks yet).
///
/// # Errors
/// The file cannot be read, is not TOML, has an unknown key or a value of
/// the wrong type.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("", format!("cannot read '{}': {e}", path.display())))?;
    let mut config = parse(&text)?;
    // Files named in the configuration are relative to it, not to the
    // directory the gateway happens to start in.
    if let Some(dir) = path.parent() {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(keys) = &mut config.keys {
            if let Some(file) = keys.file.as_mut() {
                resolve(file);
            }
            if let Some(file) = keys.master_key_file.as_mut() {
                resolve(file);
            }
            if let Some(file) = keys.derived_master_file.as_mut() {
                resolve(file);
            }
            if let Some(file) = keys.derived_revoked_file.as_mut() {
                resolve(file);
            }
            if let Some(url) = keys.db.as_mut() {
                if let Some(resolved) = sqlite_url_relative_to(dir, url) {
                    *url = resolved;
                }
            }
        }
        if let Some(tls) = &mut config.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
    }
    Ok(config)
}

/// A `sqlite:` URL whose file name is relative, rewritten to name the same
/// file relative to `dir` (the configuration file's directory); `None` for
/// any other URL (absolute paths, `:memory:`, PostgreSQL).
fn sqlite_url_relative_to(dir: &Path, url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (file, query) = match rest.split_once('?') {
        Some((file, query)) => (file, Some(query)),
        None => (rest, None),
    };
    if file.is_empty() || file.starts_with(':') || Path::new(file).is_absolute() {
        return None;
    }
    let joined = dir.join(file);
    let joined = joined.to_str()?;
    Some(match query {
        Some(query) => format!("sqlite://{joined}?{query}"),
        None => format!("sqlite://{joined}"),
    })
}

/// Parses configuration text.
///
/// # Errors
/// As [`read_file`].
pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        let at = e.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {column}")
        });
        ConfigError::new("", format!("not valid TOML{at}: {}", e.message()))
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, e.into_inner().message().to_owned())
    })
}

/// Where keys come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KeySource {
    /// A JSON keys file.
    File(PathBuf),
    /// A SQL key store.
    Db {
        /// The URL.
        url: String,
        /// Master key file, else the environment.
        master_key_file: Option<PathBuf>,
        /// Outage tolerance of cached keys.
        max_staleness: Duration,
    },
    /// Keys derived from one master secret (`DerivedKeyStore`).
    Derived {
        /// The file holding the hex master secret.
        master_file: PathBuf,
        /// The file of revoked key ids, if any.
        revoked_file: Option<PathBuf>,
    },
}

/// Where nonces are recorded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NonceSource {
    /// In this process only.
    Memory,
    /// One Redis server.
    Redis(String),
    /// A Redis Cluster, by seed nodes.
    Cluster(Vec<String>),
}

/// The names of the identity headers set on forwarded requests.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Key id header.
    pub key_id: HeaderName,
    /// Owner header.
    pub owner: HeaderName,
    /// Scopes header (space separated).
    pub scopes: HeaderName,
}

/// An IP or CIDR block of trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    addr: IpAddr,
    prefix: u8,
}

impl IpBlock {
    /// Parses `IP` or `IP/PREFIX`.
    pub fn parse(text: &str) -> Option<IpBlock> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let addr: IpAddr = ip.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpBlock { addr, prefix })
    }

    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// Timeouts and limits, validated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Time to send a complete head.
    pub header_timeout: Duration,
    /// Time for the whole body.
    pub body_timeout: Duration,
    /// Bytes per second a client must take of its answers while writes
    /// wait for it, averaged over each body timeout of waiting; 0: none.
    pub min_send_rate: u64,
    /// Idle keep-alive time.
    pub idle_timeout: Duration,
    /// Most connections.
    pub max_connections: usize,
    /// Most connections from one client address (IPv6: one /64), if capped.
    pub max_connections_per_client: Option<usize>,
    /// Time for the upstream's response head, and then for each wait for
    /// the next part of its body.
    pub upstream_timeout: Duration,
    /// Time to connect to the upstream.
    pub upstream_connect_timeout: Duration,
}

/// Where rate-limit budgets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateStoreSource {
    /// In this process only: each instance has its own budgets.
    Memory,
    /// Redis (`redis://`, `rediss://`, `redis+cluster://`, …): every
    /// instance sharing it shares the budgets.
    Redis(String),
}

/// Default Redis key prefix of rate-limit budgets.
pub const DEFAULT_RATE_LIMIT_PREFIX: &str = "tessera-gateway";

/// Rate limits, validated.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Default plan, if any.
    pub default: Option<(tessera_ratelimit::Rate, u32)>,
    /// Budgets by owner instead of key.
    pub per_owner: bool,
    /// Route plans, first match wins.
    pub routes: Vec<RateRoute>,
    /// Where the budgets are kept.
    pub store: RateStoreSource,
    /// Redis key prefix (with [`RateStoreSource::Redis`]).
    pub prefix: String,
    /// Redis per-decision timeout, if not the default.
    pub timeout: Option<Duration>,
    /// What happens when the store cannot decide.
    pub on_store_failure: tessera_ratelimit::FailureMode,
}

/// The nonce store, its Redis prefix, command timeout and connect timeout.
/// `[nonce_store]`, validated.
struct NonceSettings {
    source: NonceSource,
    prefix: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    allow_evicting_policy: bool,
    allow_lossy_persistence: bool,
}

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Upstream base URI (scheme `http`, authority, path prefix without trailing `/`).
    pub upstream: http::Uri,
    /// Public scheme.
    pub scheme: Scheme,
    /// Served authorities (empty: the bound address and `localhost:PORT`).
    pub authorities: Vec<String>,
    /// Fixed authority.
    pub fixed_authority: Option<String>,
    /// Window, seconds.
    pub window: u64,
    /// Body limit, bytes.
    pub body_limit: usize,
    /// Workers (event loops on threads of their own); `None`: one per
    /// available CPU.
    pub workers: Option<usize>,
    /// Accept HTTP/2 from clients.
    pub http2: bool,
    /// Strip the signature headers before forwarding.
    pub strip_signature_headers: bool,
    /// Close the upstream connection after every request with a body.
    pub upstream_close_after_body: bool,
    /// Trusted proxies.
    pub trusted_proxies: Vec<IpBlock>,
    /// Client fields dropped besides the gateway's own list (lowercase,
    /// `-` spelled).
    pub drop_client_fields: Vec<HeaderName>,
    /// Keys.
    pub keys: KeySource,
    /// Nonces.
    pub nonces: NonceSource,
    /// Redis key prefix.
    pub nonce_prefix: Option<String>,
    /// Redis command timeout.
    pub nonce_timeout: Option<Duration>,
    /// Redis connection timeout.
    pub nonce_connect_timeout: Option<Duration>,
    /// Connect to a Redis whose eviction policy may drop live nonces.
    pub nonce_allow_evicting_policy: bool,
    /// Connect to a Redis whose restart can restore epochs without the last pairs.
    pub nonce_allow_lossy_persistence: bool,
    /// Identity header names.
    pub identity: IdentityHeaders,
    /// Limits.
    pub limits: Limits,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
    /// TLS certificate and key files.
    pub tls: Option<TlsConfig>,
    /// Rate limits.
    pub rate_limit: Option<RateLimits>,
    /// Route scope rules, first match wins.
    pub routes: Vec<RouteRule>,
    /// Public routes.
    pub public: Vec<RouteRule>,
}

fn header_name(path: &str, value: Option<&str>, default: &str) -> Result<HeaderName, ConfigError> {
    let name = value.unwrap_or(default);
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ConfigError::new(
            path,
            format!(
                "{name:?} is not a valid header field name (expected a token such as {default:?})"
            ),
        )
    })
}

/// An identity header name: a valid field name that the forwarded request
/// does not need for anything else ([`crate::forward::is_reserved`]).
fn identity_header(
    path: &str,
    value: Option<&str>,
    default: &str,
) -> Result<HeaderName, ConfigError> {
    let name = header_name(path, value, default)?;
    if crate::forward::is_reserved(&name) {
        return Err(ConfigError::new(
            path,
            format!("\"{name}\" is a field the forwarded request needs as it is, or one the gateway sets or drops (expected a name of your own, such as {default:?})"),
        ));
    }
    Ok(name)
}

/// A client field an operator drops: a valid field name, kept as its
/// skeleton (every spelling a CGI-style stack reads as the same variable,
/// `X_User` or `X.User` for `X-User`, is dropped with it), that the
/// forwarded request does not need as it is.
fn droppable_field(path: &str, value: &str) -> Result<HeaderName, ConfigError> {
    let refused = || {
        ConfigError::new(
            path,
            format!("{value:?} is not a field name (expected a name such as \"X-Forwarded-User\")"),
        )
    };
    let name = HeaderName::from_bytes(value.as_bytes()).map_err(|_| refused())?;
    let name = HeaderName::from_bytes(crate::forward::skeleton(name.as_str()).as_bytes())
        .map_err(|_| refused())?;
    let text = name.as_str();
    if name == http::header::HOST
        || text.starts_with("content-")
        || text == "transfer-encoding"
        || text == "signature"
        || text == "signature-input"
    {
        return Err(ConfigError::new(
            path,
            format!("\"{name}\" is a field the forwarded request needs as it is (expected a field the application trusts from the proxy in front of it)"),
        ));
    }
    Ok(name)
}

/// A served or fixed authority, checked as the verifier will check it.
fn authority(path: &str, value: &str, scheme: tessera_core::Scheme) -> Result<(), ConfigError> {
    let refused = |why: &str| {
        ConfigError::new(
            path,
            format!("{value:?} is not an authority: {why} (expected host[:port], such as \"api.example.com\")"),
        )
    };
    if value.contains("://") {
        return Err(refused("it has a scheme; write the host and port alone"));
    }
    tessera_core::normalize_authority(value, scheme).map_err(|e| refused(e.detail()))?;
    let port_zero = value
        .parse::<http::uri::Authority>()
        .is_ok_and(|a| a.port_u16() == Some(0));
    if port_zero {
        return Err(refused("port 0 is never used by a client"));
    }
    Ok(())
}

/// The names of the `checks` whose two sides are not the same.
fn differing<const N: usize>(checks: [(&'static str, bool); N]) -> Vec<&'static str> {
    checks
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(key, _)| key)
        .collect()
}

/// Whether binding both addresses would fail with "address in use": the
/// same port (not 0, which picks a free one) on the same IP, or when one is
/// an unspecified address that covers the other: `0.0.0.0` covers every
/// IPv4 address, `[::]` every address of both families (a dual-stack
/// socket, Linux's default).
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |wide: SocketAddr, other: SocketAddr| {
        wide.ip().is_unspecified() && (wide.is_ipv6() || other.is_ipv4())
    };
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
}

/// A listening address from its text, refused with the form expected
/// (serde's own message is only "invalid socket address syntax").
fn socket_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not a listening address: expected IP:PORT with a numeric IP and a port \
             up to 65535 (0: any free port), such as \"127.0.0.1:8080\" or \"[::1]:8080\" (a host name such \
             as localhost is not resolved)"
        ))
    })
}

fn optional_socket_address<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    socket_address(d).map(Some)
}

/// The methods a rule may name: RFC 9110's and PATCH (RFC 5789).
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A rule's method. Only the standard methods are accepted: a misspelled
/// one (`"DELET"`) would be a valid extension method that no client sends,
/// so its rule would never match and the route would go unprotected.
fn method(path: &str, value: Option<&str>) -> Result<Option<Method>, ConfigError> {
    let Some(m) = value else {
        return Ok(None);
    };
    if STANDARD_METHODS.contains(&m) {
        return Method::from_bytes(m.as_bytes())
            .map(Some)
            .map_err(|_| ConfigError::new(path, format!("{m:?} is not a method")));
    }
    let upper = m.to_ascii_uppercase();
    let hint = match STANDARD_METHODS
        .iter()
        .find(|s| **s == upper || edit_distance(s, &upper) <= 2)
    {
        Some(near) => format!(" (did you mean \"{near}\"?)"),
        None => String::new(),
    };
    Err(ConfigError::new(
        path,
        format!(
            "{m:?} is not a standard method{hint}: expected one of {}; a rule for an extension \
             method leaves `method` out and then covers every method",
            STANDARD_METHODS.join(", ")
        ),
    ))
}

/// Levenshtein distance between two short ASCII strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn path_match(
    at: &str,
    prefix: Option<&str>,
    pattern: Option<&str>,
) -> Result<PathMatch, ConfigError> {
    match (prefix, pattern) {
        (Some(p), None) => rule_path(&format!("{at}.prefix"), p).map(PathMatch::Prefix),
        (None, Some(p)) => rule_path(&format!("{at}.path"), p).map(PathMatch::Pattern),
        _ => Err(ConfigError::new(
            at,
            "expected exactly one of `prefix` (a path prefix) and `path` (a pattern, `*` for one segment)",
        )),
    }
}

/// A rule's path or prefix, refused when no request the gateway forwards
/// could match it: a rule that never matches leaves its route unprotected
/// (or its exemption unused) without a word.
fn rule_path(at: &str, p: &str) -> Result<String, ConfigError> {
    let why = if !p.starts_with('/') {
        Some("must start with '/'".to_owned())
    } else if p.contains(['?', '#']) {
        Some(
            "holds a '?' or '#', but a rule matches the path alone (never the query or a fragment), so it would never match"
                .to_owned(),
        )
    } else {
        // A rule for a path the gateway refuses could never match either.
        crate::routes::path_problem(p)
            .map(|why| format!("is not a path the gateway accepts: {why}"))
    };
    match why {
        None => Ok(p.to_owned()),
        Some(why) => Err(ConfigError::new(at, format!("{p:?} {why}"))),
    }
}

/// A burst: requests a subject may send at once, at least 1 (the rate's
/// count by default).
fn burst(path: &str, value: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    match value {
        None => Ok(default.max(1)),
        Some(0) => Err(ConfigError::new(
            path,
            "0 is out of range (expected requests from 1 up; a burst of 0 would refuse every request)",
        )),
        Some(n) => Ok(n),
    }
}

fn secs(path: &str, value: Option<u64>, default: u64, max: u64) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    if v == 0 || v > max {
        return Err(ConfigError::new(
            path,
            format!("{v} is out of range (expected seconds from 1 to {max})"),
        ));
    }
    Ok(Duration::from_secs(v))
}

fn rate(path: &str, text: &str) -> Result<tessera_ratelimit::Rate, ConfigError> {
    // The parser's message already says what was expected.
    text.parse()
        .map_err(|e: tessera_ratelimit::PlanError| ConfigError::new(path, e.to_string()))
}

impl FileConfig {
    /// The keys whose change a reload (SIGHUP) cannot apply: listeners,
    /// TLS, workers, HTTP/2, stores, rate limits and connection limits are set up
    /// once, and a wider window: the nonce store kept pairs only as long as
    /// the old window needed, so a request signed between the old and the
    /// new window ago could be replayed (a restart with the in-memory store
    /// refuses everything signed before it; with Redis, see the README).
    /// Empty when `new` differs from `self` only in what a reload
    /// applies (upstream, scheme, authorities, a narrower window, body limit, routes,
    /// public routes, identity headers, signature stripping, trusted
    /// proxies).
    pub fn restart_only_changes(&self, new: &FileConfig) -> Vec<&'static str> {
        let window = |c: &FileConfig| c.window.unwrap_or(tessera_core::DEFAULT_WINDOW_SECS);
        differing([
            ("window (wider)", window(new) <= window(self)),
            ("listen", self.listen == new.listen),
            ("admin", self.admin == new.admin),
            // TLS turned on or off changes the listener; new files (or the
            // same paths with renewed contents) are read by the reload itself.
            ("tls", self.tls.is_some() == new.tls.is_some()),
            ("workers", self.workers == new.workers),
            ("http2", self.http2 == new.http2),
            ("keys", self.keys == new.keys),
            ("nonce_store", self.nonce_store == new.nonce_store),
            ("rate_limit", self.rate_limit == new.rate_limit),
            ("limits", self.limits == new.limits),
        ])
    }

    /// The keys a reload from `self` to `new` changes (those it can
    /// apply), for its log line.
    pub fn reloadable_changes(&self, new: &FileConfig) -> Vec<&'static str> {
        differing([
            ("upstream", self.upstream == new.upstream),
            ("scheme", self.scheme == new.scheme),
            ("authorities", self.authorities == new.authorities),
            (
                "fixed_authority",
                self.fixed_authority == new.fixed_authority,
            ),
            ("window", self.window == new.window),
            ("body_limit", self.body_limit == new.body_limit),
            (
                "strip_signature_headers",
                self.strip_signature_headers == new.strip_signature_headers,
            ),
            (
                "upstream_close_after_body",
                self.upstream_close_after_body == new.upstream_close_after_body,
            ),
            (
                "trusted_proxies",
                self.trusted_proxies == new.trusted_proxies,
            ),
            (
                "drop_client_fields",
                self.drop_client_fields == new.drop_client_fields,
            ),
            (
                "identity_headers",
                self.identity_headers == new.identity_headers,
            ),
            ("tls", self.tls == new.tls),
            ("routes", self.routes == new.routes),
            ("public", self.public == new.public),
        ])
    }

    /// Checks everything and produces [`Settings`].
    ///
    /// # Errors
    /// The first invalid key, by path, with what was expected.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        if let Some(admin) = &self.admin {
            if same_socket(listen, admin.listen) {
                return Err(ConfigError::new(
                    "admin.listen",
                    format!(
                        "{} is where the gateway itself listens ({listen}): give the admin listener another port",
                        admin.listen
                    ),
                ));
            }
        }
        let upstream_text = self.upstream.as_deref().ok_or_else(|| {
            ConfigError::new(
                "upstream",
                "missing (expected a URL such as \"http://127.0.0.1:5000\")",
            )
        })?;
        let upstream = upstream_uri(upstream_text)?;
        let scheme_text =
            self.scheme
                .as_deref()
                .unwrap_or(if self.tls.is_some() { "https" } else { "http" });
        let scheme = match scheme_text {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(ConfigError::new(
                    "scheme",
                    format!("{other:?} is not a scheme (expected \"http\" or \"https\")"),
                ))
            }
        };
        if self.fixed_authority.is_some() && !self.authorities.is_empty() {
            return Err(ConfigError::new(
                "fixed_authority",
                "cannot be combined with `authorities` (give one or the other)",
            ));
        }
        for (i, a) in self.authorities.iter().enumerate() {
            authority(&format!("authorities[{i}]"), a, scheme)?;
        }
        if let Some(fixed) = &self.fixed_authority {
            authority("fixed_authority", fixed, scheme)?;
        }
        let window = self.window.unwrap_or(tessera_core::DEFAULT_WINDOW_SECS);
        if !(1..=tessera_server::MAX_WINDOW_SECS).contains(&window) {
            return Err(ConfigError::new(
                "window",
                format!(
                    "{window} is out of range (expected seconds from 1 to {}; {} is the default)",
                    tessera_server::MAX_WINDOW_SECS,
                    tessera_core::DEFAULT_WINDOW_SECS
                ),
            ));
        }
        let body_limit = self
            .body_limit
            .unwrap_or(tessera_server::DEFAULT_BODY_LIMIT);
        if body_limit == 0 || body_limit > 1 << 30 {
            return Err(ConfigError::new(
                "body_limit",
                format!("{body_limit} is out of range (expected bytes from 1 to 1073741824)"),
            ));
        }
        if let Some(workers) = self.workers {
            if !(1..=MAX_WORKERS).contains(&workers) {
                return Err(ConfigError::new(
                    "workers",
                    format!("{workers} is out of range (expected threads from 1 to {MAX_WORKERS})"),
                ));
            }
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, t)| {
                IpBlock::parse(t).ok_or_else(|| {
                    ConfigError::new(
                        format!("trusted_proxies[{i}]"),
                        format!("{t:?} is not an IP address or CIDR block (expected such as \"10.0.0.5\" or \"10.0.0.0/8\")"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let keys = self.key_source()?;
        let NonceSettings {
            source: nonces,
            prefix: nonce_prefix,
            timeout: nonce_timeout,
            connect_timeout: nonce_connect_timeout,
            allow_evicting_policy: nonce_allow_evicting_policy,
            allow_lossy_persistence: nonce_allow_lossy_persistence,
        } = self.nonce_source()?;
        let drop_client_fields = self
            .drop_client_fields
            .iter()
            .enumerate()
            .map(|(i, name)| droppable_field(&format!("drop_client_fields[{i}]"), name))
            .collect::<Result<Vec<_>, _>>()?;
        let identity = IdentityHeaders {
            key_id: identity_header(
                "identity_headers.key_id",
                self.identity_headers.key_id.as_deref(),
                "tessera-key-id",
            )?,
            owner: identity_header(
                "identity_headers.owner",
                self.identity_headers.owner.as_deref(),
                "tessera-owner",
            )?,
            scopes: identity_header(
                "identity_headers.scopes",
                self.identity_headers.scopes.as_deref(),
                "tessera-scopes",
            )?,
        };
        for (path, name, earlier) in [
            ("identity_headers.owner", &identity.owner, &identity.key_id),
            (
                "identity_headers.scopes",
                &identity.scopes,
                &identity.key_id,
            ),
            ("identity_headers.scopes", &identity.scopes, &identity.owner),
        ] {
            if name == earlier {
                return Err(ConfigError::new(
                    path,
                    format!("\"{name}\" is already the name of another identity header (expected three different names)"),
                ));
            }
        }
        let limits = self.limits()?;
        let rate_limit = self.rate_limits()?;
        let mut routes = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}]");
            if r.scopes.is_empty() || r.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(ConfigError::new(
                    format!("{at}.scopes"),
                    "expected a non-empty list of scope names without spaces",
                ));
            }
            routes.push(RouteRule {
                method: method(&format!("{at}.method"), r.method.as_deref())?,
                path: path_match(&at, r.prefix.as_deref(), r.path.as_deref())?,
                scopes: r.scopes.clone(),
            });
        }
        let mut public = Vec::new();
        for (i, r) in self.public.iter().enumerate() {
            let at = format!("public[{i}]");
            public.push(RouteRule {
                method: method(&format!("{at}.method"), r.method.as_deref())?,
                path: path_match(&at, r.prefix.as_deref(), r.path.as_deref())?,
                scopes: Vec::new(),
            });
        }
        if let Some(tls) = &self.tls {
            for (key, file) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                if !file.is_file() {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "'{}' is not a readable file (expected a PEM file)",
                            file.display()
                        ),
                    ));
                }
            }
        }
        Ok(Settings {
            listen,
            upstream,
            scheme,
            authorities: self.authorities.clone(),
            fixed_authority: self.fixed_authority.clone(),
            window,
            body_limit,
            workers: self.workers,
            http2: self.http2.unwrap_or(true),
            strip_signature_headers: self.strip_signature_headers,
            upstream_close_after_body: self.upstream_close_after_body,
            trusted_proxies,
            drop_client_fields,
            keys,
            nonces,
            nonce_prefix,
            nonce_timeout,
            nonce_connect_timeout,
            nonce_allow_evicting_policy,
            nonce_allow_lossy_persistence,
            identity,
            limits,
            admin: self.admin.as_ref().map(|a| a.listen),
            tls: self.tls.clone(),
            rate_limit,
            routes,
            public,
        })
    }

    fn key_source(&self) -> Result<KeySource, ConfigError> {
        let keys = self.keys.clone().unwrap_or_default();
        let db_only = keys.master_key_file.is_some() || keys.max_staleness.is_some();
        if keys.derived_revoked_file.is_some() && keys.derived_master_file.is_none() {
            return Err(ConfigError::new(
                "keys.derived_revoked_file",
                "goes with `derived_master_file` (revoked derived key ids); other key stores record revocations themselves",
            ));
        }
        match (&keys.file, &keys.db, &keys.derived_master_file) {
            (Some(file), None, None) => {
                if db_only {
                    return Err(ConfigError::new(
                        "keys",
                        "`master_key_file` and `max_staleness` go with `db`, not `file`",
                    ));
                }
                Ok(KeySource::File(file.clone()))
            }
            (None, None, Some(master_file)) => {
                if db_only {
                    return Err(ConfigError::new(
                        "keys",
                        "`master_key_file` and `max_staleness` go with `db`, not `derived_master_file` (which names the derivation master secret itself)",
                    ));
                }
                Ok(KeySource::Derived {
                    master_file: master_file.clone(),
                    revoked_file: keys.derived_revoked_file.clone(),
                })
            }
            (None, Some(url), None) => {
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://"))
                {
                    return Err(ConfigError::new(
                        "keys.db",
                        format!("{} is not a key store URL (expected sqlite://PATH or postgres://USER@HOST:PORT/DB)", crate::stores::redact(url)),
                    ));
                }
                Ok(KeySource::Db {
                    url: url.clone(),
                    master_key_file: keys.master_key_file.clone(),
                    max_staleness: secs("keys.max_staleness", keys.max_staleness, 60, 3600)?,
                })
            }
            _ => Err(ConfigError::new(
                "keys",
                "expected exactly one of `file` (a JSON keys file; --keys), `db` (a SQL key store URL; --keys-db) and `derived_master_file` (a file holding the master secret of derived keys; --keys-derived)",
            )),
        }
    }

    fn nonce_source(&self) -> Result<NonceSettings, ConfigError> {
        let Some(n) = &self.nonce_store else {
            return Ok(NonceSettings {
                source: NonceSource::Memory,
                prefix: None,
                timeout: None,
                connect_timeout: None,
                allow_evicting_policy: false,
                allow_lossy_persistence: false,
            });
        };
        let source = match (&n.redis, &n.cluster) {
            (None, None) => NonceSource::Memory,
            (Some(u), None) => NonceSource::Redis(redis_url("nonce_store.redis", u)?),
            (None, Some(nodes)) => {
                if nodes.is_empty() {
                    return Err(ConfigError::new(
                        "nonce_store.cluster",
                        "expected at least one node URL",
                    ));
                }
                let nodes = nodes
                    .iter()
                    .enumerate()
                    .map(|(i, u)| redis_url(&format!("nonce_store.cluster[{i}]"), u))
                    .collect::<Result<Vec<_>, _>>()?;
                NonceSource::Cluster(nodes)
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "nonce_store",
                    "expected one of `redis` (one server) and `cluster` (seed nodes), not both",
                ))
            }
        };
        if matches!(source, NonceSource::Memory)
            && (n.prefix.is_some()
                || n.timeout_ms.is_some()
                || n.connect_timeout_ms.is_some()
                || n.allow_evicting_policy.is_some()
                || n.allow_lossy_persistence.is_some())
        {
            return Err(ConfigError::new(
                "nonce_store",
                "`prefix`, `timeout_ms`, `connect_timeout_ms`, `allow_evicting_policy` and `allow_lossy_persistence` need `redis` or `cluster`",
            ));
        }
        Ok(NonceSettings {
            source,
            prefix: n.prefix.clone(),
            timeout: millis("nonce_store.timeout_ms", n.timeout_ms)?,
            connect_timeout: millis("nonce_store.connect_timeout_ms", n.connect_timeout_ms)?,
            allow_evicting_policy: n.allow_evicting_policy.unwrap_or(false),
            allow_lossy_persistence: n.allow_lossy_persistence.unwrap_or(false),
        })
    }

    fn limits(&self) -> Result<Limits, ConfigError> {
        let l = &self.limits;
        let max_header_bytes = l.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES);
        if !(1024..=131_072).contains(&max_header_bytes) {
            return Err(ConfigError::new(
                "limits.max_header_bytes",
                format!("{max_header_bytes} is out of range (expected bytes from 1024 to 131072)"),
            ));
        }
        let max_headers = l.max_headers.unwrap_or(DEFAULT_MAX_HEADERS);
        if !(1..=crate::guard::MAX_FIELDS).contains(&max_headers) {
            return Err(ConfigError::new(
                "limits.max_headers",
                format!(
                    "{max_headers} is out of range (expected a count from 1 to {})",
                    crate::guard::MAX_FIELDS
                ),
            ));
        }
        let max_connections = l.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=65_536).contains(&max_connections) {
            return Err(ConfigError::new(
                "limits.max_connections",
                format!("{max_connections} is out of range (expected a count from 1 to 65536)"),
            ));
        }
        let max_connections_per_client = l.max_connections_per_client;
        if let Some(n) = max_connections_per_client {
            if !(1..=max_connections).contains(&n) {
                return Err(ConfigError::new(
                    "limits.max_connections_per_client",
                    format!("{n} is out of range (expected a count from 1 to limits.max_connections, {max_connections})"),
                ));
            }
        }
        let min_send_rate = l
            .min_send_bytes_per_sec
            .unwrap_or(DEFAULT_MIN_SEND_BYTES_PER_SEC);
        if min_send_rate > MAX_MIN_SEND_BYTES_PER_SEC {
            return Err(ConfigError::new(
                "limits.min_send_bytes_per_sec",
                format!("{min_send_rate} is out of range (expected bytes per second from 0, no minimum, to {MAX_MIN_SEND_BYTES_PER_SEC})"),
            ));
        }
        Ok(Limits {
            max_header_bytes,
            max_headers,
            min_send_rate,
            header_timeout: secs(
                "limits.header_timeout_secs",
                l.header_timeout_secs,
                DEFAULT_HEADER_TIMEOUT_SECS,
                3600,
            )?,
            body_timeout: secs(
                "limits.body_timeout_secs",
                l.body_timeout_secs,
                DEFAULT_BODY_TIMEOUT_SECS,
                3600,
            )?,
            idle_timeout: secs(
                "limits.idle_timeout_secs",
                l.idle_timeout_secs,
                DEFAULT_IDLE_TIMEOUT_SECS,
                3600,
            )?,
            max_connections,
            max_connections_per_client,
            upstream_timeout: secs(
                "limits.upstream_timeout_secs",
                l.upstream_timeout_secs,
                DEFAULT_UPSTREAM_TIMEOUT_SECS,
                3600,
            )?,
            upstream_connect_timeout: secs(
                "limits.upstream_connect_timeout_secs",
                l.upstream_connect_timeout_secs,
                DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SECS,
                600,
            )?,
        })
    }

    fn rate_limits(&self) -> Result<Option<RateLimits>, ConfigError> {
        let Some(r) = &self.rate_limit else {
            return Ok(None);
        };
        let default = match &r.rate {
            None => None,
            Some(text) => {
                let rate = rate("rate_limit.rate", text)?;
                Some((rate, burst("rate_limit.burst", r.burst, rate.count())?))
            }
        };
        let per_owner = match r.per.as_deref() {
            None | Some("key") => false,
            Some("owner") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "rate_limit.per",
                    format!("{other:?} is not a subject (expected \"key\" or \"owner\")"),
                ))
            }
        };
        let mut routes = Vec::new();
        for (i, route) in r.routes.iter().enumerate() {
            let at = format!("rate_limit.routes[{i}]");
            rule_path(&format!("{at}.prefix"), &route.prefix)?;
            let parsed = rate(&format!("{at}.rate"), &route.rate)?;
            let burst = burst(&format!("{at}.burst"), route.burst, parsed.count())?;
            let name = route.name.clone().unwrap_or_else(|| format!("route{i}"));
            // The plan checks its name (a token clients see in RateLimit-Policy).
            tessera_ratelimit::Plan::new(name.clone(), parsed, burst)
                .map_err(|e| ConfigError::new(format!("{at}.name"), e.to_string()))?;
            // A budget is stored under its plan's name and subject: two plans
            // of one name would share one budget, whatever their rates.
            if RESERVED_PLAN_NAMES.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!("{name:?} is reserved (the plans {RESERVED_PLAN_NAMES:?} are built in, and a route of the same name would share their budget); choose another name"),
                ));
            }
            if let Some(j) = routes.iter().position(|r: &RateRoute| r.name == name) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!("{name:?} is also the name of rate_limit.routes[{j}]: each route needs a name of its own, or the two would share one budget"),
                ));
            }
            routes.push(RateRoute {
                name,
                prefix: route.prefix.clone(),
                method: method(&format!("{at}.method"), route.method.as_deref())?,
                rate: parsed,
                burst,
            });
        }
        if default.is_none() && routes.is_empty() {
            return Err(ConfigError::new(
                "rate_limit",
                "expected `rate` or at least one `[[rate_limit.routes]]`",
            ));
        }
        let store = match &r.redis {
            None => {
                if r.prefix.is_some() || r.timeout_ms.is_some() {
                    return Err(ConfigError::new(
                        "rate_limit",
                        "`prefix` and `timeout_ms` need `redis` (budgets in memory have neither)",
                    ));
                }
                RateStoreSource::Memory
            }
            Some(u) => RateStoreSource::Redis(redis_url("rate_limit.redis", u)?),
        };
        let prefix = r
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_RATE_LIMIT_PREFIX.to_owned());
        if prefix.is_empty()
            || prefix.contains(['{', '}'])
            || prefix.chars().any(char::is_whitespace)
        {
            return Err(ConfigError::new(
                "rate_limit.prefix",
                format!("{prefix:?} is not a usable key prefix (expected a non-empty name without spaces or braces)"),
            ));
        }
        let on_store_failure = match r.on_store_failure.as_deref() {
            None | Some("open") => tessera_ratelimit::FailureMode::Open,
            Some("closed") => tessera_ratelimit::FailureMode::Closed,
            Some(other) => {
                return Err(ConfigError::new(
                    "rate_limit.on_store_failure",
                    format!("{other:?} is not a failure mode (expected \"open\": admit while the store is down, or \"closed\": refuse with 503 store_unavailable)"),
                ))
            }
        };
        Ok(Some(RateLimits {
            default,
            per_owner,
            routes,
            store,
            prefix,
            timeout: millis("rate_limit.timeout_ms", r.timeout_ms)?,
            on_store_failure,
        }))
    }
}

/// Plan names the gateway and the rate limiter use themselves: `rate`'s
/// plan, per-key plans from key metadata, and `readyz`, the readiness
/// probe's until it became the store's own trial (kept reserved, so that a
/// configuration valid today stays valid on every version).
const RESERVED_PLAN_NAMES: [&str; 3] = ["default", "key", "readyz"];

/// A Redis URL at `at`, or an error naming it and the expected forms.
fn redis_url(at: &str, u: &str) -> Result<String, ConfigError> {
    if [
        "redis://",
        "rediss://",
        "redis+cluster://",
        "rediss+cluster://",
        "redis+unix://",
    ]
    .iter()
    .any(|scheme| u.starts_with(scheme))
    {
        Ok(u.to_owned())
    } else {
        Err(ConfigError::new(
            at,
            format!("{} is not a Redis URL (expected redis://HOST:PORT, rediss://…, or redis+cluster://HOST:PORT,HOST:PORT)", crate::stores::redact(u)),
        ))
    }
}

/// Optional milliseconds from 1 to 60000 at `key`.
fn millis(key: &str, value: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match value {
        None => Ok(None),
        Some(ms) if (1..=60_000).contains(&ms) => Ok(Some(Duration::from_millis(ms))),
        Some(ms) => Err(ConfigError::new(
            key,
            format!("{ms} is out of range (expected milliseconds from 1 to 60000)"),
        )),
    }
}

/// Parses the upstream base URL: `http://HOST[:PORT][/prefix]`.
fn upstream_uri(text: &str) -> Result<http::Uri, ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(
            "upstream",
            format!("{text:?} {why} (expected a URL such as \"http://127.0.0.1:5000\")"),
        )
    };
    let uri: http::Uri = text.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(bad("has an unsupported scheme (only http:// upstreams)")),
        None => return Err(bad("has no scheme")),
    }
    if uri.authority().is_none() {
        return Err(bad("has no host"));
    }
    if uri.query().is_some() {
        return Err(bad("has a query"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_clash_only_where_binding_both_would_fail() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("address");
        for (a, b, clash) in [
            ("127.0.0.1:9095", "127.0.0.1:9095", true),
            ("0.0.0.0:9095", "127.0.0.1:9095", true),
            ("[::]:9095", "127.0.0.1:9095", true),
            ("[::]:9095", "[::1]:9095", true),
            ("0.0.0.0:9095", "[::]:9095", true),
            ("0.0.0.0:9095", "[::1]:9095", false),
            ("127.0.0.1:9095", "127.0.0.2:9095", false),
            ("127.0.0.1:9095", "127.0.0.1:9096", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ] {
            assert_eq!(same_socket(at(a), at(b)), clash, "{a} {b}");
            assert_eq!(same_socket(at(b), at(a)), clash, "{b} {a}");
        }
    }

    #[test]
    fn a_reload_may_narrow_the_window_but_not_widen_it() {
        let with =
            |window: &str| parse(&format!("upstream = \"http://x\"\n{window}")).expect("config");
        let default = with("");
        let narrow = with("window = 60\n");
        let wide = with("window = 600\n");
        assert!(default.restart_only_changes(&narrow).is_empty());
        assert!(narrow
            .restart_only_changes(&with("window = 60\n"))
            .is_empty());
        assert_eq!(
            narrow.restart_only_changes(&default),
            vec!["window (wider)"]
        );
        assert_eq!(default.restart_only_changes(&wide), vec!["window (wider)"]);
    }

    #[test]
    fn route_plans_need_names_of_their_own() {
        let with = |routes: &str| {
            parse(&format!(
                "upstream = \"http://x\"\n[keys]\nfile = \"keys.json\"\n[rate_limit]\nrate = \"5/s\"\n{routes}"
            ))
            .and_then(|c| c.validate())
        };
        let route = |prefix: &str, name: Option<&str>| {
            let name = name
                .map(|n| format!("name = \"{n}\"\n"))
                .unwrap_or_default();
            format!("[[rate_limit.routes]]\nprefix = \"{prefix}\"\nrate = \"1/m\"\n{name}")
        };
        for reserved in ["default", "key", "readyz"] {
            let e = with(&route("/v1/export", Some(reserved))).expect_err(reserved);
            assert_eq!(e.path, "rate_limit.routes[0].name");
            assert!(e.message.contains("reserved"), "{e}");
        }
        let e = with(&(route("/a", Some("w")) + &route("/b", Some("w")))).expect_err("twice");
        assert_eq!(e.path, "rate_limit.routes[1].name");
        assert!(e.message.contains("rate_limit.routes[0]"), "{e}");
        // An explicit name equal to an unnamed route's default one.
        let e = with(&(route("/a", None) + &route("/b", Some("route0")))).expect_err("default");
        assert_eq!(e.path, "rate_limit.routes[1].name");
        with(&(route("/a", None) + &route("/b", Some("exports")))).expect("distinct names");
    }

    #[test]
    fn a_rejected_store_url_is_quoted_without_its_password() {
        for (table, url) in [
            ("nonce_store", "redis"),
            ("rate_limit", "rate = \"5/s\"\nredis"),
            ("keys", "db"),
        ] {
            let keys = if table == "keys" {
                ""
            } else {
                "[keys]\nfile = \"keys.json\"\n"
            };
            let text = format!(
                "upstream = \"http://x\"\n{keys}[{table}]\n{url} = \"reddis://:hunter2@h:6379?pass=hunter2\"\n"
            );
            let e = parse(&text)
                .and_then(|c| c.validate())
                .expect_err("a mistyped scheme");
            assert!(!e.to_string().contains("hunter2"), "{e}");
            assert!(e.to_string().contains("reddis://:***@h:6379"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_path() {
        let e = parse("upstream = \"http://x\"\n[limits]\nmax_headerz = 3\n").expect_err("unknown");
        assert_eq!(e.path, "limits.max_headerz");
        assert!(e.message.contains("unknown field `max_headerz`"), "{e}");
        let e = parse("[limits]\nmax_headers = \"many\"\n").expect_err("type");
        assert_eq!(e.path, "limits.max_headers");
    }

    #[test]
    fn semantic_errors_name_the_path() {
        let base = "upstream = \"http://127.0.0.1:1\"\n[keys]\nfile = \"k.json\"\n";
        let e = parse(&format!("{base}[[routes]]\nprefix = \"/a\"\nscopes = []\n"))
            .and_then(|c| c.validate())
            .expect_err("empty scopes");
        assert_eq!(e.path, "routes[0].scopes");
        let e = parse(&format!("{base}[limits]\nmax_headers = 0\n"))
            .and_then(|c| c.validate())
            .expect_err("zero");
        assert_eq!(e.path, "limits.max_headers");
        let e = parse("upstream = \"ftp://x\"\n")
            .and_then(|c| c.validate())
            .expect_err("scheme");
        assert_eq!(e.path, "upstream");
        for workers in [0, MAX_WORKERS + 1] {
            let e = parse(&format!("workers = {workers}\n{base}"))
                .and_then(|c| c.validate())
                .expect_err("workers");
            assert_eq!(e.path, "workers");
            assert!(e.message.contains("expected threads from 1"), "{e}");
        }
        let ok = parse(&format!("workers = 1\n{base}"))
            .and_then(|c| c.validate())
            .expect("one worker");
        assert_eq!(ok.workers, Some(1));
    }

    #[test]
    fn sqlite_files_are_relative_to_the_configuration() {
        let dir = Path::new("/etc/tessera");
        let at = |url: &str| sqlite_url_relative_to(dir, url);
        assert_eq!(
            at("sqlite://keys.db").as_deref(),
            Some("sqlite:///etc/tessera/keys.db")
        );
        assert_eq!(
            at("sqlite:data/keys.db?mode=ro").as_deref(),
            Some("sqlite:///etc/tessera/data/keys.db?mode=ro")
        );
        assert_eq!(at("sqlite:///var/lib/keys.db"), None);
        assert_eq!(at("sqlite::memory:"), None);
        assert_eq!(at("postgres://u@h/db"), None);
    }

    #[test]
    fn ip_blocks() {
        let block = IpBlock::parse("10.0.0.0/8").expect("block");
        assert!(block.contains("10.1.2.3".parse().expect("ip")));
        assert!(!block.contains("11.1.2.3".parse().expect("ip")));
        assert!(IpBlock::parse("10.0.0.0/33").is_none());
        let one = IpBlock::parse("::1").expect("v6");
        assert!(one.contains("::1".parse().expect("ip")));
    }
}
