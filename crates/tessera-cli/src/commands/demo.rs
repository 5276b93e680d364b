//! `tessera demo`: real signed HTTP calls against a local verifying server,
//! each checked against the error code the profile requires.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Request, Url};
use reqwest_middleware::ClientWithMiddleware;
use tessera_client::{client_builder, Clock, SignRequestMiddleware, Signer};
use tessera_core::{BodyDigest, KeyId, Scheme, SecretKey};
use tessera_keys_sql::{IssueRequest, MasterKey, MasterKeyring, SqlKeyStore, SqlKeyStoreOptions};
use tessera_server::{KeyIssuer, KeyRequest, KeyStore, MemoryKeyStore, Verifier};

use crate::app;
use crate::error::{CliError, CliResult};
use crate::output::Style;
use crate::timearg::now_unix;

/// Arguments of `tessera demo`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Starts a verifying server on 127.0.0.1 (random port, in-memory keys and
nonces), issues keys, sends signed requests with the Rust client and checks
the server's answer to each: accepted, tampered, replayed, stale, skewed,
wrong scope. Exits 0 only if every answer is the expected one.

With --sqlite the keys live in the SQL key store instead: a temporary SQLite
file (migrated, secrets sealed under a throwaway master key, deleted at the
end), as `tessera serve --keys-db` would serve them."
)]
pub(crate) struct Args {
    /// Keep the demo's keys in a temporary SQLite database (the SQL key store).
    #[arg(long)]
    sqlite: bool,
}

/// A key the demo signs with (issued by either store).
struct DemoKey {
    key_id: KeyId,
    secret: SecretKey,
}

/// A client clock that is off by a fixed number of seconds.
#[derive(Debug, Clone, Copy)]
struct SkewedClock(i64);

impl Clock for SkewedClock {
    fn now_unix(&self) -> u64 {
        now_unix().saturating_add_signed(self.0)
    }
}

/// What the server answered: the status and the tessera error code, if any.
struct Answer {
    status: u16,
    code: String,
    note: Option<String>,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let header_code = tessera_client::rejection_code(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let code = if (200..300).contains(&status) {
            "ok".to_owned()
        } else {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
                .or_else(|| header_code.map(|c| c.as_str().to_owned()))
                .unwrap_or_else(|| "no_code".to_owned())
        };
        Answer {
            status,
            code,
            note: None,
        }
    }
}

/// The keys, clients and address one demo run uses.
struct Setup {
    base: String,
    user: DemoKey,
    read_only: DemoKey,
    revoked: DemoKey,
    plain: Client,
}

impl Setup {
    fn url(&self, path_and_query: &str) -> Result<Url, CliError> {
        Url::parse(&format!("{}{path_and_query}", self.base))
            .map_err(|e| CliError::runtime(format!("bad demo URL: {e}")))
    }

    fn signer(&self, key: &DemoKey, clock: i64) -> Result<Signer, CliError> {
        Signer::builder(tessera_core::SigningKey::new(
            key.key_id.clone(),
            &key.secret,
        ))
        .clock(SkewedClock(clock))
        .build()
        .map_err(|e| CliError::runtime(format!("cannot build a signer: {e}")))
    }

    fn client(&self, signer: Signer) -> Result<ClientWithMiddleware, CliError> {
        let inner = client_builder()
            .build()
            .map_err(|e| CliError::runtime(format!("cannot build an HTTP client: {e}")))?;
        Ok(reqwest_middleware::ClientBuilder::new(inner)
            .with(SignRequestMiddleware::new(signer))
            .build())
    }

    /// Builds a request, signs it with `signer` directly (no middleware, no
    /// skew retry), lets `tamper` alter it, and sends it with plain reqwest.
    async fn signed_then(
        &self,
        signer: &Signer,
        method: reqwest::Method,
        path: &str,
        body: Option<&'static str>,
        tamper: impl FnOnce(&mut Request),
    ) -> Result<Answer, CliError> {
        let mut builder = self.plain.request(method, self.url(path)?);
        if let Some(body) = body {
            builder = builder
                .header("content-type", "application/json")
                .body(body);
        }
        let mut request = builder.build().map_err(http_error)?;
        signer
            .sign_reqwest(&mut request)
            .map_err(|e| CliError::runtime(format!("cannot sign: {e}")))?;
        tamper(&mut request);
        let response = self.plain.execute(request).await.map_err(http_error)?;
        Ok(Answer::of(response).await)
    }
}

