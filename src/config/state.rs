//! The `state:` section: where the proxy keeps what it must remember, and with whom it shares
//! it. One machine keeps everything itself (SQLite in `state_dir`, memory); several proxies
//! behind one balancer share PostgreSQL (`state.durable: postgres`) for what must last and
//! Redis or Valkey (`state.ephemeral: redis`) for what expires. Read once at start: changing
//! any of it takes a restart. Proxies that share state must also share `state.key_file`.

use std::path::{Path, PathBuf};

use super::field::Problems;
use super::raw::{RawState, POSTGRES_KEYS, REDIS_KEYS, STATE_KEYS};
use super::validate::{secret, section};
use super::Secret;

/// Where and how the proxy keeps its state (`state:` in proxy.yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// 32 random bytes (generated on first run, owner-only) that seal and encrypt what the
    /// proxy stores: SAML login trackers, and tokens kept for sign-out and re-validation.
    /// Proxies sharing one state must share this file.
    pub key_file: PathBuf,
    pub durable: DurableBackend,
    pub ephemeral: EphemeralBackend,
}

/// What must survive a restart (`state.durable`).
#[derive(Debug, Clone, PartialEq)]
pub enum DurableBackend {
    /// `sqlite` (default): `state_dir/state.db`.
    Sqlite,
    /// `postgres`: shared by every proxy pointed at it.
    Postgres(PostgresConfig),
}

impl DurableBackend {
    /// The name used in `state.durable`.
    pub fn name(&self) -> &'static str {
        match self {
            DurableBackend::Sqlite => "sqlite",
            DurableBackend::Postgres(_) => "postgres",
        }
    }
}

/// What may be lost on restart (`state.ephemeral`).
#[derive(Debug, Clone, PartialEq)]
pub enum EphemeralBackend {
    /// `memory` (default): this process only.
    Memory,
    /// `redis`: Redis or Valkey, shared by every proxy pointed at it.
    Redis(RedisConfig),
}

impl EphemeralBackend {
    /// The name used in `state.ephemeral`.
    pub fn name(&self) -> &'static str {
        match self {
            EphemeralBackend::Memory => "memory",
            EphemeralBackend::Redis(_) => "redis",
        }
    }
}

/// `state.postgres`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database?…` (a secret: it may hold a password).
    pub url: Secret,
    /// Connections each proxy keeps at most (default 10).
    pub pool_size: u32,
    /// TLS to the server; `None` leaves it to the URL's `sslmode` (libpq's `prefer` if absent).
    pub tls: Option<PgTls>,
}

/// `state.postgres.tls`: the libpq `sslmode`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// `state.redis`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://…` or `rediss://…` (TLS) (a secret: it may hold a password).
    pub url: Secret,
    /// Put before every key (default `jsp:`), so several deployments can share one server.
    pub key_prefix: String,
}

