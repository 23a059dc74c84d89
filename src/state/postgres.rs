//! The PostgreSQL [`Durable`] backend, shared by every proxy pointed at one database: the
//! same records as [`super::sqlite`], with the same kind of versioned migrations
//! (`migrations/postgres/`, applied on open).
//!
//! Several proxies starting at once may all run the migrations: sqlx's migrator holds a
//! PostgreSQL advisory lock (`pg_advisory_lock`) for the whole run, so one applies them and
//! the others find them applied. A write is acknowledged once PostgreSQL has committed it
//! (its default `synchronous_commit` flushes the WAL first), so a server restart loses
//! nothing acknowledged.
//!
//! Other proxies hear of changed providers at once ([`super::postgres_changes`]): each change
//! sends `NOTIFY jsp_changes, 'providers'` in its own transaction.
//!
//! A server that cannot be reached (refused, reset, pool wait over [`ACQUIRE_TIMEOUT`],
//! shutting down) is [`StateError::Unavailable`] naming `postgres`; the pool reconnects by
//! itself when the server is back.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::Row;
use tokio::sync::broadcast;

use crate::config::PgTls as Tls;

use super::postgres_changes::{self as changes, notify, PROVIDERS};
use super::durable::{normalise_user_id, AppPassword, Durable, ImportBatch, LegacyLink, Link, MintedSession, StoredProvider};
use super::StateError;

super::sql::durable_sql!(row: sqlx::postgres::PgRow, executor: PgExecutor, pool: sqlx::PgPool, conn: sqlx::PgConnection);
use rows::{all, app_password_from, int, link_from, mint_from, upsert_link, upsert_provider, APP_PASSWORD, LINK, MINT};

const BACKEND: &str = "postgres";

/// How long a query waits for a connection before the server counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL backend. Cheap to share: a pool of connections.
pub struct PostgresDurable {
    pool: PgPool,
    changes: broadcast::Sender<String>,
}

/// The connection options of `url`, with `tls` (when set) overriding its `sslmode`.
fn options(url: &str, tls: Option<Tls>) -> Result<PgConnectOptions, StateError> {
    let mut options = PgConnectOptions::from_str(url).map_err(|e| StateError::Start { backend: BACKEND, detail: format!("state.postgres.url is not usable: {e}") })?;
    if let Some(tls) = tls {
        options = options.ssl_mode(match tls {
            Tls::Disable => PgSslMode::Disable,
            Tls::Prefer => PgSslMode::Prefer,
            Tls::Require => PgSslMode::Require,
            Tls::VerifyCa => PgSslMode::VerifyCa,
            Tls::VerifyFull => PgSslMode::VerifyFull,
        });
    }
    Ok(options)
}

/// What `doctor` learns from a PostgreSQL server without changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `SHOW server_version`.
    pub server_version: String,
    /// The newest migration applied successfully (`None`: the schema was never created).
    pub applied: Option<i64>,
    /// The newest migration this build carries (what [`PostgresDurable::open`] applies).
    pub expected: i64,
}

/// Connect once to `url` (within [`ACQUIRE_TIMEOUT`]) and read the server's version and
/// the migrations applied, without running any.
pub async fn probe(url: &str, tls: Option<Tls>) -> Result<Probe, StateError> {
    use sqlx::Connection;
    let opts = options(url, tls)?;
    let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::PgConnection::connect_with(&opts))
        .await
        .map_err(|_| StateError::Unavailable { backend: BACKEND, detail: format!("no answer within {ACQUIRE_TIMEOUT:?}") })?
        .map_err(|e| match pg(e) {
            StateError::Database(e) => StateError::Start { backend: BACKEND, detail: e.to_string() },
            other => other,
        })?;
    let server_version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut conn).await.map_err(pg)?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut conn).await.map_err(pg)?;
    let applied = if exists { sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(&mut conn).await.map_err(pg)? } else { None };
    let _ = conn.close().await;
    Ok(Probe { server_version, applied, expected: MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0) })
}

/// Unreachable → `Unavailable`; anything else the database said → `Database`.
fn pg(e: sqlx::Error) -> StateError {
    let unavailable = match &e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_) => true,
        sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-03: shutting down or starting up.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    };
    if unavailable {
        StateError::Unavailable { backend: BACKEND, detail: e.to_string() }
    } else {
        StateError::Database(e)
    }
}

impl PostgresDurable {
    /// Connect to `url` with at most `pool_size` connections, bring the schema up to date and
    /// start listening for other proxies' changes. A database that cannot be reached or
    /// migrated refuses to start ([`StateError::Start`]).
    pub async fn open(url: &str, pool_size: u32, tls: Option<Tls>) -> Result<PostgresDurable, StateError> {
        let start = |detail: String| StateError::Start { backend: BACKEND, detail };
        let options = options(url, tls)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| start(format!("cannot connect: {e}")))?;
        MIGRATOR.run(&pool).await.map_err(|e| {
            start(format!("cannot bring the database up to date ({e}); was it written by a newer version? The proxy will not start over it"))
        })?;
        let changes = changes::listen(&pool).await.map_err(|e| start(format!("cannot listen for changes: {e}")))?;
        Ok(PostgresDurable { pool, changes })
    }

    /// Close every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn provider_from(row: &PgRow) -> Result<StoredProvider, StateError> {
    let (protocol, name, json): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let json = serde_json::from_str(&json).map_err(|e| StateError::Backend(format!("postgres: provider {protocol}/{name} is not JSON: {e}")))?;
    Ok(StoredProvider { protocol, name, json })
}