fn http_error(e: impl std::fmt::Display) -> CliError {
    CliError::runtime(format!("HTTP request to the demo server failed: {e}"))
}

/// One scenario: its label, the code it must get, and what it got.
struct Outcome {
    label: &'static str,
    expected: &'static str,
    answer: Answer,
}

/// Runs `tessera demo`.
pub(crate) fn run(args: Args) -> CliResult {
    let started = Instant::now();
    let style = Style::detect();
    let runtime = app::runtime()?;
    let outcomes = runtime.block_on(run_scenarios(style, args.sqlite))?;
    let width = outcomes.iter().map(|o| o.label.len()).max().unwrap_or(0);
    let mut failed = 0;
    for o in &outcomes {
        let ok = o.answer.code == o.expected;
        if !ok {
            failed += 1;
        }
        let got = format!("{} {}", o.answer.status, o.answer.code);
        let note = o
            .answer
            .note
            .as_deref()
            .map(|n| format!("  {}", style.dim(n)))
            .unwrap_or_default();
        println!(
            "{} {:<width$} {} {} (expected {}){note}",
            style.marker(ok),
            o.label,
            style.arrow(),
            style.verdict(&got, ok),
            o.expected,
        );
    }
    let total = outcomes.len();
    let elapsed = started.elapsed().as_millis();
    if failed == 0 {
        println!(
            "{}",
            style.bold(&format!("all {total} outcomes as expected ({elapsed} ms)"))
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{}",
            style.verdict(
                &format!("{failed} of {total} outcomes NOT as expected ({elapsed} ms)"),
                false
            )
        );
        Ok(ExitCode::from(crate::error::EXIT_FAILURE))
    }
}

/// The demo's three keys (read-write, read-only, revoked) and the store
/// that serves them; the temporary directory lives as long as the demo.
struct Keys {
    store: Arc<dyn KeyStore>,
    user: DemoKey,
    read_only: DemoKey,
    revoked: DemoKey,
    described: String,
    _dir: Option<tempfile::TempDir>,
}

fn memory_keys() -> Result<Keys, CliError> {
    let store = Arc::new(MemoryKeyStore::new());
    let issuer = KeyIssuer::memory(Arc::clone(&store));
    let issue = |request: KeyRequest| {
        let issued = issuer
            .issue(&request)
            .map_err(|e| CliError::runtime(format!("cannot issue a key: {e}")))?;
        Ok::<_, CliError>(DemoKey {
            key_id: issued.key_id().clone(),
            secret: issued.expose_secret().clone(),
        })
    };
    let day = Duration::from_secs(86_400);
    let user = issue(
        KeyRequest::new("alice")
            .with_client("tessera-demo")
            .with_scopes(["read", "write"])
            .with_lifetime(day),
    )?;
    let read_only = issue(
        KeyRequest::new("alice")
            .with_client("dashboard")
            .with_scopes(["read"])
            .with_lifetime(day),
    )?;
    let revoked = issue(
        KeyRequest::new("alice")
            .with_client("lost-phone")
            .with_scopes(["read"]),
    )?;
    store.revoke(&revoked.key_id);
    Ok(Keys {
        store,
        user,
        read_only,
        revoked,
        described: "in-memory keys".into(),
        _dir: None,
    })
}

