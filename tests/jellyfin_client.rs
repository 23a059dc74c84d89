//! The Jellyfin REST client against the double: every operation and each error case.

mod support;

use std::time::Duration;

use jellyfin_sso_proxy::config::Secret;
use jellyfin_sso_proxy::jellyfin::{providers, Caller, DeviceInfo, Jellyfin, JellyfinError};
use jellyfin_double::{DoubleOptions, JellyfinDouble};

fn client(url: &str, key: &str) -> Jellyfin {
    Jellyfin::new(&url.parse().unwrap(), Some(Secret::new(key)), Duration::from_secs(2), Duration::from_secs(10))
}

fn device(id: &str) -> DeviceInfo {
    DeviceInfo { client: "Jellyfin Web".into(), device: "Chrome".into(), device_id: id.into(), version: "10.10.7".into() }
}

#[tokio::test]
async fn server_info_and_readiness() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = client(&jf.url(), "test-api-key");
    let info = c.check_ready().await.unwrap();
    assert_eq!(info.version, "10.10.7");
    assert_eq!(info.id, jf.server_id());
    // Too old.
    let old = JellyfinDouble::start(DoubleOptions { version: "10.8.13".into(), ..Default::default() }).await;
    assert!(matches!(client(&old.url(), "test-api-key").check_ready().await, Err(JellyfinError::UnsupportedVersion { .. })));
    // Quick Connect off: a clear error saying what to switch on.
    jf.set_quick_connect_enabled(false);
    let e = c.check_ready().await.unwrap_err();
    assert!(matches!(e, JellyfinError::QuickConnectDisabled));
    assert!(e.to_string().contains("Dashboard"), "{e}");
}

#[tokio::test]
async fn error_cases_are_distinct() {
    // Down.
    let port = support::free_port();
    let down = client(&format!("http://127.0.0.1:{port}"), "k");
    assert!(matches!(down.server_info().await, Err(JellyfinError::Unreachable { .. })));
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    // Bad key.
    let bad = client(&jf.url(), "wrong-key");
    let e = bad.find_user_by_name("x").await.unwrap_err();
    assert!(matches!(e, JellyfinError::ApiKeyRejected));
    assert!(e.to_string().contains("the API key in proxy.yaml is not accepted by Jellyfin"));
    // Unknown user.
    let c = client(&jf.url(), "test-api-key");
    assert!(matches!(c.user("0123456789abcdef0123456789abcdef").await, Err(JellyfinError::UserNotFound(_))));
    // Quick Connect disabled at mint time.
    let id = jf.add_user("amy", "pw", false);
    jf.set_quick_connect_enabled(false);
    assert!(matches!(c.mint_token(&id, &device("d")).await, Err(JellyfinError::QuickConnectDisabled)));
}

#[tokio::test]
async fn last_administrator_refusal_carries_jellyfins_message() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let admin = jf.add_user("root", "pw", true);
    let c = client(&jf.url(), "test-api-key");
    let e = c.update_policy(&admin, |p| p.is_administrator = false).await.unwrap_err();
    match e {
        JellyfinError::Refused { message, status, .. } => {
            assert_eq!(status, 403);
            assert_eq!(message, "There must be at least one user in the system with administrative access.");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(jf.user_policy(&admin).unwrap()["IsAdministrator"], true);
}

#[tokio::test]
async fn create_find_and_policy_change_only_owned_fields() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = client(&jf.url(), "test-api-key");
    let u = c.create_user("Zoe", &Secret::new("unguessable")).await.unwrap();
    assert_eq!(c.find_user_by_name("zOE").await.unwrap().unwrap().id, u.id, "names match case-insensitively");
    assert!(c.find_user_by_name("zoey").await.unwrap().is_none());
    let before = jf.user_policy(&u.id).unwrap();
    let folder = jf.add_media_folder("Movies");
    c.update_policy(&u.id, |p| {
        p.enable_all_folders = false;
        p.enabled_folders = vec![folder.clone()];
        p.enable_live_tv_access = false;
    })
    .await
    .unwrap();
    let after = jf.user_policy(&u.id).unwrap();
    assert_eq!(after["EnableAllFolders"], false);
    assert_eq!(after["EnabledFolders"], serde_json::json!([folder]));
    assert_eq!(after["EnableLiveTvAccess"], false);
    for (k, v) in before.as_object().unwrap() {
        if !["EnableAllFolders", "EnabledFolders", "EnableLiveTvAccess"].contains(&k.as_str()) {
            assert_eq!(&after[k], v, "field {k} must be kept");
        }
    }
}

