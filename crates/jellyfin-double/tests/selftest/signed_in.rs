//! What jellyfin-web 10.11 calls once it holds a token (System/Info and Endpoint, capabilities,
//! display preferences, user views, the bitrate probe), branding set by an administrator, and
//! the legacy authorization that 12.0 switches off.

use super::*;

async fn get_with(jf: &JellyfinDouble, path: &str, header: (&str, &str)) -> u16 {
    reqwest::Client::new().get(format!("{}{path}", jf.url())).header(header.0, header.1).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn what_jellyfin_web_calls_once_signed_in() {
    let jf = JellyfinDouble::start(DoubleOptions { version: "10.11.11".into(), ..Default::default() }).await;
    let ann = jf.add_user("ann", "pw", false);
    let bob = jf.add_user("bob", "pw", false);
    let t = quick_connect(&jf, "web-1", &ann, &admin()).await["AccessToken"].as_str().unwrap().to_string();
    let me = with_token(&t);

    // System/Info checks a saved token: 401 without a valid one, any user or key otherwise.
    assert_eq!(get(&jf, "/System/Info", None).await.0, 401);
    assert_eq!(get(&jf, "/System/Info", Some(&with_token("nonsense"))).await.0, 401);
    let (st, _, info) = get(&jf, "/System/Info", Some(&me)).await;
    assert_eq!(st, 200);
    assert_eq!((info["Id"].as_str(), info["Version"].as_str(), info["StartupWizardCompleted"].as_bool()), (Some(jf.server_id().as_str()), Some("10.11.11"), Some(true)));
    assert!(info["CanSelfRestart"].is_boolean() && info["CompletedInstallations"].is_array());
    assert_eq!(get(&jf, "/System/Info", Some(&admin())).await.0, 200);
    assert_eq!(get(&jf, "/System/Endpoint", None).await.0, 401);
    assert_eq!(get(&jf, "/System/Endpoint", Some(&me)).await.2, json!({"IsLocal": true, "IsInNetwork": true}));

    // Capabilities: bound first (415, 400), then the session (404 for an unknown id); shown in /Sessions.
    assert_eq!(post(&jf, "/Sessions/Capabilities/Full", None, Some(json!({}))).await.0, 401);
    assert_eq!(post(&jf, "/Sessions/Capabilities/Full", Some(&me), None).await.0, 415);
    assert_eq!(post(&jf, "/Sessions/Capabilities/Full", Some(&me), Some(json!({"PlayableMediaTypes": ["Smell"]}))).await.0, 400);
    assert_eq!(post(&jf, "/Sessions/Capabilities/Full?id=nope", Some(&me), Some(json!({}))).await.0, 404);
    let caps = json!({"PlayableMediaTypes": ["audio", "Video"], "SupportedCommands": ["DisplayMessage"], "SupportsMediaControl": true});
    assert_eq!(post(&jf, "/Sessions/Capabilities/Full", Some(&me), Some(caps)).await.0, 204);
    let (_, _, sessions) = get(&jf, "/Sessions?deviceId=web-1", Some(&admin())).await;
    assert_eq!(sessions[0]["PlayableMediaTypes"], json!(["Audio", "Video"]), "enum names bind case-insensitively");
    assert_eq!(sessions[0]["SupportedCommands"], json!(["DisplayMessage"]));
    assert_eq!((sessions[0]["Capabilities"]["SupportsMediaControl"].as_bool(), sessions[0]["SupportsMediaControl"].as_bool()), (Some(true), Some(false)), "no websocket");
    assert_eq!(post(&jf, "/Sessions/Capabilities/Full", Some(&admin()), Some(json!({}))).await.0, 204, "an API key");

    // Display preferences: defaults for a new user; the id "usersettings" is GetMD5'd (the value
    // computed independently: Python's hashlib.md5 of the UTF-16LE text, uuid.UUID(bytes_le=)).
    let (st, _, prefs) = get(&jf, &format!("/DisplayPreferences/usersettings?userId={ann}&client=emby"), Some(&me)).await;
    assert_eq!(st, 200, "{prefs}");
    assert_eq!((prefs["Id"].as_str(), prefs["Client"].as_str()), (Some("3ce5b65d-e116-d731-65d1-efc4a30ec35c"), Some("emby")));
    assert_eq!((prefs["SortBy"].as_str(), prefs["CustomPrefs"]["skipForwardLength"].as_str(), prefs["ShowBackdrop"].as_bool()), (Some("SortName"), Some("30000"), Some(true)));
    assert!(prefs.get("IndexBy").is_none() && prefs["CustomPrefs"]["tvhome"].is_null());
    assert_eq!(get(&jf, "/DisplayPreferences/usersettings?client=emby", Some(&me)).await.2["Id"], prefs["Id"], "userId defaults to the caller");
    assert_eq!(get(&jf, &format!("/DisplayPreferences/usersettings?userId={ann}"), Some(&me)).await.0, 400, "client is required");
    assert_eq!(get(&jf, &format!("/DisplayPreferences/usersettings?userId={bob}&client=emby"), Some(&me)).await.0, 403);
    assert_eq!(get(&jf, "/DisplayPreferences/usersettings?client=emby", Some(&admin())).await.0, 500, "Guid.Empty breaks the foreign key");

    // User views: the libraries the policy allows, as a BaseItemDtoQueryResult.
    assert_eq!(get(&jf, &format!("/UserViews?userId={ann}"), Some(&me)).await.2, json!({"Items": [], "TotalRecordCount": 0, "StartIndex": 0}));
    let movies = jf.add_media_folder("Movies");
    let (_, _, views) = get(&jf, &format!("/UserViews?userId={ann}"), Some(&me)).await;
    assert_eq!((views["Items"][0]["Id"].as_str(), views["TotalRecordCount"].as_u64()), (Some(movies.as_str()), Some(1)));
    assert_eq!(views["Items"][0]["DisplayPreferencesId"], "016760419364d4fb5d2a4d2874104ee1", "GetMD5 of the CollectionFolder type name");
    assert_eq!(get(&jf, &format!("/Users/{ann}/Views"), Some(&me)).await.2, views, "the obsolete route");
    jf.update_policy(&ann, |p| {
        p.insert("EnableAllFolders".into(), json!(false));
    });
    assert_eq!(get(&jf, "/UserViews", Some(&me)).await.2["TotalRecordCount"], 0);
    assert_eq!(get(&jf, "/UserViews", Some(&admin())).await.0, 400, "an API key without userId");
    assert_eq!(get(&jf, &format!("/UserViews?userId={}", "ab".repeat(16)), Some(&admin())).await.0, 404);
    assert_eq!(get(&jf, &format!("/UserViews?userId={bob}"), Some(&me)).await.0, 403);

    // The bitrate probe: ArrayPool buckets, so the next power of two.
    let c = reqwest::Client::new();
    let probe = |q: &'static str| {
        let (c, url, me) = (c.clone(), format!("{}/Playback/BitrateTest{q}", jf.url()), me.clone());
        async move {
            let r = c.get(url).header("Authorization", me).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().len())
        }
    };
    assert_eq!(probe("?size=1000").await, (200, 1024));
    assert_eq!(probe("?size=1").await, (200, 16));
    assert_eq!(probe("").await, (200, 131_072), "size defaults to 102400");
    assert_eq!(probe("?size=0").await.0, 400);
    assert_eq!(probe("?size=100000001").await.0, 400);
    assert_eq!(probe("?size=lots").await.0, 400);
    assert_eq!(get(&jf, "/Playback/BitrateTest?size=10", None).await.0, 401);
}

