//! All of the proxy's state, behind two small interfaces so that a second backend is one new
//! file: [`Ephemeral`] for what may be lost on restart (logins in progress, browser sessions,
//! caches, replay ids, rate counters) and [`Durable`] for what must survive it (account links,
//! providers added through the API, minted sessions, app passwords).
//!
//! On one machine the ephemeral side lives in memory ([`memory::MemoryEphemeral`]) and the
//! durable side in one SQLite file ([`sqlite::SqliteDurable`]), which, the first time, imports
//! the `state.json` written by earlier versions ([`import`]). Several proxies behind one
//! balancer share Redis ([`redis::RedisEphemeral`]) and PostgreSQL
//! ([`postgres::PostgresDurable`]). [`State::open`] picks them from the validated `state:`
//! settings; the layer reads no YAML and knows nothing of the SSO code that uses it.

pub mod durable;
#[cfg(test)]
mod durable_tests;
pub mod ephemeral;
pub mod import;
pub mod key;
pub mod link_cache;
pub mod memory;
pub mod observed;
#[cfg(test)]
mod memory_tests;
pub mod postgres;
pub mod postgres_changes;
#[cfg(test)]
mod postgres_tests;
pub mod redis;
#[cfg(test)]
mod redis_tests;
#[cfg(test)]
#[path = "../../tests/support/servers.rs"]
pub(crate) mod servers;
pub mod sqlite;
mod sql;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use durable::{normalise_user_id, AppPassword, Durable, ImportBatch, LegacyLink, Link, MintedSession, StoredProvider};
pub use ephemeral::{Ephemeral, Kind, TakeError};
pub use memory::{Caps, MemoryEphemeral};
pub use postgres::PostgresDurable;
pub use redis::RedisEphemeral;
pub use sqlite::SqliteDurable;

use crate::config::{DurableBackend, EphemeralBackend, StateConfig};

