//! SAML verification against responses signed by an independent signer (`xmlsec1`): the
//! valid shapes are accepted and signed in, and every forgery is refused with the right
//! status, no completion page and no Jellyfin user. This suite guards the exactly pinned
//! `saml` crate: a new version must pass it unchanged.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::{json, Value};
use support::browser::{completion_data, Browser, Page};
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::saml_signer::{self, authn_request_of, encode, xml_attr, KeyPair, ResponseSpec, SignOn, Signer};
use support::TestProxy;

const IDP: &str = "https://idp.example/realms/media";
const SP: &str = "jellyfin-proxy";
const KEY: &str = "test-api-key";

struct Keys {
    dir: tempfile::TempDir,
    idp: KeyPair,
    rollover: KeyPair,
    other: KeyPair,
}

/// Keys made once per test binary (RSA generation is the slow part).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let idp = KeyPair::generate(dir.path(), "idp");
        let rollover = KeyPair::generate(dir.path(), "idp-next");
        let other = KeyPair::generate(dir.path(), "attacker");
        Keys { dir, idp, rollover, other }
    })
}

struct Fx {
    jf: JellyfinDouble,
    proxy: TestProxy,
    signer: Signer,
    acs: String,
}

/// A login in progress: the browser that started it and what the IdP would answer to.
struct Started {
    browser: Browser,
    request_id: String,
    relay: String,
}

async fn fx(provider_yaml: &str) -> Fx {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    fx_with(jf, provider_yaml).await
}

async fn fx_with(jf: JellyfinDouble, provider_yaml: &str) -> Fx {
    let k = keys();
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\nproviders:\n  saml:\n    test:\n      samlEndpoint: https://idp.example/realms/media/protocol/saml\n      samlClientId: {SP}\n      samlIdpEntityId: {IDP}\n      samlCertificate:\n        - {}\n        - |\n{}\n{provider_yaml}",
        jf.url(),
        k.idp.cert_b64(),
        k.rollover.cert_pem().lines().map(|l| format!("          {l}")).collect::<Vec<_>>().join("\n"),
    );
    let proxy = TestProxy::start_config(&yaml).await;
    let acs = proxy.url("/sso/SAML/post/test");
    Fx { jf, proxy, signer: Signer::new(k.dir.path()), acs }
}

