//! `tessera keys`: administer a SQL key store (tessera-keys-sql): migrate,
//! issue, list, show, revoke, rotate, rewrap.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_core::KeyId;
use tessera_keys_sql::{
    Error as StoreError, IssueRequest, IssuedKey, KeyRecord, MasterKeyring, SqlKeyAdmin,
    SqlKeyStore, SqlKeyStoreOptions, UnreadableKey,
};

use crate::app;
use crate::error::{error_chain, CliError, CliResult};
use crate::timearg::{parse_duration, rfc3339};

/// Where the key database is and how to open it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DbArgs {
    /// The key database: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    db: String,
    /// A file of master keys (`VERSION:HEX` lines, or one bare hex key).
    /// Without it, TESSERA_MASTER_KEY (64 hex characters) or
    /// TESSERA_MASTER_KEY_FILE.
    #[arg(long, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
}

/// The key database alone, for commands that need no master key.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DbOnlyArgs {
    /// The key database: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    db: String,
}

/// Loads the master keyring from `--master-key-file` or the environment.
pub(crate) fn keyring(file: Option<&PathBuf>) -> Result<MasterKeyring, CliError> {
    match file {
        Some(path) => MasterKeyring::from_file(path),
        None => MasterKeyring::from_env(),
    }
    .map_err(|e| CliError::usage(error_chain(&e)))
}

/// Opens the store at `url` for serving or administering.
pub(crate) async fn open(
    url: &str,
    keyring: MasterKeyring,
    options: SqlKeyStoreOptions,
) -> Result<SqlKeyStore, CliError> {
    SqlKeyStore::open(url, keyring, options)
        .await
        .map_err(|e| store_error(&e))
}

/// A store error as a CLI error: bad input is a usage error (exit 2),
/// everything else a runtime error (exit 1).
fn store_error(e: &StoreError) -> CliError {
    let message = error_chain(e);
    match e {
        StoreError::InvalidUrl { .. }
        | StoreError::InvalidRequest { .. }
        | StoreError::MasterKeyMissing
        | StoreError::MasterKeyInvalid { .. } => CliError::usage(message),
        _ => CliError::runtime(message),
    }
}

/// Arguments of `tessera keys`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  (umask 077; openssl rand -hex 32 > /etc/tessera/master.key)   # keep a copy outside the database
  export TESSERA_MASTER_KEY_FILE=/etc/tessera/master.key
  tessera keys migrate --db sqlite://keys.db
  tessera keys issue --db sqlite://keys.db --owner alice --client ios --scope read --ttl 30d --json
  tessera keys revoke --db sqlite://keys.db k1.… --reason 'device lost'
  tessera serve --keys-db sqlite://keys.db
The secret is printed once, by `issue` and `rotate`; `list` and `show` never print it.")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create the schema or bring it up to date (needs no master key).
    Migrate {
        /// The key database: sqlite://PATH or postgres://USER@HOST:PORT/DB.
        #[arg(long, value_name = "URL")]
        db: String,
    },
    /// Issue a key and print its secret, once.
    Issue {
        #[command(flatten)]
        db: DbArgs,
        /// The user or service account the key acts for.
        #[arg(long, value_name = "OWNER", allow_hyphen_values = true)]
        owner: String,
        /// The app or device receiving the key.
        #[arg(long, value_name = "LABEL", allow_hyphen_values = true)]
        client: Option<String>,
        /// Scopes to grant: repeat, or separate with commas (`--scope read,write`).
        #[arg(
            long = "scope",
            visible_alias = "scopes",
            value_name = "SCOPE",
            value_delimiter = ',',
            allow_hyphen_values = true
        )]
        scopes: Vec<String>,
        /// Lifetime: a number with unit s, m, h, d or w (30d); default no expiry.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        ttl: Option<u64>,
        /// A JSON object returned with the verified identity (a plan or company id).
        #[arg(long, value_name = "JSON")]
        attributes: Option<String>,
        /// Who issues it, for the audit table.
        #[arg(long, value_name = "LABEL", default_value = "tessera-cli")]
        actor: String,
        /// Print the key as JSON: {"key_id","secret_hex","user","client",
        /// "scopes","not_after","attributes","replaces"}, for the app that
        /// receives it (the key stays in the database; it is not a keys-file
        /// entry).
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
        /// Only this owner's keys.
        #[arg(long, value_name = "OWNER", allow_hyphen_values = true)]
        owner: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one key (never its secret).
    Show {
        #[command(flatten)]
        db: DbArgs,
        /// The key id.
        key_id: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one key, or every key of an owner (needs no master key).
    Revoke {
        #[command(flatten)]
        db: DbOnlyArgs,
        /// The key id (or use --owner).
        #[arg(required_unless_present = "owner", conflicts_with = "owner")]
        key_id: Option<String>,
        /// Revoke every key of this owner not already revoked, expired ones
        /// included ("log out everywhere").
        #[arg(long, value_name = "OWNER", allow_hyphen_values = true)]
        owner: Option<String>,
        /// Why, for the key row and the audit table.
        #[arg(long, value_name = "TEXT", default_value = "revoked with tessera keys")]
        reason: String,
        /// Who revokes, for the audit table.
        #[arg(long, value_name = "LABEL", default_value = "tessera-cli")]
        actor: String,
    },
    /// Issue a replacement and keep the old key valid for an overlap; prints the new secret once.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
        /// The key to replace.
        key_id: String,
        /// How long the old key stays valid (default 7d).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "7d")]
        overlap: u64,
        /// Who rotates, for the audit table.
        #[arg(long, value_name = "LABEL", default_value = "tessera-cli")]
        actor: String,
        /// As JSON (as `issue --json`).
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every key under the newest master key version (servers keep running).
    Rewrap {
        #[command(flatten)]
        db: DbArgs,
        /// Who rewraps, for the audit table.
        #[arg(long, value_name = "LABEL", default_value = "tessera-cli")]
        actor: String,
    },
}

