//! OpenID Connect sign-in end to end, against a real OpenID Provider (npm `oidc-provider`),
//! the Jellyfin double, and the proxy, with a cookie-keeping HTTP client as the browser.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::browser::{completion_data, Browser, Page};
use support::hostile_op::{Forgery, HostileOp};
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::TestProxy;

const KEY: &str = "test-api-key";

struct Setup {
    jf: JellyfinDouble,
    op: OpenIdProvider,
    proxy: TestProxy,
}

fn account(login: &str, claims: Value) -> OpAccount {
    OpAccount { login: login.into(), password: "pw".into(), claims, userinfo_only: vec![] }
}

fn accounts() -> Vec<OpAccount> {
    vec![
        account("u-alice", json!({"preferred_username": "alice", "groups": ["jellyfin-users", "kids"]})),
        account("u-boss", json!({"preferred_username": "boss", "groups": ["jellyfin-admins"]})),
        account("u-mallory", json!({"preferred_username": "mallory", "groups": ["other"]})),
        account("u-nameless", json!({"groups": ["jellyfin-users"]})),
        OpAccount {
            login: "u-kc".into(),
            password: "pw".into(),
            claims: json!({"preferred_username": "kc", "realm_access": {"roles": ["jellyfin-users"]}}),
            userinfo_only: vec!["realm_access".into()],
        },
    ]
}

/// Start the double, the OP (with one client for provider `name`) and the proxy.
async fn setup(name: &str, auth_method: &str, par: bool, require_par: bool, provider_yaml: &str, sso_yaml: &str) -> Setup {
    setup_with(JellyfinDouble::start(DoubleOptions::default()).await, name, auth_method, par, require_par, provider_yaml, sso_yaml).await
}

async fn setup_with(jf: JellyfinDouble, name: &str, auth_method: &str, par: bool, require_par: bool, provider_yaml: &str, sso_yaml: &str) -> Setup {
    let listener = TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let op = OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient {
            client_id: "jellyfin".into(),
            client_secret: Some("jellyfin-secret".into()),
            redirect_uris: vec![format!("https://127.0.0.1:{port}/sso/OID/redirect/{name}")],
            auth_method: auth_method.into(),
            require_par,
        }],
        accounts: accounts(),
        par,
        ..Default::default()
    })
    .await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\n{sso_yaml}providers:\n  oid:\n    {name}:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: jellyfin-secret\n      tokenEndpointAuthMethod: {auth_method}\n      disableHttps: true\n{provider_yaml}",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &yaml).await;
    Setup { jf, op, proxy }
}

const GROUPS: &str = "      roleClaim: groups\n      oidScopes: [groups]\n      roles: [jellyfin-users]\n      adminRoles: [jellyfin-admins]\n      enableAuthorization: true\n      enableAllFolders: true\n";

fn is_callback(u: &str) -> bool {
    u.contains("/sso/OID/redirect/")
}

/// Start at the proxy, log in at the OP; returns the 3xx page whose Location is the callback.
async fn to_callback(b: &mut Browser, s: &Setup, provider: &str, login: &str) -> String {
    let page = b.follow(&s.proxy.url(&format!("/sso/OID/start/{provider}")), is_callback).await;
    // Logins (subjects) are `u-NAME`; preferred_username is NAME, so usernames never equal `sub`.
    let login = format!("u-{login}");
    let page = if page.status.is_redirection() { page } else { b.submit_form(&page, &[("login", login.as_str()), ("password", "pw")], is_callback).await };
    assert!(page.status.is_redirection(), "expected a redirect to the callback, got {} {}\n{}", page.status, page.url, page.body);
    support::browser::absolute(&page.url, page.headers["location"].to_str().unwrap())
}