impl Fx {
    async fn start(&self) -> Started {
        let mut browser = Browser::new();
        let page = browser.get(&self.proxy.url("/sso/SAML/start/test")).await;
        assert_eq!(page.status, 302, "{}", page.body);
        let location = page.headers["location"].to_str().unwrap().to_string();
        assert!(location.starts_with("https://idp.example/realms/media/protocol/saml?SAMLRequest="), "{location}");
        let request = authn_request_of(&location);
        let request_id = xml_attr(&request, "ID").expect("AuthnRequest ID");
        let relay = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "RelayState").expect("RelayState").1.into_owned();
        assert!(browser.cookie("__Host-jsp-saml").is_some(), "the SameSite=None flow cookie for the cross-site POST");
        Started { browser, request_id, relay }
    }

    fn spec(&self, s: &Started, name_id: &str) -> ResponseSpec {
        ResponseSpec::new(&s.request_id, &self.acs, IDP, SP, name_id)
    }

    fn sign(&self, spec: &ResponseSpec, on: SignOn) -> String {
        self.signer.signed_response(spec, on, &keys().idp)
    }

    async fn post(&self, s: &mut Started, xml: &str) -> Page {
        let form = vec![("SAMLResponse".to_string(), encode(xml)), ("RelayState".to_string(), s.relay.clone())];
        s.browser.request(Method::POST, &self.acs, Some(&form), None).await
    }

    /// The completion page's `Auth` call.
    async fn complete(&self, s: &mut Started, page: &Page) -> Page {
        let data = completion_data(page);
        assert_eq!(data["authUrl"], "/sso/SAML/Auth/test");
        let body = json!({"deviceId": "dev-saml", "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
        s.browser.post_json(&self.proxy.url("/sso/SAML/Auth/test"), &body).await
    }

    /// Sign in with `spec` built by `make`; the `AuthenticationResult`.
    async fn login(&self, make: impl Fn(&Started) -> ResponseSpec, on: SignOn) -> Result<Value, Page> {
        let mut s = self.start().await;
        let xml = self.sign(&make(&s), on);
        let page = self.post(&mut s, &xml).await;
        if page.status != 200 {
            return Err(page);
        }
        let done = self.complete(&mut s, &page).await;
        if done.status != 200 {
            return Err(done);
        }
        Ok(serde_json::from_str(&done.body).unwrap())
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).unwrap_or_else(|| panic!("{start} not in {s}"));
    let j = s[i..].rfind(end).unwrap() + i + end.len();
    &s[i..j]
}

/// The signed assertion of an assertion-signed response.
fn assertion_of(xml: &str) -> String {
    between(xml, "<saml:Assertion", "</saml:Assertion>").to_string()
}

fn signature_of(element: &str) -> String {
    between(element, "<ds:Signature", "</ds:Signature>").to_string()
}

// ---------------------------------------------------------------------------------------------
// Valid responses
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn signed_response_signed_assertion_and_both_are_accepted_and_sign_in() {
    let f = fx("      roles: [users]\n      enableAuthorization: true\n").await;
    for (on, who) in [(SignOn::Response, "ann"), (SignOn::Assertion, "bob"), (SignOn::Both, "cat")] {
        let r = f
            .login(|s| f.spec(s, who).attribute("Role", &["users"]), on)
            .await
            .unwrap_or_else(|p| panic!("{on:?}: {} {}", p.status, p.body));
        assert_eq!(r["User"]["Name"], who, "{on:?}");
        assert!(!r["AccessToken"].as_str().unwrap().is_empty());
        let session = f.jf.sessions().into_iter().find(|x| x.token == r["AccessToken"].as_str().unwrap()).expect("token minted by the double");
        assert_eq!(session.device_id, "dev-saml");
    }
    assert_eq!(f.jf.user_count(), 3, "one user per identity");
}

#[tokio::test]
async fn a_certificate_listed_for_rollover_is_trusted_too() {
    let f = fx("").await;
    let mut s = f.start().await;
    let xml = f.signer.signed_response(&f.spec(&s, "dora"), SignOn::Assertion, &keys().rollover);
    let page = f.post(&mut s, &xml).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(f.complete(&mut s, &page).await.status, 200);
}

#[tokio::test]
async fn username_attribute_and_a_transient_name_id() {
    let f = fx("      usernameAttribute: uid\n").await;
    let transient = |s: &Started| {
        let mut spec = f.spec(s, "_7f3a91c2").attribute("uid", &["erin"]);
        spec.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into();
        spec
    };
    let r = f.login(transient, SignOn::Assertion).await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Name"], "erin");
    // A transient id differs every time: the link is by the username attribute, so the
    // second login finds the same account instead of failing as "linked elsewhere".
    let again = |s: &Started| {
        let mut spec = f.spec(s, "_0b9e4d11").attribute("uid", &["erin"]);
        spec.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into();
        spec
    };
    let r2 = f.login(again, SignOn::Assertion).await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r2["User"]["Id"], r["User"]["Id"]);
    let missing = f.login(|s| f.spec(s, "frank"), SignOn::Assertion).await.expect_err("no uid attribute");
    assert_eq!(missing.status, 401);
    assert!(missing.body.contains("could not be verified"), "{}", missing.body);
}

