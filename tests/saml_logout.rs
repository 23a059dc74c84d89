//! SAML Single Logout with the `saml` crate's logout support, against messages signed by an
//! independent signer (`xmlsec1`): an IdP-initiated LogoutRequest revokes the sessions of its
//! SessionIndex and is answered with a LogoutResponse to the IdP; unsigned, wrongly signed,
//! misaddressed, stale and replayed requests are refused with nothing revoked; `/sso/logout`
//! of a SAML session sends a LogoutRequest for that NameID and SessionIndex to the IdP.

mod support;

use std::time::{Duration, SystemTime};

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use reqwest::Method;
use serde_json::{json, Value};
use support::browser::{completion_data, Browser};
use support::saml_signer::{authn_request_of, encode, random_id, xml_attr, xs_time, KeyPair, ResponseSpec, SignOn, Signer, NS_SAMLP};
use support::TestProxy;

const IDP: &str = "https://idp.example/realms/media";
const SP: &str = "jellyfin-proxy";
const SLO: &str = "https://idp.example/realms/media/protocol/saml/slo";

struct Fx {
    _jf: JellyfinDouble,
    proxy: TestProxy,
    signer: Signer,
    idp: KeyPair,
    other: KeyPair,
    _dir: tempfile::TempDir,
}

async fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let idp = KeyPair::generate(dir.path(), "idp");
    let other = KeyPair::generate(dir.path(), "attacker");
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  saml:\n    test:\n      samlEndpoint: {IDP}/protocol/saml\n      samlLogoutEndpoint: {SLO}\n      samlClientId: {SP}\n      samlIdpEntityId: {IDP}\n      samlCertificate: {}\n",
        jf.url(),
        idp.cert_b64()
    );
    let proxy = TestProxy::start_config(&yaml).await;
    Fx { _jf: jf, proxy, signer: Signer::new(dir.path()), idp, other, _dir: dir }
}

