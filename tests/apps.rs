//! Every Jellyfin app signs in with SSO: device linking at `/sso/link` (a real Jellyfin client
//! library, the official TypeScript SDK, as the TV, and headless Chromium at the real OpenID
//! Provider as the phone), its bad inputs and guessing limit, and app passwords (made through
//! the API, used by the SDK at Jellyfin's password endpoint, revoked).

mod support;

use serde_json::{json, Value};
use support::apps::{completion_of, initiate, link_page, password_login, sign_in_at, start, Apps};
use support::browser::Browser;

async fn sdk(s: &Apps, envs: &[(&str, &str)]) -> Value {
    sdk_at(&s.proxy.url(""), envs).await
}

async fn sdk_at(proxy_url: &str, envs: &[(&str, &str)]) -> Value {
    let mut all = vec![("PROXY_URL", proxy_url.to_string())];
    all.extend(envs.iter().map(|(k, v)| (*k, v.to_string())));
    support::node::run(&support::node::idp_dir().join("jellyfin-sdk.mjs"), &all, None, "SDK_RESULT").await
}

#[tokio::test]
async fn a_tv_signs_in_with_a_code_entered_in_chromium() {
    let s = start("").await;
    let r = sdk(&s, &[("MODE", "tv-link"), ("DEVICE_ID", "tv-1"), ("LOGIN", "u-alice"), ("PASSWORD", "pw")]).await;
    assert!(r.get("error").is_none(), "{r:#}");
    assert_eq!(r["providerButtons"], json!(["/sso/link/start/OID/corp"]));
    assert_eq!(r["formAction"], "/sso/link");
    assert_eq!(r["wrongOutcome"], "Unknown", "a wrong code gets a readable page");
    assert_eq!(r["outcome"], "Linked", "{r:#}");
    assert_eq!(r["stateAfter"], true);
    assert_eq!(r["me"]["name"], "alice", "the TV reads /Users/Me through the proxy with its own token");
    let tv = s.jf.sessions().into_iter().find(|x| x.token == r["token"].as_str().unwrap()).expect("the double issued the TV's token");
    assert_eq!(tv.device_id, "tv-1");
    assert_eq!(tv.client, "Jellyfin Android TV");
    let alice = s.jf.user_id("alice").unwrap();
    let mint = s.proxy.app.sso.state().durable.mint(&alice, "tv-1").await.unwrap().expect("the mint is recorded");
    assert_eq!((mint.how.as_str(), mint.provider.as_str(), mint.subject.as_str()), ("device-link", "corp", "u-alice"));
    assert_eq!(mint.device_name.as_deref(), Some("Living room TV"));
}

/// The same with a SAML provider: the real IdP (npm `samlify`) posts to the ACS cross-site,
/// and the completion page returns to `/sso/link`.
#[tokio::test]
async fn a_tv_signs_in_with_a_code_after_a_saml_sign_in() {
    use support::saml_idp::{saml_setup, SamlAccount};
    let account = SamlAccount { login: "sam".into(), password: "pw".into(), name_id: "sam@idp".into(), attributes: json!({"Role": ["media"]}) };
    let s = saml_setup("corp", "both", vec![account], "      roles: [media]\n").await;
    let r = sdk_at(&s.proxy.url(""), &[("MODE", "tv-link"), ("DEVICE_ID", "tv-2"), ("LOGIN", "sam"), ("PASSWORD", "pw")]).await;
    assert!(r.get("error").is_none(), "{r:#}");
    assert_eq!(r["providerButtons"], json!(["/sso/link/start/SAML/corp"]));
    assert_eq!(r["outcome"], "Linked", "{r:#}");
    assert_eq!(r["me"]["name"], "sam@idp");
    let user = s.jf.user_id("sam@idp").unwrap();
    let mint = s.proxy.app.sso.state().durable.mint(&user, "tv-2").await.unwrap().expect("recorded");
    assert_eq!((mint.how.as_str(), mint.protocol.as_str()), ("device-link", "saml"));
}

