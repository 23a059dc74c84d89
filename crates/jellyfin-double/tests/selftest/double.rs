//! The endpoints the proxy itself calls: Quick Connect, users and policies, API keys and legacy
//! headers, avatars, libraries, sessions and devices, and the proxy-test fixtures.

use super::*;

#[tokio::test]
async fn quick_connect_full_path() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let ann = jf.add_user("ann", "pw", false);
    let bob = jf.add_user("bob", "pw", false);
    assert_eq!(get(&jf, "/QuickConnect/Enabled", None).await.2, json!(true));

    let (st, _, r) = post(&jf, "/QuickConnect/Initiate", Some(&device("tv-1")), None).await;
    assert_eq!(st, 200);
    let secret = r["Secret"].as_str().unwrap().to_string();
    let code = r["Code"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64);
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!((r["DeviceId"].as_str(), r["DeviceName"].as_str(), r["AppName"].as_str(), r["AppVersion"].as_str()), (Some("tv-1"), Some("Firefox"), Some("Jellyfin Web"), Some("10.10.7")));
    assert!(r["DateAdded"].as_str().unwrap().ends_with('Z'));

    // A non-admin user may not authorize for someone else (RequestHelpers.GetUserId → 403).
    let bob_token = quick_connect(&jf, "bob-phone", &bob, &admin()).await["AccessToken"].as_str().unwrap().to_string();
    let (st, ct, _) = post(&jf, &format!("/QuickConnect/Authorize?code={code}&userId={ann}"), Some(&with_token(&bob_token)), None).await;
    assert_eq!(st, 403);
    assert!(ct.starts_with("text/plain"));
    // The API key may.
    let (st, _, _) = post(&jf, &format!("/QuickConnect/Authorize?code={code}&userId={ann}"), Some(&admin()), None).await;
    assert_eq!(st, 200);
    assert_eq!(get(&jf, &format!("/QuickConnect/Connect?secret={secret}"), None).await.2["Authenticated"], true);
    let (st, _, res) = post(&jf, "/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": secret}))).await;
    assert_eq!(st, 200);
    let token = res["AccessToken"].as_str().unwrap();
    assert_eq!(res["User"]["Id"], json!(ann));
    assert_eq!(res["User"]["Policy"]["IsAdministrator"], false);
    assert_eq!(res["SessionInfo"]["DeviceId"], "tv-1");
    assert_eq!(res["SessionInfo"]["Client"], "Jellyfin Web");
    assert_eq!(res["ServerId"], json!(jf.server_id()));
    let (st, _, me) = get(&jf, "/Users/Me", Some(&with_token(token))).await;
    assert_eq!((st, me["Name"].as_str()), (200, Some("ann")));
    let s = jf.sessions().into_iter().find(|s| s.token == token).unwrap();
    assert_eq!((s.device_id.as_str(), s.client.as_str(), s.device_name.as_str(), s.app_version.as_str()), ("tv-1", "Jellyfin Web", "Firefox", "10.10.7"));

    // Same user, same device: the earlier token is logged out. Another device is kept.
    let again = quick_connect(&jf, "tv-1", &ann, &admin()).await;
    assert_ne!(again["AccessToken"].as_str().unwrap(), token);
    assert_eq!(get(&jf, "/Users/Me", Some(&with_token(token))).await.0, 401);
    assert_eq!(get(&jf, "/Users/Me", Some(&with_token(&bob_token))).await.0, 200);

    // Disabled: Initiate/Connect/Authorize say 401 "Quick connect is disabled"; the result fetch
    // answers 401 text (AuthenticationException not caught there).
    jf.set_quick_connect_enabled(false);
    assert_eq!(post(&jf, "/QuickConnect/Initiate", Some(&device("x")), None).await.2, json!("Quick connect is disabled"));
    assert_eq!(get(&jf, &format!("/QuickConnect/Connect?secret={secret}"), None).await.0, 401);
    let (st, ct, _) = post(&jf, "/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": secret}))).await;
    assert_eq!(st, 401);
    assert!(ct.starts_with("text/plain"));
    // Missing device fields are a 400 before the enabled check.
    assert_eq!(post(&jf, "/QuickConnect/Initiate", Some("MediaBrowser Client=\"x\""), None).await.0, 400);

    // Expiry: ten minutes for pending requests.
    jf.set_quick_connect_enabled(true);
    let (_, _, r) = post(&jf, "/QuickConnect/Initiate", Some(&device("late")), None).await;
    jf.advance_clock(Duration::from_secs(601));
    let (st, _, _) = post(&jf, &format!("/QuickConnect/Authorize?code={}&userId={ann}", r["Code"].as_str().unwrap()), Some(&admin()), None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn policy_is_replaced_whole_with_required_fields() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let (st, _, u) = post(&jf, "/Users/New", Some(&admin()), Some(json!({"Name": "Zoe", "Password": "x"}))).await;
    assert_eq!(st, 200);
    let id = u["Id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(u["Policy"]["AuthenticationProviderId"], DEFAULT_AUTH);
    assert_eq!(u["Policy"]["IsHidden"], true);
    assert!(u["Policy"].get("MaxParentalRating").is_none(), "nulls are not written");
    // Names are unique case-insensitively: ArgumentException → 400 text.
    let (st, ct, body) = post(&jf, "/Users/New", Some(&admin()), Some(json!({"Name": "zoe"}))).await;
    assert_eq!((st, body), (400, json!("Error processing request.")));
    assert!(ct.starts_with("text/plain"));
    assert_eq!(post(&jf, "/Users/New", Some(&admin()), Some(json!({"Password": "x"}))).await.0, 400);

    // Read, change, send back: kept.
    let mut p = u["Policy"].clone();
    let folder = jf.add_media_folder("Movies");
    p["EnableAllFolders"] = json!(false);
    p["EnabledFolders"] = json!([folder]);
    p["EnableLiveTvAccess"] = json!(false);
    assert_eq!(post(&jf, &format!("/Users/{id}/Policy"), Some(&admin()), Some(p.clone())).await.0, 204);
    let after = jf.user_policy(&id).unwrap();
    assert_eq!(after["EnabledFolders"], json!([folder]));
    assert_eq!(after["EnableLiveTvAccess"], false);
    // Omitted fields fall back to the UserPolicy constructor, not to the stored value.
    let partial = json!({"AuthenticationProviderId": DEFAULT_AUTH, "PasswordResetProviderId": DEFAULT_RESET, "EnableAllFolders": false});
    assert_eq!(post(&jf, &format!("/Users/{id}/Policy"), Some(&admin()), Some(partial)).await.0, 204);
    let after = jf.user_policy(&id).unwrap();
    assert_eq!(after["EnableLiveTvAccess"], true);
    assert_eq!(after["EnabledFolders"], json!([]));
    // [Required] provider ids: 400 ValidationProblemDetails naming the field.
    let mut missing = p.clone();
    missing.as_object_mut().unwrap().remove("AuthenticationProviderId");
    let (st, ct, e) = post(&jf, &format!("/Users/{id}/Policy"), Some(&admin()), Some(missing)).await;
    assert_eq!(st, 400);
    assert!(ct.starts_with("application/problem+json"));
    assert_eq!(e["title"], "One or more validation errors occurred.");
    assert!(e["errors"]["AuthenticationProviderId"].is_array(), "{e}");
    // Folder ids must be Guids.
    let mut bad = p.clone();
    bad["EnabledFolders"] = json!(["f1"]);
    assert_eq!(post(&jf, &format!("/Users/{id}/Policy"), Some(&admin()), Some(bad)).await.0, 400);
    // A JSON body needs a JSON content type (415).
    let r = reqwest::Client::new().post(format!("{}/Users/{id}/Policy", jf.url())).header("Authorization", admin()).body(p.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 415);
    // Elevation: a user token gets 403, no token 401, unknown user 404.
    let zoe = post(&jf, "/Users/AuthenticateByName", Some(&device("z")), Some(json!({"Username": "ZOE", "Pw": "x"}))).await.2;
    let zoe_token = zoe["AccessToken"].as_str().unwrap();
    assert_eq!(post(&jf, &format!("/Users/{id}/Policy"), Some(&with_token(zoe_token)), Some(p.clone())).await.0, 403);
    assert_eq!(post(&jf, &format!("/Users/{id}/Policy"), None, Some(p.clone())).await.0, 401);
    assert_eq!(post(&jf, "/Users/0123456789abcdef0123456789abcdef/Policy", Some(&admin()), Some(p)).await.0, 404);
}

#[tokio::test]
async fn the_last_administrator_is_protected() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let root = jf.add_user("root", "pw", true);
    let mut p = jf.user_policy(&root).unwrap();
    p["IsAdministrator"] = json!(false);
    let (st, ct, msg) = post(&jf, &format!("/Users/{root}/Policy"), Some(&admin()), Some(p.clone())).await;
    assert_eq!((st, msg), (403, json!("There must be at least one user in the system with administrative access.")));
    assert!(ct.starts_with("application/json"));
    let mut p2 = jf.user_policy(&root).unwrap();
    p2["IsDisabled"] = json!(true);
    assert_eq!(post(&jf, &format!("/Users/{root}/Policy"), Some(&admin()), Some(p2)).await.2, json!("Administrators cannot be disabled."));
    // With a second administrator the first may step down.
    jf.add_user("root2", "pw", true);
    assert_eq!(post(&jf, &format!("/Users/{root}/Policy"), Some(&admin()), Some(p)).await.0, 204);
    assert_eq!(jf.user_policy(&root).unwrap()["IsAdministrator"], false);
}

