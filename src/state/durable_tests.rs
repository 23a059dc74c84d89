//! Tests of the [`Durable`] contract, run against both backends: SQLite in a temporary
//! directory and PostgreSQL (a fresh database on a real server, [`super::servers`]): every
//! method round-trips and survives a reopen, concurrent writers lose nothing. Then what only
//! one backend has: SQLite's file checks, PostgreSQL's shared migrations, change notices and
//! restarts.

use std::sync::Arc;

use async_trait::async_trait;

use super::durable::{AppPassword, Durable, ImportBatch, LegacyLink, Link, MintedSession, StoredProvider};
use super::postgres::PostgresDurable;
use super::sqlite::{SqliteDurable, DB_FILE};
use super::{servers, StateError};

/// An open store that can be closed, to be opened again from its [`Place`] (a restart).
#[async_trait]
trait Store: Durable {
    async fn close(&self);
}

#[async_trait]
impl Store for SqliteDurable {
    async fn close(&self) {
        SqliteDurable::close(self).await
    }
}

#[async_trait]
impl Store for PostgresDurable {
    async fn close(&self) {
        PostgresDurable::close(self).await
    }
}

/// Where a store lives: a directory, or a database on the shared test server.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Place {
    async fn open(&self) -> Box<dyn Store> {
        match self {
            Place::Sqlite(d) => Box::new(open(d.path()).await),
            Place::Postgres(url) => Box::new(PostgresDurable::open(url, 4, None).await.unwrap()),
        }
    }
}

async fn open(dir: &std::path::Path) -> SqliteDurable {
    SqliteDurable::open(dir).await.unwrap()
}

/// Every contract test, once per backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Place::Sqlite(tempfile::tempdir().unwrap())).await
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Place::Postgres(super::servers::shared_fresh().0)).await
            })*
        }
    };
}

contract!(
    links_round_trip_and_survive_reopen,
    providers_round_trip_and_survive_reopen,
    minted_sessions_round_trip_and_survive_reopen,
    app_passwords_round_trip_and_survive_reopen,
    concurrent_link_writes_are_all_kept,
    import_is_all_or_nothing,
    legacy_links_are_claimed_once_and_become_subject_links,
);

fn link(protocol: &str, subject: &str, user: &str) -> Link {
    Link { protocol: protocol.into(), provider: "kc".into(), subject: subject.into(), user_id: user.into(), linked_at: 100 }
}

fn mint(user: &str, device: &str) -> MintedSession {
    MintedSession {
        user_id: user.into(),
        device_id: device.into(),
        provider: "kc".into(),
        protocol: "oid".into(),
        subject: "sub".into(),
        sid: Some("sid-1".into()),
        id_token: Some(vec![1, 2, 3]),
        refresh_token: None,
        how: "browser".into(),
        client: Some("Jellyfin Web".into()),
        device_name: None,
        minted_at: 1000,
        last_validated: None,
        app_password_id: None,
    }
}

const USER: &str = "0F8FAD5B-D9CB-469F-A165-70867728950E";
const SAME_USER: &str = "0f8fad5bd9cb469fa16570867728950e";

async fn links_round_trip_and_survive_reopen(at: Place) {
    let s = at.open().await;
    s.put_link(link("oid", "sub1", USER)).await.unwrap();
    s.put_link(link("saml", "sub1", "other")).await.unwrap();
    s.put_link(link("oid", "sub2", USER)).await.unwrap();
    s.put_link(Link { user_id: "other".into(), linked_at: 200, ..link("oid", "sub2", "") }).await.unwrap();
    s.put_link(link("oid", "sub3", USER)).await.unwrap();
    s.close().await;

    let s = at.open().await;
    assert_eq!(s.link("oid", "kc", "sub1").await.unwrap(), Some(link("oid", "sub1", USER)));
    assert_eq!(s.link("saml", "kc", "sub1").await.unwrap().unwrap().user_id, "other");
    assert_eq!(s.link("oid", "kc", "sub2").await.unwrap().unwrap().linked_at, 200, "upserted");
    assert_eq!(s.link("oid", "other", "sub1").await.unwrap(), None);
    let mine: Vec<_> = s.links_of_user(SAME_USER).await.unwrap().into_iter().map(|l| l.subject).collect();
    assert_eq!(mine, ["sub1", "sub3"], "ids compare without case or dashes");
    assert_eq!(s.remove_link("oid", "kc", "other", "sub1").await.unwrap(), 0, "only the user's own link");
    assert_eq!(s.remove_link("oid", "kc", SAME_USER, "sub1").await.unwrap(), 1);
    assert_eq!(s.remove_links_of_user("OTHER").await.unwrap(), 2);
    s.close().await;

    let s = at.open().await;
    assert_eq!(s.links_of_user(USER).await.unwrap(), vec![link("oid", "sub3", USER)]);
    assert_eq!(s.links_of_user("other").await.unwrap(), vec![]);
}