/// Validate `state:`; `state_dir` and `base_dir` resolve the key file.
pub(super) fn validate(p: &mut Problems, raw: RawState, state_dir: &Path, base_dir: &Path) -> StateConfig {
    p.unknown("state", &raw.unknown, STATE_KEYS);
    let key_file = p.opt("state.key_file", raw.key_file).map(|f| base_dir.join(f)).unwrap_or_else(|| state_dir.join("state.key"));
    let durable = p.parse("state.durable", raw.durable, "sqlite", |s| match s {
        "sqlite" => Ok("sqlite"),
        "postgres" => Ok("postgres"),
        _ => Err("must be `sqlite` or `postgres`"),
    });
    let ephemeral = p.parse("state.ephemeral", raw.ephemeral, "memory", |s| match s {
        "memory" => Ok("memory"),
        "redis" => Ok("redis"),
        _ => Err("must be `memory` or `redis`"),
    });

    let rp = section(p, "state.postgres", raw.postgres);
    p.unknown("state.postgres", &rp.unknown, POSTGRES_KEYS);
    let pg_url = secret(p, "state.postgres.url", rp.url, rp.url_file, base_dir);
    let pool_size = p.take("state.postgres.pool_size", rp.pool_size, 10);
    if !(1..=1000).contains(&pool_size) {
        p.push("state.postgres.pool_size", "must be between 1 and 1000");
    }
    let tls = p.parse("state.postgres.tls", rp.tls, None, |s| {
        Ok(Some(match s {
            "disable" => PgTls::Disable,
            "prefer" => PgTls::Prefer,
            "require" => PgTls::Require,
            "verify-ca" => PgTls::VerifyCa,
            "verify-full" => PgTls::VerifyFull,
            _ => return Err("must be one of `disable`, `prefer`, `require`, `verify-ca`, `verify-full`"),
        }))
    });
    let durable = match (durable, pg_url) {
        ("postgres", Some(url)) => {
            let scheme = url.expose().split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("postgres" | "postgresql")) {
                p.push("state.postgres.url", "must start with postgres:// or postgresql://");
            }
            DurableBackend::Postgres(PostgresConfig { url, pool_size, tls })
        }
        ("postgres", None) => {
            p.push("state.postgres.url", "is required when state.durable is `postgres`");
            DurableBackend::Sqlite
        }
        _ => DurableBackend::Sqlite,
    };

    let rr = section(p, "state.redis", raw.redis);
    p.unknown("state.redis", &rr.unknown, REDIS_KEYS);
    let redis_url = secret(p, "state.redis.url", rr.url, rr.url_file, base_dir);
    let key_prefix = p.take("state.redis.key_prefix", rr.key_prefix, "jsp:".to_string());
    if key_prefix.is_empty() || key_prefix.len() > 64 || key_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.push("state.redis.key_prefix", "must be 1 to 64 characters without spaces");
    }
    let ephemeral = match (ephemeral, redis_url) {
        ("redis", Some(url)) => {
            let scheme = url.expose().split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("redis" | "rediss")) {
                p.push("state.redis.url", "must start with redis:// or rediss:// (TLS)");
            }
            EphemeralBackend::Redis(RedisConfig { url, key_prefix })
        }
        ("redis", None) => {
            p.push("state.redis.url", "is required when state.ephemeral is `redis`");
            EphemeralBackend::Memory
        }
        _ => EphemeralBackend::Memory,
    };
    StateConfig { key_file, durable, ephemeral }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use figment::providers::Env;

    use super::super::{Config, ConfigError};
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_parts(Some(text), "proxy.yaml", Path::new("/etc/jsp"), Env::prefixed("JSP_TEST_NEVER_SET_"))
    }

    fn problems(text: &str) -> Vec<(String, Option<String>, String)> {
        let Err(ConfigError::Invalid(ps)) = load(text) else { panic!("expected problems for {text}") };
        ps.into_iter().map(|p| (p.path, p.location, p.message)).collect()
    }

    #[test]
    fn defaults_are_sqlite_and_memory() {
        let c = load("{}").unwrap();
        assert!(matches!(c.state.durable, DurableBackend::Sqlite));
        assert!(matches!(c.state.ephemeral, EphemeralBackend::Memory));
        assert_eq!(c.state.key_file, Path::new("/etc/jsp/data/state.key"));
    }

    #[test]
    fn postgres_and_redis_are_read_with_their_settings() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("pg.url"), "postgresql://jsp:pw@db.internal/jsp\n").unwrap();
        let yaml = format!(
            "state:\n  durable: postgres\n  ephemeral: redis\n  postgres:\n    url_file: {}\n    pool_size: 20\n    tls: verify-full\n  redis:\n    url: rediss://cache:6380/0\n    key_prefix: home\n",
            d.path().join("pg.url").display()
        );
        let c = load(&yaml).unwrap();
        let DurableBackend::Postgres(pg) = c.state.durable else { panic!("postgres") };
        assert_eq!((pg.url.expose(), pg.pool_size, pg.tls), ("postgresql://jsp:pw@db.internal/jsp", 20, Some(PgTls::VerifyFull)));
        let EphemeralBackend::Redis(r) = c.state.ephemeral else { panic!("redis") };
        assert_eq!((r.url.expose(), r.key_prefix.as_str()), ("rediss://cache:6380/0", "home"));
        assert!(!format!("{:?}", r.url).contains("cache"), "the URL is a secret");
    }

    #[test]
    fn every_state_problem_is_reported_with_its_line() {
        let text = "state:\n  durable: mysql\n  ephemeral: memcached\n  postgres:\n    pool_size: 0\n    tls: sometimes\n    bogus: 1\n  redis:\n    key_prefix: \"\"\n";
        let ps = problems(text);
        let paths: Vec<_> = ps.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(paths, ["state.durable", "state.ephemeral", "state.postgres.bogus", "state.postgres.pool_size", "state.postgres.tls", "state.redis.key_prefix"], "{ps:?}");
        assert_eq!(ps[0].1.as_deref(), Some("proxy.yaml line 2"));
        assert_eq!(ps[4].1.as_deref(), Some("proxy.yaml line 6"));
        assert!(ps[0].2.contains("`sqlite` or `postgres`"), "{}", ps[0].2);
    }

    #[test]
    fn a_chosen_backend_needs_its_url_with_the_right_scheme() {
        let ps = problems("state:\n  durable: postgres\n  ephemeral: redis\n");
        assert_eq!(ps.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["state.postgres.url", "state.redis.url"]);
        assert!(ps[0].2.contains("required when state.durable is `postgres`"), "{}", ps[0].2);
        let ps = problems("state:\n  durable: postgres\n  ephemeral: redis\n  postgres:\n    url: mysql://x\n  redis:\n    url: http://x\n");
        assert_eq!(ps.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["state.postgres.url", "state.redis.url"]);
        assert!(ps[1].2.contains("rediss://"), "{}", ps[1].2);
        assert_eq!(ps[1].1.as_deref(), Some("proxy.yaml line 7"));
    }
}