#[tokio::test]
async fn transient_name_id_without_username_attribute_is_refused_with_a_reason() {
    let f = fx("").await;
    let page = f
        .login(
            |s| {
                let mut spec = f.spec(s, "_a1b2");
                spec.name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into();
                spec
            },
            SignOn::Response,
        )
        .await
        .expect_err("transient NameID cannot key an account");
    assert_eq!(page.status, 401);
    assert_eq!(f.jf.user_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_role_makes_an_administrator_and_folder_roles_map() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let movies = jf.add_media_folder("Movies");
    let kids = jf.add_media_folder("Kids");
    let _private = jf.add_media_folder("Private");
    let yaml = format!(
        "      roleAttribute: http://schemas.xmlsoap.org/claims/Group\n      roles: [media]\n      adminRoles: [media-admins]\n      enableAuthorization: true\n      enableFolderRoles: true\n      folderRoleMapping:\n        - role: media\n          folders: [{movies}]\n        - role: kids\n          folders: [{kids}]\n"
    );
    let f = fx_with(jf, &yaml).await;
    const GROUP: &str = "http://schemas.xmlsoap.org/claims/Group";
    f.login(|s| f.spec(s, "gina").attribute(GROUP, &["media-admins"]), SignOn::Assertion).await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(f.jf.user_by_name("gina").unwrap()["Policy"]["IsAdministrator"], true);

    f.login(|s| f.spec(s, "hank").attribute(GROUP, &["media", "kids"]), SignOn::Assertion).await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    let policy = &f.jf.user_by_name("hank").unwrap()["Policy"];
    assert_eq!(policy["IsAdministrator"], false);
    assert_eq!(policy["EnableAllFolders"], false);
    let mut got: Vec<String> = policy["EnabledFolders"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    got.sort();
    let mut want = vec![movies, kids];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn no_permitted_role_is_401_and_creates_no_user() {
    let f = fx("      roles: [media]\n").await;
    let before = f.jf.user_count();
    let page = f.login(|s| f.spec(s, "ivan").attribute("Role", &["guests"]), SignOn::Both).await.expect_err("refused");
    assert_eq!(page.status, 401);
    assert!(page.body.contains("not allowed on this server"), "{}", page.body);
    assert!(!page.body.contains("jsp-data"));
    assert_eq!(f.jf.user_count(), before);
    assert!(f.jf.user_by_name("ivan").is_none());
}

// ---------------------------------------------------------------------------------------------
// Forgeries: each refused, with no completion page and no user
// ---------------------------------------------------------------------------------------------

type Forge = fn(&Fx, &Started) -> String;

/// Evil twin: the same response for `admin` with the admin role, unsigned.
fn evil(f: &Fx, s: &Started, id: &str) -> String {
    let mut e = f.spec(s, "admin").attribute("Role", &["admins"]);
    e.assertion_id = id.into();
    e.assertion_xml(None)
}

fn alice(f: &Fx, s: &Started) -> ResponseSpec {
    f.spec(s, "alice").attribute("Role", &["users"])
}

fn cases() -> Vec<(&'static str, u16, Forge)> {
    vec![
        ("tampered NameID", 401, |f, s| f.sign(&alice(f, s), SignOn::Assertion).replace(">alice<", ">admin<")),
        ("tampered Role", 401, |f, s| f.sign(&alice(f, s), SignOn::Response).replace(">users<", ">admins<")),
        ("no signature", 401, |f, s| f.sign(&alice(f, s), SignOn::Nothing)),
        ("wrong key", 401, |f, s| f.signer.signed_response(&alice(f, s), SignOn::Both, &keys().other)),
        ("XSW: evil assertion before the signed one", 400, |f, s| {
            let xml = f.sign(&alice(f, s), SignOn::Assertion);
            let a = assertion_of(&xml);
            xml.replace(&a, &format!("{}{a}", evil(f, s, "_evil1")))
        }),
        ("XSW: evil assertion after the signed one", 400, |f, s| {
            let xml = f.sign(&alice(f, s), SignOn::Assertion);
            let a = assertion_of(&xml);
            xml.replace(&a, &format!("{a}{}", evil(f, s, "_evil2")))
        }),
        ("XSW: evil assertion with the same ID", 400, |f, s| {
            let spec = alice(f, s);
            let xml = f.sign(&spec, SignOn::Assertion);
            let a = assertion_of(&xml);
            xml.replace(&a, &format!("{}{a}", evil(f, s, &spec.assertion_id)))
        }),
        ("XSW: original moved into Extensions, evil in its place", 401, |f, s| {
            let xml = f.sign(&alice(f, s), SignOn::Assertion);
            let a = assertion_of(&xml);
            let sig = signature_of(&a);
            let e = evil(f, s, "_evil3").replacen("</saml:Issuer>", &format!("</saml:Issuer>{sig}"), 1);
            let xml = xml.replace(&a, &e);
            xml.replacen("</saml:Issuer>", &format!("</saml:Issuer><samlp:Extensions>{a}</samlp:Extensions>"), 1)
        }),
        ("XSW: original nested inside the evil assertion", 401, |f, s| {
            let xml = f.sign(&alice(f, s), SignOn::Assertion);
            let a = assertion_of(&xml);
            let sig = signature_of(&a);
            let e = evil(f, s, "_evil4").replacen("</saml:Issuer>", &format!("</saml:Issuer>{sig}"), 1).replace("</saml:Assertion>", &format!("{a}</saml:Assertion>"));
            xml.replace(&a, &e)
        }),
        ("XSW: original inside ds:Object of the evil assertion's signature", 401, |f, s| {
            let xml = f.sign(&alice(f, s), SignOn::Assertion);
            let a = assertion_of(&xml);
            let sig = signature_of(&a).replace("</ds:Signature>", &format!("<ds:Object>{a}</ds:Object></ds:Signature>"));
            let e = evil(f, s, "_evil6").replacen("</saml:Issuer>", &format!("</saml:Issuer>{sig}"), 1);
            xml.replace(&a, &e)
        }),
        ("XSW1: evil Response wrapping the signed one in its signature", 401, |f, s| {
            let spec = alice(f, s);
            let xml = f.sign(&spec, SignOn::Response);
            let sig = signature_of(&xml);
            let mut bad = f.spec(s, "admin").attribute("Role", &["admins"]);
            bad.response_id = "_evilresp1".into();
            let inner = bad.assertion_xml(None);
            let wrapped_sig = sig.replace("</ds:Signature>", &format!("<ds:Object>{xml}</ds:Object></ds:Signature>"));
            bad.response_xml(&inner, None).replacen("</saml:Issuer>", &format!("</saml:Issuer>{wrapped_sig}"), 1)
        }),
        ("XSW2: evil Response with the signed one as a sibling of its signature", 400, |f, s| {
            let spec = alice(f, s);
            let xml = f.sign(&spec, SignOn::Response);
            let sig = signature_of(&xml);
            let mut bad = f.spec(s, "admin").attribute("Role", &["admins"]);
            bad.response_id = "_evilresp2".into();
            let inner = bad.assertion_xml(None);
            bad.response_xml(&inner, None).replacen("</saml:Issuer>", &format!("</saml:Issuer>{xml}{sig}"), 1)
        }),
        ("expired", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.not_before = SystemTime::now() - Duration::from_secs(3600);
            spec.not_on_or_after = SystemTime::now() - Duration::from_secs(600);
            f.sign(&spec, SignOn::Both)
        }),
        ("not yet valid", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.not_before = SystemTime::now() + Duration::from_secs(600);
            f.sign(&spec, SignOn::Both)
        }),
        ("wrong Audience", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.audience = "some-other-sp".into();
            f.sign(&spec, SignOn::Assertion)
        }),
        ("wrong Recipient", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.recipient = "https://evil.example/acs".into();
            f.sign(&spec, SignOn::Assertion)
        }),
        ("wrong Destination", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.destination = "https://evil.example/acs".into();
            f.sign(&spec, SignOn::Response)
        }),
        ("wrong InResponseTo", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.in_response_to = saml_signer::random_id();
            f.sign(&spec, SignOn::Response)
        }),
        ("wrong Issuer", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.issuer = "https://evil.example/idp".into();
            f.sign(&spec, SignOn::Both)
        }),
        ("RSA-SHA1 signature", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.signature_method = saml_signer::RSA_SHA1.into();
            spec.digest_method = saml_signer::SHA1.into();
            f.sign(&spec, SignOn::Response)
        }),
        ("SHA-1 digest under an RSA-SHA256 signature", 401, |f, s| {
            let mut spec = alice(f, s);
            spec.digest_method = saml_signer::SHA1.into();
            f.sign(&spec, SignOn::Assertion)
        }),
        ("XXE: external entity in a DTD", 400, |f, s| {
            let xml = f.sign(&alice(f, s), SignOn::Assertion).replacen(">alice<", ">&xxe;<", 1);
            format!("<?xml version=\"1.0\"?><!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{xml}")
        }),
        ("billion laughs", 400, |f, s| {
            let mut dtd = String::from("<!ENTITY lol0 \"lol\">");
            for i in 1..10 {
                dtd.push_str(&format!("<!ENTITY lol{i} \"{}\">", format!("&lol{};", i - 1).repeat(10)));
            }
            let xml = f.sign(&alice(f, s), SignOn::Assertion).replacen(">users<", ">&lol9;<", 1);
            format!("<?xml version=\"1.0\"?><!DOCTYPE samlp:Response [{dtd}]>{xml}")
        }),
    ]
}

