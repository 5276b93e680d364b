//! The command line of `tessera-gateway` (and `tessera gateway`): flags for
//! the common case, a TOML file for everything (`--config`), flags given
//! with a file override its keys, and `--check FILE` validates and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, FileConfig, KeysConfig, NonceStoreConfig, RateLimitConfig};

/// Arguments of `tessera-gateway` / `tessera gateway`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  tessera-gateway --listen 127.0.0.1:8080 --upstream http://127.0.0.1:5000 --keys keys.json
  tessera-gateway --config gateway.toml
  tessera-gateway --upstream http://127.0.0.1:5000 --keys-derived /run/secrets/derive-master
  tessera-gateway --check gateway.toml
Prints `listening on http://IP:PORT` once bound (then the admin address with
--admin), logs one JSON line per request on standard error, and serves until
SIGTERM or SIGINT, then drains the requests in flight. SIGHUP reloads the
configuration (routes, public routes, upstream, authorities, a narrower window, body limit,
identity headers, trusted proxies), the keys file and the TLS certificate and
key without dropping a connection; a file that is invalid or changes listeners,
TLS on or off, HTTP/2 on or off, workers, stores, rate limits or [limits] is refused, logged, and
the running configuration stays. A keys file is also followed: an edit (a key
revoked or removed) applies within half a second, with no signal.")]
pub struct Args {
    /// TOML configuration file (see gateway.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate FILE and exit (0 valid, 2 invalid): syntax, keys, values, and
    /// what it names (the keys file, the SQL key store opened with its master
    /// key, the TLS certificate and key).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (default 127.0.0.1:0).
    /// `--addr` is the same, as for `tessera serve`.
    #[arg(long, visible_alias = "addr", value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// The upstream base URL, e.g. http://127.0.0.1:5000.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// JSON keys file (the `tessera serve --keys` format).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keys_db", "keys_derived"])]
    pub keys: Option<PathBuf>,
    /// Derived keys (`d1.` key ids, DerivedKeyStore): FILE holds the hex
    /// master secret they are derived from (chmod 600).
    #[arg(long, value_name = "FILE", conflicts_with = "keys_db")]
    pub keys_derived: Option<PathBuf>,
    /// With derived keys (--keys-derived, or the file's
    /// `derived_master_file`): revoked derived key ids, one a line
    /// (followed while running: a newly listed id is refused within a
    /// second). Default: the configuration file's `derived_revoked_file`.
    #[arg(long, value_name = "FILE")]
    pub keys_derived_revoked: Option<PathBuf>,
    /// SQL key store: sqlite://PATH or postgres://USER@HOST:PORT/DB (master
    /// key from --master-key-file, TESSERA_MASTER_KEY or TESSERA_MASTER_KEY_FILE).
    #[arg(long, value_name = "URL")]
    pub keys_db: Option<String>,
    /// With --keys-db: a file of master keys (`VERSION:HEX` lines, or one bare hex key).
    #[arg(long, value_name = "FILE", requires = "keys_db")]
    pub master_key_file: Option<PathBuf>,
    /// An authority (`host[:port]`) clients sign for; repeat for more.
    /// Default: the bound IP:PORT and localhost:PORT (and 127.0.0.1:PORT
    /// when bound to an unspecified address such as 0.0.0.0).
    #[arg(long = "authority", value_name = "HOST[:PORT]")]
    pub authorities: Vec<String>,
    /// The public scheme clients sign for (`https` behind TLS termination).
    #[arg(long, value_name = "SCHEME", value_parser = ["http", "https"])]
    pub scheme: Option<String>,
    /// Shared nonce store: redis://HOST:PORT (default: this process's memory).
    /// That Redis must run with maxmemory-policy noeviction, and with
    /// persistence off (save "", appendonly no, rdb-del-sync-files yes) or lossless (appendfsync
    /// always), or start-up is refused (see `[nonce_store]` in the config).
    #[arg(long, value_name = "URL")]
    pub nonce_store: Option<String>,
    /// Admin listener (Prometheus /metrics, /healthz, /readyz).
    #[arg(long, value_name = "IP:PORT")]
    pub admin: Option<SocketAddr>,
    /// Limit each key to RATE requests (`10/s`, `100/m`, `1000/h`): the
    /// default plan. With --config, the file's `per` and route plans stay.
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// With --rate-limit: requests a key may send at once after a quiet
    /// period (default: the rate's count).
    #[arg(long, value_name = "N", requires = "rate_limit")]
    pub burst: Option<u32>,
    /// Shared rate-limit budgets: redis://HOST:PORT/DB (default: this
    /// process's memory). Instances sharing it share every key's budget.
    #[arg(long, value_name = "URL")]
    pub rate_limit_store: Option<String>,
    /// When the rate-limit store cannot answer: `open` admits (the default),
    /// `closed` refuses with 503 store_unavailable.
    #[arg(long, value_name = "MODE", value_parser = ["open", "closed"])]
    pub rate_limit_on_store_failure: Option<String>,
    /// Largest request body, bytes (413 above).
    #[arg(long, value_name = "BYTES")]
    pub body_limit: Option<usize>,
    /// Workers serving connections, each an event loop on its own thread
    /// (default: one per CPU). On a host shared with the upstream, fewer
    /// workers than CPUs can serve more.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Serve HTTP/1.1 only (by default clients may also speak HTTP/2: ALPN
    /// `h2` over TLS, prior knowledge on a plain listener).
    #[arg(long)]
    pub no_http2: bool,
    /// A trusted proxy (IP or CIDR) whose forwarding fields are appended to; repeat for more.
    #[arg(long = "trusted-proxy", value_name = "IP[/BITS]")]
    pub trusted_proxies: Vec<String>,
    /// Forward WITHOUT verifying signatures: for benchmarks on loopback only
    /// (refuses any other listen address and logs a warning).
    #[arg(long)]
    pub unverified_benchmark_mode: bool,
    /// Log format on standard error.
    #[arg(long, value_name = "FORMAT", default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
    /// No per-request log lines (warnings and errors only).
    #[arg(long, short)]
    pub quiet: bool,
}