#[tokio::test]
async fn the_link_flow_returns_to_the_link_page_and_the_qr_code_names_it() {
    let s = start("").await;
    assert_eq!(completion_of(&s, "/sso/link/start/OID/corp", "u-alice").await["next"], "/sso/link");
    assert_eq!(completion_of(&s, "/sso/OID/start/corp", "u-alice").await["next"], "/web/index.html");
    let anonymous = Browser::new().get(&s.proxy.url("/sso/link?next=https://evil.example/")).await;
    assert!(anonymous.body.contains("href=\"/sso/link/start/OID/corp\"") && !anonymous.body.contains("evil"), "{}", anonymous.body);
    let qr = Browser::new().get(&s.proxy.url("/sso/link/qr.svg")).await;
    assert_eq!(qr.status, 200);
    assert_eq!(qr.headers["content-type"], "image/svg+xml");
    assert!(qr.body.contains("<svg") && qr.body.contains("<path"), "{}", qr.body);
}

async fn post_form(b: &mut Browser, url: &str, fields: &[(&str, &str)]) -> support::browser::Page {
    let f: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    b.request(reqwest::Method::POST, url, Some(&f), None).await
}

#[tokio::test]
async fn bad_codes_csrf_and_the_guessing_limit() {
    let s = start("").await;
    let (mut b, _) = sign_in_at(&s, "/sso/link/start/OID/corp", "u-alice", "phone-1").await;
    let form = link_page(&mut b, &s).await;
    let (mut other, _) = sign_in_at(&s, "/sso/link/start/OID/corp", "u-bob", "phone-2").await;
    let other_form = link_page(&mut other, &s).await;
    s.jf.clear_calls();
    let qc_calls = |s: &Apps| s.jf.calls().iter().filter(|c| c.path.eq_ignore_ascii_case("/QuickConnect/Authorize")).count();
    for bad in ["12345", "1234567", "12a456", ""] {
        let p = b.submit_form(&form, &[("code", bad)], |_| false).await;
        assert_eq!(p.status, 400, "{bad}");
        assert!(p.body.contains("exactly 6 digits"));
    }
    assert_eq!(qc_calls(&s), 0, "malformed codes never reach Jellyfin");
    // Without the anti-CSRF field, with another session's, or without a session: 403.
    let url = s.proxy.url("/sso/link");
    assert_eq!(post_form(&mut b, &url, &[("code", "123456")]).await.status, 403);
    let other_csrf = other_form.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert_eq!(post_form(&mut b, &url, &[("code", "123456"), ("csrf", other_csrf.as_str())]).await.status, 403);
    assert_eq!(post_form(&mut Browser::new(), &url, &[("code", "123456"), ("csrf", other_csrf.as_str())]).await.status, 403);
    assert_eq!(qc_calls(&s), 0);
    // Five wrong codes are answered; the sixth attempt is refused before Jellyfin is asked.
    for _ in 0..5 {
        let p = b.submit_form(&form, &[("code", "000000")], |_| false).await;
        assert_eq!(p.status, 404);
        assert!(p.body.contains("unknown or has expired"), "{}", p.body);
    }
    let qc = initiate(&s.jf, "tv-9").await;
    let p = b.submit_form(&form, &[("code", qc["Code"].as_str().unwrap())], |_| false).await;
    assert_eq!(p.status, 429);
    let retry: u64 = p.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 500 && retry <= 600, "{retry}");
    assert_eq!(qc_calls(&s), 5, "the refused attempt did not reach Jellyfin");
    // The limit is per client address too: bob, another session from the same address, waits.
    let p = other.submit_form(&other_form, &[("code", qc["Code"].as_str().unwrap())], |_| false).await;
    assert_eq!(p.status, 429);
    assert_eq!(qc_calls(&s), 5);
}

/// `POST /sso/link` as the browser holding `b`'s session, from client address `xff`.
async fn link_from(s: &Apps, b: &Browser, csrf: &str, code: &str, xff: &str) -> u16 {
    let cookie = format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").unwrap());
    let r = support::http1_client().post(s.proxy.url("/sso/link")).header("Cookie", cookie).header("X-Forwarded-For", xff).form(&[("code", code), ("csrf", csrf)]).send().await.unwrap();
    r.status().as_u16()
}

