//! Two proxies behind one (imagined) balancer, sharing one Redis and one PostgreSQL (real
//! servers, tests/support/servers.rs) and one state key: an OIDC login started on A finishes
//! on B; the same `state` presented to both at once is accepted by exactly one; a SAML
//! response accepted on A is refused on B; a provider added through A's admin API signs
//! someone in on B, and its removal reaches B too (file providers stay); the cap on logins in progress holds
//! across both. Faults (Redis killed, PostgreSQL restarted) are in scaleout_faults.rs.

mod support;

use std::time::{Duration, Instant};

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::browser::{absolute, completion_data, Browser, Page};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::pair::{pair, ports};
use support::{http1_client, jellyfin_password_login, servers, TestProxy};

const KEY: &str = "test-api-key";

/// The OP with one client whose redirect URI is on `public_port`, and one account.
async fn op(public_port: u16, name: &str) -> OpenIdProvider {
    OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient {
            client_id: "jellyfin".into(),
            client_secret: Some("jellyfin-secret".into()),
            redirect_uris: vec![format!("https://127.0.0.1:{public_port}/sso/OID/redirect/{name}")],
            auth_method: "client_secret_basic".into(),
            require_par: false,
        }],
        accounts: vec![OpAccount { login: "u-alice".into(), password: "pw".into(), claims: json!({"preferred_username": "alice"}), userinfo_only: vec![] }],
        par: false,
        ..Default::default()
    })
    .await
}

fn provider_json(issuer: &str) -> Value {
    json!({"oidEndpoint": issuer, "oidClientId": "jellyfin", "oidSecret": "jellyfin-secret", "enabled": true, "disableHttps": true, "enableAllFolders": true})
}

fn provider_yaml(name: &str, issuer: &str) -> String {
    format!("providers:\n  oid:\n    {name}:\n      oidEndpoint: {issuer}\n      oidClientId: jellyfin\n      oidSecret: jellyfin-secret\n      disableHttps: true\n      enableAllFolders: true\n")
}

fn is_callback(u: &str) -> bool {
    u.contains("/sso/OID/redirect/")
}

/// The same URL on another proxy's port (what a balancer does with the next request).
fn on(proxy: &TestProxy, url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    let query = u.query().map(|q| format!("?{q}")).unwrap_or_default();
    proxy.url(&format!("{}{query}", u.path()))
}

/// Start on `start` and log in at the OP; the callback URL the OP redirects to.
async fn to_callback(b: &mut Browser, start: &TestProxy, provider: &str) -> String {
    let page = b.follow(&start.url(&format!("/sso/OID/start/{provider}")), is_callback).await;
    let page = if page.status.is_redirection() { page } else { b.submit_form(&page, &[("login", "u-alice"), ("password", "pw")], is_callback).await };
    assert!(page.status.is_redirection(), "{} {}\n{}", page.status, page.url, page.body);
    absolute(&page.url, page.headers["location"].to_str().unwrap())
}

