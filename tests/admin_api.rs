//! The plugin's admin API through the proxy: every endpoint, every status code of the
//! seed's table with each kind of caller, persistence across restarts and `kill -9`.

mod support;

use serde_json::{json, Value};
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::{http1_client, jellyfin_password_login, TestProxy};

const KEY: &str = "test-api-key";

/// The example provider of the seed's API reference, field for field.
fn seed_provider() -> Value {
    json!({
        "oidEndpoint": "https://your-idp.example.com",
        "oidClientId": "jellyfin",
        "oidSecret": "your-client-secret",
        "enabled": true,
        "enableAuthorization": true,
        "enableAllFolders": false,
        "enabledFolders": [],
        "adminRoles": ["jellyfin-admins"],
        "roles": ["jellyfin-users"],
        "roleClaim": "groups",
        "oidScopes": ["groups"],
        "defaultUsernameClaim": "preferred_username",
        "avatarUrlFormat": "",
        "enableFolderRoles": false,
        "folderRoleMapping": [],
        "enableLiveTvRoles": false,
        "enableLiveTv": false,
        "enableLiveTvManagement": false,
        "liveTvRoles": [],
        "liveTvManagementRoles": [],
        "disableHttps": false,
        "disablePushedAuthorization": false,
        "doNotValidateEndpoints": false,
        "doNotValidateIssuerName": false,
        "doNotLoadProfile": false,
        "schemeOverride": "",
        "portOverride": null
    })
}

const FILE_PROVIDER: &str = "providers:\n  oid:\n    fromfile:\n      oidEndpoint: https://file-idp.example.com\n      oidClientId: jf\n      oidSecret: file-secret\n";

struct Callers {
    admin_token: String,
    user_token: String,
    user_id: String,
    other_id: String,
}

async fn callers(jf: &JellyfinDouble) -> Callers {
    jf.add_user("root", "rootpw", true);
    let user_id = jf.add_user("alice", "alicepw", false);
    let other_id = jf.add_user("bob", "bobpw", false);
    Callers {
        admin_token: jellyfin_password_login(&jf.url(), "root", "rootpw").await.unwrap(),
        user_token: jellyfin_password_login(&jf.url(), "alice", "alicepw").await.unwrap(),
        user_id,
        other_id,
    }
}

fn auth(token: &str) -> String {
    format!("MediaBrowser Token=\"{token}\"")
}

async fn call(method: reqwest::Method, url: String, token: Option<&str>, body: Option<Value>) -> (u16, String) {
    let mut b = http1_client().request(method, url).header("accept", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", auth(t));
    }
    if let Some(j) = body {
        b = b.json(&j);
    }
    let r = b.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn status_codes_for_every_kind_of_caller() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = callers(&jf).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, FILE_PROVIDER).await;
    use reqwest::Method as M;
    // (method, path, body, [none, invalid, user, admin, api key])
    let add = Some(seed_provider());
    let cases: Vec<(M, String, Option<Value>, [u16; 5])> = vec![
        (M::GET, "/sso/OID/GetNames".into(), None, [200, 200, 200, 200, 200]),
        (M::GET, "/sso/OID/Get".into(), None, [401, 401, 403, 200, 200]),
        (M::GET, "/sso/OID/States".into(), None, [401, 401, 403, 200, 200]),
        (M::POST, "/sso/OID/Add/added".into(), add.clone(), [401, 401, 403, 200, 200]),
        (M::GET, "/sso/OID/Del/nosuch".into(), None, [401, 401, 403, 404, 404]),
        (M::GET, format!("/sso/oid/links/{}", c.user_id), None, [401, 401, 200, 200, 200]),
        (M::GET, format!("/sso/oid/links/{}", c.other_id), None, [401, 401, 403, 200, 200]),
        (M::DELETE, format!("/sso/OID/Link/fromfile/{}/nobody", c.other_id), None, [401, 401, 403, 404, 404]),
        (M::POST, "/sso/Unregister/nosuchuser".into(), Some(json!("Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider")), [401, 401, 403, 404, 404]),
    ];
    for (method, path, body, want) in cases {
        let tokens = [None, Some("not-a-valid-token"), Some(c.user_token.as_str()), Some(c.admin_token.as_str()), Some(KEY)];
        for (i, token) in tokens.iter().enumerate() {
            let (status, text) = call(method.clone(), proxy.url(&path), *token, body.clone()).await;
            assert_eq!(status, want[i], "{method} {path} as caller #{i}: {text}");
        }
    }
}

