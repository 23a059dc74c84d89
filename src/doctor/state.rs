//! `doctor`'s checks of the shared state backends (`state.durable: postgres`,
//! `state.ephemeral: redis`): each reachable, PostgreSQL's schema at the migration this build
//! expects (read, never migrated from here), Redis writable under the key prefix with the
//! proxy's own operations (a short-lived entry set, read back and deleted). The embedded
//! default (SQLite + memory) gets one line saying so. Addresses are shown without userinfo.

use std::time::Duration;

use crate::config::{DurableBackend, EphemeralBackend, StateConfig};
use crate::state::{digest, postgres, random_token, Caps, Ephemeral, Kind, RedisEphemeral, StateError};

use super::Report;

/// `scheme://host:port/path` of a backend URL: never its user name or password.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}{}{}", u.scheme(), u.host_str().unwrap_or(""), u.port().map(|p| format!(":{p}")).unwrap_or_default(), u.path()),
        Err(_) => "(an unparsable URL)".into(),
    }
}

pub async fn check(config: &StateConfig, r: &mut Report) {
    match (&config.durable, &config.ephemeral) {
        (DurableBackend::Sqlite, EphemeralBackend::Memory) => {
            return r.info("state: SQLite in state_dir and memory (one proxy; set state.durable: postgres and state.ephemeral: redis to share it)");
        }
        (DurableBackend::Postgres(_), EphemeralBackend::Memory) => r.info(
            "state.durable is postgres but state.ephemeral is memory: logins started on one proxy will fail on another (set state.ephemeral: redis when several proxies share the database)",
        ),
        _ => {}
    }
    if let DurableBackend::Postgres(pg) = &config.durable {
        let at = shown(pg.url.expose());
        match postgres::probe(pg.url.expose(), pg.tls).await {
            Ok(p) => {
                r.pass(format!("PostgreSQL {} at {at} is reachable", p.server_version));
                match p.applied {
                    Some(v) if v == p.expected => r.pass(format!("PostgreSQL schema at migration {v}, the one this version expects")),
                    Some(v) if v > p.expected => r.fail(
                        format!("PostgreSQL schema at migration {v}, newer than this version's {}: it will not start over it", p.expected),
                        "upgrade this proxy to the version the others run",
                    ),
                    applied => r.fail(
                        format!("PostgreSQL schema at migration {}, this version needs {}", applied.map_or("none".to_string(), |v| v.to_string()), p.expected),
                        "start the proxy once: it applies the migrations itself (check that state.postgres.url names the right database)",
                    ),
                }
            }
            Err(StateError::Unavailable { detail, .. }) => r.fail(
                format!("PostgreSQL at {at} is not reachable: {detail}"),
                "start PostgreSQL, or correct the host and port in state.postgres.url (the proxy must reach it directly)",
            ),
            Err(e) => r.fail(format!("PostgreSQL at {at} refused the proxy: {e}"), "check the user, password and database in state.postgres.url, and pg_hba.conf on the server"),
        }
    }
    if let EphemeralBackend::Redis(redis) = &config.ephemeral {
        let at = shown(redis.url.expose());
        let prefix = &redis.key_prefix;
        let conn = match RedisEphemeral::connect(redis.url.expose(), prefix, Caps::default(), Duration::from_secs(2)).await {
            Ok(c) => c,
            Err(e) => {
                return r.fail(
                    format!("Redis at {at} is not reachable: {e}"),
                    "start Redis (6.2 or later) or Valkey, or correct state.redis.url (host, port, password; rediss:// for TLS)",
                )
            }
        };
        match write_read_delete(&conn).await {
            Ok(()) => r.pass(format!("Redis at {at} is reachable and writable under the key prefix `{prefix}`")),
            Err(e) => r.fail(
                format!("Redis at {at} answers but refuses the proxy's writes under `{prefix}`: {e}"),
                format!("point state.redis.url at the primary (not a replica), and let its user write keys matching `{prefix}*` (ACL ~{prefix}*)"),
            ),
        }
    }
}

/// One entry set, read back and deleted, the way sessions are kept.
async fn write_read_delete(conn: &RedisEphemeral) -> Result<(), StateError> {
    let (kind, key, value) = (Kind::Rate("doctor"), digest(&random_token()), b"doctor".to_vec());
    conn.set(kind, &key, value.clone(), Duration::from_secs(30)).await?;
    let back = conn.get(kind, &key).await?;
    conn.delete(kind, &key).await?;
    if back.as_deref() != Some(&value[..]) {
        return Err(StateError::Backend("the entry written could not be read back".into()));
    }
    Ok(())
}
