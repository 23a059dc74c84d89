//! SAML with the IdP described by its metadata, signed AuthnRequests and encrypted assertions,
//! against the real SAML IdP (npm `samlify`, `tests/idp/saml-idp.mjs`) reading the proxy's SP
//! metadata: the IdP requires the proxy's signature on every AuthnRequest (and refuses a
//! request without one or with a wrong one) and encrypts its assertions to the proxy's key.
//! One login goes through headless Chromium; the others through the cookie-keeping HTTP
//! browser. Metadata comes from samlify itself, from a file, and from a server the test
//! controls (key rollover, a refresh that fails, signed metadata with a pinned certificate);
//! the plugin's JSON with only a metadata URL is accepted by the admin API.

mod support;

use serde_json::{json, Value};
use support::browser::{completion_data, Browser, Page};
use support::saml_idp::{idp_metadata, IdpOptions, MetadataServer, SamlAccount, SamlIdp, METADATA_ROOT};
use support::saml_signer::{KeyPair, Signer};
use support::TestProxy;

fn accounts() -> Vec<SamlAccount> {
    vec![SamlAccount { login: "olga".into(), password: "pw".into(), name_id: "olga@idp".into(), attributes: json!({ "Role": ["media"], "uid": "olga" }) }]
}

struct Setup {
    jf: jellyfin_double::JellyfinDouble,
    idp: SamlIdp,
    proxy: TestProxy,
}

/// The double, a samlify IdP for provider `corp` (`sign`, `options`), and a proxy whose
/// provider `corp` is `provider(&idp)` (YAML lines, indented six spaces).
async fn setup(sign: &str, options: IdpOptions, provider: impl Fn(&SamlIdp) -> String) -> Setup {
    setup_for("corp", sign, options, provider).await
}

/// [`setup`], with the IdP configured from the SP metadata of provider `idp_for`.
async fn setup_for(idp_for: &str, sign: &str, options: IdpOptions, provider: impl Fn(&SamlIdp) -> String) -> Setup {
    let jf = jellyfin_double::JellyfinDouble::start(Default::default()).await;
    let listener = TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let idp = SamlIdp::start_with(&format!("https://127.0.0.1:{port}/sso/SAML/metadata/{idp_for}"), sign, options, accounts()).await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  saml:\n    corp:\n      samlClientId: jellyfin\n      usernameAttribute: uid\n      roles: [media]\n{}",
        jf.url(),
        provider(&idp)
    );
    let proxy = TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &yaml).await;
    Setup { jf, idp, proxy }
}

fn at_idp(u: &str) -> bool {
    u.starts_with("http://127.0.0.1:") && u.contains("/sso?SAMLRequest=")
}

/// Start → the IdP's form → the auto-posted response → the ACS's answer (completion page or error).
async fn login(b: &mut Browser, proxy: &TestProxy, provider: &str) -> Page {
    let page = b.follow(&proxy.url(&format!("/sso/SAML/start/{provider}")), |_| false).await;
    assert_eq!(page.status, 200, "the IdP's login form: {}", page.body);
    assert!(at_idp(&page.url), "{}", page.url);
    let posted = b.submit_form(&page, &[("login", "olga"), ("password", "pw")], |_| false).await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert!(posted.body.contains("name=\"SAMLResponse\""), "the IdP's auto-post form: {}", posted.body);
    b.submit_form(&posted, &[], |_| false).await
}

