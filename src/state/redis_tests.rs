//! Tests of the Redis backend against a real redis-server ([`super::servers`]): two stores on
//! one server stand for two proxies. Take-once, replay ids, rate counters and caps hold across
//! both; a state taken by both at once is given to exactly one; every key expires on its own;
//! a server that goes away gives `Unavailable` quickly, and the store works again, without
//! being reopened, once the server is back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::AsyncCommands;

use super::ephemeral::{Ephemeral, Kind, TakeError};
use super::memory::Caps;
use super::redis::RedisEphemeral;
use super::{digest, random_token, servers, StateError, REDIS_TIMEOUT};

const MIN: Duration = Duration::from_secs(60);

fn caps(cap: usize) -> Caps {
    Caps { flows: cap, completions: cap, sessions: cap, callers: cap, replay: cap, rate: cap }
}

/// Two stores ("proxies") sharing one fresh key prefix on the shared server.
async fn pair(cap: usize) -> (RedisEphemeral, RedisEphemeral, String, String) {
    let (_, url, prefix) = servers::shared_fresh();
    let a = RedisEphemeral::connect(&url, &prefix, caps(cap), REDIS_TIMEOUT).await.unwrap();
    let b = RedisEphemeral::connect(&url, &prefix, caps(cap), REDIS_TIMEOUT).await.unwrap();
    (a, b, url, prefix)
}

#[tokio::test]
async fn taken_once_on_either_proxy_by_the_same_browser() {
    let (a, b, _, _) = pair(10).await;
    let (id, cookie) = (random_token(), random_token());
    a.put_once(Kind::Flow, &id, &cookie, MIN, b"seven".to_vec()).await.unwrap();
    assert_eq!(b.count(Kind::Flow).await.unwrap(), 1);
    assert_eq!(b.list(Kind::Flow).await.unwrap()[0].1, b"seven");
    assert_eq!(b.take(Kind::Completion, &id, Some(&cookie)).await, Err(TakeError::Unknown), "kinds are separate");
    assert_eq!(b.take(Kind::Flow, &id, Some(&cookie)).await.unwrap(), b"seven");
    assert_eq!(a.take(Kind::Flow, &id, Some(&cookie)).await, Err(TakeError::Unknown), "replay refused on the other proxy");
    assert_eq!(a.count(Kind::Flow).await.unwrap(), 0);

    a.put_once(Kind::Flow, "x", &cookie, MIN, vec![]).await.unwrap();
    assert_eq!(b.take(Kind::Flow, "x", Some(&random_token())).await, Err(TakeError::WrongBrowser));
    assert_eq!(a.take(Kind::Flow, "x", Some(&cookie)).await, Err(TakeError::Unknown), "burnt");
    a.put_once(Kind::Flow, "y", &cookie, MIN, vec![]).await.unwrap();
    assert_eq!(b.take(Kind::Flow, "y", None).await, Err(TakeError::WrongBrowser));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_state_taken_on_both_at_once_is_given_to_exactly_one() {
    let (a, b, _, _) = pair(1000).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    for round in 0..100 {
        let id = random_token();
        a.put_once(Kind::Flow, &id, "c", MIN, vec![round as u8]).await.unwrap();
        let (x, y) = (a.clone(), b.clone());
        let (i1, i2) = (id.clone(), id.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { x.take(Kind::Flow, &i1, Some("c")).await }),
            tokio::spawn(async move { y.take(Kind::Flow, &i2, Some("c")).await })
        );
        let oks = [r1.unwrap(), r2.unwrap()].into_iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "round {round}");
    }
}

#[tokio::test]
async fn expired_entries_refuse_and_are_neither_counted_nor_listed() {
    let (a, b, _, _) = pair(10).await;
    a.put_once(Kind::Flow, "short", "c", Duration::from_millis(100), vec![1]).await.unwrap();
    a.put_once(Kind::Flow, "long", "c", MIN, vec![2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(b.count(Kind::Flow).await.unwrap(), 1);
    let listed = b.list(Kind::Flow).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].0 >= Duration::from_millis(250) && listed[0].1 == vec![2], "{listed:?}");
    assert_eq!(b.take(Kind::Flow, "short", Some("c")).await, Err(TakeError::Expired));
}