#[tokio::test]
async fn invalid_auth_provider_users_cannot_log_in_with_a_password() {
    let jf = JellyfinDouble::start(DoubleOptions { version: "10.11.11".into(), ..Default::default() }).await;
    let (_, _, u) = post(&jf, "/Users/New", Some(&admin()), Some(json!({"Name": "sso-user", "Password": "secret"}))).await;
    let id = u["Id"].as_str().unwrap();
    let login = json!({"Username": "sso-user", "Pw": "secret"});
    assert_eq!(post(&jf, "/Users/AuthenticateByName", Some(&device("d")), Some(login.clone())).await.0, 200);
    let mut p = u["Policy"].clone();
    p["AuthenticationProviderId"] = json!(INVALID_AUTH);
    assert_eq!(post(&jf, &format!("/Users/{id}/Policy"), Some(&admin()), Some(p)).await.0, 204);
    let (st, ct, body) = post(&jf, "/Users/AuthenticateByName", Some(&device("d")), Some(login)).await;
    assert_eq!((st, body), (401, json!("Error processing request.")));
    assert!(ct.starts_with("text/plain"));
    assert_eq!(jf.user_by_name("SSO-USER").unwrap()["HasPassword"], true, "InvalidAuthProvider.HasPassword is true");
    // Wrong password, unknown user: the same 401. Missing device fields: 400.
    assert_eq!(post(&jf, "/Users/AuthenticateByName", Some(&device("d")), Some(json!({"Username": "nobody", "Pw": ""}))).await.0, 401);
    assert_eq!(post(&jf, "/Users/AuthenticateByName", None, Some(json!({"Username": "sso-user", "Pw": "x"}))).await.0, 400);
    // A user created without a password logs in with an empty one (DefaultAuthenticationProvider).
    post(&jf, "/Users/New", Some(&admin()), Some(json!({"Name": "open"}))).await;
    assert_eq!(post(&jf, "/Users/AuthenticateByName", Some(&device("d")), Some(json!({"Username": "open", "Pw": ""}))).await.0, 200);
}

