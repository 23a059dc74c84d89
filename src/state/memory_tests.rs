//! Tests of the [`Ephemeral`] contract, run against the in-memory backend with its clock moved
//! forward: take-once semantics, key/value eviction, atomic set-if-absent, rate windows, caps.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ephemeral::{Ephemeral, Kind, TakeError};
use super::memory::{Caps, MemoryEphemeral};
use super::{digest, random_token, StateError};

const MIN: Duration = Duration::from_secs(60);

fn store(cap: usize) -> MemoryEphemeral {
    MemoryEphemeral::new(Caps { flows: cap, completions: cap, sessions: cap, callers: cap, replay: cap, rate: cap })
}

#[tokio::test]
async fn taken_once_by_the_same_browser() {
    let s = store(10);
    let (id, cookie) = (random_token(), random_token());
    s.put_once(Kind::Flow, &id, &cookie, MIN, b"seven".to_vec()).await.unwrap();
    assert_eq!(s.count(Kind::Flow).await.unwrap(), 1);
    assert_eq!(s.take(Kind::Completion, &id, Some(&cookie)).await, Err(TakeError::Unknown), "kinds are separate");
    assert_eq!(s.take(Kind::Flow, &id, Some(&cookie)).await.unwrap(), b"seven");
    assert_eq!(s.take(Kind::Flow, &id, Some(&cookie)).await, Err(TakeError::Unknown), "replay refused");
}

#[tokio::test]
async fn another_browser_or_no_cookie_is_refused_and_burns_the_entry() {
    let s = store(10);
    s.put_once(Kind::Flow, "a", &random_token(), MIN, vec![]).await.unwrap();
    assert_eq!(s.take(Kind::Flow, "a", Some(&random_token())).await, Err(TakeError::WrongBrowser));
    assert_eq!(s.take(Kind::Flow, "a", None).await, Err(TakeError::Unknown), "burnt");
    s.put_once(Kind::Flow, "b", "c", MIN, vec![]).await.unwrap();
    assert_eq!(s.take(Kind::Flow, "b", None).await, Err(TakeError::WrongBrowser));
}

#[tokio::test]
async fn expired_entries_refuse_are_not_listed_and_are_swept() {
    let s = store(10);
    s.put_once(Kind::Flow, "a", "c", MIN, vec![1]).await.unwrap();
    s.put_once(Kind::Flow, "b", "c", MIN, vec![2]).await.unwrap();
    s.put_once(Kind::Flow, "long", "c", MIN * 10, vec![3]).await.unwrap();
    s.advance(Duration::from_secs(30));
    let listed = s.list(Kind::Flow).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|(age, _)| *age >= Duration::from_secs(30) && *age < Duration::from_secs(31)));
    s.advance(Duration::from_secs(31));
    assert_eq!(s.take(Kind::Flow, "a", Some("c")).await, Err(TakeError::Expired));
    let listed = s.list(Kind::Flow).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].0 >= Duration::from_secs(61) && listed[0].1 == vec![3]);
    assert_eq!(s.count(Kind::Flow).await.unwrap(), 1);
    assert_eq!(s.sweep().await.unwrap(), 1, "b");
    assert_eq!(s.take(Kind::Flow, "long", Some("c")).await.unwrap(), vec![3]);
}

#[tokio::test]
async fn take_once_capacity_is_enforced_after_sweeping() {
    let s = store(2);
    s.put_once(Kind::Flow, "a", "c", MIN, vec![]).await.unwrap();
    s.put_once(Kind::Flow, "b", "c", MIN, vec![]).await.unwrap();
    assert!(matches!(s.put_once(Kind::Flow, "x", "c", MIN, vec![]).await, Err(StateError::Full { kind: Kind::Flow })));
    s.put_once(Kind::Completion, "x", "c", MIN, vec![]).await.expect("caps are per kind");
    s.advance(MIN * 2);
    s.put_once(Kind::Flow, "x", "c", MIN, vec![]).await.expect("expired entries make room");
    assert_eq!(s.count(Kind::Flow).await.unwrap(), 1);
}