#[tokio::test]
async fn caps_hold_across_proxies() {
    let (a, b, _, _) = pair(3).await;
    a.put_once(Kind::Flow, "1", "c", MIN, vec![]).await.unwrap();
    b.put_once(Kind::Flow, "2", "c", MIN, vec![]).await.unwrap();
    a.put_once(Kind::Flow, "3", "c", MIN, vec![]).await.unwrap();
    assert!(matches!(b.put_once(Kind::Flow, "4", "c", MIN, vec![]).await, Err(StateError::Full { kind: Kind::Flow })));
    b.put_once(Kind::Flow, "3", "c", MIN, vec![9]).await.expect("replacing an id needs no room");
    a.take(Kind::Flow, "1", Some("c")).await.unwrap();
    b.put_once(Kind::Flow, "4", "c", MIN, vec![]).await.unwrap();
    assert_eq!(a.count(Kind::Flow).await.unwrap(), 3);
    assert_eq!(a.count(Kind::Completion).await.unwrap(), 0);
}

#[tokio::test]
async fn key_values_expire_delete_and_evict_the_closest_to_expiry_at_the_cap() {
    let (a, b, _, _) = pair(10).await;
    let k = digest("cookie");
    a.set(Kind::Session, &k, b"tok".to_vec(), MIN).await.unwrap();
    assert_eq!(b.get(Kind::Session, &k).await.unwrap().as_deref(), Some(&b"tok"[..]));
    assert_eq!(b.get(Kind::Caller, &k).await.unwrap(), None, "kinds are separate");
    assert!(b.delete(Kind::Session, &k).await.unwrap());
    assert!(!a.delete(Kind::Session, &k).await.unwrap());
    assert_eq!(a.get(Kind::Session, &k).await.unwrap(), None);
    a.set(Kind::Caller, &k, vec![1], Duration::from_millis(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.get(Kind::Caller, &k).await.unwrap(), None, "expired");

    for i in 0..10u64 {
        a.set(Kind::Session, &digest(&i.to_string()), vec![], MIN + Duration::from_secs(i)).await.unwrap();
    }
    b.set(Kind::Session, &digest("new"), vec![], MIN * 10).await.unwrap();
    assert_eq!(a.count(Kind::Session).await.unwrap(), 10, "one evicted: never refused");
    assert_eq!(a.get(Kind::Session, &digest("0")).await.unwrap(), None, "the closest to expiry went");
    assert!(a.get(Kind::Session, &digest("new")).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_across_proxies_loses_no_update() {
    let (a, b, _, _) = pair(10).await;
    let (k, kind) = (digest("guard"), Kind::Rate("cas"));
    assert!(!b.replace(kind, &k, Some(b"x"), b"y".to_vec(), MIN).await.unwrap(), "expected a value, there is none");
    assert!(a.replace(kind, &k, None, b"0".to_vec(), MIN).await.unwrap());
    assert!(!b.replace(kind, &k, None, b"1".to_vec(), MIN).await.unwrap(), "expected none, A's is there");
    let (a, b) = (Arc::new(a), Arc::new(b));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s: Arc<RedisEphemeral> = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { super::memory_tests::cas_increment(&*s, &digest("guard"), 25).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.get(kind, &k).await.unwrap().as_deref(), Some(&b"200"[..]), "every increment counted once");
}

#[tokio::test]
async fn first_seen_once_across_proxies_until_expiry_then_refuses_when_full() {
    let (a, b, _, _) = pair(2).await;
    let soon = SystemTime::now() + Duration::from_millis(300);
    assert!(a.first_seen(Kind::SamlAssertion, "id1", soon).await.unwrap());
    assert!(!b.first_seen(Kind::SamlAssertion, "id1", soon).await.unwrap(), "replayed on the other proxy");
    assert!(b.first_seen(Kind::LogoutJti, "id1", soon).await.unwrap(), "kinds are separate");
    assert!(a.first_seen(Kind::SamlAssertion, "past", SystemTime::now() - MIN).await.unwrap(), "not worth remembering");
    let later = SystemTime::now() + MIN;
    assert!(b.first_seen(Kind::SamlAssertion, "id2", later).await.unwrap());
    assert!(matches!(a.first_seen(Kind::SamlAssertion, "id3", later).await, Err(StateError::Full { .. })));
    assert!(!a.first_seen(Kind::SamlAssertion, "id2", later).await.unwrap(), "a seen id is still answered when full");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(a.first_seen(Kind::SamlAssertion, "id3", later).await.unwrap(), "room again once id1 expired");
}

#[tokio::test]
async fn rate_counters_are_shared_per_fixed_window_and_bounded() {
    let (a, b, _, _) = pair(2).await;
    let w = Duration::from_millis(300);
    assert_eq!(a.hit(Kind::Rate("login-ip"), "1.2.3.4", w).await.unwrap(), 1);
    assert_eq!(b.hit(Kind::Rate("login-ip"), "1.2.3.4", w).await.unwrap(), 2, "the other proxy counts on");
    assert_eq!(a.hit(Kind::Rate("login-ip"), "1.2.3.4", w).await.unwrap(), 3);
    assert_eq!(b.hit(Kind::Rate("other"), "1.2.3.4", w).await.unwrap(), 1, "namespaces are separate");
    assert_eq!(a.hit(Kind::Rate("login-ip"), "5.6.7.8", w).await.unwrap(), 1);
    assert!(matches!(b.hit(Kind::Rate("login-ip"), "9.9.9.9", w).await, Err(StateError::Full { .. })));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.hit(Kind::Rate("login-ip"), "1.2.3.4", w).await.unwrap(), 1, "a new window");
    assert_eq!(a.count(Kind::Rate("login-ip")).await.unwrap(), 1);
    // An index outlives an expired member only while a longer-lived one keeps it: the sweep
    // prunes that member.
    a.hit(Kind::Rate("sweep"), "short", w).await.unwrap();
    a.hit(Kind::Rate("sweep"), "long", MIN).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(a.sweep().await.unwrap() >= 1, "the expired counter's index entry");
    assert_eq!(b.count(Kind::Rate("sweep")).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_taken_back_on_either_proxy_and_never_below_zero() {
    let (a, b, _, _) = pair(100).await;
    let (k, w) = (Kind::Rate("guess"), MIN);
    assert_eq!(a.hit(k, "ip", w).await.unwrap(), 1);
    assert_eq!(b.hit(k, "ip", w).await.unwrap(), 2);
    b.unhit(k, "ip").await.unwrap();
    assert_eq!(a.hit(k, "ip", w).await.unwrap(), 2, "B took one back");
    for _ in 0..3 {
        a.unhit(k, "ip").await.unwrap();
    }
    b.unhit(k, "never-hit").await.unwrap();
    assert_eq!(b.hit(k, "ip", w).await.unwrap(), 1, "never below zero");
    assert_eq!(b.hit(k, "never-hit", w).await.unwrap(), 1);
    // Hits from both proxies at once, each over-limit one taken back: exactly the limit passes.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let n = s.hit(Kind::Rate("race"), "ip", MIN).await.unwrap();
                if n > 5 {
                    s.unhit(Kind::Rate("race"), "ip").await.unwrap();
                }
                n <= 5
            })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        passed += t.await.unwrap() as usize;
    }
    assert_eq!(passed, 5);
}

#[tokio::test]
async fn every_key_expires_on_its_own() {
    let (a, _, url, prefix) = pair(100).await;
    a.put_once(Kind::Flow, "f", "c", MIN, vec![]).await.unwrap();
    a.put_once(Kind::Completion, "h", "c", MIN, vec![]).await.unwrap();
    a.set(Kind::Session, &digest("s"), vec![], MIN).await.unwrap();
    a.first_seen(Kind::SamlAssertion, "id", SystemTime::now() + MIN).await.unwrap();
    a.hit(Kind::Rate("login-ip"), "ip", MIN).await.unwrap();
    let mut c = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = c.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(keys.len(), 10, "five entries and their five indexes: {keys:?}");
    for k in keys {
        let ttl: i64 = c.pttl(&k).await.unwrap();
        assert!(ttl > 0 && ttl <= 2 * 60_000 + 60_000, "{k} has ttl {ttl}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly_and_recovers_without_reopening() {
    let server = servers::Redis::start();
    let s = RedisEphemeral::connect(&server.url(), "t:", caps(10), REDIS_TIMEOUT).await.unwrap();
    s.set(Kind::Session, &digest("a"), vec![1], MIN).await.unwrap();
    server.kill();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let err = s.get(Kind::Session, &digest("a")).await.unwrap_err();
        assert!(matches!(err, StateError::Unavailable { backend: "redis", .. }), "{err:?}");
        assert!(err.to_string().contains("redis"), "{err}");
        assert!(started.elapsed() < REDIS_TIMEOUT * 2, "{:?}", started.elapsed());
    }
    assert!(matches!(s.take(Kind::Flow, "x", Some("c")).await, Err(TakeError::Backend(StateError::Unavailable { .. }))));
    server.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match s.put_once(Kind::Flow, "x", "c", MIN, vec![7]).await {
            Ok(()) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.take(Kind::Flow, "x", Some("c")).await.unwrap(), vec![7]);
    assert_eq!(s.get(Kind::Session, &digest("a")).await.unwrap(), None, "the restarted server is empty");

    drop(server);
    let err = match RedisEphemeral::connect(&format!("redis://127.0.0.1:{}/", servers::free_port()), "t:", caps(1), REDIS_TIMEOUT).await {
        Err(e) => e,
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(matches!(err, StateError::Start { backend: "redis", .. }), "{err:?}");
}