#[tokio::test]
async fn every_forgery_is_refused_with_its_status_and_nothing_is_created() {
    let f = fx("      roles: [users]\n      adminRoles: [admins]\n      enableAuthorization: true\n").await;
    let before = f.jf.user_count();
    let mut failures = Vec::new();
    for (name, want, forge) in cases() {
        let mut s = f.start().await;
        let xml = forge(&f, &s);
        let page = f.post(&mut s, &xml).await;
        if page.status.as_u16() != want || page.body.contains("jsp-data") {
            failures.push(format!("{name}: expected {want}, got {}: {}", page.status, page.body.chars().take(400).collect::<String>()));
        }
        // The flow is spent: the same RelayState cannot be tried again with a better forgery.
        let honest = f.sign(&alice(&f, &s), SignOn::Both);
        let again = f.post(&mut s, &honest).await;
        if again.status != 400 {
            failures.push(format!("{name}: flow reusable after a refusal ({})", again.status));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), cases().len(), failures.join("\n"));
    assert_eq!(f.jf.user_count(), before, "no forgery created a user");
    assert!(f.jf.user_by_name("admin").is_none() && f.jf.user_by_name("alice").is_none());
}

/// The enveloped-signature transform drops the whole `ds:Signature` from the digest, so an
/// assertion hidden in its `ds:Object` leaves the signature valid, and its NameID comes first
/// in document order. The verified assertion's own subject must be the one read.
#[tokio::test]
async fn an_assertion_hidden_inside_the_enveloped_signature_is_not_read() {
    let f = fx("      roles: [users]\n      adminRoles: [admins]\n      enableAuthorization: true\n").await;
    let mut s = f.start().await;
    let xml = f.sign(&alice(&f, &s), SignOn::Assertion);
    let e = evil(&f, &s, "_evil5");
    let xml = xml.replacen("</ds:KeyInfo>", &format!("</ds:KeyInfo><ds:Object>{e}</ds:Object>"), 1);
    let page = f.post(&mut s, &xml).await;
    if page.status == 200 {
        let done = f.complete(&mut s, &page).await;
        let r: Value = serde_json::from_str(&done.body).unwrap();
        assert_eq!(r["User"]["Name"], "alice");
        assert_eq!(f.jf.user_by_name("alice").unwrap()["Policy"]["IsAdministrator"], false);
    } else {
        assert!(page.status == 400 || page.status == 401, "{} {}", page.status, page.body);
    }
    assert!(f.jf.user_by_name("admin").is_none());
}