async fn complete(b: &mut Browser, at: &TestProxy, page: &Page) -> Page {
    let data = completion_data(page);
    let body = json!({"deviceId": "dev-1", "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    b.post_json(&at.url(data["authUrl"].as_str().unwrap()), &body).await
}

/// Start on `start`, come back to `callback`, finish on `finish`: the `AuthenticationResult`.
async fn login_across(start: &TestProxy, callback: &TestProxy, finish: &TestProxy, provider: &str) -> Value {
    let mut b = Browser::new();
    let cb = to_callback(&mut b, start, provider).await;
    let page = b.get(&on(callback, &cb)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let done = complete(&mut b, finish, &page).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(b.cookie("__Host-jsp-session").is_some());
    serde_json::from_str(&done.body).unwrap()
}

fn jellyfin_yaml(jf: &JellyfinDouble) -> String {
    format!("jellyfin:\n  url: {}\n  api_key: {KEY}\n", jf.url())
}

#[tokio::test]
async fn an_oidc_login_started_on_a_finishes_on_b_and_its_state_is_spent_for_both() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let ports = ports();
    let op = op(ports.public, "op").await;
    let p = pair(ports, &servers::shared_fresh(), &format!("{}{}", jellyfin_yaml(&jf), provider_yaml("op", &op.issuer))).await;
    let r = login_across(&p.a, &p.b, &p.a, "op").await;
    assert_eq!(r["User"]["Name"], "alice");
    assert!(jf.user_by_name("alice").is_some());
    let link = p.a.app.sso.state().durable.link("oid", "op", "u-alice").await.unwrap().expect("the link, in the shared database");
    assert_eq!(p.b.app.sso.state().durable.link("oid", "op", "u-alice").await.unwrap(), Some(link));

    // The callback a second time, on either proxy: the state was taken once for both.
    let mut b = Browser::new();
    let cb = to_callback(&mut b, &p.a, "op").await;
    assert_eq!(b.get(&on(&p.b, &cb)).await.status, 200);
    for proxy in [&p.a, &p.b] {
        let again = b.get(&on(proxy, &cb)).await;
        assert_eq!(again.status, 400, "{}", again.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_state_on_a_and_b_at_once_is_accepted_by_exactly_one() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let ports = ports();
    let op = op(ports.public, "op").await;
    let p = pair(ports, &servers::shared_fresh(), &format!("{}{}", jellyfin_yaml(&jf), provider_yaml("op", &op.issuer))).await;
    for round in 0..12 {
        let mut b = Browser::new();
        let cb = to_callback(&mut b, &p.a, "op").await;
        let cookies: Vec<String> = ["__Host-jsp-flow"].iter().filter_map(|n| b.cookie(n).map(|v| format!("{n}={v}"))).collect();
        let send = |url: String| {
            let cookie = cookies.join("; ");
            async move { http1_client().get(url).header("cookie", cookie).header("accept", "text/html").send().await.unwrap().status().as_u16() }
        };
        let (x, y) = tokio::join!(send(on(&p.a, &cb)), send(on(&p.b, &cb)));
        let mut got = [x, y];
        got.sort();
        assert_eq!(got, [200, 400], "round {round}: exactly one proxy accepts the state");
    }
}

#[tokio::test]
async fn a_provider_added_through_a_signs_in_on_b_and_its_removal_reaches_b() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    jf.add_user("root", "rootpw", true);
    let ports = ports();
    let op = op(ports.public, "added").await;
    let p = pair(ports, &servers::shared_fresh(), &format!("{}{}", jellyfin_yaml(&jf), provider_yaml("fromfile", &op.issuer))).await;
    let admin = jellyfin_password_login(&jf.url(), "root", "rootpw").await.unwrap();
    let names = |proxy: &TestProxy| {
        let url = proxy.url("/sso/OID/GetNames");
        async move { http1_client().get(url).send().await.unwrap().json::<Vec<String>>().await.unwrap() }
    };
    assert_eq!(names(&p.b).await, ["fromfile"]);

    let added = Instant::now();
    let r = http1_client()
        .post(p.a.url("/sso/OID/Add/added"))
        .header("authorization", format!("MediaBrowser Token=\"{admin}\""))
        .json(&provider_json(&op.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    while names(&p.b).await != ["added", "fromfile"] {
        assert!(added.elapsed() < Duration::from_secs(3), "B did not hear of the new provider in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = login_across(&p.b, &p.b, &p.b, "added").await;
    assert_eq!(r["User"]["Name"], "alice");

    let removed = Instant::now();
    let r = http1_client().get(p.a.url("/sso/OID/Del/added")).header("authorization", format!("MediaBrowser Token=\"{admin}\"")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    while names(&p.b).await != ["fromfile"] {
        assert!(removed.elapsed() < Duration::from_secs(3), "B still offers the removed provider");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http1_client().get(p.b.url("/sso/OID/start/added")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_cap_on_logins_in_progress_holds_across_proxies() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let ports = ports();
    let op = op(ports.public, "op").await;
    let yaml = format!("{}sso:\n  max_pending_flows: 3\n{}", jellyfin_yaml(&jf), provider_yaml("op", &op.issuer));
    let p = pair(ports, &servers::shared_fresh(), &yaml).await;
    let start = |proxy: &TestProxy| {
        let url = proxy.url("/sso/OID/start/op");
        async move { http1_client().get(url).header("accept", "text/html").send().await.unwrap() }
    };
    assert_eq!(start(&p.a).await.status(), 302);
    assert_eq!(start(&p.b).await.status(), 302);
    assert_eq!(start(&p.a).await.status(), 302);
    let refused = start(&p.b).await;
    assert_eq!(refused.status(), 503, "B counts the logins A started");
    assert!(refused.text().await.unwrap().contains("too many sign-ins"));
    assert_eq!(start(&p.a).await.status(), 503);
}

#[tokio::test]
async fn a_saml_response_accepted_on_a_is_refused_on_b() {
    use support::saml_signer::{authn_request_of, encode, xml_attr, KeyPair, ResponseSpec, SignOn, Signer};
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let keydir = tempfile::tempdir().unwrap();
    let idp = KeyPair::generate(keydir.path(), "idp");
    let (issuer, sp) = ("https://idp.example/realms/media", "jellyfin-proxy");
    let yaml = format!(
        "{}providers:\n  saml:\n    test:\n      samlEndpoint: {issuer}/protocol/saml\n      samlClientId: {sp}\n      samlIdpEntityId: {issuer}\n      samlCertificate: {}\n",
        jellyfin_yaml(&jf),
        idp.cert_b64()
    );
    let ports = ports();
    let acs = format!("https://127.0.0.1:{}/sso/SAML/post/test", ports.public);
    let p = pair(ports, &servers::shared_fresh(), &yaml).await;

    let mut browser = Browser::new();
    let page = browser.get(&p.a.url("/sso/SAML/start/test")).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let location = page.headers["location"].to_str().unwrap().to_string();
    let request_id = xml_attr(&authn_request_of(&location), "ID").unwrap();
    let relay = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "RelayState").unwrap().1.into_owned();
    let xml = Signer::new(keydir.path()).signed_response(&ResponseSpec::new(&request_id, &acs, issuer, sp, "jill"), SignOn::Both, &idp);
    let form = vec![("SAMLResponse".to_string(), encode(&xml)), ("RelayState".to_string(), relay)];

    let accepted = browser.request(reqwest::Method::POST, &p.a.url("/sso/SAML/post/test"), Some(&form), None).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(p.b.app.sso.state().ephemeral.count(jellyfin_sso_proxy::state::Kind::SamlAssertion).await.unwrap(), 1, "B sees the assertion id");
    let replayed = browser.request(reqwest::Method::POST, &p.b.url("/sso/SAML/post/test"), Some(&form), None).await;
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    let done = complete(&mut browser, &p.b, &accepted).await;
    assert_eq!(done.status, 200, "the completion handle made on A is picked up on B: {}", done.body);
    assert!(jf.user_by_name("jill").is_some());
}