/// A whole login ends with a Jellyfin token for olga.
async fn signs_in(proxy: &TestProxy, provider: &str) -> bool {
    let mut b = Browser::new();
    let page = login(&mut b, proxy, provider).await;
    if page.status != 200 {
        return false;
    }
    let data = completion_data(&page);
    let body = json!({"deviceId": "dev", "deviceName": "Firefox", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let done = b.post_json(&proxy.url(data["authUrl"].as_str().unwrap()), &body).await;
    done.status == 200 && serde_json::from_str::<Value>(&done.body).unwrap()["User"]["Name"] == "olga"
}

/// Where `/sso/SAML/start/{p}` sends the browser (not followed).
async fn start_location(proxy: &TestProxy, provider: &str) -> String {
    let mut b = Browser::new();
    let page = b.follow(&proxy.url(&format!("/sso/SAML/start/{provider}")), at_idp).await;
    assert!(page.status.is_redirection(), "{} {}: {}", page.url, page.status, page.body);
    let location = page.headers["location"].to_str().unwrap().to_string();
    assert!(at_idp(&location), "{location}");
    location
}

async fn chromium_login(start_url: &str) -> Value {
    let envs = [("START_URL", start_url.to_string()), ("LOGIN", "olga".into()), ("PASSWORD", "pw".into())];
    support::node::run(&support::node::idp_dir().join("browser-login.mjs"), &envs, None, "BROWSER_RESULT").await
}

/// Keycloak's "Client signature required" and "Encrypt assertions", done by samlify: the IdP
/// is configured from the proxy's SP metadata, the proxy from the IdP's metadata, and a real
/// browser signs in to the web client.
#[tokio::test]
async fn chromium_signs_in_with_signed_requests_and_encrypted_assertions_from_metadata() {
    let s = setup("response", IdpOptions { want_signed_requests: true, encrypt: Some("gcm") }, |idp| {
        format!("      samlIdpMetadataUrl: {}\n      samlSignRequests: true\n      samlRequireEncryptedAssertions: true\n", idp.metadata_url())
    })
    .await;
    // Our metadata publishes the generated key for both uses and says requests are signed.
    let sp = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap().get(s.proxy.url("/sso/SAML/metadata/corp")).send().await.unwrap().text().await.unwrap();
    assert!(sp.contains("AuthnRequestsSigned=\"true\""), "{sp}");
    assert!(sp.contains("use=\"signing\"") && sp.contains("use=\"encryption\""), "{sp}");
    let dir = s.proxy.dir.path().join("data");
    let key_mode = std::fs::metadata(dir.join("saml-sp.key")).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(key_mode.ok(), Some(0o600), "the SP key is generated in state_dir, owner-only");
    let cert = std::fs::read_to_string(dir.join("saml-sp.crt")).unwrap();
    let cert_b64: String = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(sp.contains(&cert_b64), "the published certificate is the one in state_dir");

    let r = chromium_login(&s.proxy.url("/sso/SAML/start/corp")).await;
    assert!(r.get("error").is_none(), "browser: {r:#}");
    assert_eq!(r["url"], s.proxy.url("/web/index.html"));
    let token = r["credentials"]["Servers"][0]["AccessToken"].as_str().expect("signed in");
    let session = s.jf.sessions().into_iter().find(|x| x.token == token).expect("minted by the double");
    assert_eq!(session.device_id, r["deviceId"].as_str().unwrap());
    assert!(s.jf.user_by_name("olga").is_some());
}

/// samlify refuses what the proxy did not sign: no signature, or a signature that does not
/// cover what arrives. The proxy's own request passes.
#[tokio::test]
async fn the_idp_refuses_unsigned_and_wrongly_signed_requests() {
    let s = setup("response", IdpOptions { want_signed_requests: true, encrypt: None }, |idp| {
        format!("      samlIdpMetadataUrl: {}\n      samlSignRequests: true\n", idp.metadata_url())
    })
    .await;
    let http = reqwest::Client::new();
    let get = |u: String| {
        let http = http.clone();
        async move {
            let r = http.get(u).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let signed = start_location(&s.proxy, "corp").await;
    let (status, body) = get(signed.clone()).await;
    assert_eq!(status, 200, "the proxy's signed request is accepted: {body}");

    let keep = |drop: &[&str]| {
        let (base, q) = signed.split_once('?').unwrap();
        let kept: Vec<&str> = q.split('&').filter(|kv| !drop.iter().any(|d| kv.starts_with(&format!("{d}=")))).collect();
        format!("{base}?{}", kept.join("&"))
    };
    let (status, body) = get(keep(&["Signature", "SigAlg"])).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ERR_MISSING_SIG_ALG"), "{body}");

    // The same signature over another RelayState.
    let other = signed.replace("RelayState=", "RelayState=x");
    let (status, body) = get(other).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ERR_FAILED_MESSAGE_SIGNATURE_VERIFICATION"), "{body}");

    // Another proxy's key (a signature, but not by the key in the IdP's copy of our metadata).
    let s2 = setup("response", IdpOptions::default(), |idp| format!("      samlEndpoint: {}\n      samlIdpEntityId: {}\n      samlCertificate: {}\n      samlSignRequests: true\n", idp.sso_url, idp.entity_id, idp.cert_b64)).await;
    let foreign = start_location(&s2.proxy, "corp").await;
    let foreign_query = foreign.split_once('?').unwrap().1;
    let (status, body) = get(format!("{}?{foreign_query}", s.idp.sso_url)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ERR_FAILED_MESSAGE_SIGNATURE_VERIFICATION"), "{body}");
}

#[tokio::test]
async fn a_cleartext_assertion_is_refused_when_encryption_is_required() {
    let s = setup("response", IdpOptions::default(), |idp| format!("      samlIdpMetadataUrl: {}\n      samlRequireEncryptedAssertions: true\n", idp.metadata_url())).await;
    // The same IdP signs in without the requirement (tests/saml.rs); the page keeps the reason
    // to the log.
    let page = login(&mut Browser::new(), &s.proxy, "corp").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("could not be verified"), "{}", page.body);
    assert!(s.jf.user_by_name("olga").is_none());
}

/// AES-CBC (ADFS, Entra) only with samlAllowCbcEncryption, and then inside a signed Response.
#[tokio::test]
async fn cbc_encryption_needs_the_option() {
    let s = setup("response", IdpOptions { want_signed_requests: false, encrypt: Some("cbc") }, |idp| format!("      samlIdpMetadataUrl: {}\n", idp.metadata_url())).await;
    let page = login(&mut Browser::new(), &s.proxy, "corp").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("could not be verified"), "{}", page.body);
    drop(s);
    let s = setup("response", IdpOptions { want_signed_requests: false, encrypt: Some("cbc") }, |idp| {
        format!("      samlIdpMetadataUrl: {}\n      samlAllowCbcEncryption: true\n      samlRequireEncryptedAssertions: true\n", idp.metadata_url())
    })
    .await;
    assert!(signs_in(&s.proxy, "corp").await);
}

/// Key rollover: the metadata lists the IdP's next certificate first and the one it signs with
/// second; a response signed by the second verifies. From a file, with no other IdP setting.
#[tokio::test]
async fn metadata_from_a_file_with_two_certificates_verifies_a_response_signed_by_the_second() {
    let keys = tempfile::tempdir().unwrap();
    let next = KeyPair::generate(keys.path(), "next");
    let file = keys.path().join("idp-metadata.xml");
    let s = setup("both", IdpOptions::default(), |idp| {
        std::fs::write(&file, idp_metadata(&idp.entity_id, &idp.sso_url, &[&next.cert_b64(), &idp.cert_b64], None)).unwrap();
        format!("      samlIdpMetadataFile: {}\n", file.display())
    })
    .await;
    assert!(signs_in(&s.proxy, "corp").await);
}

/// The metadata is re-read every second: while its server fails, logins go on with the last
/// good copy; a new good copy is used at once (here one without the IdP's certificate, so
/// its responses are then refused).
#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_copy_and_a_new_copy_is_used() {
    let keys = tempfile::tempdir().unwrap();
    let other = KeyPair::generate(keys.path(), "other");
    let server = MetadataServer::start(None).await;
    let s = setup("response", IdpOptions::default(), |_| format!("      samlIdpMetadataUrl: {}\n      samlIdpMetadataRefresh: 1s\n", server.url)).await;
    let good = idp_metadata(&s.idp.entity_id, &s.idp.sso_url, &[&s.idp.cert_b64], None);
    server.set(Some(good));
    // Two answers: the first was read before the second was asked for.
    server.wait_for_more(2).await;
    assert!(signs_in(&s.proxy, "corp").await, "the first good copy");

    server.set(None);
    server.wait_for_more(2).await;
    assert!(signs_in(&s.proxy, "corp").await, "the last good copy stays while refreshes fail");
    server.set(Some("<md:EntityDescriptor".into()));
    server.wait_for_more(2).await;
    assert!(signs_in(&s.proxy, "corp").await, "and while the metadata is broken");

    server.set(Some(idp_metadata(&s.idp.entity_id, &s.idp.sso_url, &[&other.cert_b64()], None)));
    server.wait_for_more(2).await;
    let page = login(&mut Browser::new(), &s.proxy, "corp").await;
    assert_eq!(page.status, 401, "the IdP's key is no longer trusted: {}", page.body);
}

async fn add(proxy: &TestProxy, name: &str, body: &Value) -> (u16, String) {
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let r = client.post(proxy.url(&format!("/sso/SAML/Add/{name}"))).header("authorization", "MediaBrowser Token=\"test-api-key\"").json(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// With a pinned certificate the metadata must be signed by it: unsigned, signed by another
/// key, or changed after signing, it is refused (through the admin API, which reads it at once).
#[tokio::test]
async fn metadata_not_signed_by_the_pinned_certificate_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let (signer_key, intruder) = (KeyPair::generate(keys.path(), "md-signer"), KeyPair::generate(keys.path(), "intruder"));
    let signer = Signer::new(keys.path());
    let server = MetadataServer::start(None).await;
    let s = setup_for("pinned", "response", IdpOptions::default(), |idp| format!("      samlIdpMetadataUrl: {}\n", idp.metadata_url())).await;
    let body = json!({ "samlClientId": "jellyfin", "samlIdpMetadataUrl": server.url, "samlIdpMetadataCertificate": signer_key.cert_b64(), "roles": ["media"], "usernameAttribute": "uid" });
    let doc = |signed_by: &KeyPair| signer.sign_first_of(&idp_metadata(&s.idp.entity_id, &s.idp.sso_url, &[&s.idp.cert_b64], Some(&signed_by.cert_b64())), signed_by, &[METADATA_ROOT]);

    server.set(Some(idp_metadata(&s.idp.entity_id, &s.idp.sso_url, &[&s.idp.cert_b64], None)));
    let (status, text) = add(&s.proxy, "pinned", &body).await;
    assert_eq!(status, 400, "unsigned: {text}");
    assert!(text.contains("not signed by the pinned certificate"), "{text}");

    server.set(Some(doc(&intruder)));
    let (status, text) = add(&s.proxy, "pinned", &body).await;
    assert_eq!(status, 400, "signed by another key: {text}");

    let tampered = doc(&signer_key).replace(&s.idp.sso_url, "http://127.0.0.1:1/evil");
    server.set(Some(tampered));
    let (status, text) = add(&s.proxy, "pinned", &body).await;
    assert_eq!(status, 400, "changed after signing: {text}");

    server.set(Some(doc(&signer_key)));
    let (status, text) = add(&s.proxy, "pinned", &body).await;
    assert_eq!(status, 200, "signed by the pinned key: {text}");
    assert!(signs_in(&s.proxy, "pinned").await);
}

/// The plugin's own SAML JSON (its README's keys, and what its Get answers), with a metadata
/// URL instead of the endpoint and certificate, is accepted as it is and signs in at once.
#[tokio::test]
async fn plugin_json_with_only_a_metadata_url_is_accepted_by_the_admin_api() {
    let s = setup_for("plugin", "response", IdpOptions::default(), |idp| format!("      samlIdpMetadataUrl: {}\n", idp.metadata_url())).await;
    let body = json!({
        "samlClientId": "jellyfin", "samlIdpMetadataUrl": s.idp.metadata_url(), "enabled": true,
        "enableAuthorization": true, "enableAllFolders": false, "enabledFolders": [], "adminRoles": [], "roles": ["media"],
        "enableFolderRoles": false, "folderRoleMapping": [], "enableLiveTvRoles": false, "enableLiveTv": false,
        "enableLiveTvManagement": false, "liveTvRoles": [], "liveTvManagementRoles": [], "defaultProvider": "",
        "schemeOverride": "", "portOverride": null, "newPath": true, "usernameAttribute": "uid",
    });
    let (status, text) = add(&s.proxy, "plugin", &body).await;
    assert_eq!(status, 200, "{text}");
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stored["samlIdpMetadataUrl"], s.idp.metadata_url());
    assert!(signs_in(&s.proxy, "plugin").await);

    // A metadata URL that cannot be read is refused with the reason, and nothing is stored.
    let (status, text) = add(&s.proxy, "broken", &json!({ "samlClientId": "jellyfin", "samlIdpMetadataUrl": "http://127.0.0.1:1/metadata" })).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("metadata"), "{text}");
    assert!(s.proxy.app.sso.registry.enabled(jellyfin_sso_proxy::sso::identity::Protocol::Saml, "broken").is_err());
}
