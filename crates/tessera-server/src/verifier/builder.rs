//! Configuring a [`Verifier`].

use std::fmt;
use std::sync::Arc;

use tessera_core::{normalize_authority, Component, Scheme, DEFAULT_WINDOW_SECS};

use super::{AuthorityPolicy, Inner, Verifier};
use crate::admission::Admission;
use crate::keys::KeyStore;
use crate::nonce::{MemoryNonceStore, NonceStore};
use crate::rejection::DEFAULT_REALM;
use tessera_core::{Clock, SystemClock};

/// Default largest accepted body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Largest window `dangerous_window` accepts, seconds.
pub const MAX_WINDOW_SECS: u64 = 3600;

/// Builds a [`Verifier`]; see [`Verifier::builder`].
///
/// Defaults are the safe ones: a 300 s window (2 s ahead), `https` authorities, 1 MiB
/// bodies, an in-memory nonce store, the system clock, realm `"tessera"`,
/// no signature base in responses. Options that weaken a check are named
/// `dangerous_*`.
///
/// ```
/// use tessera_server::{MemoryKeyStore, MemoryNonceStore, Scheme, Verifier};
///
/// let verifier = Verifier::builder(MemoryKeyStore::new()) // the key store comes first
///     .authority("api.example.com")                      // what clients sign for
///     .scheme(Scheme::Https)                             // the default
///     .window(120)                                       // seconds, at most 300
///     .require_components(["content-type"])              // covered on every request
///     .nonce_store(MemoryNonceStore::new())               // one process; Redis for replicas
///     .build()?;
/// assert_eq!(verifier.window(), 120);
/// # Ok::<(), tessera_server::BuildError>(())
/// ```
#[must_use]
pub struct VerifierBuilder {
    keys: Arc<dyn KeyStore>,
    nonces: Option<Arc<dyn NonceStore>>,
    clock: Arc<dyn Clock>,
    window: u64,
    window_error: Option<u64>,
    scheme: Scheme,
    authorities: Vec<String>,
    fixed_authority: Option<String>,
    body_limit: usize,
    required: Vec<String>,
    realm: String,
    debug_base: bool,
    admission: Option<Arc<dyn Admission>>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("keys", &self.keys)
            .field("nonces", &self.nonces)
            .field("clock", &self.clock)
            .field("window", &self.window)
            .field("scheme", &self.scheme)
            .field("authorities", &self.authorities)
            .field("fixed_authority", &self.fixed_authority)
            .field("body_limit", &self.body_limit)
            .field("required", &self.required)
            .field("realm", &self.realm)
            .field("debug_base", &self.debug_base)
            .finish()
    }
}

impl VerifierBuilder {
    /// A builder for a verifier that looks keys up in `keys`; every other
    /// setting has its safe default. See [`crate::Verifier::builder`].
    pub(crate) fn new(keys: Arc<dyn KeyStore>) -> Self {
        VerifierBuilder {
            keys,
            nonces: None,
            clock: Arc::new(SystemClock::new()),
            window: DEFAULT_WINDOW_SECS,
            window_error: None,
            scheme: Scheme::Https,
            authorities: Vec::new(),
            fixed_authority: None,
            body_limit: DEFAULT_BODY_LIMIT,
            required: Vec::new(),
            realm: DEFAULT_REALM.to_owned(),
            admission: None,
            debug_base: false,
        }
    }
}