#[tokio::test]
async fn api_keys_users_me_and_legacy_headers() {
    let jf = JellyfinDouble::start(DoubleOptions { version: "10.11.11".into(), ..Default::default() }).await;
    let (st, ct, _) = get(&jf, "/Users/Me", Some(&admin())).await;
    assert_eq!(st, 400, "an API key has no user");
    assert!(ct.starts_with("application/problem+json"));
    assert_eq!(get(&jf, "/Users/Me", Some(&with_token("nonsense"))).await.0, 401);
    assert_eq!(get(&jf, "/Users", None).await.0, 401);
    assert_eq!(get(&jf, &format!("/Users?ApiKey={KEY}"), None).await.0, 200, "ApiKey= is not legacy");
    let legacy = reqwest::Client::new().get(format!("{}/Users", jf.url())).header("X-Emby-Token", KEY).send().await.unwrap();
    assert_eq!(legacy.status(), 401);
    jf.set_legacy_auth(true);
    let legacy = reqwest::Client::new().get(format!("{}/Users", jf.url())).header("X-Emby-Token", KEY).send().await.unwrap();
    assert_eq!(legacy.status(), 200);
    // More API keys are administrators too; revoked ones are not.
    let k = jf.add_api_key("other");
    assert_eq!(get(&jf, "/Auth/Keys", Some(&with_token(&k))).await.2["TotalRecordCount"], 2);
    jf.revoke_api_key(&k);
    assert_eq!(get(&jf, "/Auth/Keys", Some(&with_token(&k))).await.0, 401);
    // An invalid token on an anonymous endpoint is ignored.
    assert_eq!(get(&jf, "/System/Info/Public", Some(&with_token("nonsense"))).await.0, 200);
    let (_, _, info) = get(&jf, "/System/Info/Public", None).await;
    assert_eq!((info["Version"].as_str(), info["ProductName"].as_str(), info["Id"].as_str()), (Some("10.11.11"), Some("Jellyfin Server"), Some(jf.server_id().as_str())));
    assert_eq!(get(&jf, "/Branding/Configuration", None).await.2, json!({"SplashscreenEnabled": false}));
}