async fn providers_round_trip_and_survive_reopen(at: Place) {
    let s = at.open().await;
    let kc =
        StoredProvider { protocol: "oid".into(), name: "kc".into(), json: serde_json::json!({"OidSecret": "s", "Scopes": ["a", "b"]}) };
    s.put_provider(kc.clone()).await.unwrap();
    s.put_provider(StoredProvider { protocol: "saml".into(), ..kc.clone() }).await.unwrap();
    s.put_provider(StoredProvider { json: serde_json::json!({"OidSecret": "t"}), ..kc.clone() }).await.unwrap();
    s.close().await;

    let s = at.open().await;
    assert_eq!(s.provider("oid", "kc").await.unwrap().unwrap().json, serde_json::json!({"OidSecret": "t"}), "upserted");
    assert_eq!(s.provider("saml", "kc").await.unwrap().unwrap().json, kc.json);
    assert_eq!(s.provider("oid", "nope").await.unwrap(), None);
    assert_eq!(s.providers().await.unwrap().len(), 2);
    assert!(s.remove_provider("saml", "kc").await.unwrap());
    assert!(!s.remove_provider("saml", "kc").await.unwrap());
    s.close().await;
    assert_eq!(at.open().await.providers().await.unwrap().len(), 1);
}

async fn minted_sessions_round_trip_and_survive_reopen(at: Place) {
    let s = at.open().await;
    s.record_mint(mint(USER, "dev1")).await.unwrap();
    let full = MintedSession {
        sid: None,
        id_token: None,
        refresh_token: Some(vec![9; 40]),
        how: "app-password".into(),
        device_name: Some("TV".into()),
        minted_at: 2000,
        last_validated: Some(2001),
        app_password_id: Some("ap1".into()),
        ..mint(USER, "dev2")
    };
    s.record_mint(full.clone()).await.unwrap();
    s.record_mint(MintedSession { provider: "other".into(), ..mint("u2", "dev1") }).await.unwrap();
    s.record_mint(MintedSession { minted_at: 500, ..mint("u3", "dev1") }).await.unwrap();
    // Jellyfin replaces a user+device's earlier session: so does the record.
    s.record_mint(MintedSession { how: "device-link".into(), minted_at: 1500, ..mint(SAME_USER, "dev1") }).await.unwrap();
    s.close().await;

    let s = at.open().await;
    let dev1 = s.mint(USER, "dev1").await.unwrap().unwrap();
    assert_eq!((dev1.how.as_str(), dev1.minted_at, dev1.user_id.as_str()), ("device-link", 1500, SAME_USER));
    assert_eq!(s.mint(SAME_USER, "dev2").await.unwrap(), Some(full.clone()));
    assert_eq!(s.mint(USER, "DEV1").await.unwrap(), None, "device ids are exact");
    assert_eq!(s.mints_of_user(USER).await.unwrap().len(), 2);
    let by_sid: Vec<_> = s.mints_by_sid("kc", "sid-1").await.unwrap().into_iter().map(|m| m.user_id).collect();
    assert_eq!(by_sid, ["u3", SAME_USER], "not u2, at another provider; ordered by age");
    assert_eq!(s.mints_by_subject("oid", "kc", "sub").await.unwrap().len(), 3);
    assert_eq!(s.mints_by_subject("saml", "kc", "sub").await.unwrap().len(), 0);
    let old: Vec<_> = s.mints_older_than("kc", 1500).await.unwrap().into_iter().map(|m| m.user_id).collect();
    assert_eq!(old, ["u3"], "strictly before");
    assert!(s.set_validated(SAME_USER, "dev1", 3000).await.unwrap());
    assert!(!s.set_validated(SAME_USER, "nope", 3000).await.unwrap());
    assert!(s.remove_mint(USER, "dev2").await.unwrap());
    assert!(!s.remove_mint(USER, "dev2").await.unwrap());
    s.close().await;

    let s = at.open().await;
    assert_eq!(s.mint(USER, "dev1").await.unwrap().unwrap().last_validated, Some(3000));
    assert_eq!(s.mint(USER, "dev2").await.unwrap(), None);
}