#[tokio::test]
async fn key_values_expire_and_delete() {
    let s = store(10);
    let k = digest("cookie");
    s.set(Kind::Session, &k, b"tok".to_vec(), MIN).await.unwrap();
    assert_eq!(s.get(Kind::Session, &k).await.unwrap().as_deref(), Some(&b"tok"[..]));
    assert_eq!(s.get(Kind::Caller, &k).await.unwrap(), None, "kinds are separate");
    s.set(Kind::Session, &k, b"tok2".to_vec(), MIN).await.unwrap();
    assert_eq!(s.get(Kind::Session, &k).await.unwrap().as_deref(), Some(&b"tok2"[..]), "replaced");
    assert!(s.delete(Kind::Session, &k).await.unwrap());
    assert!(!s.delete(Kind::Session, &k).await.unwrap());
    s.set(Kind::Session, &k, b"tok".to_vec(), MIN).await.unwrap();
    s.advance(MIN);
    assert_eq!(s.get(Kind::Session, &k).await.unwrap(), None);
    assert_eq!(s.count(Kind::Session).await.unwrap(), 0);
}

#[tokio::test]
async fn key_values_at_the_cap_evict_the_closest_to_expiry() {
    let s = store(20);
    for i in 0..20u64 {
        s.set(Kind::Session, &digest(&i.to_string()), vec![], MIN * (i as u32 + 1)).await.unwrap();
    }
    s.set(Kind::Session, &digest("new"), vec![1], MIN).await.expect("never refused");
    assert_eq!(s.get(Kind::Session, &digest("new")).await.unwrap(), Some(vec![1]));
    assert_eq!(s.get(Kind::Session, &digest("0")).await.unwrap(), None, "closest to expiry evicted");
    assert_eq!(s.get(Kind::Session, &digest("1")).await.unwrap(), None, "a tenth of the cap evicted");
    assert!(s.get(Kind::Session, &digest("2")).await.unwrap().is_some());
    assert_eq!(s.count(Kind::Session).await.unwrap(), 19);
    // Replacing an existing key at the cap evicts nothing.
    s.set(Kind::Session, &digest("new"), vec![2], MIN).await.unwrap();
    assert_eq!(s.count(Kind::Session).await.unwrap(), 19);
    // Expired entries go first.
    s.advance(MIN * 5 + Duration::from_secs(1));
    s.set(Kind::Session, &digest("a"), vec![], MIN).await.unwrap();
    s.set(Kind::Session, &digest("b"), vec![], MIN).await.unwrap();
    assert!(s.get(Kind::Session, &digest("19")).await.unwrap().is_some());
}

#[tokio::test]
async fn first_seen_until_expiry_then_refuses_when_full() {
    let s = store(2);
    let until = SystemTime::now() + MIN;
    assert!(s.first_seen(Kind::SamlAssertion, "id1", until).await.unwrap());
    assert!(!s.first_seen(Kind::SamlAssertion, "id1", until).await.unwrap(), "replay");
    assert!(s.first_seen(Kind::LogoutJti, "id1", until).await.unwrap(), "kinds are separate");
    assert!(s.first_seen(Kind::SamlAssertion, "id2", until).await.unwrap());
    assert!(matches!(s.first_seen(Kind::SamlAssertion, "id3", until).await, Err(StateError::Full { .. })), "never forget");
    s.advance(MIN + Duration::from_secs(1));
    assert!(s.first_seen(Kind::SamlAssertion, "id3", until + MIN * 2).await.unwrap(), "expired ids make room");
    assert!(s.first_seen(Kind::SamlAssertion, "id1", until + MIN * 2).await.unwrap(), "expired id is new again");
    assert!(!s.first_seen(Kind::SamlAssertion, "id1", until + MIN * 2).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_seen_is_atomic_under_concurrency() {
    let s = Arc::new(store(1000));
    for round in 0..20 {
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (s, barrier) = (s.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.first_seen(Kind::SamlAssertion, &format!("id{round}"), SystemTime::now() + MIN).await.unwrap()
                })
            })
            .collect();
        let mut firsts = 0;
        for t in tasks {
            firsts += t.await.unwrap() as usize;
        }
        assert_eq!(firsts, 1, "round {round}");
    }
}