/// The same three keys in the SQL key store, on a temporary SQLite file.
async fn sqlite_keys() -> Result<Keys, CliError> {
    let sql = |what: &'static str| {
        move |e: tessera_keys_sql::Error| {
            CliError::runtime(format!("demo key database: {what}: {e}"))
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("tessera-demo-")
        .tempdir()
        .map_err(|e| CliError::runtime(format!("cannot create a temporary directory: {e}")))?;
    let path = dir.path().join("keys.db");
    let url = format!("sqlite://{}", path.display());
    // A throwaway master key: the file is deleted with the directory.
    let mut master = [0u8; 32];
    rand::fill(&mut master);
    let ring = MasterKeyring::new([MasterKey::new(1, master).map_err(sql("master key"))?])
        .map_err(sql("master key"))?;
    SqlKeyStore::migrate(&url).await.map_err(sql("migrate"))?;
    let store = SqlKeyStore::open(&url, ring, SqlKeyStoreOptions::default())
        .await
        .map_err(sql("open"))?;
    let day = Duration::from_secs(86_400);
    let issue = |request: IssueRequest| {
        let store = store.clone();
        async move {
            let issued = store.issue(request).await.map_err(sql("issue a key"))?;
            Ok::<_, CliError>(DemoKey {
                key_id: issued.key_id().clone(),
                secret: issued.expose_secret().clone(),
            })
        }
    };
    let user = issue(
        IssueRequest::new("alice", "tessera-demo")
            .client("tessera-demo")
            .scopes(["read", "write"])
            .ttl(day),
    )
    .await?;
    let read_only = issue(
        IssueRequest::new("alice", "tessera-demo")
            .client("dashboard")
            .scopes(["read"])
            .ttl(day),
    )
    .await?;
    let revoked = issue(
        IssueRequest::new("alice", "tessera-demo")
            .client("lost-phone")
            .scopes(["read"]),
    )
    .await?;
    store
        .revoke(&revoked.key_id, "lost phone", "tessera-demo")
        .await
        .map_err(sql("revoke a key"))?;
    Ok(Keys {
        store: Arc::new(store),
        user,
        read_only,
        revoked,
        described: format!("keys in a temporary SQLite database ({})", path.display()),
        _dir: Some(dir),
    })
}

async fn run_scenarios(style: Style, sqlite: bool) -> Result<Vec<Outcome>, CliError> {
    let keys = if sqlite {
        sqlite_keys().await?
    } else {
        memory_keys()?
    };
    let Keys {
        store,
        user,
        read_only,
        revoked,
        described,
        _dir,
    } = keys;

    let (listener, addr) = app::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let verifier = Verifier::builder(store)
        .scheme(Scheme::Http)
        .authorities(app::default_authorities(addr))
        .build()
        .map_err(|e| CliError::runtime(format!("cannot build the verifier: {e}")))?;
    app::wait_for_replay_store(&tessera_server::SystemClock::new()).await;
    let server = tokio::spawn(async move {
        // The server runs until the demo returns and the runtime is dropped.
        let _ = axum::serve(listener, app::router(verifier)).await;
    });
    println!(
        "{}",
        style.bold(&format!(
            "tessera demo: verifying server on http://{addr} ({described}); user key {} [read,write], read-only key {} [read]",
            user.key_id,
            read_only.key_id
        ))
    );

    let setup = Setup {
        base: format!("http://{addr}"),
        plain: client_builder().build().map_err(http_error)?,
        user,
        read_only,
        revoked,
    };
    let result = scenarios(&setup).await;
    server.abort();
    result
}

async fn scenarios(s: &Setup) -> Result<Vec<Outcome>, CliError> {
    use reqwest::Method;
    let mut out = Vec::new();
    let mut push = |label, expected, answer| {
        out.push(Outcome {
            label,
            expected,
            answer,
        });
    };
    let order = r#"{"item":"book","qty":1}"#;
    let signer = s.signer(&s.user, 0)?;
    let client = s.client(signer.clone())?;

    // Accepted.
    let response = client
        .get(s.url("/v1/orders?status=open&limit=5")?)
        .send()
        .await
        .map_err(http_error)?;
    push("signed GET", "ok", Answer::of(response).await);
    let response = client
        .post(s.url("/v1/orders")?)
        .header("content-type", "application/json")
        .body(order)
        .send()
        .await
        .map_err(http_error)?;
    push("signed POST with body", "ok", Answer::of(response).await);

    // Tampered after signing.
    let path = s.url("/v1/orders/2")?;
    let answer = s
        .signed_then(&signer, Method::DELETE, "/v1/orders/1", None, |r| {
            *r.url_mut() = path
        })
        .await?;
    push("tampered path", "bad_signature", answer);
    let query = s.url("/v1/orders?status=open&limit=5000")?;
    let answer = s
        .signed_then(
            &signer,
            Method::GET,
            "/v1/orders?status=open&limit=5",
            None,
            |r| {
                *r.url_mut() = query;
            },
        )
        .await?;
    push("tampered query", "bad_signature", answer);
    let forged = r#"{"item":"book","qty":100}"#;
    let answer = s
        .signed_then(&signer, Method::POST, "/v1/orders", Some(order), |r| {
            *r.body_mut() = Some(forged.into());
        })
        .await?;
    push("tampered body", "digest_mismatch", answer);
    let answer = s
        .signed_then(&signer, Method::POST, "/v1/orders", Some(order), |r| {
            *r.body_mut() = Some(forged.into());
            if let Ok(v) = BodyDigest::of(forged.as_bytes()).header_value().parse() {
                r.headers_mut().insert("content-digest", v);
            }
        })
        .await?;
    push("tampered body + digest", "bad_signature", answer);

    // Replay: the same signed bytes twice.
    let mut request = s
        .plain
        .post(s.url("/v1/transfers")?)
        .header("content-type", "application/json")
        .body(r#"{"to":"bob","amount":10}"#)
        .build()
        .map_err(http_error)?;
    signer
        .sign_reqwest(&mut request)
        .map_err(|e| CliError::runtime(format!("cannot sign: {e}")))?;
    let copy = request
        .try_clone()
        .ok_or_else(|| CliError::runtime("cannot copy the request"))?;
    let first = Answer::of(s.plain.execute(request).await.map_err(http_error)?).await;
    push("original request", "ok", first);
    let mut second = Answer::of(s.plain.execute(copy).await.map_err(http_error)?).await;
    second.note = Some("same bytes sent again".to_owned());
    push("replayed request", "replayed", second);

    // Timestamps outside the window, signed without the middleware's retry.
    let stale = s.signer(&s.user, -600)?;
    let answer = s
        .signed_then(&stale, Method::GET, "/v1/me", None, |_| {})
        .await?;
    push("stale timestamp (-10 min)", "clock_skew", answer);
    let future = s.signer(&s.user, 600)?;
    let answer = s
        .signed_then(&future, Method::GET, "/v1/me", None, |_| {})
        .await?;
    push("future timestamp (+10 min)", "clock_skew", answer);

    // Clock skew recovered by the middleware from the authenticated challenge.
    let skewed = s.signer(&s.user, -600)?;
    let response = s
        .client(skewed.clone())?
        .get(s.url("/v1/me")?)
        .send()
        .await
        .map_err(http_error)?;
    let mut answer = Answer::of(response).await;
    answer.note = Some(format!(
        "client clock 10 min slow; learned offset {:+}s, first call succeeded",
        skewed.clock_offset()
    ));
    push("clock skew recovered", "ok", answer);

    // Scopes and key states.
    let reader = s.client(s.signer(&s.read_only, 0)?)?;
    let response = reader
        .get(s.url("/v1/orders")?)
        .send()
        .await
        .map_err(http_error)?;
    push("read-only key, read", "ok", Answer::of(response).await);
    let response = reader
        .post(s.url("/v1/orders")?)
        .header("content-type", "application/json")
        .body(order)
        .send()
        .await
        .map_err(http_error)?;
    push(
        "read-only key, write",
        "insufficient_scope",
        Answer::of(response).await,
    );
    let revoked = s.client(s.signer(&s.revoked, 0)?)?;
    let response = revoked
        .get(s.url("/v1/me")?)
        .send()
        .await
        .map_err(http_error)?;
    push("revoked key", "key_revoked", Answer::of(response).await);
    let wrong = SecretKey::generate().map_err(|e| CliError::runtime(e.to_string()))?;
    let impostor = Signer::new(s.user.key_id.as_str(), &wrong)
        .map_err(|e| CliError::runtime(e.to_string()))?;
    let answer = s
        .signed_then(&impostor, Method::GET, "/v1/me", None, |_| {})
        .await?;
    push("wrong secret", "bad_signature", answer);
    let unknown = Signer::new("m1.nobody-knows-this-key", &wrong)
        .map_err(|e| CliError::runtime(e.to_string()))?;
    let answer = s
        .signed_then(&unknown, Method::GET, "/v1/me", None, |_| {})
        .await?;
    push("unknown key", "unknown_key", answer);
    Ok(out)
}
