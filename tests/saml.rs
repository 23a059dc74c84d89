//! SAML sign-in end to end against a real SAML identity provider (npm `samlify`, see
//! `tests/idp/saml-idp.mjs`), the Jellyfin double and the proxy, with a cookie-keeping HTTP
//! client as the browser: start → IdP login form → auto-posted response → completion page →
//! `Auth` → the web client's requests carry the minted token.

mod support;

use serde_json::{json, Value};
use support::browser::{completion_data, Browser, Page};
use support::saml_idp::{saml_setup, SamlAccount, SamlSetup};

fn accounts() -> Vec<SamlAccount> {
    let account = |login: &str, name_id: &str, roles: &[&str]| SamlAccount {
        login: login.into(),
        password: "pw".into(),
        name_id: name_id.into(),
        attributes: json!({ "Role": roles, "uid": login }),
    };
    vec![
        account("olga", "olga@idp", &["media"]),
        account("pete", "pete@idp", &["media", "media-admins"]),
        account("quinn", "quinn@idp", &["guests"]),
    ]
}

const RULES: &str = "      usernameAttribute: uid\n      roles: [media]\n      adminRoles: [media-admins]\n      enableAuthorization: true\n      enableAllFolders: true\n";

fn at_idp(u: &str) -> bool {
    u.starts_with("http://127.0.0.1:") && u.contains("/sso?SAMLRequest=")
}

/// From the start URL to the completion page (or the error page the ACS answers).
async fn to_completion(b: &mut Browser, s: &SamlSetup, start: &str, login: &str) -> Page {
    let page = b.follow(&s.proxy.url(start), |_| false).await;
    assert_eq!(page.status, 200, "the IdP's login form: {}", page.body);
    assert!(at_idp(&page.url), "{}", page.url);
    let posted = b.submit_form(&page, &[("login", login), ("password", "pw")], |_| false).await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert!(posted.body.contains("name=\"SAMLResponse\""), "the IdP's auto-post form: {}", posted.body);
    // The auto-submitting form, submitted as the browser's script would.
    b.submit_form(&posted, &[], |_| false).await
}

async fn auth(b: &mut Browser, s: &SamlSetup, page: &Page, device: &str) -> Page {
    let data = completion_data(page);
    let body = json!({"deviceId": device, "deviceName": "Firefox", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    b.post_json(&s.proxy.url(data["authUrl"].as_str().unwrap()), &body).await
}

#[tokio::test]
async fn full_login_with_a_real_idp_ends_signed_in_at_the_web_client() {
    let s = saml_setup("corp", "response", accounts(), RULES).await;
    let mut b = Browser::new();
    let page = to_completion(&mut b, &s, "/sso/SAML/start/corp", "pete").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let data = completion_data(&page);
    assert_eq!(data["authUrl"], "/sso/SAML/Auth/corp");
    let done = auth(&mut b, &s, &page, "dev-pete").await;
    assert_eq!(done.status, 200, "{}", done.body);
    let r: Value = serde_json::from_str(&done.body).unwrap();
    assert_eq!(r["User"]["Name"], "pete");
    let token = r["AccessToken"].as_str().unwrap().to_string();
    let session = s.jf.sessions().into_iter().find(|x| x.token == token).expect("minted by the double");
    assert_eq!(session.device_id, "dev-pete");
    let user = s.jf.user_by_name("pete").unwrap();
    assert_eq!(user["Policy"]["IsAdministrator"], true, "media-admins is an admin role");
    assert_eq!(user["Policy"]["AuthenticationProviderId"], "Jellyfin.Server.Implementations.Users.InvalidAuthProvider");

    // The web client loads and its API calls carry the minted token.
    let web = b.get(&s.proxy.url("/web/index.html")).await;
    assert_eq!(web.status, 200);
    assert!(web.body.contains("Jellyfin Web Double"));
    b.get(&s.proxy.url("/Users/Me")).await;
    let call = s.jf.calls().into_iter().rev().find(|c| c.path == "/Users/Me").expect("proxied");
    assert_eq!(call.authorization, Some(format!("MediaBrowser Token=\"{token}\"")));
}

#[tokio::test]
async fn assertion_signed_and_both_signed_idps_work_too() {
    for sign in ["assertion", "both"] {
        let s = saml_setup("corp", sign, accounts(), RULES).await;
        let mut b = Browser::new();
        let page = to_completion(&mut b, &s, "/sso/SAML/p/corp", "olga").await;
        assert_eq!(page.status, 200, "{sign}: {}", page.body);
        let done = auth(&mut b, &s, &page, "dev-olga").await;
        assert_eq!(done.status, 200, "{sign}: {}", done.body);
        let user = s.jf.user_by_name("olga").unwrap();
        assert_eq!(user["Policy"]["IsAdministrator"], false);
    }
}

#[tokio::test]
async fn a_user_without_a_permitted_role_is_refused_and_not_created() {
    let s = saml_setup("corp", "response", accounts(), RULES).await;
    let mut b = Browser::new();
    let page = to_completion(&mut b, &s, "/sso/SAML/start/corp", "quinn").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("not allowed on this server"), "{}", page.body);
    assert!(s.jf.user_by_name("quinn").is_none());
    assert_eq!(s.jf.user_count(), 0);
}

/// The same identity signs in to the same account next time, through its link (the NameID),
/// even after its username attribute changed at the IdP.
#[tokio::test]
async fn second_login_uses_the_link() {
    let s = saml_setup("corp", "response", accounts(), "      roles: [media]\n").await;
    for _ in 0..2 {
        let mut b = Browser::new();
        let page = to_completion(&mut b, &s, "/sso/SAML/start/corp", "olga").await;
        assert_eq!(auth(&mut b, &s, &page, "dev-o").await.status, 200);
    }
    assert_eq!(s.jf.user_count(), 1);
    let olga = s.jf.user_id("olga@idp").expect("the NameID is the username");
    let links = s.proxy.app.sso.state().durable.links_of_user(&olga).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].subject, "olga@idp");
}