#[tokio::test]
async fn avatars_are_base64_with_an_image_type() {
    let jf = JellyfinDouble::start(DoubleOptions { version: "10.11.11".into(), ..Default::default() }).await;
    let id = jf.add_user("ann", "pw", false);
    let png = b"\x89PNG\r\n\x1a\nnot really".to_vec();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let c = reqwest::Client::new();
    let up = |body: Vec<u8>, ct: &'static str, path: String| {
        let c = c.clone();
        async move { c.post(path).header("Authorization", admin()).header("Content-Type", ct).body(body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(up(png.clone(), "image/png", format!("{}/UserImage?userId={id}", jf.url())).await, 500, "raw bytes are not base64");
    assert_eq!(up(b64.clone().into_bytes(), "application/octet-stream", format!("{}/UserImage?userId={id}", jf.url())).await, 400);
    assert_eq!(up(b64.clone().into_bytes(), "image/png", format!("{}/UserImage?userId={id}", jf.url())).await, 204);
    assert_eq!(jf.avatar(&id).unwrap(), png);
    assert_eq!(up(b64.into_bytes(), "image/png", format!("{}/Users/{id}/Images/Primary", jf.url())).await, 204);
    let got = c.get(format!("{}/UserImage?userId={id}", jf.url())).send().await.unwrap();
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), png);
    assert!(jf.user_by_name("ann").unwrap()["PrimaryImageTag"].is_string());
}