impl VerifierBuilder {
    /// Where nonces are recorded (default: a [`MemoryNonceStore`] sized for the window).
    ///
    /// **Several replicas must share one store.** The default remembers
    /// nonces in this process only: behind a load balancer, a captured
    /// request can be replayed once against every other replica within the
    /// window. That default is right for a single process; for anything
    /// else configure a shared store such as `RedisNonceStore` (feature
    /// `redis`). [`VerifierBuilder::build`] logs a `tracing` warning when it
    /// falls back to the per-process default.
    ///
    /// A store must be able to remember a pair for `window + 3` seconds
    /// (until `created + window + 1`, with `created` up to 2 s ahead); a
    /// [`MemoryNonceStore`] built by hand needs `max_ttl_secs` at least that
    /// large, or it refuses records and the verifier answers
    /// `store_unavailable`.
    pub fn nonce_store(mut self, nonces: impl NonceStore + 'static) -> Self {
        self.nonces = Some(Arc::new(nonces));
        self
    }

    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The acceptance window in seconds, how old `created` may be: 0 (only
    /// `created` equal to now) to 300 (the default). Ahead of the clock,
    /// `created` may be at most min(window, [`tessera_core::MAX_AHEAD_SECS`])
    /// seconds (spec §11.2, step 4). Use [`VerifierBuilder::dangerous_window`]
    /// for more.
    pub fn window(mut self, secs: u64) -> Self {
        if secs <= DEFAULT_WINDOW_SECS {
            self.window = secs;
            self.window_error = None;
        } else {
            self.window_error = Some(secs);
        }
        self
    }

    /// A window wider than 300 s (up to 3600 s; the spec does not recommend
    /// more than 300). Wider windows keep captured requests replayable
    /// against verifiers that do not share the nonce store for longer, and
    /// make the nonce store remember more.
    pub fn dangerous_window(mut self, secs: u64) -> Self {
        if secs <= MAX_WINDOW_SECS {
            self.window = secs;
            self.window_error = None;
        } else {
            self.window_error = Some(secs);
        }
        self
    }

    /// The scheme used to normalize authorities (default `https`: port 443
    /// is dropped). Use `Scheme::Http` only for plain-HTTP deployments.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Adds an authority this verifier serves, for example
    /// `"api.example.com"`. The received authority (URI authority, else
    /// `Host`) must be one of them, and the base uses it.
    pub fn authority(mut self, authority: impl Into<String>) -> Self {
        self.authorities.push(authority.into());
        self
    }

    /// Adds several served authorities.
    pub fn authorities<I, S>(mut self, authorities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorities
            .extend(authorities.into_iter().map(Into::into));
        self
    }

    /// For deployments behind a proxy that rewrites `Host`: the signature
    /// base always uses this public authority, whatever `Host` says.
    ///
    /// Only use it when every request reaching the server came through that
    /// proxy; the received `Host` is then not checked at all. Cannot be
    /// combined with [`VerifierBuilder::authority`].
    pub fn fixed_authority(mut self, authority: impl Into<String>) -> Self {
        self.fixed_authority = Some(authority.into());
        self
    }

    /// Largest request body accepted, in bytes (default 1 MiB). Larger
    /// bodies get `body_too_large` (413) without being read further.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Header fields every request must cover in addition to the mandatory
    /// components, for example `["content-type"]`; otherwise `missing_component`.
    ///
    /// Names are written in lowercase, as `Signature-Input` lists them, and
    /// never lowercased for you (one rule for every API, as the signer's
    /// `cover`): `build` refuses `"Content-Type"` with
    /// [`BuildError::InvalidComponent`] naming the form to use.
    pub fn require_components<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.required
            .extend(fields.into_iter().map(|f| f.as_ref().to_owned()));
        self
    }

    /// The `WWW-Authenticate` realm (default `"tessera"`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Puts the full signature base the server computed into
    /// `bad_signature` responses (`"signature_base"`). Off by default.
    ///
    /// **Risk**: the base contains the covered header values and the query,
    /// which may include personal data or tokens, and it tells anyone who
    /// can send requests exactly how the server sees them behind its proxies.
    /// Enable it only in development. The hash (`base_sha256`) is always
    /// sent and is usually enough to find a mismatch.
    pub fn dangerous_debug_signature_base(mut self, enabled: bool) -> Self {
        self.debug_base = enabled;
        self
    }

    /// Admits or refuses each authenticated request after its MAC verified
    /// and before its nonce is recorded (spec §11.2 step 8), for example a
    /// rate limiter (`tessera-ratelimit`). Refused requests consume no nonce.
    pub fn admission(mut self, admission: impl Admission + 'static) -> Self {
        self.admission = Some(Arc::new(admission));
        self
    }

