//! Rows of the SQLite backend ([`super::sqlite`]): the column lists it selects and the
//! conversion of a row into each stored type, kept apart from the queries themselves.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::durable::{AppPassword, Link, MintedSession};
use super::StateError;

pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) const LINK: &str = "SELECT protocol, provider, subject, user_id, linked_at FROM links";

pub(super) fn link_from(row: &SqliteRow) -> Result<Link, sqlx::Error> {
    Ok(Link {
        protocol: row.try_get(0)?,
        provider: row.try_get(1)?,
        subject: row.try_get(2)?,
        user_id: row.try_get(3)?,
        linked_at: uint(row.try_get(4)?),
    })
}

pub(super) const MINT: &str = "SELECT user_id, device_id, provider, protocol, subject, sid, id_token, refresh_token, how, client, device_name,
    minted_at, last_validated, app_password_id FROM minted_sessions";

pub(super) fn mint_from(row: &SqliteRow) -> Result<MintedSession, sqlx::Error> {
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

pub(super) const APP_PASSWORD: &str = "SELECT id, user_id, name, hash, created_at, last_used_at, last_device FROM app_passwords";

pub(super) fn app_password_from(row: &SqliteRow) -> Result<AppPassword, sqlx::Error> {
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

pub(super) fn all<T>(rows: Vec<SqliteRow>, f: fn(&SqliteRow) -> Result<T, sqlx::Error>) -> Result<Vec<T>, StateError> {
    Ok(rows.iter().map(f).collect::<Result<_, _>>()?)
}
