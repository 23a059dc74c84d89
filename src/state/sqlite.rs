//! The SQLite [`Durable`] backend: one file, `state.db`, in the state directory.
//!
//! Why sqlx: it is one async query layer over SQLite now and PostgreSQL in the scale-out step,
//! with embedded versioned migrations (`migrations/sqlite/`, applied on open), so the second
//! backend is the same kind of file with its own SQL. Queries are built at run time
//! (`sqlx::query`), not checked at compile time, so building needs no database.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a write is on stable storage before it
//! is acknowledged and survives `kill -9` and power loss; foreign keys on; a busy timeout so
//! concurrent writers wait for each other instead of failing. One exception, the record of a
//! minted Jellyfin session (one per login): it is written through its own connection with
//! `synchronous=NORMAL`, so it is in the WAL (in the OS, surviving `kill -9`) when
//! acknowledged, and on stable storage at the next fsynced commit or checkpoint. A power
//! loss can therefore forget the last seconds of those records, never a link, provider or
//! app password, and never corrupt the file: a session minted just before it stays valid in
//! Jellyfin but is not listed, revoked at sign-out or re-validated by the proxy (an
//! administrator can still end it in Jellyfin). That fsync was most of a login's cost.
//! Link lookups are served from an exact in-process copy ([`super::link_cache`]). The file holds provider
//! secrets: it is created owner-only (0600), and SQLite gives its WAL files the same mode.
//!
//! A database that cannot be read (not a database, corrupt, `quick_check` failing, or a schema
//! newer than this build) refuses to open with an error naming the file: the proxy never
//! creates a fresh database over an existing one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::Row;

use super::durable::{normalise_user_id, AppPassword, Durable, ImportBatch, LegacyLink, Link, MintedSession, StoredProvider};
use super::link_cache::LinkCache;
use super::StateError;

super::sql::durable_sql!(row: sqlx::sqlite::SqliteRow, executor: SqliteExecutor, pool: sqlx::SqlitePool, conn: sqlx::SqliteConnection);
use rows::{all, app_password_from, int, link_from, mint_from, upsert_link, upsert_provider, APP_PASSWORD, LINK, MINT};

/// The database's file name in the state directory.
pub const DB_FILE: &str = "state.db";

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The SQLite backend. Cheap to share: a pool of connections.
pub struct SqliteDurable {
    pool: SqlitePool,
    /// One connection with `synchronous=NORMAL`, for minted-session records only.
    mints: SqlitePool,
    links: LinkCache,
    path: PathBuf,
}

/// SQLite's primary result codes that mean "this file is not a usable database".
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;