fn csrf_of(form: &support::browser::Page) -> String {
    form.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn the_guessing_limit_is_per_session_and_per_address() {
    let s = start("trusted_proxies: [127.0.0.1/32]\n").await;
    let (mut alice, _) = sign_in_at(&s, "/sso/link/start/OID/corp", "u-alice", "phone-1").await;
    let (mut bob, _) = sign_in_at(&s, "/sso/link/start/OID/corp", "u-bob", "phone-2").await;
    let (a, b) = (csrf_of(&link_page(&mut alice, &s).await), csrf_of(&link_page(&mut bob, &s).await));
    for _ in 0..5 {
        assert_eq!(link_from(&s, &alice, &a, "000000", "1.1.1.1").await, 404);
    }
    assert_eq!(link_from(&s, &alice, &a, "000000", "1.1.1.1").await, 429);
    assert_eq!(link_from(&s, &alice, &a, "000000", "2.2.2.2").await, 429, "the session is limited from any address");
    assert_eq!(link_from(&s, &bob, &b, "000000", "2.2.2.2").await, 404, "another session from another address is not");
    assert_eq!(link_from(&s, &bob, &b, "000000", "1.1.1.1").await, 429, "the address is limited for any session");
}

#[tokio::test]
async fn a_refused_role_authorizes_nothing() {
    let s = start("").await;
    let mut b = Browser::new();
    let is_callback = |u: &str| u.contains("/sso/OID/redirect/");
    let page = b.follow(&s.proxy.url("/sso/link/start/OID/corp"), is_callback).await;
    let page = b.submit_form(&page, &[("login", "u-mallory"), ("password", "pw")], is_callback).await;
    let cb = support::browser::absolute(&page.url, page.headers["location"].to_str().unwrap());
    assert_eq!(b.get(&cb).await.status, 401, "the role gate refuses mallory");
    let p = b.get(&s.proxy.url("/sso/link")).await;
    assert!(!p.body.contains("name=\"code\""), "no session, no code form");
}

async fn make_password(s: &Apps, token: &str, name: &str) -> (u16, Value) {
    let r = support::http1_client()
        .post(s.proxy.url("/sso/app-passwords"))
        .header("Authorization", format!("MediaBrowser Token=\"{token}\""))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn app_passwords_sign_in_a_real_client_and_revoking_signs_it_out() {
    let s = start("").await;
    let (mut b, auth) = sign_in_at(&s, "/sso/OID/start/corp", "u-alice", "web-1").await;
    let token = auth["AccessToken"].as_str().unwrap().to_string();
    let (st, made) = make_password(&s, &token, "Infuse").await;
    assert_eq!(st, 200, "{made}");
    let pw = made["password"].as_str().unwrap().to_string();
    assert!(pw.len() >= 43 + 4, "at least 256 random bits in base64");
    // The list (by the browser session this time) has no secret.
    let page = b.get(&s.proxy.url("/sso/app-passwords")).await;
    assert!(page.status == 200 && page.body.contains("<h1>App passwords</h1>"), "a browser gets the page");
    let cookie = format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").expect("session cookie"));
    let list = support::http1_client().get(s.proxy.url("/sso/app-passwords")).header("Cookie", cookie).header("Accept", "application/json").send().await.unwrap();
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list[0]["name"], "Infuse");
    assert!(!list.to_string().contains(&pw[20..]), "no secret in the list");
    // The SDK signs in with it; the double never saw the app password.
    s.jf.clear_calls();
    let r = sdk(&s, &[("MODE", "password"), ("DEVICE_ID", "ipad-1"), ("USERNAME", "Alice"), ("PW", pw.as_str())]).await;
    assert!(r.get("error").is_none(), "{r:#}");
    assert_eq!(r["me"]["name"], "alice");
    assert_eq!(r["sessionDevice"], "ipad-1");
    assert!(s.jf.calls().iter().all(|c| !c.path.eq_ignore_ascii_case("/Users/AuthenticateByName")));
    let alice = s.jf.user_id("alice").unwrap();
    let mint = s.proxy.app.sso.state().durable.mint(&alice, "ipad-1").await.unwrap().unwrap();
    assert_eq!((mint.how.as_str(), mint.app_password_id.as_deref()), ("app-password", made["id"].as_str()));
    let listed = s.proxy.app.sso.state().durable.app_password(made["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert!(listed.last_used_at.is_some() && listed.last_device.as_deref() == Some("Living room TV"));
    // A wrong password goes to Jellyfin, which refuses it.
    let wrong = format!("{}{}", &pw[..pw.len() - 1], if pw.ends_with('A') { 'B' } else { 'A' });
    let r = sdk(&s, &[("MODE", "password"), ("USERNAME", "alice"), ("PW", wrong.as_str())]).await;
    assert_eq!(r["status"], 401, "{r:#}");
    assert!(s.jf.calls().iter().any(|c| c.path.eq_ignore_ascii_case("/Users/AuthenticateByName")), "the wrong password reached the double");
    // Revoke: the device is gone from Jellyfin and the password no longer works.
    let del = support::http1_client()
        .delete(s.proxy.url(&format!("/sso/app-passwords/{}", made["id"].as_str().unwrap())))
        .header("Authorization", format!("MediaBrowser Token=\"{token}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert!(s.jf.sessions().iter().all(|x| x.device_id != "ipad-1"), "the device it minted is deleted");
    let (st, _, _) = password_login(&s, "/Users/AuthenticateByName", "alice", &pw, "1.1.1.1", "ipad-1").await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn app_password_rules_who_may_and_how_many() {
    let s = start("").await;
    let (_, alice) = sign_in_at(&s, "/sso/OID/start/corp", "u-alice", "web-1").await;
    let (_, bob) = sign_in_at(&s, "/sso/OID/start/corp", "u-bob", "web-2").await;
    let (alice_t, bob_t) = (alice["AccessToken"].as_str().unwrap(), bob["AccessToken"].as_str().unwrap());
    assert_eq!(make_password(&s, alice_t, "").await.0, 400);
    assert_eq!(make_password(&s, alice_t, "a").await.0, 200);
    let (_, second) = make_password(&s, alice_t, "b").await;
    assert_eq!(make_password(&s, alice_t, "c").await.0, 409, "maxAppPasswords: 2");
    let client = support::http1_client();
    let as_bob = |m: reqwest::Method, path: &str| client.request(m, s.proxy.url(path)).header("Authorization", format!("MediaBrowser Token=\"{bob_t}\"")).header("Accept", "application/json");
    let alice_id = s.jf.user_id("alice").unwrap();
    assert_eq!(as_bob(reqwest::Method::GET, &format!("/sso/app-passwords?userId={alice_id}")).send().await.unwrap().status(), 403);
    let del = as_bob(reqwest::Method::DELETE, &format!("/sso/app-passwords/{}", second["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(del.status(), 404, "bob cannot see alice's password");
    let none = client.get(s.proxy.url("/sso/app-passwords")).header("Accept", "application/json").send().await.unwrap();
    assert_eq!(none.status(), 401);
    // The API key (an administrator) lists and revokes anyone's.
    let admin = |m: reqwest::Method, path: &str| client.request(m, s.proxy.url(path)).header("Authorization", format!("MediaBrowser Token=\"{}\"", support::apps::KEY)).header("Accept", "application/json");
    let list: Value = admin(reqwest::Method::GET, &format!("/sso/app-passwords?userId={alice_id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(admin(reqwest::Method::GET, "/sso/app-passwords").send().await.unwrap().status(), 400, "an API key names the user");
    let for_alice = admin(reqwest::Method::POST, &format!("/sso/app-passwords?userId={alice_id}")).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(for_alice.status(), 403, "nobody makes another user's password");
    assert_eq!(admin(reqwest::Method::DELETE, &format!("/sso/app-passwords/{}", second["id"].as_str().unwrap())).send().await.unwrap().status(), 200);
    // Removing alice's last link takes her app passwords along.
    let unlink = admin(reqwest::Method::DELETE, &format!("/sso/OID/Link/corp/{alice_id}/u-alice")).send().await.unwrap();
    assert_eq!(unlink.status(), 200);
    assert!(s.proxy.app.sso.state().durable.app_passwords_of_user(&alice_id).await.unwrap().is_empty());
    // Unregister takes them along too.
    assert_eq!(make_password(&s, bob_t, "tv").await.0, 200);
    let bob_id = s.jf.user_id("bob").unwrap();
    let unregister = admin(reqwest::Method::POST, "/sso/Unregister/bob").json(&json!("Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider")).send().await.unwrap();
    assert_eq!(unregister.status(), 200);
    assert!(s.proxy.app.sso.state().durable.app_passwords_of_user(&bob_id).await.unwrap().is_empty());
}