impl Args {
    /// The configuration file (if any) with the flags applied over it.
    ///
    /// # Errors
    /// The file is invalid.
    pub fn file_config(&self) -> Result<FileConfig, config::ConfigError> {
        let mut file = match &self.config {
            Some(path) => config::read_file(path)?,
            None => FileConfig::default(),
        };
        if let Some(listen) = self.listen {
            file.listen = Some(listen);
        }
        if let Some(upstream) = &self.upstream {
            file.upstream = Some(upstream.clone());
        }
        if self.keys.is_some() || self.keys_db.is_some() || self.keys_derived.is_some() {
            // The flag replaces the file's key source; the file's settings
            // for a source of the same kind stay (a derived master given on
            // the command line keeps the file's revocation list: dropping it
            // would accept every revoked key again).
            let from_file = file.keys.take().unwrap_or_default();
            let derived = self.keys_derived.is_some();
            let db = self.keys_db.is_some();
            file.keys = Some(KeysConfig {
                file: self.keys.clone(),
                db: self.keys_db.clone(),
                derived_master_file: self.keys_derived.clone(),
                derived_revoked_file: from_file.derived_revoked_file.filter(|_| derived),
                master_key_file: self
                    .master_key_file
                    .clone()
                    .or(from_file.master_key_file.filter(|_| db)),
                max_staleness: from_file.max_staleness.filter(|_| db),
            });
        }
        if let Some(revoked) = &self.keys_derived_revoked {
            match file.keys.as_mut() {
                Some(keys) if keys.derived_master_file.is_some() => {
                    keys.derived_revoked_file = Some(revoked.clone());
                }
                _ => {
                    return Err(config::ConfigError::new(
                        "--keys-derived-revoked",
                        "goes with derived keys (--keys-derived FILE, or `derived_master_file` in [keys])",
                    ))
                }
            }
        }
        if !self.authorities.is_empty() {
            file.authorities = self.authorities.clone();
            file.fixed_authority = None;
        }
        if let Some(scheme) = &self.scheme {
            file.scheme = Some(scheme.clone());
        }
        if let Some(url) = &self.nonce_store {
            // The flag replaces the file's store, keeping its prefix and timeouts.
            file.nonce_store = Some(NonceStoreConfig {
                redis: Some(url.clone()),
                cluster: None,
                ..file.nonce_store.clone().unwrap_or_default()
            });
        }
        if let Some(admin) = self.admin {
            file.admin = Some(config::AdminConfig { listen: admin });
        }
        if let Some(rate) = &self.rate_limit {
            // The flag replaces the default plan only: the file's route
            // plans, `per` and store stay (a flag that changes the rate must
            // not silently turn an owner's budget into one per key, or drop
            // a route's stricter plan).
            file.rate_limit = Some(RateLimitConfig {
                rate: Some(rate.clone()),
                burst: self.burst,
                ..file.rate_limit.clone().unwrap_or_default()
            });
        }
        if self.rate_limit_store.is_some() || self.rate_limit_on_store_failure.is_some() {
            let mut rates = file.rate_limit.clone().unwrap_or_default();
            if let Some(url) = &self.rate_limit_store {
                rates.redis = Some(url.clone());
            }
            if let Some(mode) = &self.rate_limit_on_store_failure {
                rates.on_store_failure = Some(mode.clone());
            }
            file.rate_limit = Some(rates);
        }
        if let Some(workers) = self.workers {
            file.workers = Some(workers);
        }
        if self.no_http2 {
            file.http2 = Some(false);
        }
        if let Some(limit) = self.body_limit {
            file.body_limit = Some(limit);
        }
        if !self.trusted_proxies.is_empty() {
            file.trusted_proxies = self.trusted_proxies.clone();
        }
        Ok(file)
    }
}