#[tokio::test]
async fn libraries_logout_devices_and_user_deletion() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let f = jf.add_media_folder("Movies");
    let (_, _, mf) = get(&jf, "/Library/MediaFolders", Some(&admin())).await;
    assert_eq!((mf["Items"][0]["Id"].as_str(), mf["TotalRecordCount"].as_u64()), (Some(f.as_str()), Some(1)));
    assert_eq!(get(&jf, "/Library/VirtualFolders", Some(&admin())).await.2[0]["ItemId"], json!(f));
    let ann = jf.add_user("ann", "pw", false);
    let t1 = quick_connect(&jf, "d1", &ann, &admin()).await["AccessToken"].as_str().unwrap().to_string();
    let t2 = quick_connect(&jf, "d2", &ann, &admin()).await["AccessToken"].as_str().unwrap().to_string();
    assert_eq!(get(&jf, "/Library/MediaFolders", Some(&with_token(&t1))).await.0, 403);
    assert_eq!(get(&jf, "/Sessions", Some(&admin())).await.2.as_array().unwrap().len(), 2);
    assert_eq!(post(&jf, "/Sessions/Logout", Some(&with_token(&t1)), None).await.0, 204);
    assert_eq!(get(&jf, "/Users/Me", Some(&with_token(&t1))).await.0, 401);
    let a = admin();
    let del = |q: &str| send(reqwest::Method::DELETE, format!("{}/Devices?{q}", jf.url()), Some(&a), None);
    assert_eq!(del("id=nope").await.0, 404);
    assert_eq!(del("id=d2").await.0, 204);
    assert_eq!(get(&jf, "/Users/Me", Some(&with_token(&t2))).await.0, 401);
    // Deleting: tokens go first; the last administrator is refused with 400.
    let root = jf.add_user("root", "pw", true);
    assert_eq!(send(reqwest::Method::DELETE, format!("{}/Users/{root}", jf.url()), Some(&admin()), None).await.0, 400);
    assert_eq!(send(reqwest::Method::DELETE, format!("{}/Users/{ann}", jf.url()), Some(&admin()), None).await.0, 204);
    assert_eq!(get(&jf, &format!("/Users/{ann}"), Some(&admin())).await.2, json!("User not found"));
    assert_eq!(jf.user_count(), 1);
}

#[tokio::test]
async fn media_ranges() {
    let size = 1_000_000u64;
    let jf = JellyfinDouble::start(DoubleOptions { media_size: size, ..Default::default() }).await;
    let c = reqwest::Client::new();
    let url = format!("{}/media/big.bin", jf.url());
    let whole = c.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let etag = whole.headers()["etag"].to_str().unwrap().to_string();
    let body = whole.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    assert!(body.iter().enumerate().all(|(i, b)| *b == media_byte(i as u64)));
    for (range, start, end) in [("bytes=10-19", 10, 20), ("bytes=999990-", 999_990, size), ("bytes=-5", size - 5, size), ("bytes=0-5000000", 0, size)] {
        let r = c.get(&url).header("Range", range).send().await.unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(r.headers()["content-range"], format!("bytes {start}-{}/{size}", end - 1));
        let want: Vec<u8> = (start..end).map(media_byte).collect();
        assert_eq!(r.bytes().await.unwrap().to_vec(), want, "{range}");
    }
    let r = c.get(&url).header("Range", format!("bytes={size}-")).send().await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], format!("bytes */{size}"));
    let r = c.get(&url).header("Range", "bytes=0-0").header("If-Range", "\"stale\"").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(&url).header("Range", "bytes=0-0").header("If-Range", &etag).send().await.unwrap();
    assert_eq!(r.status(), 206);
}

#[tokio::test]
async fn websocket_echo_and_shutdown() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/socket", jf.addr)).await.unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Text("hello".into()));
    ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(vec![1u8, 2, 3].into()));
    ws.close(None).await.unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Close(_))) | None));
    // /echo/headers and /echo/body.
    let c = reqwest::Client::new();
    let seen: Value = c.get(format!("{}/echo/headers?x=1", jf.url())).header("X-Test", "a").send().await.unwrap().json().await.unwrap();
    assert_eq!((seen["headers"]["x-test"].as_str(), seen["uri"].as_str()), (Some("a"), Some("/echo/headers?x=1")));
    let back = c.post(format!("{}/echo/body", jf.url())).body(vec![7u8; 300_000]).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(back.len(), 300_000);
    assert!(jf.calls().iter().any(|call| call.path == "/echo/body"));
    jf.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(reqwest::Client::new().get(format!("{}/System/Info/Public", jf.url())).send().await.is_err());
}