impl SqliteDurable {
    /// Open `state.db` in `dir`, creating the directory and an empty database if missing, and
    /// bring its schema up to date.
    pub async fn open(dir: &Path) -> Result<SqliteDurable, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir { path: dir.to_path_buf(), source })?;
        let path = dir.join(DB_FILE);
        create_private(&path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // No ping before each use: a SQLite connection is a file handle on a worker thread, not
        // a socket that can die, and the ping is one more hop to that thread per query.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| classify(&path, e))?;
        let check: Vec<String> = sqlx::query_scalar("PRAGMA quick_check").fetch_all(&pool).await.map_err(|e| classify(&path, e))?;
        if check != ["ok"] {
            return Err(StateError::Corrupt { path, detail: format!("quick_check: {}", check.join("; ")) });
        }
        MIGRATOR.run(&pool).await.map_err(|source| match source {
            MigrateError::Execute(e) => classify(&path, e),
            source => StateError::Migrate { path: path.clone(), source },
        })?;
        let mints = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(|e| classify(&path, e))?;
        Ok(SqliteDurable { pool, mints, links: LinkCache::default(), path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close every connection (checkpointing the WAL); later calls fail.
    pub async fn close(&self) {
        self.mints.close().await;
        self.pool.close().await;
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn corrupt(&self, detail: String) -> StateError {
        StateError::Corrupt { path: self.path.clone(), detail }
    }

    fn provider_from(&self, row: &SqliteRow) -> Result<StoredProvider, StateError> {
        let (protocol, name, json): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let json = serde_json::from_str(&json).map_err(|e| self.corrupt(format!("provider {protocol}/{name} is not JSON: {e}")))?;
        Ok(StoredProvider { protocol, name, json })
    }
}

/// Create `path` empty and owner-only unless it exists (an existing file is never touched).
fn create_private(path: &Path) -> Result<(), StateError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(f) => f.sync_all().map_err(|source| StateError::Io { path: path.to_path_buf(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StateError::Io { path: path.to_path_buf(), source }),
    }
}

/// A "not a database" or "corrupt" answer → [`StateError::Corrupt`]; anything else → `Open`.
fn classify(path: &Path, e: sqlx::Error) -> StateError {
    if let sqlx::Error::Database(db) = &e {
        let primary = db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
        if matches!(primary, Some(SQLITE_CORRUPT | SQLITE_NOTADB)) {
            return StateError::Corrupt { path: path.to_path_buf(), detail: db.message().to_string() };
        }
    }
    StateError::Open { path: path.to_path_buf(), source: e }
}

#[async_trait]
impl Durable for SqliteDurable {
    async fn link(&self, protocol: &str, provider: &str, subject: &str) -> Result<Option<Link>, StateError> {
        let generation = match self.links.get(protocol, provider, subject) {
            Ok(found) => return Ok(found),
            Err(generation) => generation,
        };
        let q = format!("{LINK} WHERE protocol = ? AND provider = ? AND subject = ?");
        let row = sqlx::query(&q).bind(protocol).bind(provider).bind(subject).fetch_optional(&self.pool).await?;
        let found = row.as_ref().map(link_from).transpose()?;
        self.links.fill(generation, protocol, provider, subject, found.clone());
        Ok(found)
    }

    async fn links_of_user(&self, user_id: &str) -> Result<Vec<Link>, StateError> {
        let q = format!("{LINK} WHERE user_key = ? ORDER BY linked_at, protocol, provider, subject");
        all(sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(&self.pool).await?, link_from)
    }

    async fn put_link(&self, link: Link) -> Result<(), StateError> {
        let done = upsert_link(&self.pool, &link).await;
        self.links.invalidate();
        Ok(done?)
    }

    async fn remove_link(&self, protocol: &str, provider: &str, user_id: &str, subject: &str) -> Result<u64, StateError> {
        let done = async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("DELETE FROM links WHERE protocol = ? AND provider = ? AND user_key = ? AND subject = ?")
                .bind(protocol)
                .bind(provider)
                .bind(normalise_user_id(user_id))
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            let legacy = legacy::remove(&mut *tx, protocol, provider, user_id, subject).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected() + legacy)
        }
        .await;
        self.links.invalidate();
        Ok(done?)
    }

    async fn remove_links_of_user(&self, user_id: &str) -> Result<u64, StateError> {
        let done = async {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("DELETE FROM links WHERE user_key = ?").bind(normalise_user_id(user_id)).execute(&mut *tx).await?;
            let legacy = legacy::remove_of_user(&mut *tx, user_id).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected() + legacy)
        }
        .await;
        self.links.invalidate();
        Ok(done?)
    }

    async fn legacy_link(&self, protocol: &str, provider: &str, name: &str) -> Result<Option<LegacyLink>, StateError> {
        Ok(legacy::get(&self.pool, protocol, provider, name).await?)
    }

    async fn legacy_links_of_user(&self, user_id: &str) -> Result<Vec<LegacyLink>, StateError> {
        Ok(legacy::of_user(&self.pool, user_id).await?)
    }

    /// Writes a subject link: the link cache is emptied, whatever the outcome.
    async fn claim_legacy_link(&self, protocol: &str, provider: &str, name: &str, subject: &str, at: u64) -> Result<Option<LegacyLink>, StateError> {
        let done = legacy::claim(&self.pool, protocol, provider, name, subject, at).await;
        self.links.invalidate();
        Ok(done?)
    }

    async fn providers(&self) -> Result<Vec<StoredProvider>, StateError> {
        let rows = sqlx::query("SELECT protocol, name, json FROM providers ORDER BY protocol, name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.provider_from(r)).collect()
    }

    async fn provider(&self, protocol: &str, name: &str) -> Result<Option<StoredProvider>, StateError> {
        let row = sqlx::query("SELECT protocol, name, json FROM providers WHERE protocol = ? AND name = ?")
            .bind(protocol)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| self.provider_from(r)).transpose()
    }

    async fn put_provider(&self, provider: StoredProvider) -> Result<(), StateError> {
        Ok(upsert_provider(&self.pool, &provider).await?)
    }

    async fn remove_provider(&self, protocol: &str, name: &str) -> Result<bool, StateError> {
        let done =
            sqlx::query("DELETE FROM providers WHERE protocol = ? AND name = ?").bind(protocol).bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn import(&self, batch: ImportBatch) -> Result<(), StateError> {
        let done = async {
            let mut tx = self.pool.begin().await?;
            for l in &batch.links {
                upsert_link(&mut *tx, l).await?;
            }
            legacy::import(&mut tx, &batch).await?;
            for p in &batch.providers {
                upsert_provider(&mut *tx, p).await?;
            }
            tx.commit().await
        }
        .await;
        self.links.invalidate();
        Ok(done?)
    }

    async fn record_mint(&self, m: MintedSession) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO minted_sessions (user_key, device_id, user_id, provider, protocol, subject, sid, id_token, refresh_token,
               how, client, device_name, minted_at, last_validated, app_password_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .execute(&self.mints)
        .await?;
        Ok(())
    }

    async fn mints_of_user(&self, user_id: &str) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE user_key = ? ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(&self.pool).await?, mint_from)
    }

    async fn mint(&self, user_id: &str, device_id: &str) -> Result<Option<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE user_key = ? AND device_id = ?");
        let row = sqlx::query(&q).bind(normalise_user_id(user_id)).bind(device_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(mint_from).transpose()?)
    }

    async fn remove_mint(&self, user_id: &str, device_id: &str) -> Result<bool, StateError> {
        let done = sqlx::query("DELETE FROM minted_sessions WHERE user_key = ? AND device_id = ?")
            .bind(normalise_user_id(user_id))
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn mints_by_sid(&self, provider: &str, sid: &str) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE provider = ? AND sid = ? ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(provider).bind(sid).fetch_all(&self.pool).await?, mint_from)
    }

    async fn mints_by_subject(&self, protocol: &str, provider: &str, subject: &str) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE protocol = ? AND provider = ? AND subject = ? ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(protocol).bind(provider).bind(subject).fetch_all(&self.pool).await?, mint_from)
    }

    async fn mints_older_than(&self, provider: &str, minted_before: u64) -> Result<Vec<MintedSession>, StateError> {
        let q = format!("{MINT} WHERE provider = ? AND minted_at < ? ORDER BY minted_at, device_id");
        all(sqlx::query(&q).bind(provider).bind(int(minted_before)).fetch_all(&self.pool).await?, mint_from)
    }

    async fn set_validated(&self, user_id: &str, device_id: &str, at: u64) -> Result<bool, StateError> {
        let done = sqlx::query("UPDATE minted_sessions SET last_validated = ? WHERE user_key = ? AND device_id = ?")
            .bind(int(at))
            .bind(normalise_user_id(user_id))
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_app_password(&self, p: AppPassword) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO app_passwords (id, user_id, user_key, name, hash, created_at, last_used_at, last_device)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        .await?;
        Ok(())
    }

    async fn app_passwords_of_user(&self, user_id: &str) -> Result<Vec<AppPassword>, StateError> {
        let q = format!("{APP_PASSWORD} WHERE user_key = ? ORDER BY created_at, id");
        all(sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(&self.pool).await?, app_password_from)
    }

    async fn app_password(&self, id: &str) -> Result<Option<AppPassword>, StateError> {
        let q = format!("{APP_PASSWORD} WHERE id = ?");
        let row = sqlx::query(&q).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(app_password_from).transpose()?)
    }

    async fn remove_app_password(&self, id: &str) -> Result<bool, StateError> {
        let done = sqlx::query("DELETE FROM app_passwords WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_app_password(&self, id: &str, device: &str, at: u64) -> Result<bool, StateError> {
        let done = sqlx::query("UPDATE app_passwords SET last_used_at = ?, last_device = ? WHERE id = ?")
            .bind(int(at))
            .bind(device)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_app_passwords_of_user(&self, user_id: &str) -> Result<u64, StateError> {
        let done = sqlx::query("DELETE FROM app_passwords WHERE user_key = ?").bind(normalise_user_id(user_id)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
