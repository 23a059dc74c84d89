//! What only the PostgreSQL backend has, against a real server ([`super::servers`]): proxies
//! starting at once on a fresh database all migrate it safely, a newer schema is refused, a
//! change of providers on one proxy is heard by another, and a server restart (even an
//! immediate one, like a crash) loses nothing acknowledged while the pool reconnects by itself.
//! The record round trips run on PostgreSQL in `durable_tests.rs`.

use std::time::{Duration, Instant};

use super::durable::{Durable, Link, StoredProvider};
use super::postgres::PostgresDurable;
use super::{servers, StateError};

fn link(subject: &str) -> Link {
    Link { protocol: "oid".into(), provider: "kc".into(), subject: subject.into(), user_id: "u".into(), linked_at: 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_starting_at_once_migrate_a_fresh_database_once() {
    for _ in 0..3 {
        let url = servers::shared_fresh().0;
        let opens: Vec<_> = (0..4).map(|_| tokio::spawn({
            let url = url.clone();
            async move { PostgresDurable::open(&url, 2, None).await }
        })).collect();
        let mut stores = Vec::new();
        for o in opens {
            stores.push(o.await.unwrap().unwrap_or_else(|e| panic!("a concurrent start failed: {e}")));
        }
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(stores[0].pool()).await.unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres")).unwrap().count();
        assert_eq!(applied as usize, files);
        stores[1].put_link(link("a")).await.unwrap();
        assert_eq!(stores[3].links_of_user("u").await.unwrap().len(), 1, "one database");
    }
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let url = servers::shared_fresh().0;
    let s = PostgresDurable::open(&url, 2, None).await.unwrap();
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', true, '\\x00', 0)")
        .execute(s.pool())
        .await
        .unwrap();
    s.close().await;
    let err = match PostgresDurable::open(&url, 2, None).await {
        Err(e) => e,
        Ok(_) => panic!("opened"),
    };
    assert!(matches!(err, StateError::Start { backend: "postgres", .. }), "{err:?}");
    assert!(err.to_string().contains("newer version"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_refuses_to_start_naming_postgres() {
    let url = format!("postgres://postgres@127.0.0.1:{}/x", servers::free_port());
    let err = match PostgresDurable::open(&url, 2, None).await {
        Err(e) => e,
        Ok(_) => panic!("opened"),
    };
    assert!(matches!(err, StateError::Start { backend: "postgres", .. }) && err.to_string().contains("postgres"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_change_on_one_proxy_is_heard_by_the_other() {
    let url = servers::shared_fresh().0;
    let (a, b) = (PostgresDurable::open(&url, 2, None).await.unwrap(), PostgresDurable::open(&url, 2, None).await.unwrap());
    let mut heard = b.changes().expect("postgres tells of changes");
    let p = StoredProvider { protocol: "oid".into(), name: "kc".into(), json: serde_json::json!({}) };
    a.put_provider(p).await.unwrap();
    let topic = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await.expect("heard in time").unwrap();
    assert_eq!(topic, "providers");
    assert!(a.remove_provider("oid", "kc").await.unwrap());
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), heard.recv()).await.unwrap().unwrap(), "providers");
    assert!(b.providers().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_nothing_acknowledged_and_the_pool_comes_back() {
    let server = servers::Postgres::start();
    let url = server.create_db("restart");
    let s = PostgresDurable::open(&url, 4, None).await.unwrap();
    for i in 0..50 {
        s.put_link(link(&format!("before-{i}"))).await.unwrap();
    }
    server.stop("QUIT"); // immediate shutdown: no checkpoint, recovery from the WAL
    let err = s.put_link(link("while-down")).await.unwrap_err();
    assert!(matches!(err, StateError::Unavailable { backend: "postgres", .. }), "{err:?}");
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    let links = loop {
        match s.links_of_user("u").await {
            Ok(l) => break l,
            Err(e) => assert!(Instant::now() < deadline, "not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let before = links.iter().filter(|l| l.subject.starts_with("before-")).count();
    assert_eq!(before, 50, "every acknowledged write is there");
    assert!(!links.iter().any(|l| l.subject == "while-down"), "the refused write was not half-made");
    s.put_link(link("after")).await.unwrap();
}