#[tokio::test]
async fn add_get_roundtrips_the_seed_provider_with_the_secret_redacted() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, FILE_PROVIDER).await;
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/OID/Add/seed"), Some(KEY), Some(seed_provider())).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = call(reqwest::Method::GET, proxy.url("/sso/OID/Get"), Some(KEY), None).await;
    assert_eq!(s, 200);
    assert!(!body.contains("your-client-secret") && !body.contains("file-secret"), "secrets must not leave: {body}");
    let all: Value = serde_json::from_str(&body).unwrap();
    let got = &all["seed"];
    for (k, v) in seed_provider().as_object().unwrap() {
        match k.as_str() {
            "oidSecret" => assert_eq!(got[k], "********"),
            "oidEndpoint" => assert_eq!(got[k].as_str().unwrap().trim_end_matches('/'), v.as_str().unwrap()),
            _ => assert_eq!(&got[k], v, "field {k}"),
        }
    }
    assert!(all.get("fromfile").is_some());
    // GetNames lists enabled providers from the file and the API.
    let (_, names) = call(reqwest::Method::GET, proxy.url("/sso/OID/GetNames"), None, None).await;
    let names: Vec<String> = serde_json::from_str(&names).unwrap();
    assert_eq!(names, ["fromfile", "seed"]);
    // Get → Add round trip keeps the stored secret.
    let (s, _) = call(reqwest::Method::POST, proxy.url("/sso/OID/Add/seed"), Some(KEY), Some(got.clone())).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn malformed_input_is_400_naming_the_field_and_file_providers_are_409() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, FILE_PROVIDER).await;
    let mut bad = seed_provider();
    bad["enableAllFolders"] = json!("sometimes");
    bad["oidEndpoint"] = json!("not a url");
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/OID/Add/bad"), Some(KEY), Some(bad)).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("enableAllFolders") && body.contains("oidEndpoint"), "{body}");
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/OID/Add/bad"), Some(KEY), None).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/OID/Add/fromfile"), Some(KEY), Some(seed_provider())).await;
    assert_eq!(s, 409);
    assert!(body.contains("proxy.yaml"), "{body}");
    let (s, _) = call(reqwest::Method::GET, proxy.url("/sso/OID/Del/fromfile"), Some(KEY), None).await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn added_providers_survive_a_restart_and_del_removes_them() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, "").await;
    let (s, _) = call(reqwest::Method::POST, proxy.url("/sso/OID/Add/keep"), Some(KEY), Some(seed_provider())).await;
    assert_eq!(s, 200);
    let listener = TestProxy::reserve();
    let dir = proxy.stop_keep_dir().await;
    let proxy = TestProxy::start_on(listener, dir, &format!("jellyfin:\n  url: {}\n  api_key: {KEY}\n", jf.url())).await;
    let (_, names) = call(reqwest::Method::GET, proxy.url("/sso/OID/GetNames"), None, None).await;
    assert_eq!(names, "[\"keep\"]");
    let (s, _) = call(reqwest::Method::GET, proxy.url("/sso/OID/Del/keep"), Some(KEY), None).await;
    assert_eq!(s, 200);
    let (_, names) = call(reqwest::Method::GET, proxy.url("/sso/OID/GetNames"), None, None).await;
    assert_eq!(names, "[]");
}

#[tokio::test]
async fn unregister_changes_only_the_authentication_provider() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let id = jf.add_user("carol", "pw", false);
    let before = jf.user_policy(&id).unwrap();
    let proxy = TestProxy::start_sso(&jf.url(), KEY, "").await;
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/Unregister/carol"), Some(KEY), Some(json!("Custom.Provider"))).await;
    assert_eq!(s, 200, "{body}");
    let after = jf.user_policy(&id).unwrap();
    assert_eq!(after["AuthenticationProviderId"], "Custom.Provider");
    let (mut b, mut a) = (before.as_object().unwrap().clone(), after.as_object().unwrap().clone());
    b.remove("AuthenticationProviderId");
    a.remove("AuthenticationProviderId");
    assert_eq!(a, b, "every other policy field is kept");
}

#[tokio::test]
async fn kill_9_during_writes_keeps_every_acknowledged_write() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..6 {
        let mut proc = support::ProxyProcess::start(dir.path(), &jf.url(), &format!("  api_key: {KEY}\n")).await;
        let url = proc.url("");
        // The database reopens after every kill and holds every acknowledged write.
        let (s, body) = call(reqwest::Method::GET, format!("{url}/sso/OID/Get"), Some(KEY), None).await;
        assert_eq!(s, 200, "{body}");
        let stored: Value = serde_json::from_str(&body).unwrap();
        for name in &acknowledged {
            assert!(stored.get(name).is_some(), "acknowledged {name} lost before round {round}");
        }
        if round == 5 {
            break;
        }
        let writer = tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..1000 {
                let name = format!("p{round}x{i}");
                let r = http1_client()
                    .post(format!("{url}/sso/OID/Add/{name}"))
                    .header("authorization", auth(KEY))
                    .json(&seed_provider())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => done.push(name),
                    _ => break,
                }
            }
            done
        });
        tokio::time::sleep(std::time::Duration::from_millis(150 + 70 * round)).await;
        proc.signal("KILL");
        let _ = proc.child.wait().await;
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(acknowledged.len() > 5, "the loop must actually write ({})", acknowledged.len());
}