#[tokio::test]
async fn branding_is_set_by_an_administrator() {
    for version in ["10.11.11", "10.10.7"] {
        let jf = JellyfinDouble::start(DoubleOptions { version: version.into(), ..Default::default() }).await;
        let ann = jf.add_user("ann", "pw", false);
        let t = quick_connect(&jf, "web-1", &ann, &admin()).await["AccessToken"].as_str().unwrap().to_string();
        let set = json!({"LoginDisclaimer": "Be nice", "CustomCss": "body { color: red }", "SplashscreenEnabled": true});
        assert_eq!(post(&jf, "/System/Configuration/branding", None, Some(set.clone())).await.0, 401);
        assert_eq!(post(&jf, "/System/Configuration/branding", Some(&with_token(&t)), Some(set.clone())).await.0, 403, "RequiresElevation");
        assert_eq!(post(&jf, "/System/Configuration/Branding", Some(&admin()), Some(set.clone())).await.0, 204);
        assert_eq!(get(&jf, "/Branding/Configuration", None).await.2, set, "{version}");
        assert_eq!(get(&jf, "/System/Configuration/branding", Some(&with_token(&t))).await.2, set);
        for css in ["/Branding/Css", "/Branding/Css.css"] {
            let (st, ct, body) = get(&jf, css, None).await;
            assert_eq!((st, ct.as_str(), body), (200, "text/css", json!("body { color: red }")));
        }
        // A value of the wrong type: model binding (400) from 10.11, an exception (500) before.
        let bad = post(&jf, "/System/Configuration/branding", Some(&admin()), Some(json!({"CustomCss": 5}))).await.0;
        assert_eq!(bad, if version == "10.11.11" { 400 } else { 500 });
        // The fields are replaced, not merged.
        assert_eq!(post(&jf, "/System/Configuration/branding", Some(&admin()), Some(json!({"CustomCss": "a{}"}))).await.0, 204);
        assert_eq!(get(&jf, "/Branding/Configuration", None).await.2, json!({"CustomCss": "a{}", "SplashscreenEnabled": false}));
    }
}

#[tokio::test]
async fn legacy_authorization_is_off_as_in_12_0() {
    // 12.0: ServerConfiguration.EnableLegacyAuthorization defaults to false (the double's default).
    let jf = JellyfinDouble::start(DoubleOptions { version: "12.0.0".into(), ..Default::default() }).await;
    let emby_scheme = format!("Emby Token=\"{KEY}\"");
    let legacy: [(&str, String); 4] = [
        ("X-Emby-Authorization", admin()),
        ("X-Emby-Token", KEY.to_string()),
        ("X-MediaBrowser-Token", KEY.to_string()),
        ("Authorization", emby_scheme),
    ];
    for (name, value) in &legacy {
        assert_eq!(get_with(&jf, "/Users", (name, value)).await, 401, "{name}: {value}");
    }
    assert_eq!(get(&jf, &format!("/Users?api_key={KEY}"), None).await.0, 401);
    assert_eq!(get(&jf, &format!("/Users?API_KEY={KEY}"), None).await.0, 401, "query keys are case-insensitive");
    assert_eq!(get(&jf, &format!("/Users?ApiKey={KEY}"), None).await.0, 200);
    assert_eq!(get(&jf, "/Users", Some(&admin())).await.0, 200);
    jf.set_legacy_auth(true);
    for (name, value) in &legacy {
        assert_eq!(get_with(&jf, "/Users", (name, value)).await, 200, "{name}: {value}");
    }
    assert_eq!(get(&jf, &format!("/Users?api_key={KEY}"), None).await.0, 200);
}