/// Runs the gateway (or `--check`); the process exit code: 0 on success,
/// 2 for an invalid configuration (also one found while opening what it
/// names: a keys file, a master key, a key database's content), 1 when it
/// cannot start for a reason a later start may not have (a store that does
/// not answer, an address in use).
pub fn main(args: Args) -> ExitCode {
    if let Some(path) = &args.check {
        // The flags given with it apply as they would at start-up.
        let as_started = Args {
            config: Some(path.clone()),
            check: None,
            ..args.clone()
        };
        return check(path, &as_started);
    }
    init_logging(&args);
    // The files the configuration names are read here too, so that a bad
    // certificate is an invalid configuration (2), as `--check` says.
    let loaded = args.file_config().and_then(|file| {
        let settings = file.validate()?;
        check_tls_files(&settings)?;
        Ok((file, settings))
    });
    let (file, settings) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            let source = args
                .config
                .as_ref()
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default();
            eprintln!("tessera-gateway: invalid configuration: {source}{e}");
            return ExitCode::from(2);
        }
    };
    // The first worker, the acceptor and the stores' background tasks run
    // here; the other workers start their own runtimes (`server::serve`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tessera-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reread = args.clone();
    let options = crate::RunOptions {
        unverified_benchmark_mode: args.unverified_benchmark_mode,
        reload: Some(crate::ReloadSource {
            initial: file,
            read: std::sync::Arc::new(move || {
                reread.file_config().map_err(|e| match &reread.config {
                    Some(path) => format!("{}: {e}", path.display()),
                    None => e.to_string(),
                })
            }),
        }),
    };
    match runtime.block_on(crate::run(settings, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e {
                crate::StartError::Invalid(_) => {
                    eprintln!("tessera-gateway: invalid configuration: {e}");
                }
                _ => eprintln!("tessera-gateway: {e}"),
            }
            ExitCode::from(e.exit_status())
        }
    }
}

/// The TLS certificate and key, read and checked to fit, when `[tls]` names them.
fn check_tls_files(settings: &config::Settings) -> Result<(), config::ConfigError> {
    match &settings.tls {
        // The error already names `tls.cert` or `tls.key`.
        Some(tls) => crate::tls::Certificate::load(tls)
            .map(drop)
            .map_err(|e| config::ConfigError::new("", e)),
        None => Ok(()),
    }
}

/// `--check FILE`: parse, validate, and load what the configuration names:
/// the keys file, the derived keys' master secret, the SQL key store (opened
/// with its master key, as start-up would), the TLS certificate and key.
fn check(path: &std::path::Path, args: &Args) -> ExitCode {
    let result = args
        .file_config()
        .and_then(|file| file.validate())
        .and_then(|settings| {
            if args.unverified_benchmark_mode && !settings.listen.ip().is_loopback() {
                return Err(config::ConfigError::new(
                    "--unverified-benchmark-mode",
                    format!(
                        "only listens on loopback addresses, not {}",
                        settings.listen
                    ),
                ));
            }
            Ok(settings)
        })
        .and_then(|settings| check_tls_files(&settings).map(|()| settings))
        .and_then(|settings| {
            match &settings.keys {
                config::KeySource::File(keys) => tessera_server::load_keys_file(keys)
                    .map(|_| ())
                    .map_err(|e| config::ConfigError::new("keys.file", e.to_string())),
                // The error already names `keys.derived_master_file`.
                config::KeySource::Derived {
                    master_file,
                    revoked_file,
                } => crate::stores::load_derived(master_file, revoked_file.as_deref())
                    .map(|_| ())
                    .map_err(|e| config::ConfigError::new("", e)),
                // The database exists, holds the schema, and opens with the
                // master keyring: what start-up would find.
                config::KeySource::Db {
                    url,
                    master_key_file,
                    max_staleness,
                } => check_key_database(url, master_key_file.as_deref(), *max_staleness),
            }
            .map(|()| settings)
        });
    match result {
        Ok(settings) => {
            // Not a refusal (the gateway starts), but said here, where
            // the configuration is checked, not only in the running log.
            for warning in crate::stores::key_warnings(&settings) {
                eprintln!("tessera-gateway: {}: warning: {warning}", path.display());
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tessera-gateway: {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

/// Opens the SQL key store as start-up would, then closes it.
fn check_key_database(
    url: &str,
    master_key_file: Option<&std::path::Path>,
    max_staleness: std::time::Duration,
) -> Result<(), config::ConfigError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            config::ConfigError::new("", format!("cannot start the async runtime: {e}"))
        })?;
    runtime.block_on(async {
        let store = crate::stores::open_sql(url, master_key_file, max_staleness)
            .await
            .map_err(|e| config::ConfigError::new("", e.to_string()))?;
        store.close().await;
        Ok(())
    })
}

/// JSON (or text) logs on standard error; `RUST_LOG` overrides the level.
fn init_logging(args: &Args) {
    let default = if args.quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a file or a log collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialization (a test calling `main` twice) is harmless.
    let _ = if args.log_format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
