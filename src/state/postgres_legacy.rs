//! The PostgreSQL queries for legacy links (imported from the SSO plugin, keyed by a changeable
//! name) and for the one-transaction import, kept beside [`super::sqlite`] so that file stays
//! about the core records.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Row, PgExecutor};

use super::durable::{normalise_user_id, ImportBatch, LegacyLink};

const LEGACY: &str = "SELECT protocol, provider, name, user_id, linked_at FROM legacy_links";

fn legacy_from(row: &PgRow) -> Result<LegacyLink, sqlx::Error> {
    Ok(LegacyLink {
        protocol: row.try_get(0)?,
        provider: row.try_get(1)?,
        name: row.try_get(2)?,
        user_id: row.try_get(3)?,
        linked_at: u64::try_from(row.try_get::<i64, _>(4)?).unwrap_or(0),
    })
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn upsert_legacy<'e>(e: impl PgExecutor<'e>, l: &LegacyLink) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO legacy_links (protocol, provider, name, user_id, user_key, linked_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (protocol, provider, name) DO UPDATE SET
           user_id = excluded.user_id, user_key = excluded.user_key, linked_at = excluded.linked_at",
    )
    .bind(&l.protocol)
    .bind(&l.provider)
    .bind(&l.name)
    .bind(&l.user_id)
    .bind(normalise_user_id(&l.user_id))
    .bind(int(l.linked_at))
    .execute(e)
    .await?;
    Ok(())
}

pub(super) async fn get(pool: &PgPool, protocol: &str, provider: &str, name: &str) -> Result<Option<LegacyLink>, sqlx::Error> {
    let q = format!("{LEGACY} WHERE protocol = $1 AND provider = $2 AND name = $3");
    let row = sqlx::query(&q).bind(protocol).bind(provider).bind(name).fetch_optional(pool).await?;
    row.as_ref().map(legacy_from).transpose()
}

pub(super) async fn of_user(pool: &PgPool, user_id: &str) -> Result<Vec<LegacyLink>, sqlx::Error> {
    let q = format!("{LEGACY} WHERE user_key = $1 ORDER BY protocol, provider, name");
    let rows = sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(pool).await?;
    rows.iter().map(legacy_from).collect()
}

/// Remove the legacy link `name` → `user_id` (the plugin's `DELETE …/Link/…/{canonicalName}`).
pub(super) async fn remove<'e>(e: impl PgExecutor<'e>, protocol: &str, provider: &str, user_id: &str, name: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM legacy_links WHERE protocol = $1 AND provider = $2 AND user_key = $3 AND name = $4")
        .bind(protocol)
        .bind(provider)
        .bind(normalise_user_id(user_id))
        .bind(name)
        .execute(e)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn remove_of_user<'e>(e: impl PgExecutor<'e>, user_id: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM legacy_links WHERE user_key = $1").bind(normalise_user_id(user_id)).execute(e).await?;
    Ok(done.rows_affected())
}

/// Delete the legacy link and link `subject` to its user unless it has a link: one transaction,
/// so two logins presenting the same name cannot both take it.
pub(super) async fn claim(pool: &PgPool, protocol: &str, provider: &str, name: &str, subject: &str, at: u64) -> Result<Option<LegacyLink>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let q = "DELETE FROM legacy_links WHERE protocol = $1 AND provider = $2 AND name = $3 RETURNING protocol, provider, name, user_id, linked_at";
    let Some(row) = sqlx::query(q).bind(protocol).bind(provider).bind(name).fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let legacy = legacy_from(&row)?;
    sqlx::query(
        "INSERT INTO links (protocol, provider, subject, user_id, user_key, linked_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (protocol, provider, subject) DO NOTHING",
    )
    .bind(protocol)
    .bind(provider)
    .bind(subject)
    .bind(&legacy.user_id)
    .bind(normalise_user_id(&legacy.user_id))
    .bind(int(at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(legacy))
}

/// The legacy links of one import, inside its transaction.
pub(super) async fn import(tx: &mut sqlx::PgConnection, batch: &ImportBatch) -> Result<(), sqlx::Error> {
    for l in &batch.legacy_links {
        upsert_legacy(&mut *tx, l).await?;
    }
    Ok(())
}