#[async_trait]
impl Durable for PostgresDurable {
    async fn link(&self, protocol: &str, provider: &str, subject: &str) -> Result<Option<Link>, StateError> {
        let q = format!("{LINK} WHERE protocol = $1 AND provider = $2 AND subject = $3");
        let row = sqlx::query(&q).bind(protocol).bind(provider).bind(subject).fetch_optional(&self.pool).await.map_err(pg)?;
        Ok(row.as_ref().map(link_from).transpose()?)
    }

    async fn links_of_user(&self, user_id: &str) -> Result<Vec<Link>, StateError> {
        let q = format!("{LINK} WHERE user_key = $1 ORDER BY linked_at, protocol, provider, subject");
        all(sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(&self.pool).await.map_err(pg)?, link_from)
    }

    async fn put_link(&self, link: Link) -> Result<(), StateError> {
        Ok(upsert_link(&self.pool, &link).await.map_err(pg)?)
    }

    async fn remove_link(&self, protocol: &str, provider: &str, user_id: &str, subject: &str) -> Result<u64, StateError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        let done = sqlx::query("DELETE FROM links WHERE protocol = $1 AND provider = $2 AND user_key = $3 AND subject = $4")
            .bind(protocol)
            .bind(provider)
            .bind(normalise_user_id(user_id))
            .bind(subject)
            .execute(&mut *tx)
            .await.map_err(pg)?;
        let legacy = legacy::remove(&mut *tx, protocol, provider, user_id, subject).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(done.rows_affected() + legacy)
    }

    async fn remove_links_of_user(&self, user_id: &str) -> Result<u64, StateError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        let done = sqlx::query("DELETE FROM links WHERE user_key = $1").bind(normalise_user_id(user_id)).execute(&mut *tx).await.map_err(pg)?;
        let legacy = legacy::remove_of_user(&mut *tx, user_id).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(done.rows_affected() + legacy)
    }

    async fn legacy_link(&self, protocol: &str, provider: &str, name: &str) -> Result<Option<LegacyLink>, StateError> {
        legacy::get(&self.pool, protocol, provider, name).await.map_err(pg)
    }

    async fn legacy_links_of_user(&self, user_id: &str) -> Result<Vec<LegacyLink>, StateError> {
        legacy::of_user(&self.pool, user_id).await.map_err(pg)
    }

    async fn claim_legacy_link(&self, protocol: &str, provider: &str, name: &str, subject: &str, at: u64) -> Result<Option<LegacyLink>, StateError> {
        legacy::claim(&self.pool, protocol, provider, name, subject, at).await.map_err(pg)
    }

    async fn providers(&self) -> Result<Vec<StoredProvider>, StateError> {
        let rows = sqlx::query("SELECT protocol, name, json FROM providers ORDER BY protocol, name").fetch_all(&self.pool).await.map_err(pg)?;
        rows.iter().map(provider_from).collect()
    }

    async fn provider(&self, protocol: &str, name: &str) -> Result<Option<StoredProvider>, StateError> {
        let row = sqlx::query("SELECT protocol, name, json FROM providers WHERE protocol = $1 AND name = $2")
            .bind(protocol)
            .bind(name)
            .fetch_optional(&self.pool)
            .await.map_err(pg)?;
        row.as_ref().map(provider_from).transpose()
    }

    async fn put_provider(&self, provider: StoredProvider) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        upsert_provider(&mut *tx, &provider).await.map_err(pg)?;
        notify(&mut *tx, PROVIDERS).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn remove_provider(&self, protocol: &str, name: &str) -> Result<bool, StateError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        let done = sqlx::query("DELETE FROM providers WHERE protocol = $1 AND name = $2").bind(protocol).bind(name).execute(&mut *tx).await.map_err(pg)?;
        notify(&mut *tx, PROVIDERS).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(done.rows_affected() > 0)
    }

    async fn import(&self, batch: ImportBatch) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        for l in &batch.links {
            upsert_link(&mut *tx, l).await.map_err(pg)?;
        }
        legacy::import(&mut tx, &batch).await.map_err(pg)?;
        for p in &batch.providers {
            upsert_provider(&mut *tx, p).await.map_err(pg)?;
        }
        notify(&mut *tx, PROVIDERS).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(())
    }

    fn changes(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.changes.subscribe())
    }

    async fn record_mint(&self, m: MintedSession) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO minted_sessions (user_key, device_id, user_id, provider, protocol, subject, sid, id_token, refresh_token,
               how, client, device_name, minted_at, last_validated, app_password_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (user_key, device_id) DO UPDATE SET
               user_id = excluded.user_id, provider = excluded.provider, protocol = excluded.protocol,
               subject = excluded.subject, sid = excluded.sid, id_token = excluded.id_token,
               refresh_token = excluded.refresh_token, how = excluded.how, client = excluded.client,
               device_name = excluded.device_name, minted_at = excluded.minted_at,
               last_validated = excluded.last_validated, app_password_id = excluded.app_password_id",
        )
        .bind(normalise_user_id(&m.user_id))
        .bind(&m.device_id)
        .bind(&m.user_id)
        .bind(&m.provider)
        .bind(&m.protocol)
        .bind(&m.subject)
        .bind(&m.sid)
        .bind(&m.id_token)
        .bind(&m.refresh_token)
        .bind(&m.how)
        .bind(&m.client)
        .bind(&m.device_name)
        .bind(int(m.minted_at))
        .bind(m.last_validated.map(int))
        .bind(&m.app_password_id)
        .execute(&self.pool)
        .await.map_err(pg)?;
        Ok(())
    }

    async fn mints_of_user(&self, user_id: &str) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE user_key = $1 ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(&self.pool).await.map_err(pg)?, mint_from)
    }

    async fn mint(&self, user_id: &str, device_id: &str) -> Result<Option<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE user_key = $1 AND device_id = $2");
        let row = sqlx::query(&q).bind(normalise_user_id(user_id)).bind(device_id).fetch_optional(&self.pool).await.map_err(pg)?;
        Ok(row.as_ref().map(mint_from).transpose()?)
    }

    async fn remove_mint(&self, user_id: &str, device_id: &str) -> Result<bool, StateError> {
        let done = sqlx::query("DELETE FROM minted_sessions WHERE user_key = $1 AND device_id = $2")
            .bind(normalise_user_id(user_id))
            .bind(device_id)
            .execute(&self.pool)
            .await.map_err(pg)?;
        Ok(done.rows_affected() > 0)
    }

    async fn mints_by_sid(&self, provider: &str, sid: &str) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE provider = $1 AND sid = $2 ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(provider).bind(sid).fetch_all(&self.pool).await.map_err(pg)?, mint_from)
    }

    async fn mints_by_subject(&self, protocol: &str, provider: &str, subject: &str) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE protocol = $1 AND provider = $2 AND subject = $3 ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(protocol).bind(provider).bind(subject).fetch_all(&self.pool).await.map_err(pg)?, mint_from)
    }

    async fn mints_older_than(&self, provider: &str, minted_before: u64) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE provider = $1 AND minted_at < $2 ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(provider).bind(int(minted_before)).fetch_all(&self.pool).await.map_err(pg)?, mint_from)
    }

    async fn set_validated(&self, user_id: &str, device_id: &str, at: u64) -> Result<bool, StateError> {
        let done = sqlx::query("UPDATE minted_sessions SET last_validated = $1 WHERE user_key = $2 AND device_id = $3")
            .bind(int(at))
            .bind(normalise_user_id(user_id))
            .bind(device_id)
            .execute(&self.pool)
            .await.map_err(pg)?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_app_password(&self, p: AppPassword) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO app_passwords (id, user_id, user_key, name, hash, created_at, last_used_at, last_device)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(normalise_user_id(&p.user_id))
        .bind(&p.name)
        .bind(&p.hash)
        .bind(int(p.created_at))
        .bind(p.last_used_at.map(int))
        .bind(&p.last_device)
        .execute(&self.pool)
        .await.map_err(pg)?;
        Ok(())
    }

    async fn app_passwords_of_user(&self, user_id: &str) -> Result<Vec<AppPassword>, StateError> {
        let q = format!("{APP_PASSWORD} WHERE user_key = $1 ORDER BY created_at, id");
        all(sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(&self.pool).await.map_err(pg)?, app_password_from)
    }

    async fn app_password(&self, id: &str) -> Result<Option<AppPassword>, StateError> {
        let q = format!("{APP_PASSWORD} WHERE id = $1");
        let row = sqlx::query(&q).bind(id).fetch_optional(&self.pool).await.map_err(pg)?;
        Ok(row.as_ref().map(app_password_from).transpose()?)
    }

    async fn remove_app_password(&self, id: &str) -> Result<bool, StateError> {
        let done = sqlx::query("DELETE FROM app_passwords WHERE id = $1").bind(id).execute(&self.pool).await.map_err(pg)?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_app_password(&self, id: &str, device: &str, at: u64) -> Result<bool, StateError> {
        let done = sqlx::query("UPDATE app_passwords SET last_used_at = $1, last_device = $2 WHERE id = $3")
            .bind(int(at))
            .bind(device)
            .bind(id)
            .execute(&self.pool)
            .await.map_err(pg)?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_app_passwords_of_user(&self, user_id: &str) -> Result<u64, StateError> {
        let done = sqlx::query("DELETE FROM app_passwords WHERE user_key = $1").bind(normalise_user_id(user_id)).execute(&self.pool).await.map_err(pg)?;
        Ok(done.rows_affected())
    }
}