#[tokio::test]
async fn rate_counts_per_fixed_window_and_is_bounded() {
    let s = store(2);
    let k = Kind::Rate("login-ip");
    assert_eq!(s.hit(k, "1.2.3.4", MIN).await.unwrap(), 1);
    assert_eq!(s.hit(k, "1.2.3.4", MIN).await.unwrap(), 2);
    assert_eq!(s.hit(Kind::Rate("other"), "1.2.3.4", MIN).await.unwrap(), 1, "namespaces are separate");
    s.advance(Duration::from_secs(59));
    assert_eq!(s.hit(k, "1.2.3.4", MIN).await.unwrap(), 3);
    assert_eq!(s.hit(k, "5.6.7.8", MIN).await.unwrap(), 1);
    assert!(matches!(s.hit(k, "9.9.9.9", MIN).await, Err(StateError::Full { .. })));
    s.advance(Duration::from_secs(1));
    assert_eq!(s.hit(k, "1.2.3.4", MIN).await.unwrap(), 1, "new window");
    s.advance(Duration::from_secs(60));
    assert_eq!(s.hit(k, "9.9.9.9", MIN).await.unwrap(), 1, "expired windows make room");
    assert_eq!(s.count(k).await.unwrap(), 1);
}

#[tokio::test]
async fn unhit_takes_one_back_in_the_window_never_below_zero() {
    let s = store(10);
    let k = Kind::Rate("guess");
    assert_eq!(s.hit(k, "ip", MIN).await.unwrap(), 1);
    assert_eq!(s.hit(k, "ip", MIN).await.unwrap(), 2);
    s.unhit(k, "ip").await.unwrap();
    assert_eq!(s.hit(k, "ip", MIN).await.unwrap(), 2);
    for _ in 0..3 {
        s.unhit(k, "ip").await.unwrap();
    }
    s.unhit(k, "absent").await.unwrap();
    assert_eq!(s.hit(k, "ip", MIN).await.unwrap(), 1, "never below zero");
    s.advance(Duration::from_secs(61));
    s.unhit(k, "ip").await.unwrap();
    assert_eq!(s.hit(k, "ip", MIN).await.unwrap(), 1, "an ended window starts afresh");
}

#[tokio::test]
async fn sweep_covers_every_shape() {
    let s = store(10);
    s.put_once(Kind::Flow, "a", "c", MIN, vec![]).await.unwrap();
    s.set(Kind::Caller, &digest("t"), vec![], MIN).await.unwrap();
    s.first_seen(Kind::LogoutJti, "j", SystemTime::now() + MIN).await.unwrap();
    s.hit(Kind::Rate("r"), "k", MIN).await.unwrap();
    assert_eq!(s.sweep().await.unwrap(), 0);
    s.advance(MIN);
    assert_eq!(s.sweep().await.unwrap(), 4);
}

/// A counter kept as a decimal string, incremented `n` times by compare-and-set.
pub(super) async fn cas_increment(s: &dyn Ephemeral, key: &[u8; 32], n: usize) {
    for _ in 0..n {
        loop {
            let cur = s.get(Kind::Rate("cas"), key).await.unwrap();
            let v: u64 = cur.as_deref().map(|b| std::str::from_utf8(b).unwrap().parse().unwrap()).unwrap_or(0);
            if s.replace(Kind::Rate("cas"), key, cur.as_deref(), (v + 1).to_string().into_bytes(), MIN).await.unwrap() {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_sets_only_over_the_expected_value_and_loses_no_update() {
    let s = Arc::new(store(100));
    let (k, kind) = (digest("guard"), Kind::Rate("cas"));
    assert!(!s.replace(kind, &k, Some(b"x"), b"y".to_vec(), MIN).await.unwrap(), "expected a value, there is none");
    assert!(s.replace(kind, &k, None, b"a".to_vec(), MIN).await.unwrap());
    assert!(!s.replace(kind, &k, None, b"b".to_vec(), MIN).await.unwrap(), "expected none, there is one");
    assert!(!s.replace(kind, &k, Some(b"b"), b"c".to_vec(), MIN).await.unwrap());
    assert!(s.replace(kind, &k, Some(b"a"), b"c".to_vec(), Duration::from_millis(1)).await.unwrap());
    assert_eq!(s.get(kind, &k).await.unwrap().as_deref(), Some(&b"c"[..]));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!s.replace(kind, &k, Some(b"c"), b"d".to_vec(), MIN).await.unwrap(), "an expired value is no value");
    assert!(s.replace(kind, &k, None, b"0".to_vec(), MIN).await.unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { cas_increment(&*s, &digest("guard"), 50).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get(kind, &k).await.unwrap().as_deref(), Some(&b"800"[..]), "every increment counted once");
}