/// Linking (issue #6, SAML side): a signed-in Jellyfin user starts with `isLinking=true`; the
/// flow (found again through RelayState) ends at the Link endpoint with the user's own token.
#[tokio::test]
async fn linking_flow_links_the_saml_identity_to_the_signed_in_user() {
    let s = saml_setup("corp", "response", accounts(), "").await;
    let dana = s.jf.add_user("dana", "pw", false);
    let token = support::jellyfin_password_login(&s.jf.url(), "dana", "pw").await.unwrap();
    let mut b = Browser::new();
    let page = to_completion(&mut b, &s, "/sso/SAML/start/corp?isLinking=true", "olga").await;
    let data = completion_data(&page);
    assert_eq!(data["linking"], true);
    // A linking handle cannot be used to sign in.
    let misuse = auth(&mut b, &s, &page, "d").await;
    assert_eq!(misuse.status, 400, "{}", misuse.body);

    let page = to_completion(&mut b, &s, "/sso/SAML/start/corp?isLinking=true", "olga").await;
    let data = completion_data(&page);
    let link_url = s.proxy.url(&format!("{}{dana}", data["linkUrl"].as_str().unwrap()));
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let r = client
        .post(&link_url)
        .header("cookie", format!("__Host-jsp-flow={}", b.cookie("__Host-jsp-flow").unwrap()))
        .header("authorization", format!("MediaBrowser Token=\"{token}\""))
        .json(&json!({"deviceId": "d", "data": data["handle"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let links: Value = client.get(s.proxy.url(&format!("/sso/saml/links/{dana}"))).header("authorization", format!("MediaBrowser Token=\"{token}\"")).send().await.unwrap().json().await.unwrap();
    assert_eq!(links, json!({"corp": ["olga@idp"]}));
    // Now olga's SAML login signs in as dana: no new user.
    let mut b = Browser::new();
    let page = to_completion(&mut b, &s, "/sso/SAML/start/corp", "olga").await;
    let done = auth(&mut b, &s, &page, "dev-d").await;
    let r: Value = serde_json::from_str(&done.body).unwrap();
    assert_eq!(r["User"]["Id"], dana.as_str());
    assert_eq!(s.jf.user_count(), 1);
}

/// Unknown providers are 404; a response without RelayState (IdP-initiated, or a flow that
/// never started here) gets the readable "start again" page.
#[tokio::test]
async fn unknown_provider_and_missing_relay_state() {
    let s = saml_setup("corp", "response", accounts(), "").await;
    let mut b = Browser::new();
    assert_eq!(b.get(&s.proxy.url("/sso/SAML/start/nope")).await.status, 404);
    let page = b.request(reqwest::Method::POST, &s.proxy.url("/sso/SAML/post/corp"), Some(&[("SAMLResponse".into(), "PHg+".into())]), None).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Start again"), "{}", page.body);
}

/// A SAML provider added through the admin API (the plugin's JSON) works at once, with no
/// restart, through the same login path.
#[tokio::test]
async fn provider_added_through_the_api_signs_in_at_once() {
    use jellyfin_double::{DoubleOptions, JellyfinDouble};
    use support::saml_idp::SamlIdp;
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let listener = support::TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let idp = SamlIdp::start(&format!("https://127.0.0.1:{port}/sso/SAML/metadata/api"), "response", accounts()).await;
    let proxy = support::TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &format!("jellyfin:\n  url: {}\n  api_key: test-api-key\n", jf.url())).await;
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let body = json!({
        "samlEndpoint": idp.sso_url, "samlClientId": "jellyfin", "samlIdpEntityId": idp.entity_id,
        "samlCertificate": idp.cert_b64, "enabled": true, "roles": ["media"], "usernameAttribute": "uid",
    });
    let r = client.post(proxy.url("/sso/SAML/Add/api")).header("authorization", "MediaBrowser Token=\"test-api-key\"").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let s = SamlSetup { jf, idp, proxy };
    let mut b = Browser::new();
    let page = to_completion(&mut b, &s, "/sso/SAML/start/api", "olga").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(auth(&mut b, &s, &page, "dev-api").await.status, 200);
    assert!(s.jf.user_by_name("olga").is_some());
}