/// The completion page's call, as its script makes it.
async fn complete(b: &mut Browser, proxy: &TestProxy, page: &Page, device_id: &str) -> Page {
    let data = completion_data(page);
    let body = json!({"deviceId": device_id, "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    b.post_json(&proxy.url(data["authUrl"].as_str().unwrap()), &body).await
}

async fn login(s: &Setup, provider: &str, login: &str, device_id: &str) -> Result<Value, Page> {
    let mut b = Browser::new();
    let cb = to_callback(&mut b, s, provider, login).await;
    let page = b.get(&cb).await;
    if page.status != 200 {
        return Err(page);
    }
    let done = complete(&mut b, &s.proxy, &page, device_id).await;
    if done.status != 200 {
        return Err(done);
    }
    assert!(b.cookie("__Host-jsp-session").is_some(), "session cookie set for token injection");
    Ok(serde_json::from_str(&done.body).unwrap())
}

#[tokio::test]
async fn admin_role_becomes_jellyfin_admin_and_token_is_minted_for_the_device() {
    let s = setup("test", "client_secret_basic", true, false, GROUPS, "").await;
    let r = login(&s, "test", "boss", "dev-boss").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Name"], "boss");
    assert!(!r["AccessToken"].as_str().unwrap().is_empty());
    assert_eq!(r["ServerId"], s.jf.server_id());
    let user = s.jf.user_by_name("boss").unwrap();
    assert_eq!(user["Policy"]["IsAdministrator"], true);
    assert_eq!(user["Policy"]["AuthenticationProviderId"], "Jellyfin.Server.Implementations.Users.InvalidAuthProvider");
    let sessions = s.jf.sessions();
    let session = sessions.iter().find(|x| x.token == r["AccessToken"].as_str().unwrap()).expect("session in the double");
    assert_eq!(session.device_id, "dev-boss");
    assert_eq!(session.user_id, user["Id"].as_str().unwrap());
}

#[tokio::test]
async fn plain_user_gets_exactly_the_mapped_folders() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let f1 = jf.add_media_folder("Movies");
    let f2 = jf.add_media_folder("Kids");
    let _f3 = jf.add_media_folder("Private");
    let mapping = format!(
        "      roleClaim: groups\n      oidScopes: [groups]\n      enableAuthorization: true\n      enableFolderRoles: true\n      folderRoleMapping:\n        - role: jellyfin-users\n          folders: [{f1}]\n        - role: kids\n          folders: [{f2}]\n        - role: other\n          folders: [0123456789abcdef0123456789abcdef]\n"
    );
    let s = setup_with(jf, "test", "client_secret_post", false, false, &mapping, "").await;
    login(&s, "test", "alice", "dev-a").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    let policy = &s.jf.user_by_name("alice").unwrap()["Policy"];
    assert_eq!(policy["EnableAllFolders"], false);
    let mut folders: Vec<String> = policy["EnabledFolders"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    folders.sort();
    let mut want = vec![f1, f2];
    want.sort();
    assert_eq!(folders, want);
    assert_eq!(policy["IsAdministrator"], false);
}

#[tokio::test]
async fn user_without_permitted_role_gets_401_and_no_user_is_created() {
    let s = setup("test", "client_secret_basic", true, false, GROUPS, "").await;
    let before = s.jf.user_count();
    let err = login(&s, "test", "mallory", "dev-m").await.expect_err("refused");
    assert_eq!(err.status, 401);
    assert!(err.body.contains("not allowed on this server"), "{}", err.body);
    assert_eq!(s.jf.user_count(), before);
    assert!(s.jf.user_by_name("mallory").is_none());
}

#[tokio::test]
async fn keycloak_style_roles_only_in_userinfo_are_read() {
    let s = setup("kc", "client_secret_basic", false, false, "      roleClaim: realm_access.roles\n      roles: [jellyfin-users]\n", "").await;
    let r = login(&s, "kc", "kc", "dev-kc").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Name"], "kc");
}

#[tokio::test]
async fn no_preferred_username_falls_back_to_sub() {
    let s = setup("test", "client_secret_basic", false, false, GROUPS, "").await;
    let r = login(&s, "test", "nameless", "dev-n").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Name"], "u-nameless", "the subject (the OP account's login) is the fallback");
}

#[tokio::test]
async fn par_required_with_basic_and_par_off_with_post_both_work() {
    let s = setup("test", "client_secret_basic", true, true, GROUPS, "").await;
    login(&s, "test", "alice", "d1").await.unwrap_or_else(|p| panic!("PAR+basic: {} {}", p.status, p.body));
    let s = setup("test", "client_secret_post", false, false, GROUPS, "").await;
    login(&s, "test", "alice", "d2").await.unwrap_or_else(|p| panic!("no PAR+post: {} {}", p.status, p.body));
}

#[tokio::test]
async fn existing_same_named_user_is_adopted_and_linked_but_not_an_admin() {
    let s = setup("test", "client_secret_basic", false, false, GROUPS, "").await;
    let alice_id = s.jf.add_user("alice", "old-password", false);
    let boss_id = s.jf.add_user("boss", "pw", true);
    let r = login(&s, "test", "alice", "d").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Id"], alice_id);
    let err = login(&s, "test", "boss", "d").await.expect_err("admin not adopted");
    assert_eq!(err.status, 403, "{}", err.body);
    assert_eq!(s.jf.user_by_name("boss").unwrap()["Id"], boss_id);
}

#[tokio::test]
async fn renamed_at_the_provider_still_reaches_the_same_user() {
    let s = setup("test", "client_secret_basic", false, false, GROUPS, "").await;
    let first = login(&s, "test", "alice", "d").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    s.op.set_claims("u-alice", json!({"preferred_username": "alice.renamed", "groups": ["jellyfin-users"]})).await;
    let second = login(&s, "test", "alice", "d").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(first["User"]["Id"], second["User"]["Id"]);
    assert!(s.jf.user_by_name("alice.renamed").is_none(), "no second user was created");
}

#[tokio::test]
async fn replayed_state_missing_cookie_and_expired_flow_are_rejected() {
    let s = setup("test", "client_secret_basic", false, false, GROUPS, "sso:\n  flow_ttl: 1s\n").await;
    // Replay: the same callback twice.
    let mut b = Browser::new();
    let cb = to_callback(&mut b, &s, "test", "alice").await;
    assert_eq!(b.get(&cb).await.status, 200);
    let replay = b.get(&cb).await;
    assert_eq!(replay.status, 400, "{}", replay.body);

    // No flow cookie: a callback delivered to another browser (login CSRF).
    let mut b = Browser::new();
    let cb = to_callback(&mut b, &s, "test", "alice").await;
    let mut other = Browser::new();
    let page = other.get(&cb).await;
    assert_eq!(page.status, 400, "{}", page.body);

    // Expired.
    let mut b = Browser::new();
    let cb = to_callback(&mut b, &s, "test", "alice").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page = b.get(&cb).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("expired") || page.body.contains("took too long"), "{}", page.body);
}

#[tokio::test]
async fn key_rotation_at_the_provider_is_followed() {
    let s = setup("test", "client_secret_basic", false, false, GROUPS, "").await;
    login(&s, "test", "alice", "d").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    s.op.rotate_keys().await;
    login(&s, "test", "alice", "d").await.unwrap_or_else(|p| panic!("after rotation: {} {}", p.status, p.body));
}

async fn hostile(forgery: Forgery) -> (Page, JellyfinDouble) {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(forgery, "jellyfin", "victim-sub").await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\nproviders:\n  oid:\n    evil:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n      doNotLoadProfile: true\n",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_config(&yaml).await;
    let mut b = Browser::new();
    let page = b.follow(&proxy.url("/sso/OID/start/evil"), |_| false).await;
    assert!(op.saw_nonce());
    (page, jf)
}

#[tokio::test]
async fn forged_id_tokens_are_refused() {
    let (page, _jf) = hostile(Forgery::Honest).await;
    assert_eq!(page.status, 200, "control: an honest token is accepted\n{}", page.body);
    for forgery in [Forgery::UnpublishedKey, Forgery::NoneAlg] {
        let (page, jf) = hostile(forgery).await;
        assert_eq!(page.status, 401, "{forgery:?}: {}", page.body);
        assert!(page.body.contains("could not be verified"), "{forgery:?}: {}", page.body);
        assert_eq!(jf.user_count(), 0);
    }
}

#[tokio::test]
async fn unknown_provider_is_404_and_the_10001st_pending_flow_is_503() {
    let (page, _jf) = hostile(Forgery::Honest).await;
    assert_eq!(page.status, 200);
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(Forgery::Honest, "jellyfin", "s").await;
    let yaml = format!(
        // One test client fills the global cap, so its own share must not stop it first.
        "jellyfin:\n  url: {}\n  api_key: {KEY}\nsso:\n  max_pending_flows_per_client: 100000\nproviders:\n  oid:\n    evil:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_config(&yaml).await;
    let client = support::http2_client();
    let r = client.get(proxy.url("/sso/OID/start/nope")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no sign-in provider"));
    let url = proxy.url("/sso/OID/start/evil");
    let mut ok = 0;
    for chunk in 0..100 {
        let futs = (0..100).map(|_| client.get(&url).send());
        for r in futures_util::future::join_all(futs).await {
            assert_eq!(r.unwrap().status(), 302, "chunk {chunk}");
            ok += 1;
        }
    }
    assert_eq!(ok, 10_000);
    let r = client.get(&url).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("Too many sign-ins"));
}

#[tokio::test]
async fn access_denied_idp_down_and_quick_connect_off_are_readable_errors() {
    // error=access_denied on the callback.
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(Forgery::Honest, "jellyfin", "someone").await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\nproviders:\n  oid:\n    p:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n      doNotLoadProfile: true\n",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_config(&yaml).await;
    let mut b = Browser::new();
    let start = b.get(&proxy.url("/sso/OID/start/p")).await;
    let to_idp = url::Url::parse(start.headers["location"].to_str().unwrap()).unwrap();
    let state = to_idp.query_pairs().find(|(k, _)| k == "state").unwrap().1.to_string();
    let page = b.get(&proxy.url(&format!("/sso/OID/redirect/p?state={state}&error=access_denied"))).await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("cancelled or refused"), "{}", page.body);

    // Quick Connect switched off in Jellyfin: the completion call explains it.
    jf.set_quick_connect_enabled(false);
    let page = b.follow(&proxy.url("/sso/OID/start/p"), |_| false).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let done = complete(&mut b, &proxy, &page, "dev").await;
    assert_eq!(done.status, 502, "{}", done.body);
    assert!(done.body.contains("Quick Connect"), "{}", done.body);
}

#[tokio::test]
async fn identity_provider_down_gives_a_502_page() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let port = support::free_port();
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\nproviders:\n  oid:\n    p:\n      oidEndpoint: http://127.0.0.1:{port}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n",
        jf.url()
    );
    let proxy = TestProxy::start_config(&yaml).await;
    let r = support::http1_client().get(proxy.url("/sso/OID/start/p")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("identity provider is not reachable"));
}