async fn app_passwords_round_trip_and_survive_reopen(at: Place) {
    let s = at.open().await;
    let p = AppPassword {
        id: "ap1".into(),
        user_id: USER.into(),
        name: "Kodi".into(),
        hash: vec![7; 32],
        created_at: 10,
        last_used_at: None,
        last_device: None,
    };
    s.add_app_password(p.clone()).await.unwrap();
    assert!(matches!(s.add_app_password(p.clone()).await, Err(StateError::Database(_))), "ids are unique");
    s.add_app_password(AppPassword { id: "ap2".into(), created_at: 20, ..p.clone() }).await.unwrap();
    s.add_app_password(AppPassword { id: "ap3".into(), user_id: "u2".into(), ..p.clone() }).await.unwrap();
    assert!(s.touch_app_password("ap1", "living-room", 50).await.unwrap());
    assert!(!s.touch_app_password("nope", "x", 50).await.unwrap());
    s.close().await;

    let s = at.open().await;
    let touched = AppPassword { last_used_at: Some(50), last_device: Some("living-room".into()), ..p.clone() };
    assert_eq!(s.app_password("ap1").await.unwrap(), Some(touched.clone()));
    assert_eq!(s.app_password("nope").await.unwrap(), None);
    let ids: Vec<_> = s.app_passwords_of_user(SAME_USER).await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["ap1", "ap2"]);
    assert!(s.remove_app_password("ap2").await.unwrap());
    assert!(!s.remove_app_password("ap2").await.unwrap());
    assert_eq!(s.remove_app_passwords_of_user(SAME_USER).await.unwrap(), 1);
    s.close().await;

    let s = at.open().await;
    assert_eq!(s.app_passwords_of_user(USER).await.unwrap(), vec![]);
    assert!(s.app_password("ap3").await.unwrap().is_some());
}