/// CVE-2017-11427: a comment splits the NameID's text. The signature still verifies (c14n
/// drops comments); a vulnerable reader takes the first text node, `alice`.
#[tokio::test]
async fn comment_inside_name_id_does_not_truncate_it() {
    let f = fx("").await;
    let mut s = f.start().await;
    let xml = f.sign(&f.spec(&s, "alice.evil"), SignOn::Assertion).replacen(">alice.evil<", ">alice<!---->.evil<", 1);
    let page = f.post(&mut s, &xml).await;
    if page.status == 200 {
        let done = f.complete(&mut s, &page).await;
        let r: Value = serde_json::from_str(&done.body).unwrap();
        assert_eq!(r["User"]["Name"], "alice.evil", "the whole NameID, comment ignored");
    } else {
        assert!(page.status == 400 || page.status == 401, "{} {}", page.status, page.body);
    }
    assert!(f.jf.user_by_name("alice").is_none(), "never signed in as the truncated name");
}

#[tokio::test]
async fn a_response_is_used_once_and_only_by_the_browser_that_started() {
    let f = fx("").await;
    // Replay of an accepted response.
    let mut s = f.start().await;
    let xml = f.sign(&f.spec(&s, "jill"), SignOn::Both);
    assert_eq!(f.post(&mut s, &xml).await.status, 200);
    let replay = f.post(&mut s, &xml).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    // Another browser posting a response made for this one (login CSRF / stolen response).
    let mut victim = f.start().await;
    let xml = f.sign(&f.spec(&victim, "kim"), SignOn::Both);
    let mut attacker = f.start().await;
    attacker.relay = victim.relay.clone();
    let stolen = f.post(&mut attacker, &xml).await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert!(stolen.body.contains("another browser"), "{}", stolen.body);
    // The victim's flow was burnt by the attempt: it starts again, and that works.
    assert_eq!(f.post(&mut victim, &xml).await.status, 400);
    assert!(f.jf.user_by_name("kim").is_none());
}