    /// Builds the verifier.
    ///
    /// When no [`VerifierBuilder::nonce_store`] was configured, the verifier
    /// gets a per-process [`MemoryNonceStore`] and this logs one
    /// `tracing::warn!` saying so (replicas need a shared store).
    ///
    /// # Errors
    /// [`BuildError`] when no authority is configured, an
    /// authority, component, window or realm is invalid, or both served and
    /// fixed authorities are set.
    pub fn build(self) -> Result<Verifier, BuildError> {
        let keys = self.keys;
        if let Some(secs) = self.window_error {
            return Err(BuildError::InvalidWindow(secs));
        }
        let normalize = |a: &str| {
            normalize_authority(a, self.scheme)
                .map(|n| n.into_owned())
                .map_err(|source| BuildError::InvalidAuthority {
                    authority: a.to_owned(),
                    source,
                })
        };
        let authority = match (self.fixed_authority.as_deref(), self.authorities.is_empty()) {
            (Some(_), false) => return Err(BuildError::ConflictingAuthorities),
            (Some(fixed), true) => AuthorityPolicy::Fixed(normalize(fixed)?),
            (None, true) => return Err(BuildError::NoAuthority),
            (None, false) => {
                let mut served = self
                    .authorities
                    .iter()
                    .map(|a| normalize(a))
                    .collect::<Result<Vec<_>, _>>()?;
                served.sort();
                served.dedup();
                AuthorityPolicy::Served(served)
            }
        };
        let required = self
            .required
            .iter()
            .map(|name| {
                Component::field(name).map_err(|source| BuildError::InvalidComponent {
                    name: name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.realm.is_empty()
            || !self
                .realm
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(BuildError::InvalidRealm);
        }
        let window = self.window;
        let nonces = self.nonces.unwrap_or_else(|| {
            tracing::warn!(
                "tessera: no nonce store configured; using an in-memory store, so replay \
                 protection is per process. Replicas behind a load balancer must share a nonce \
                 store (RedisNonceStore, feature \"redis\") or a captured request can be \
                 replayed once on each replica"
            );
            // It vouches from its memory point on this verifier's clock:
            // requests signed before the process started, in the same
            // second, or dated ahead into the next seconds get
            // `store_reset` (spec §14.1).
            Arc::new(
                MemoryNonceStore::builder()
                    .max_ttl_secs((2 * window + 2).max(MAX_WINDOW_SECS))
                    .remembers_since(tessera_core::memory_point(self.clock.now_unix()))
                    .build(),
            )
        });
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys,
                nonces,
                clock: self.clock,
                window,
                scheme: self.scheme,
                authority,
                body_limit: self.body_limit,
                required,
                realm: Arc::from(self.realm),
                debug_base: self.debug_base,
                admission: self.admission,
                store_logs: super::log_throttle::LogThrottle::new(),
                key_cap_logs: super::log_throttle::LogThrottle::new(),
                reset_logs: super::log_throttle::LogThrottle::new(),
                key_store_logs: super::log_throttle::LogThrottle::new(),
            }),
        })
    }
}

/// Why a [`VerifierBuilder`] could not build.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Neither a served authority nor a fixed authority was configured.
    NoAuthority,
    /// Both served authorities and a fixed authority were configured.
    ConflictingAuthorities,
    /// An authority is not a valid `host[:port]`.
    InvalidAuthority {
        /// The authority as given.
        authority: String,
        /// Why it is invalid (also [`std::error::Error::source`]).
        source: tessera_core::Error,
    },
    /// A required component is not a field name that can be covered.
    InvalidComponent {
        /// The name as given.
        name: String,
        /// Why it cannot be required (also [`std::error::Error::source`]).
        source: tessera_core::Error,
    },
    /// The window is too large for the method used.
    InvalidWindow(u64),
    /// The realm is empty or contains `"`, `\` or control characters.
    InvalidRealm,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoAuthority => {
                f.write_str("no authority configured: call authority(..) or fixed_authority(..)")
            }
            BuildError::ConflictingAuthorities => {
                f.write_str("fixed_authority cannot be combined with served authorities")
            }
            BuildError::InvalidAuthority { authority, source } => {
                write!(f, "invalid authority {authority:?}: {}", source.detail())
            }
            BuildError::InvalidComponent { name, source } => {
                write!(f, "cannot require component {name:?}: {}", source.detail())
            }
            BuildError::InvalidWindow(secs) => write!(
                f,
                "invalid window {secs}s: window() accepts up to {DEFAULT_WINDOW_SECS}, dangerous_window() up to {MAX_WINDOW_SECS}"
            ),
            BuildError::InvalidRealm => {
                f.write_str("the realm must be non-empty visible ASCII without '\"' or '\\'")
            }
        }
    }
}

impl BuildError {
    /// The tessera-v1 code of the underlying refusal, for an invalid
    /// authority or component (`invalid_field_value`,
    /// `forbidden_component`, ...); `None` for the other variants.
    pub fn code(&self) -> Option<tessera_core::ErrorCode> {
        match self {
            BuildError::InvalidAuthority { source, .. }
            | BuildError::InvalidComponent { source, .. } => Some(source.code()),
            _ => None,
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::InvalidAuthority { source, .. }
            | BuildError::InvalidComponent { source, .. } => Some(source),
            _ => None,
        }
    }
}