fn key_id(text: &str) -> Result<KeyId, CliError> {
    KeyId::new(text)
        .map_err(|e| CliError::usage(format!("invalid key id {text:?}: {}", e.detail())))
}

/// Runs `tessera keys`.
pub(crate) fn run(args: Args) -> CliResult {
    let runtime = app::runtime()?;
    runtime.block_on(async move {
        let admin = |db: &DbArgs| {
            let db = db.clone();
            async move {
                let ring = keyring(db.master_key_file.as_ref())?;
                // An administrative process: no change polling or listening needed.
                let mut options = SqlKeyStoreOptions::default();
                options.listen_notifications = false;
                open(&db.db, ring, options).await
            }
        };
        match args.command {
            Command::Migrate { db } => {
                SqlKeyStore::migrate(&db).await.map_err(|e| store_error(&e))?;
                println!("migrated");
                Ok(ExitCode::SUCCESS)
            }
            Command::Issue {
                db,
                owner,
                client,
                scopes,
                ttl,
                attributes,
                actor,
                json,
            } => {
                // `--scope "read, write"`: the spaces around a comma are not part of a scope.
                let scopes = scopes
                    .iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned);
                let mut request = IssueRequest::new(owner, actor).scopes(scopes);
                if let Some(client) = client {
                    request = request.client(client);
                }
                if ttl.is_none() {
                    // Allowed (a server-to-server key, say), but said: a
                    // device key usually should expire and be rotated.
                    eprintln!(
                        "tessera: note: no --ttl: this key never expires (revoke it when its device is gone, or issue with --ttl 90d)"
                    );
                }
                if let Some(secs) = ttl {
                    request = request.ttl(Duration::from_secs(secs));
                }
                if let Some(text) = attributes {
                    let value: Value = serde_json::from_str(&text).map_err(|e| {
                        CliError::usage(format!("--attributes is not JSON: {e}"))
                    })?;
                    // A plan the limiter cannot read would silently give the
                    // key the default budget: refused here instead.
                    if let Some(plan) = value.get(tessera_ratelimit::PLAN_ATTRIBUTE) {
                        tessera_ratelimit::parse_key_plan(plan).map_err(|e| {
                            CliError::usage(format!("--attributes: {e}"))
                        })?;
                    }
                    request = request.attributes(value);
                }
                let store = admin(&db).await?;
                let issued = store.issue(request).await.map_err(|e| store_error(&e));
                store.close().await;
                print_issued(&issued?, json)
            }
            Command::List { db, owner, json } => {
                let store = admin(&db).await?;
                let listed = store.list(owner.as_deref()).await.map_err(|e| store_error(&e));
                let unreadable = match listed {
                    Ok(_) => store
                        .list_unreadable(owner.as_deref())
                        .await
                        .map_err(|e| store_error(&e)),
                    Err(_) => Ok(Vec::new()),
                };
                store.close().await;
                for record in listed? {
                    print_record(&record, json);
                }
                let unreadable = unreadable?;
                for row in &unreadable {
                    print_unreadable(row, json);
                }
                if !unreadable.is_empty() {
                    eprintln!(
                        "tessera keys: {} row(s) cannot be read (edited outside the key store); verifiers refuse those keys with store_unavailable: revoke and re-issue them, or restore the rows",
                        unreadable.len()
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Show { db, key_id: id, json } => {
                let id = key_id(&id)?;
                let store = admin(&db).await?;
                let shown = store.show(&id).await.map_err(|e| store_error(&e));
                store.close().await;
                match shown? {
                    Some(record) => {
                        print_record(&record, json);
                        if !json {
                            print_record_details(&record);
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    None => Err(CliError::runtime(format!("unknown key id {id}"))),
                }
            }
            Command::Revoke {
                db,
                key_id: id,
                owner,
                reason,
                actor,
            } => {
                let id = id.as_deref().map(key_id).transpose()?;
                // Revoking changes no sealed secret: no master key needed,
                // so whoever handles a lost device need not hold it.
                let store = SqlKeyAdmin::open(&db.db, &SqlKeyStoreOptions::default())
                    .await
                    .map_err(|e| store_error(&e))?;
                let result = match (&id, &owner) {
                    (Some(id), _) => store.revoke(id, &reason, &actor).await.map(|changed| {
                        if changed {
                            format!("revoked {id}")
                        } else {
                            format!("{id} was already revoked")
                        }
                    }),
                    (None, Some(owner)) => store
                        .revoke_owner(owner, &reason, &actor)
                        .await
                        .map(|n| match n {
                            0 => format!(
                                "revoked nothing: {owner:?} has no key that is not already revoked \
                                 (is the owner spelled right? `tessera keys list --owner {owner}`)"
                            ),
                            n => format!("revoked {n} key(s) of {owner:?}"),
                        }),
                    (None, None) => unreachable!("clap requires a key id or --owner"),
                }
                .map_err(|e| store_error(&e));
                store.close().await;
                println!("{}", result?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Rotate {
                db,
                key_id: id,
                overlap,
                actor,
                json,
            } => {
                let id = key_id(&id)?;
                let store = admin(&db).await?;
                let rotated = store
                    .rotate(&id, Duration::from_secs(overlap), &actor)
                    .await
                    .map_err(|e| store_error(&e));
                store.close().await;
                print_issued(&rotated?, json)
            }
            Command::Rewrap { db, actor } => {
                let store = admin(&db).await?;
                let report = store.rewrap(&actor).await.map_err(|e| store_error(&e));
                store.close().await;
                let report = report?;
                println!(
                    "rewrapped {} key(s) under master key version {}",
                    report.rewrapped, report.to_version
                );
                if report.is_complete() {
                    return Ok(ExitCode::SUCCESS);
                }
                let names = |ids: &[String]| {
                    ids.iter()
                        .map(|id| shown(id))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut problems = Vec::new();
                if !report.failed.is_empty() {
                    problems.push(format!(
                        "{} key(s) do not open (altered outside the store) and were left as they were: {}",
                        report.failed.len(),
                        names(&report.failed)
                    ));
                }
                if !report.left_behind.is_empty() {
                    problems.push(format!(
                        "{} key(s) were written under an older master key version while the rewrap ran: {}; run `keys rewrap` again",
                        report.left_behind.len(),
                        names(&report.left_behind)
                    ));
                }
                Err(CliError::runtime(problems.join("; ")))
            }
        }
    })
}

/// Prints a freshly issued key: the only time its secret is shown.
fn print_issued(issued: &IssuedKey, json: bool) -> CliResult {
    let m = issued.metadata();
    let entry = tessera_server::KeyFileEntry::new(
        issued.key_id().to_string(),
        issued.expose_secret().expose_hex().to_string(),
        m.owner.clone(),
    )
    .with_scopes(m.scopes.iter().cloned())
    .with_not_after(m.not_after);
    if json {
        let mut value = serde_json::to_value(&entry)
            .map_err(|e| CliError::runtime(format!("cannot encode JSON: {e}")))?;
        if let Value::Object(map) = &mut value {
            map.insert("client".into(), json!(m.client));
            map.insert("attributes".into(), json!(m.attributes));
            // Always present (null for a first key), so a consumer reads one shape.
            map.insert(
                "replaces".into(),
                json!(issued.replaces().map(|old| old.as_str())),
            );
        }
        println!("{value}");
    } else {
        println!("key_id:     {}", entry.key_id);
        println!("secret_hex: {}", entry.secret_hex);
        println!("user:       {}", entry.owner);
        if let Some(client) = &m.client {
            println!("client:     {client}");
        }
        println!("scopes:     {}", entry.scopes.join(","));
        match entry.not_after {
            Some(t) => println!("not_after:  {t} ({})", rfc3339(t)),
            None => println!("not_after:  never"),
        }
        if let Some(old) = issued.replaces() {
            println!("replaces:   {old}");
        }
        eprintln!("tessera keys: the secret is shown this once; it cannot be read back");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a key's metadata and bookkeeping, never its secret. The state is
/// what a verifier would find now: `active`, `revoked`, `expired` (past
/// `not_after`) or `not_yet_valid` (before `not_before`).
/// `keys show`'s lines after the summary: what `list` leaves out.
fn print_record_details(r: &KeyRecord) {
    let m = &r.metadata;
    let time = |t: Option<u64>| t.map_or_else(|| "-".to_owned(), rfc3339);
    println!("  not_before:     {}", time(m.not_before));
    println!("  revoked_at:     {}", time(r.revoked_at));
    println!(
        "  revoke_reason:  {}",
        shown(r.revoke_reason.as_deref().unwrap_or("-"))
    );
    println!(
        "  replaces:       {}",
        r.replaces.as_ref().map_or("-", KeyId::as_str)
    );
    println!(
        "  attributes:     {}",
        m.attributes
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string)
    );
    println!("  master_version: {}", r.master_version);
    println!("  seal_intact:    {}", r.seal_intact);
}

/// Text from the database as printed on a terminal: control characters
/// escaped (`\u{1b}`, `\n`). The store refuses them when it writes, but a
/// row edited by hand could otherwise move the cursor or forge lines.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// A row `list` could not read, in the same shapes as [`print_record`]:
/// the state is `unreadable`, with the reason.
fn print_unreadable(row: &UnreadableKey, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "key_id": row.key_id,
                "user": row.owner,
                "state": "unreadable",
                "unreadable_reason": row.reason,
            })
        );
    } else {
        println!(
            "{}  unreadable  user={} reason={}",
            shown(&row.key_id),
            shown(&row.owner),
            row.reason
        );
    }
}

fn print_record(r: &KeyRecord, json: bool) {
    let m = &r.metadata;
    let now = tessera_server::Clock::now_unix(&tessera_server::SystemClock::new());
    let state = match m.check_usable(now) {
        Ok(()) => "active",
        Err(tessera_core::Refusal::KeyRevoked) => "revoked",
        Err(tessera_core::Refusal::KeyExpired) => "expired",
        Err(tessera_core::Refusal::KeyNotYetValid) => "not_yet_valid",
        Err(_) => "unknown",
    };
    if json {
        println!(
            "{}",
            json!({
                "key_id": r.key_id.as_str(),
                "user": m.owner,
                "client": m.client,
                "scopes": m.scopes,
                "state": state,
                "not_before": m.not_before,
                "not_after": m.not_after,
                "created_at": r.created_at,
                "revoked_at": r.revoked_at,
                "revoke_reason": r.revoke_reason,
                "last_used_at": r.last_used_at,
                "master_version": r.master_version,
                "replaces": r.replaces.as_ref().map(KeyId::as_str),
                "attributes": m.attributes,
                "seal_intact": r.seal_intact,
            })
        );
    } else {
        let time = |t: Option<u64>| t.map_or_else(|| "-".to_owned(), rfc3339);
        println!(
            "{}  {state}  user={} client={} scopes={} not_after={} created={} last_used={}{}",
            r.key_id,
            shown(&m.owner),
            shown(m.client.as_deref().unwrap_or("-")),
            shown(&m.scopes.iter().cloned().collect::<Vec<_>>().join(",")),
            time(m.not_after),
            rfc3339(r.created_at),
            time(r.last_used_at),
            if r.seal_intact {
                String::new()
            } else {
                "  SEAL BROKEN (row altered outside the store; refused)".to_owned()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn database_text_is_printed_with_control_characters_escaped() {
        assert_eq!(shown("alice"), "alice");
        assert_eq!(shown("ali\u{1b}[2Jce"), "ali\\u{1b}[2Jce");
        assert_eq!(shown("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(shown("Zoë"), "Zoë");
    }
}