/// How long one call to Redis may take before it counts as unavailable.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything that can go wrong in the state layer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A bounded ephemeral store is full of live entries and refuses rather than forget one.
    #[error("too many entries of kind {kind}")]
    Full { kind: Kind },
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The database (or a record in it) cannot be read: never replaced by an empty one.
    #[error("{path} is not a usable state database ({detail}); fix or move it away: the proxy will not start empty over it")]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot open the state database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    /// The schema cannot be brought up to date, e.g. a database written by a newer version.
    #[error(
        "cannot bring the state database {path} up to date ({source}); was it written by a newer version? The proxy will not start over it"
    )]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },
    #[error("state database: {0}")]
    Database(#[from] sqlx::Error),
    /// A legacy `state.json` that cannot be imported; nothing was imported or renamed.
    #[error("{path} cannot be imported ({detail}); fix or move it away: the proxy will not start without it")]
    Import { path: PathBuf, detail: String },
    /// The ephemeral backend failed (a network store; never the memory backend).
    #[error("ephemeral state backend: {0}")]
    Backend(String),
    /// A shared backend (`"redis"`, `"postgres"`) cannot be reached or did not answer in time:
    /// new logins wait for it (503), nothing falls back to memory.
    #[error("the {backend} state backend is unavailable: {detail}")]
    Unavailable { backend: &'static str, detail: String },
    /// A shared backend refused to start (bad URL, authentication, migrations).
    #[error("cannot start the {backend} state backend: {detail}")]
    Start { backend: &'static str, detail: String },
}

/// The two halves of the state, shared by every part of the proxy.
#[derive(Clone)]
pub struct State {
    pub ephemeral: Arc<dyn Ephemeral>,
    pub durable: Arc<dyn Durable>,
    /// The state key ([`key`]): seals and encrypts what is stored for later trust.
    pub key: [u8; key::KEY_LEN],
}

impl State {
    /// SQLite `state.db` in `dir` (created if missing, refused if broken) with the legacy
    /// `state.json` imported into it, and an in-memory ephemeral store bounded by `caps`.
    ///
    /// Nothing sweeps the ephemeral store by itself: call `ephemeral.sweep()` now and then.
    /// The state key is read from (or created at) `key_file`.
    pub async fn open_default(dir: &Path, key_file: &Path, caps: Caps) -> Result<State, StateError> {
        let key = key::load_or_create(key_file)?;
        let durable = SqliteDurable::open(dir).await?;
        import::import_legacy(dir, &durable).await?;
        Ok(State { ephemeral: Arc::new(MemoryEphemeral::new(caps)), durable: Arc::new(durable), key })
    }

    /// The backends `config` names: SQLite in `dir` (with the legacy import) or PostgreSQL,
    /// memory bounded by `caps` or Redis (the same caps, enforced across proxies). A shared
    /// backend that cannot be reached refuses to start. PostgreSQL with memory for the
    /// ephemeral part is allowed (one proxy against a shared database) with a warning.
    pub async fn open(config: &StateConfig, dir: &Path, caps: Caps) -> Result<State, StateError> {
        let key = key::load_or_create(&config.key_file)?;
        let durable = open_durable(config, dir).await?;
        let ephemeral: Arc<dyn Ephemeral> = match &config.ephemeral {
            EphemeralBackend::Memory => {
                if matches!(config.durable, DurableBackend::Postgres(_)) {
                    tracing::warn!(
                        "state.durable is postgres but state.ephemeral is memory: logins started on one proxy will fail on another; set state.ephemeral: redis when several proxies share this database"
                    );
                }
                Arc::new(MemoryEphemeral::new(caps))
            }
            EphemeralBackend::Redis(r) => Arc::new(RedisEphemeral::connect(r.url.expose(), &r.key_prefix, caps, REDIS_TIMEOUT).await?),
        };
        Ok(State { ephemeral, durable, key })
    }
}

/// Only the durable half `config` names (SQLite in `dir`, with the legacy import, or
/// PostgreSQL): for commands that write records without serving.
pub async fn open_durable(config: &StateConfig, dir: &Path) -> Result<Arc<dyn Durable>, StateError> {
    Ok(match &config.durable {
        DurableBackend::Sqlite => {
            let durable = SqliteDurable::open(dir).await?;
            import::import_legacy(dir, &durable).await?;
            Arc::new(durable)
        }
        DurableBackend::Postgres(pg) => Arc::new(PostgresDurable::open(pg.url.expose(), pg.pool_size, pg.tls).await?),
    })
}

impl State {
    /// Both halves, with every backend failure reported to `on_error` (store, backend name),
    /// e.g. to count them ([`observed`]); `backends` names the durable and ephemeral backends.
    pub fn observed(self, backends: (&'static str, &'static str), on_error: observed::OnError) -> State {
        State {
            durable: Arc::new(observed::ObservedDurable::new(self.durable, backends.0, on_error.clone())),
            ephemeral: Arc::new(observed::ObservedEphemeral::new(self.ephemeral, backends.1, on_error)),
            key: self.key,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// 32 random bytes, URL-safe base64 without padding: ids, cookie values, handles.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Is this a value [`random_token`] could have produced? (Cheap shape check for cookies.)
pub fn looks_like_token(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SHA-256 of `s`: how cookies and tokens are keyed, so a dump of the state holds none.
pub fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_expected_shape() {
        let t = random_token();
        assert!(looks_like_token(&t));
        assert_ne!(t, random_token());
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&format!("{}=", &t[..42])));
        assert_eq!(digest("a"), digest("a"));
        assert_ne!(digest("a"), digest("b"));
    }

    #[tokio::test]
    async fn open_default_gives_both_halves() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open_default(d.path(), &d.path().join("state.key"), Caps::default()).await.unwrap();
        s.ephemeral.put_once(Kind::Flow, "id", "c", std::time::Duration::from_secs(60), b"v".to_vec()).await.unwrap();
        assert_eq!(s.ephemeral.take(Kind::Flow, "id", Some("c")).await.unwrap(), b"v");
        assert!(s.durable.providers().await.unwrap().is_empty());
        assert!(d.path().join("state.db").exists());
    }

    #[tokio::test]
    async fn open_picks_the_shared_backends_and_two_states_see_each_other() {
        use crate::config::{PostgresConfig, RedisConfig, Secret};
        let (db, redis, key_prefix) = servers::shared_fresh();
        let d = tempfile::tempdir().unwrap();
        let config = StateConfig {
            key_file: d.path().join("shared.key"),
            durable: DurableBackend::Postgres(PostgresConfig { url: Secret::new(db), pool_size: 2, tls: None }),
            ephemeral: EphemeralBackend::Redis(RedisConfig { url: Secret::new(redis), key_prefix }),
        };
        let a = State::open(&config, d.path(), Caps::default()).await.unwrap();
        let b = State::open(&config, d.path(), Caps::default()).await.unwrap();
        assert_eq!(a.key, b.key);
        a.ephemeral.put_once(Kind::Flow, "id", "c", Duration::from_secs(60), b"v".to_vec()).await.unwrap();
        assert_eq!(b.ephemeral.take(Kind::Flow, "id", Some("c")).await.unwrap(), b"v");
        a.durable.put_link(Link { protocol: "oid".into(), provider: "p".into(), subject: "s".into(), user_id: "u".into(), linked_at: 1 }).await.unwrap();
        assert!(b.durable.link("oid", "p", "s").await.unwrap().is_some());
        assert!(a.durable.changes().is_some());
        assert!(!d.path().join("state.db").exists(), "no SQLite beside PostgreSQL");
    }
}
