//! The SQL both durable backends run, written once. SQLite and PostgreSQL speak the same
//! dialect for every statement here (`ON CONFLICT … DO UPDATE`, `RETURNING`, and `$N`
//! parameters, which sqlx's SQLite driver binds by their number), so [`durable_sql!`] is
//! the one source of the column lists, the conversion of a row into each stored type, the
//! upserts, and the queries for legacy links (imported from the SSO plugin, keyed by a
//! changeable name), instantiated in [`super::sqlite`] and [`super::postgres`] with each
//! driver's types. What differs between the two (opening, migrations, error mapping, change
//! notification) stays in each backend's own file.

/// The shared rows and queries for one sqlx driver: its row type, executor trait, pool and
/// connection. Expands to two modules in the invoking one: `rows` and `legacy`.
macro_rules! durable_sql {
    (row: $row:ty, executor: $exec:ident, pool: $pool:ty, conn: $conn:ty) => {
        /// Column lists, row conversions and upserts of the core records.
        mod rows {
            use sqlx::{Row, $exec};

            use $crate::state::durable::{normalise_user_id, AppPassword, Link, MintedSession, StoredProvider};
            use $crate::state::StateError;

            pub fn int(v: u64) -> i64 {
                i64::try_from(v).unwrap_or(i64::MAX)
            }

            pub fn uint(v: i64) -> u64 {
                u64::try_from(v).unwrap_or(0)
            }

            pub const LINK: &str = "SELECT protocol, provider, subject, user_id, linked_at FROM links";

            pub fn link_from(row: &$row) -> Result<Link, sqlx::Error> {
                Ok(Link {
                    protocol: row.try_get(0)?,
                    provider: row.try_get(1)?,
                    subject: row.try_get(2)?,
                    user_id: row.try_get(3)?,
                    linked_at: uint(row.try_get(4)?),
                })
            }

            pub const MINT: &str = "SELECT user_id, device_id, provider, protocol, subject, sid, id_token, refresh_token, how, client, device_name,
                minted_at, last_validated, app_password_id FROM minted_sessions";

            pub fn mint_from(row: &$row) -> Result<MintedSession, sqlx::Error> {
                Ok(MintedSession {
                    user_id: row.try_get(0)?,
                    device_id: row.try_get(1)?,
                    provider: row.try_get(2)?,
                    protocol: row.try_get(3)?,
                    subject: row.try_get(4)?,
                    sid: row.try_get(5)?,
                    id_token: row.try_get(6)?,
                    refresh_token: row.try_get(7)?,
                    how: row.try_get(8)?,
                    client: row.try_get(9)?,
                    device_name: row.try_get(10)?,
                    minted_at: uint(row.try_get(11)?),
                    last_validated: row.try_get::<Option<i64>, _>(12)?.map(uint),
                    app_password_id: row.try_get(13)?,
                })
            }

            pub const APP_PASSWORD: &str = "SELECT id, user_id, name, hash, created_at, last_used_at, last_device FROM app_passwords";

            pub fn app_password_from(row: &$row) -> Result<AppPassword, sqlx::Error> {
                Ok(AppPassword {
                    id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    name: row.try_get(2)?,
                    hash: row.try_get(3)?,
                    created_at: uint(row.try_get(4)?),
                    last_used_at: row.try_get::<Option<i64>, _>(5)?.map(uint),
                    last_device: row.try_get(6)?,
                })
            }

            pub fn all<T>(rows: Vec<$row>, f: fn(&$row) -> Result<T, sqlx::Error>) -> Result<Vec<T>, StateError> {
                Ok(rows.iter().map(f).collect::<Result<_, _>>()?)
            }

            pub async fn upsert_link<'e>(e: impl $exec<'e>, l: &Link) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO links (protocol, provider, subject, user_id, user_key, linked_at) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (protocol, provider, subject) DO UPDATE SET
                       user_id = excluded.user_id, user_key = excluded.user_key, linked_at = excluded.linked_at",
                )
                .bind(&l.protocol)
                .bind(&l.provider)
                .bind(&l.subject)
                .bind(&l.user_id)
                .bind(normalise_user_id(&l.user_id))
                .bind(int(l.linked_at))
                .execute(e)
                .await?;
                Ok(())
            }

            pub async fn upsert_provider<'e>(e: impl $exec<'e>, p: &StoredProvider) -> Result<(), sqlx::Error> {
                sqlx::query("INSERT INTO providers (protocol, name, json) VALUES ($1, $2, $3) ON CONFLICT (protocol, name) DO UPDATE SET json = excluded.json")
                    .bind(&p.protocol)
                    .bind(&p.name)
                    .bind(p.json.to_string())
                    .execute(e)
                    .await?;
                Ok(())
            }
        }

        /// Legacy links, and their part of the one-transaction import.
        mod legacy {
            use sqlx::{Row, $exec};

            use $crate::state::durable::{normalise_user_id, ImportBatch, LegacyLink};
            use super::rows::int;

            const LEGACY: &str = "SELECT protocol, provider, name, user_id, linked_at FROM legacy_links";

            fn legacy_from(row: &$row) -> Result<LegacyLink, sqlx::Error> {
                Ok(LegacyLink {
                    protocol: row.try_get(0)?,
                    provider: row.try_get(1)?,
                    name: row.try_get(2)?,
                    user_id: row.try_get(3)?,
                    linked_at: u64::try_from(row.try_get::<i64, _>(4)?).unwrap_or(0),
                })
            }

            async fn upsert_legacy<'e>(e: impl $exec<'e>, l: &LegacyLink) -> Result<(), sqlx::Error> {
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

            pub async fn get(pool: &$pool, protocol: &str, provider: &str, name: &str) -> Result<Option<LegacyLink>, sqlx::Error> {
                let q = format!("{LEGACY} WHERE protocol = $1 AND provider = $2 AND name = $3");
                let row = sqlx::query(&q).bind(protocol).bind(provider).bind(name).fetch_optional(pool).await?;
                row.as_ref().map(legacy_from).transpose()
            }

            pub async fn of_user(pool: &$pool, user_id: &str) -> Result<Vec<LegacyLink>, sqlx::Error> {
                let q = format!("{LEGACY} WHERE user_key = $1 ORDER BY protocol, provider, name");
                let rows = sqlx::query(&q).bind(normalise_user_id(user_id)).fetch_all(pool).await?;
                rows.iter().map(legacy_from).collect()
            }

            /// Remove the legacy link `name` → `user_id` (the plugin's `DELETE …/Link/…/{canonicalName}`).
            pub async fn remove<'e>(e: impl $exec<'e>, protocol: &str, provider: &str, user_id: &str, name: &str) -> Result<u64, sqlx::Error> {
                let done = sqlx::query("DELETE FROM legacy_links WHERE protocol = $1 AND provider = $2 AND user_key = $3 AND name = $4")
                    .bind(protocol)
                    .bind(provider)
                    .bind(normalise_user_id(user_id))
                    .bind(name)
                    .execute(e)
                    .await?;
                Ok(done.rows_affected())
            }

            pub async fn remove_of_user<'e>(e: impl $exec<'e>, user_id: &str) -> Result<u64, sqlx::Error> {
                let done = sqlx::query("DELETE FROM legacy_links WHERE user_key = $1").bind(normalise_user_id(user_id)).execute(e).await?;
                Ok(done.rows_affected())
            }

            /// Delete the legacy link and link `subject` to its user unless it has a link: one transaction,
            /// so two logins presenting the same name cannot both take it.
            pub async fn claim(pool: &$pool, protocol: &str, provider: &str, name: &str, subject: &str, at: u64) -> Result<Option<LegacyLink>, sqlx::Error> {
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
            pub async fn import(tx: &mut $conn, batch: &ImportBatch) -> Result<(), sqlx::Error> {
                for l in &batch.legacy_links {
                    upsert_legacy(&mut *tx, l).await?;
                }
                Ok(())
            }
        }
    };
}

pub(super) use durable_sql;