fn saml_provider() -> Value {
    let cert = rcgen::generate_simple_self_signed(vec!["idp.example.com".to_string()]).unwrap().cert.pem();
    json!({
        "samlEndpoint": "https://idp.example.com/sso",
        "samlClientId": "jellyfin-proxy",
        "samlIdpEntityId": "https://idp.example.com/metadata",
        "samlCertificate": cert,
        "enabled": true,
        "roles": ["media"],
        "adminRoles": ["admins"],
        "roleAttribute": "groups",
    })
}

#[tokio::test]
async fn saml_providers_add_get_names_del_and_file_conflict() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let file = saml_provider();
    let file_yaml = format!(
        "providers:\n  saml:\n    fromfile:\n      samlEndpoint: https://f.example.com/sso\n      samlClientId: jf\n      samlIdpEntityId: f\n      samlCertificate: {}\n",
        serde_json::to_string(file["samlCertificate"].as_str().unwrap()).unwrap()
    );
    let proxy = TestProxy::start_sso(&jf.url(), KEY, &file_yaml).await;
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/SAML/Add/corp"), Some(KEY), Some(saml_provider())).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = call(reqwest::Method::GET, proxy.url("/sso/SAML/Get"), Some(KEY), None).await;
    assert_eq!(s, 200);
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["corp"]["samlClientId"], "jellyfin-proxy");
    assert_eq!(all["corp"]["roleAttribute"], "groups");
    assert_eq!(all["corp"]["roles"], json!(["media"]));
    // What Get returns is accepted by Add again.
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/SAML/Add/corp"), Some(KEY), Some(all["corp"].clone())).await;
    assert_eq!(s, 200, "{body}");
    let (_, names) = call(reqwest::Method::GET, proxy.url("/sso/SAML/GetNames"), None, None).await;
    assert_eq!(names, r#"["corp","fromfile"]"#);
    let (s, _) = call(reqwest::Method::GET, proxy.url("/sso/SAML/Get"), Some("not-a-token"), None).await;
    assert_eq!(s, 401);
    // Unsigned SAML is never accepted: a provider without a certificate is refused.
    let mut no_cert = saml_provider();
    no_cert.as_object_mut().unwrap().remove("samlCertificate");
    let (s, body) = call(reqwest::Method::POST, proxy.url("/sso/SAML/Add/bad"), Some(KEY), Some(no_cert)).await;
    assert_eq!(s, 400);
    assert!(body.contains("samlCertificate"), "{body}");
    let (s, _) = call(reqwest::Method::GET, proxy.url("/sso/SAML/Del/fromfile"), Some(KEY), None).await;
    assert_eq!(s, 409);
    let (s, _) = call(reqwest::Method::GET, proxy.url("/sso/SAML/Del/corp"), Some(KEY), None).await;
    assert_eq!(s, 200);
    let (_, names) = call(reqwest::Method::GET, proxy.url("/sso/SAML/GetNames"), None, None).await;
    assert_eq!(names, r#"["fromfile"]"#);
}

#[tokio::test]
async fn users_remove_their_own_links_but_not_others() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let c = callers(&jf).await;
    let listener = TestProxy::reserve();
    let dir = tempfile::tempdir().unwrap();
    // Links made by earlier logins, in the state file.
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let state = json!({"version": 1, "links": [
        {"mode": "Oid", "provider": "corp", "canonicalName": "sub-a", "userId": c.user_id, "linkedAt": 0},
        {"mode": "Oid", "provider": "corp", "canonicalName": "sub-b", "userId": c.other_id, "linkedAt": 0}
    ]});
    std::fs::write(dir.path().join("data/state.json"), state.to_string()).unwrap();
    let proxy = TestProxy::start_on(listener, dir, &format!("jellyfin:\n  url: {}\n  api_key: {KEY}\n", jf.url())).await;
    let (s, body) = call(reqwest::Method::GET, proxy.url(&format!("/sso/oid/links/{}", c.user_id)), Some(&c.user_token), None).await;
    assert_eq!((s, body.as_str()), (200, r#"{"corp":["sub-a"]}"#));
    let (s, _) = call(reqwest::Method::DELETE, proxy.url(&format!("/sso/oid/Link/corp/{}/sub-b", c.other_id)), Some(&c.user_token), None).await;
    assert_eq!(s, 403, "a user cannot remove another user's link");
    let (s, _) = call(reqwest::Method::DELETE, proxy.url(&format!("/sso/OID/Link/corp/{}/sub-a", c.user_id)), Some(&c.user_token), None).await;
    assert_eq!(s, 200);
    let (_, body) = call(reqwest::Method::GET, proxy.url(&format!("/sso/oid/links/{}", c.user_id)), Some(&c.user_token), None).await;
    assert_eq!(body, "{}");
    let (s, _) = call(reqwest::Method::DELETE, proxy.url(&format!("/sso/oid/Link/corp/{}/sub-b", c.other_id)), Some(&c.admin_token), None).await;
    assert_eq!(s, 200, "an administrator can");
}