async fn concurrent_link_writes_are_all_kept(at: Place) {
    let s: Arc<dyn Store> = Arc::from(at.open().await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.put_link(link("oid", &format!("sub{i}"), "u")).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    s.close().await;
    assert_eq!(at.open().await.links_of_user("u").await.unwrap().len(), 40);
}

async fn import_is_all_or_nothing(at: Place) {
    let s = at.open().await;
    let providers = vec![StoredProvider { protocol: "oid".into(), name: "kc".into(), json: serde_json::json!({}) }];
    let legacy_links = vec![legacy("oid", "a", "alice", "U")];
    s.import(ImportBatch { links: vec![link("oid", "a", "u"), link("saml", "b", "u")], legacy_links, providers }).await.unwrap();
    assert_eq!(s.links_of_user("u").await.unwrap().len(), 2);
    assert_eq!(s.providers().await.unwrap().len(), 1);
    assert_eq!(s.legacy_links_of_user("u").await.unwrap(), [legacy("oid", "a", "alice", "U")], "user ids compare by case");
}

fn legacy(protocol: &str, provider: &str, name: &str, user: &str) -> LegacyLink {
    LegacyLink { protocol: protocol.into(), provider: provider.into(), name: name.into(), user_id: user.into(), linked_at: 7 }
}

async fn legacy_links_are_claimed_once_and_become_subject_links(at: Place) {
    let s = at.open().await;
    let batch = ImportBatch { legacy_links: vec![legacy("oid", "kc", "alice", "U1"), legacy("oid", "kc", "bob", "U2"), legacy("oid", "kc", "carol", "U3")], ..Default::default() };
    s.import(batch).await.unwrap();
    assert_eq!(s.legacy_link("oid", "kc", "alice").await.unwrap().unwrap().user_id, "U1");
    assert!(s.legacy_link("saml", "kc", "alice").await.unwrap().is_none(), "protocols stay apart");
    assert!(s.link("oid", "kc", "sub-a").await.unwrap().is_none());

    let claimed = s.claim_legacy_link("oid", "kc", "alice", "sub-a", 100).await.unwrap().unwrap();
    assert_eq!(claimed.user_id, "U1");
    let l = s.link("oid", "kc", "sub-a").await.unwrap().unwrap();
    assert_eq!((l.user_id.as_str(), l.linked_at), ("U1", 100));
    assert!(s.legacy_link("oid", "kc", "alice").await.unwrap().is_none(), "consumed");
    assert!(s.claim_legacy_link("oid", "kc", "alice", "sub-other", 101).await.unwrap().is_none(), "a second login finds nothing");
    assert!(s.link("oid", "kc", "sub-other").await.unwrap().is_none());

    // A subject that already has a link keeps it; the legacy link is only removed.
    s.put_link(link("oid", "sub-b", "U9")).await.unwrap();
    assert_eq!(s.claim_legacy_link("oid", "kc", "bob", "sub-b", 102).await.unwrap().unwrap().user_id, "U2");
    assert_eq!(s.link("oid", "kc", "sub-b").await.unwrap().unwrap().user_id, "U9", "not overwritten");
    assert!(s.legacy_link("oid", "kc", "bob").await.unwrap().is_none());

    // Removing links removes legacy ones too (by name, or all of a user's); survives a reopen.
    assert_eq!(s.remove_link("oid", "kc", "u3", "carol").await.unwrap(), 1);
    s.import(ImportBatch { legacy_links: vec![legacy("saml", "x", "dave", "U4")], ..Default::default() }).await.unwrap();
    s.close().await;
    let s = at.open().await;
    assert!(s.legacy_link("oid", "kc", "carol").await.unwrap().is_none());
    assert_eq!(s.legacy_links_of_user("U4").await.unwrap().len(), 1);
    assert_eq!(s.remove_links_of_user("U4").await.unwrap(), 1);
    assert!(s.legacy_links_of_user("U4").await.unwrap().is_empty());
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path()).await;
    s.put_link(link("oid", "a", "u")).await.unwrap();
    for name in [DB_FILE.to_string(), format!("{DB_FILE}-wal")] {
        let mode = std::fs::metadata(d.path().join(&name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}

async fn refused(contents: &[u8]) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(DB_FILE);
    std::fs::write(&path, contents).unwrap();
    let err = match SqliteDurable::open(d.path()).await {
        Err(e) => e,
        Ok(_) => panic!("a broken database was opened"),
    };
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("will not start empty"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), contents, "never overwritten");
}

#[tokio::test]
async fn a_corrupt_database_is_refused_naming_the_file() {
    refused(b"this is not a database, just some text").await;
    refused(&[0x5a; 8192]).await;
}

#[tokio::test]
async fn a_damaged_database_is_refused_naming_the_file() {
    // A real database whose pages were overwritten past the header.
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path()).await;
    for i in 0..200 {
        s.put_link(link("oid", &format!("subject-{i:0>200}"), "u")).await.unwrap();
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(s.pool()).await.unwrap();
    s.close().await;
    let mut bytes = std::fs::read(d.path().join(DB_FILE)).unwrap();
    assert!(bytes.len() > 8192, "{}", bytes.len());
    for b in &mut bytes[4096..] {
        *b = 0xa5;
    }
    refused(&bytes).await;
}

#[tokio::test]
async fn writes_are_durable_and_foreign_keys_on() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path()).await;
    let mut conn = s.pool().acquire().await.unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap();
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap();
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut *conn).await.unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await.unwrap();
    assert_eq!((journal.as_str(), synchronous, foreign_keys), ("wal", 2, 1), "WAL, synchronous=FULL, foreign keys");
    assert!(busy > 0);
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path()).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', 1, x'00', 0)",
    )
    .execute(s.pool())
    .await
    .unwrap();
    s.close().await;
    let err = match SqliteDurable::open(d.path()).await {
        Err(e) => e,
        Ok(_) => panic!("opened"),
    };
    assert!(matches!(err, StateError::Migrate { .. }), "{err:?}");
    assert!(err.to_string().contains(&d.path().join(DB_FILE).display().to_string()), "{err}");
}