impl Fx {
    /// Sign in as `name_id` on `device`: the browser and the Jellyfin token.
    async fn login(&self, name_id: &str, device: &str) -> (Browser, String) {
        let mut b = Browser::new();
        let page = b.get(&self.proxy.url("/sso/SAML/start/test")).await;
        let location = page.headers["location"].to_str().unwrap().to_string();
        let request_id = xml_attr(&authn_request_of(&location), "ID").unwrap();
        let relay = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "RelayState").unwrap().1.into_owned();
        let acs = self.proxy.url("/sso/SAML/post/test");
        let spec = ResponseSpec::new(&request_id, &acs, IDP, SP, name_id);
        let xml = self.signer.signed_response(&spec, SignOn::Assertion, &self.idp);
        let form = vec![("SAMLResponse".to_string(), encode(&xml)), ("RelayState".to_string(), relay)];
        let page = b.request(Method::POST, &acs, Some(&form), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let data = completion_data(&page);
        let body = json!({"deviceId": device, "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
        let done = b.post_json(&self.proxy.url("/sso/SAML/Auth/test"), &body).await;
        assert_eq!(done.status, 200, "{}", done.body);
        let r: Value = serde_json::from_str(&done.body).unwrap();
        (b, r["AccessToken"].as_str().unwrap().to_string())
    }

    async fn session_index(&self, name_id: &str, device: &str) -> String {
        let user = self._jf.user_id(name_id).unwrap();
        let m = self.proxy.app.sso.state().durable.mint(&user, device).await.unwrap().unwrap();
        m.sid.expect("the SessionIndex is recorded with the mint")
    }

    /// An IdP-initiated LogoutRequest, signed by `key` unless `None`.
    fn logout_request(&self, id: &str, name_id: &str, index: &str, destination: &str, issued: SystemTime, key: Option<&KeyPair>) -> String {
        let template = key.map(|k| ResponseSpec::new("x", "x", IDP, SP, "x").signature_template(id, &k.cert_b64())).unwrap_or_default();
        let xml = format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{destination}\"><saml:Issuer>{IDP}</saml:Issuer>{template}<saml:NameID>{name_id}</saml:NameID><samlp:SessionIndex>{index}</samlp:SessionIndex></samlp:LogoutRequest>",
            xs_time(issued)
        );
        match key {
            Some(k) => self.signer.sign_first_of(&xml, k, &[&format!("{NS_SAMLP}:LogoutRequest")]),
            None => xml,
        }
    }

    async fn post_logout(&self, xml: &str) -> reqwest::Response {
        support::http1_client().post(self.proxy.url("/sso/SAML/logout/test")).form(&[("SAMLRequest", encode(xml)), ("RelayState", "r1".into())]).send().await.unwrap()
    }

    async fn me(&self, token: &str) -> u16 {
        support::http1_client().get(self.proxy.url("/Users/Me")).header("authorization", format!("MediaBrowser Token=\"{token}\"")).send().await.unwrap().status().as_u16()
    }
}

#[tokio::test]
async fn an_idp_initiated_logout_request_is_verified_then_revokes_that_session_only() {
    let f = fx().await;
    let (_a, ta) = f.login("sam@idp", "dev-a").await;
    let (_b, tb) = f.login("sam@idp", "dev-b").await;
    let index = f.session_index("sam@idp", "dev-a").await;
    let dest = f.proxy.url("/sso/SAML/logout/test");
    let now = SystemTime::now();
    let forged = [
        ("unsigned", f.logout_request(&random_id(), "sam@idp", &index, &dest, now, None)),
        ("signed by another key", f.logout_request(&random_id(), "sam@idp", &index, &dest, now, Some(&f.other))),
        ("another Destination", f.logout_request(&random_id(), "sam@idp", &index, "https://elsewhere.example/slo", now, Some(&f.idp))),
        ("issued an hour ago", f.logout_request(&random_id(), "sam@idp", &index, &dest, now - Duration::from_secs(3600), Some(&f.idp))),
        ("issued an hour ahead", f.logout_request(&random_id(), "sam@idp", &index, &dest, now + Duration::from_secs(3600), Some(&f.idp))),
    ];
    for (what, xml) in &forged {
        let r = f.post_logout(xml).await;
        assert!(r.status().is_client_error(), "{what}: {}", r.status());
        assert_eq!((f.me(&ta).await, f.me(&tb).await), (200, 200), "{what}: nothing revoked");
    }
    // Tampered after signing: the NameID of someone else.
    let good = f.logout_request(&random_id(), "sam@idp", &index, &dest, now, Some(&f.idp));
    let r = f.post_logout(&good.replace("sam@idp", "eve@idp")).await;
    assert!(r.status().is_client_error(), "tampered: {}", r.status());

    let r = f.post_logout(&good).await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{SLO}?SAMLResponse=")), "{location}");
    assert!(location.contains("RelayState=r1"), "{location}");
    assert_eq!(f.me(&ta).await, 401, "the session of that SessionIndex is revoked");
    assert_eq!(f.me(&tb).await, 200, "the other session is not");

    let replay = f.post_logout(&good).await;
    assert!(replay.status().is_client_error(), "replayed: {}", replay.status());
}

#[tokio::test]
async fn sso_logout_of_a_saml_session_sends_a_logout_request_to_the_idp() {
    let f = fx().await;
    let (mut b, token) = f.login("sam@idp", "dev-a").await;
    let index = f.session_index("sam@idp", "dev-a").await;
    let page = b.get(&f.proxy.url("/sso/logout")).await;
    assert_eq!(page.status, 302);
    let location = page.headers["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{SLO}?SAMLRequest=")), "{location}");
    let request = authn_request_of(location);
    assert!(request.contains("LogoutRequest") && request.contains("sam@idp") && request.contains(&index), "{request}");
    assert_eq!(f.me(&token).await, 401);
}

/// The real SAML IdP (npm `samlify`) signs an IdP-initiated LogoutRequest for the HTTP-Redirect
/// binding (a detached query signature); the proxy verifies it and revokes that NameID's
/// session; the same request with its signature altered is refused.
#[tokio::test]
async fn the_real_saml_idp_logs_a_user_out_through_the_redirect_binding() {
    use support::saml_idp::{saml_setup, SamlAccount};
    let account = SamlAccount { login: "sam".into(), password: "pw".into(), name_id: "sam@idp".into(), attributes: json!({"Role": ["media"]}) };
    let s = saml_setup("corp", "both", vec![account], "").await;
    let mut c = support::chromium::Chromium::start().await;
    let a = c.run("A", "login", json!({"url": s.proxy.url("/sso/SAML/start/corp"), "login": "sam", "password": "pw"})).await;
    c.quit().await;
    let token = a["token"].as_str().unwrap();
    let me = |t: String| {
        let url = s.proxy.url("/Users/Me");
        async move { support::http1_client().get(url).header("authorization", format!("MediaBrowser Token=\"{t}\"")).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me(token.to_string()).await, 200);
    let url = s.idp.logout_request_url("sam@idp", "rs").await;
    assert!(url.starts_with(&s.proxy.url("/sso/SAML/logout/corp?SAMLRequest=")), "{url}");
    assert!(url.contains("Signature="), "signed: {url}");
    let tampered = url.replace("Signature=", "Signature=AAAA");
    let r = support::http1_client().get(&tampered).send().await.unwrap();
    assert!(r.status().is_client_error(), "tampered: {}", r.status());
    assert_eq!(me(token.to_string()).await, 200, "nothing revoked");
    let r = support::http1_client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(me(token.to_string()).await, 401, "the IdP's logout revoked the session");
}