#[tokio::test]
async fn session_cookie_injects_the_token_only_into_credentialless_gets() {
    let s = setup("test", "client_secret_basic", false, false, GROUPS, "").await;
    let mut b = Browser::new();
    let cb = to_callback(&mut b, &s, "test", "alice").await;
    let page = b.get(&cb).await;
    let done = complete(&mut b, &s.proxy, &page, "dev-inject").await;
    assert_eq!(done.status, 200, "{}", done.body);
    let token = serde_json::from_str::<Value>(&done.body).unwrap()["AccessToken"].as_str().unwrap().to_string();

    let injected = |calls: Vec<jellyfin_double::RecordedCall>, path: &str| {
        calls.iter().rev().find(|c| c.path == path).and_then(|c| c.authorization.clone())
    };
    b.get(&s.proxy.url("/Users/Me")).await;
    assert_eq!(injected(s.jf.calls(), "/Users/Me"), Some(format!("MediaBrowser Token=\"{token}\"")));
    // Not for POST, not when the request has its own credentials, not without the cookie.
    b.request(reqwest::Method::POST, &s.proxy.url("/Sessions/Logout"), Some(&[]), None).await;
    assert_eq!(injected(s.jf.calls(), "/Sessions/Logout"), None);
    let own = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let cookie = format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").unwrap());
    own.get(s.proxy.url("/System/Info/Public")).header("cookie", &cookie).header("authorization", "MediaBrowser Token=\"mine\"").send().await.unwrap();
    assert_eq!(injected(s.jf.calls(), "/System/Info/Public"), Some("MediaBrowser Token=\"mine\"".into()));
    own.get(s.proxy.url("/Branding/Configuration")).send().await.unwrap();
    assert_eq!(injected(s.jf.calls(), "/Branding/Configuration"), None);
    // Same site is not same origin: a page on another port of this host, a websocket opened
    // from it, or a cross-site fetch gets nothing.
    let other = "https://127.0.0.1:9444";
    own.get(s.proxy.url("/Items/1")).header("cookie", &cookie).header("origin", other).send().await.unwrap();
    assert_eq!(injected(s.jf.calls(), "/Items/1"), None);
    own.get(s.proxy.url("/Items/2")).header("cookie", &cookie).header("sec-fetch-site", "same-site").send().await.unwrap();
    assert_eq!(injected(s.jf.calls(), "/Items/2"), None);
    let ws = own.get(s.proxy.url("/socket")).header("cookie", &cookie).header("origin", other).header("connection", "Upgrade").header("upgrade", "websocket")
        .header("sec-websocket-version", "13").header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==").send().await.unwrap();
    drop(ws);
    assert_eq!(injected(s.jf.calls(), "/socket"), None);
    // The proxy's own origin: injected, and the answer is private to this browser.
    let r = own.get(s.proxy.url("/Items/3")).header("cookie", &cookie).header("origin", s.proxy.url("")).header("sec-fetch-site", "same-origin").send().await.unwrap();
    assert_eq!(injected(s.jf.calls(), "/Items/3"), Some(format!("MediaBrowser Token=\"{token}\"")));
    assert!(r.headers()["cache-control"].to_str().unwrap().contains("private"));
    assert!(r.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Cookie")));
}

#[tokio::test]
async fn linking_flow_links_an_identity_to_the_signed_in_user() {
    let s = setup("test", "client_secret_basic", false, false, GROUPS, "").await;
    // A Jellyfin user with a password and a different name signs in to Jellyfin first.
    let dana = s.jf.add_user("dana", "pw", false);
    let token = support::jellyfin_password_login(&s.jf.url(), "dana", "pw").await.unwrap();
    // Linking: start with isLinking, log in at the OP as alice, and the completion page posts
    // to the Link endpoint with the user's own token.
    let mut b = Browser::new();
    let page = b.follow(&s.proxy.url("/sso/OID/start/test?isLinking=true"), is_callback).await;
    let page = b.submit_form(&page, &[("login", "u-alice"), ("password", "pw")], is_callback).await;
    let cb = support::browser::absolute(&page.url, page.headers["location"].to_str().unwrap());
    let page = b.get(&cb).await;
    let data = completion_data(&page);
    assert_eq!(data["linking"], true);
    let body = json!({"deviceId": "d", "data": data["handle"]});
    let link_url = s.proxy.url(&format!("{}{dana}", data["linkUrl"].as_str().unwrap()));
    let mut req = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap().post(&link_url).json(&body);
    req = req.header("cookie", format!("__Host-jsp-flow={}", b.cookie("__Host-jsp-flow").unwrap())).header("authorization", format!("MediaBrowser Token=\"{token}\""));
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The link is listed for dana, and the next SSO login as alice reaches dana.
    let links: Value = support::http1_client()
        .get(s.proxy.url(&format!("/sso/oid/links/{dana}")))
        .header("authorization", format!("MediaBrowser Token=\"{token}\""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(links, json!({"test": ["u-alice"]}));
    let r = login(&s, "test", "alice", "dev").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Id"], dana);
    assert!(s.jf.user_by_name("alice").is_none());
}

#[tokio::test]
async fn avatar_from_the_picture_claim_is_uploaded_at_login() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let picture = format!("{}/test/avatar.png", jf.url());
    let s = setup_with(jf, "test", "client_secret_basic", false, false, "      avatarUrlFormat: \"@{picture}\"\n", "").await;
    s.op.set_claims("u-alice", json!({"preferred_username": "alice", "picture": picture})).await;
    let r = login(&s, "test", "alice", "d").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    let id = r["User"]["Id"].as_str().unwrap();
    assert_eq!(s.jf.avatar(id).as_deref(), Some(jellyfin_double::TEST_AVATAR));
}

/// One client address cannot fill the pending-login cap for everyone: above
/// `max_pending_flows_per_client` its starts get 429 with Retry-After (before the provider
/// is contacted), while another client (behind a trusted proxy) still signs in.
#[tokio::test]
async fn one_client_cannot_lock_everyone_out_of_sign_in() {
    let s = setup("corp", "client_secret_basic", false, false, "", "trusted_proxies: [127.0.0.1/32]\nsso:\n  max_pending_flows_per_client: 3\n").await;
    let client = support::http1_client();
    let start = |ip: &'static str| client.get(s.proxy.url("/sso/OID/start/corp")).header("x-forwarded-for", ip).send();
    for _ in 0..3 {
        assert_eq!(start("10.0.0.1").await.unwrap().status(), 302);
    }
    let refused = start("10.0.0.1").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("location").is_none());
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    // Someone else, at the same moment: served.
    assert_eq!(start("10.0.0.2").await.unwrap().status(), 302);
    // And a whole sign-in from a third address goes through.
    login(&s, "corp", "alice", "dev-a").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
}