#[tokio::test]
async fn a_folder_id_that_is_not_a_guid_is_refused_like_jellyfin_does() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = client(&jf.url(), "test-api-key");
    let id = jf.add_user("gus", "pw", false);
    match c.update_policy(&id, |p| p.enabled_folders = vec!["not-a-guid".into()]).await {
        Err(JellyfinError::Refused { status, .. }) => assert_eq!(status, 400),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn proxy_created_users_cannot_log_in_with_a_password() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = client(&jf.url(), "test-api-key");
    let u = c.create_user("sso-user", &Secret::new("the-random-password")).await.unwrap();
    assert!(support::jellyfin_password_login(&jf.url(), "sso-user", "the-random-password").await.is_ok(), "control: before the switch it works");
    c.set_auth_provider(&u.id, providers::INVALID_AUTH, providers::DEFAULT_PASSWORD_RESET).await.unwrap();
    assert_eq!(support::jellyfin_password_login(&jf.url(), "sso-user", "the-random-password").await, Err(401));
}

#[tokio::test]
async fn avatar_folders_identify_logout_and_devices() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = client(&jf.url(), "test-api-key");
    let id = jf.add_user("ann", "pw", false);
    let png = b"\x89PNG\r\n\x1a\nfake-image-bytes".to_vec();
    c.upload_avatar(&id, &png, "image/png").await.unwrap();
    assert_eq!(jf.avatar(&id).unwrap(), png);
    let f = jf.add_media_folder("Movies");
    assert_eq!(c.media_folders().await.unwrap()[0].id, f);
    assert_eq!(c.virtual_folders().await.unwrap()[0].item_id, f);

    assert_eq!(c.identify("test-api-key").await.unwrap(), Some(Caller::ApiKey));
    assert_eq!(c.identify("nonsense").await.unwrap(), None);
    let minted = c.mint_token(&id, &device("dev-1")).await.unwrap();
    match c.identify(&minted.access_token).await.unwrap() {
        Some(Caller::User { id: uid, is_admin, .. }) => {
            assert_eq!(uid, id);
            assert!(!is_admin);
        }
        other => panic!("{other:?}"),
    }
    c.logout(&minted.access_token).await.unwrap();
    assert_eq!(c.identify(&minted.access_token).await.unwrap(), None, "logged-out token is dead");
    let again = c.mint_token(&id, &device("dev-2")).await.unwrap();
    c.delete_device("dev-2").await.unwrap();
    assert_eq!(c.identify(&again.access_token).await.unwrap(), None, "device revoked");
}

#[tokio::test]
async fn minting_replaces_the_same_devices_earlier_session() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = client(&jf.url(), "test-api-key");
    let id = jf.add_user("ben", "pw", false);
    let first = c.mint_token(&id, &device("same")).await.unwrap();
    let second = c.mint_token(&id, &device("same")).await.unwrap();
    assert_ne!(first.access_token, second.access_token);
    assert_eq!(c.identify(&first.access_token).await.unwrap(), None);
    let s: Vec<_> = jf.sessions().into_iter().filter(|s| s.user_id == id).collect();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].device_id, "same");
    assert_eq!(s[0].client, "Jellyfin Web");
    // The calls used the documented header, never the legacy ones.
    for call in jf.calls() {
        if let Some(a) = &call.authorization {
            assert!(a.starts_with("MediaBrowser "), "{a}");
        }
        assert!(!call.query.to_ascii_lowercase().contains("api_key"));
    }
}

#[tokio::test]
async fn fifty_concurrent_mintings_for_different_users_and_devices() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = client(&jf.url(), "test-api-key");
    let ids: Vec<String> = (0..50).map(|i| jf.add_user(&format!("u{i}"), "pw", false)).collect();
    let tasks = ids.iter().enumerate().map(|(i, id)| {
        let (c, id) = (c.clone(), id.clone());
        async move { (id.clone(), c.mint_token(&id, &device(&format!("dev-{i}"))).await) }
    });
    let results = futures_util::future::join_all(tasks).await;
    let mut tokens = std::collections::HashSet::new();
    for (id, r) in results {
        let r = r.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(r.user_id(), Some(id.as_str()));
        assert!(tokens.insert(r.access_token));
    }
    assert_eq!(tokens.len(), 50);
}