#[tokio::test]
async fn a_non_success_status_gets_a_readable_page_that_shows_it() {
    let f = fx("").await;
    let mut s = f.start().await;
    let mut spec = f.spec(&s, "x");
    spec.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into();
    spec.status_message = Some("Account disabled".into());
    // IdPs usually send error responses unsigned and without an assertion.
    let xml = spec.response_xml("", None);
    let page = f.post(&mut s, &xml).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("urn:oasis:names:tc:SAML:2.0:status:Responder"), "{}", page.body);
    assert!(page.body.contains("Account disabled"), "{}", page.body);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn oversized_or_malformed_posts_are_refused_cleanly() {
    let f = fx("").await;
    let mut s = f.start().await;
    let huge = "A".repeat(300 * 1024);
    let form = vec![("SAMLResponse".to_string(), huge), ("RelayState".to_string(), s.relay.clone())];
    let page = s.browser.request(Method::POST, &f.acs, Some(&form), None).await;
    assert_eq!(page.status, 413);
    // Not base64, not XML, no RelayState: 400 each, never 500.
    let mut s = f.start().await;
    let form = vec![("SAMLResponse".to_string(), "%%%not-base64".to_string()), ("RelayState".to_string(), s.relay.clone())];
    assert_eq!(s.browser.request(Method::POST, &f.acs, Some(&form), None).await.status, 400);
    let mut s = f.start().await;
    let form = vec![("SAMLResponse".to_string(), encode("<not-saml/>")), ("RelayState".to_string(), s.relay.clone())];
    assert_eq!(s.browser.request(Method::POST, &f.acs, Some(&form), None).await.status, 400);
    let form = vec![("SAMLResponse".to_string(), encode("<x/>"))];
    assert_eq!(s.browser.request(Method::POST, &f.acs, Some(&form), None).await.status, 400);
    assert_eq!(f.jf.user_count(), 0);
}

#[tokio::test]
async fn metadata_names_our_entity_and_acs() {
    let f = fx("").await;
    let r = support::http1_client().get(f.proxy.url("/sso/SAML/metadata/test")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
    let xml = r.text().await.unwrap();
    assert!(xml.contains(&format!("entityID=\"{SP}\"")), "{xml}");
    assert!(xml.contains(&format!("Location=\"{}\"", f.acs)), "{xml}");
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"), "{xml}");
    let missing = support::http1_client().get(f.proxy.url("/sso/SAML/metadata/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// The plugin's alias `POST /sso/SAML/p/{p}` is an ACS too; the response is still addressed to
/// the ACS URL we asked for.
#[tokio::test]
async fn the_plugins_alias_path_is_an_acs_too() {
    let f = fx("").await;
    let mut s = f.start().await;
    let xml = f.sign(&f.spec(&s, "lena"), SignOn::Response);
    let form = vec![("SAMLResponse".to_string(), encode(&xml)), ("RelayState".to_string(), s.relay.clone())];
    let page = s.browser.request(Method::POST, &f.proxy.url("/sso/SAML/p/test"), Some(&form), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(f.complete(&mut s, &page).await.status, 200);
}
