//! Change notices between proxies sharing one PostgreSQL database: a write that others must
//! act on sends `NOTIFY jsp_changes, '<topic>'` in its own transaction ([`notify`]), so the
//! notice leaves only if the write is committed; every proxy listens on the channel and hands
//! the topics to its subscribers ([`super::Durable::changes`]). Topics today: `providers`
//! (added, changed or removed through the admin API). Revocations can use the same channel.
//!
//! Best effort: sqlx reconnects a lost listener by itself, but a notice sent while it was away
//! is gone, so subscribers also re-read now and then.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use sqlx::PgExecutor;
use tokio::sync::broadcast;

/// The channel every proxy listens on.
pub const CHANNEL: &str = "jsp_changes";
/// The topic of provider changes.
pub const PROVIDERS: &str = "providers";

/// Send `topic` to every proxy listening, when the transaction `e` belongs to commits.
pub async fn notify<'e>(e: impl PgExecutor<'e>, topic: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(topic).execute(e).await?;
    Ok(())
}

/// Listen on [`CHANNEL`] with a connection of `pool`; the topics heard, until the pool closes.
pub async fn listen(pool: &PgPool) -> Result<broadcast::Sender<String>, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    let (changes, _) = broadcast::channel(64);
    tokio::spawn(forward(listener, changes.clone()));
    Ok(changes)
}

async fn forward(mut listener: PgListener, changes: broadcast::Sender<String>) {
    loop {
        match listener.recv().await {
            Ok(n) => {
                let _ = changes.send(n.payload().to_string());
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "postgres: listening for other proxies' changes failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
