//! Jellyfin's own login page through the proxy: the branding answers carry a "Sign in with …"
//! button per enabled provider (and follow the admin API at once), the operator's text and
//! CSS survive, the markup survives jellyfin-web's markdown-it + DOMPurify rendering
//! (tests/webclient) with a hostile label inert; compressed and oversized answers; the picker
//! at `/sso/`; auto-redirect and `?local=1`; hidden public users; the SSO-only CSS; and in
//! Chromium, the button on the web client's page leads through the real OP to a signed-in
//! web client.

mod support;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::node;
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::{http1_client, TestProxy};

const KEY: &str = "test-api-key";
const HOSTILE: &str = "<img src=x onerror=alert(1)><script>alert(2)</script>";

/// Two OIDC providers (one labelled), a SAML one, a disabled one.
fn providers_yaml(cert_file: &std::path::Path) -> String {
    format!(
        "providers:\n  oid:\n    corp:\n      oidEndpoint: https://id.example.com\n      oidClientId: jf\n      displayName: Corporate SSO\n    hostile:\n      oidEndpoint: https://id.example.com\n      oidClientId: jf\n      displayName: '{HOSTILE}'\n    off:\n      oidEndpoint: https://id.example.com\n      oidClientId: jf\n      enabled: false\n  saml:\n    uni:\n      samlEndpoint: https://idp.example/sso\n      samlClientId: jf\n      samlIdpEntityId: https://idp.example\n      samlCertificateFile: {}\n",
        cert_file.display()
    )
}

struct Setup {
    jf: JellyfinDouble,
    proxy: TestProxy,
    _certs: tempfile::TempDir,
}

async fn setup(extra_yaml: &str) -> Setup {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let certs = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
    std::fs::write(certs.path().join("idp.pem"), cert.pem()).unwrap();
    let yaml = format!("{}{extra_yaml}", providers_yaml(&certs.path().join("idp.pem")));
    let proxy = TestProxy::start_sso(&jf.url(), KEY, &yaml).await;
    Setup { jf, proxy, _certs: certs }
}

/// The operator's branding, set as an administrator sets it on a real server.
async fn set_branding(jf: &JellyfinDouble, disclaimer: &str, css: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/System/Configuration/branding", jf.url()))
        .header("authorization", format!("MediaBrowser Token=\"{KEY}\""))
        .json(&json!({"LoginDisclaimer": disclaimer, "CustomCss": css}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

async fn branding(proxy: &TestProxy) -> (reqwest::header::HeaderMap, Value) {
    let r = http1_client().get(proxy.url("/Branding/Configuration")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    (h, r.json().await.unwrap())
}

/// Render `disclaimer` as jellyfin-web 10.11 does (tests/webclient/render-disclaimer.mjs).
async fn render(disclaimer: &str) -> Value {
    let input = json!({"disclaimer": disclaimer}).to_string();
    node::run(&node::webclient_dir().join("render-disclaimer.mjs"), &[], Some(input), "RENDER_RESULT").await
}

#[tokio::test]
async fn branding_carries_a_button_per_enabled_provider_after_the_operators_text() {
    let s = setup("").await;
    set_branding(&s.jf, "Welcome to **our** server. [Rules](https://example.org/rules)", "body{color:red}").await;
    let (h, b) = branding(&s.proxy).await;
    let disclaimer = b["LoginDisclaimer"].as_str().unwrap();
    assert!(disclaimer.starts_with("Welcome to **our** server. [Rules](https://example.org/rules)\n\n"), "{disclaimer}");
    assert!(b["CustomCss"].as_str().unwrap().starts_with("body{color:red}\n"));
    for action in ["/sso/OID/start/corp", "/sso/OID/start/hostile", "/sso/SAML/start/uni", "/sso/link"] {
        assert!(disclaimer.contains(&format!("action=\"{action}\"")), "{action} in {disclaimer}");
    }
    assert!(!disclaimer.contains("start/off"), "a disabled provider has no button");
    assert!(!disclaimer.contains("<script") && !disclaimer.contains("<img src=x"), "the label is escaped: {disclaimer}");
    assert_eq!(h["cache-control"], "no-cache");

    // The web client's rendering keeps the buttons as same-tab forms and the operator's link as a link.
    let r = render(disclaimer).await;
    let forms: Vec<(&str, &str, &str)> = r["forms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["method"].as_str().unwrap(), f["action"].as_str().unwrap(), f["buttons"][0]["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        forms,
        [
            ("get", "/sso/OID/start/corp", "Sign in with Corporate SSO"),
            ("get", "/sso/OID/start/hostile", &*format!("Sign in with {HOSTILE}")),
            ("get", "/sso/SAML/start/uni", "Sign in with uni"),
            ("get", "/sso/link", "Sign in on a TV or another device"),
        ]
    );
    assert!(r["forms"].as_array().unwrap().iter().all(|f| f["target"].is_null() && f["buttons"][0]["className"].as_str().unwrap().contains("raised")));
    assert_eq!(r["images"], json!(["/sso/link/qr.svg"]), "the QR code, and no image from the hostile label");
    assert_eq!((r["scripts"].as_u64(), r["eventAttributes"].as_array().unwrap().len()), (Some(0), 0), "the hostile label is inert");
    assert_eq!(r["links"], json!([{"href": "https://example.org/rules", "target": "_blank", "text": "Rules"}]));
    assert!(r["text"].as_str().unwrap().starts_with("Welcome to our server."));
}

#[tokio::test]
async fn providers_added_and_removed_through_the_admin_api_show_at_once_with_a_new_etag() {
    let s = setup("").await;
    let (h1, b1) = branding(&s.proxy).await;
    let etag = h1["etag"].to_str().unwrap().to_string();
    let again = http1_client().get(s.proxy.url("/Branding/Configuration")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "the proxy answers its own validator");
    assert!(s.jf.calls().iter().filter(|c| c.path == "/Branding/Configuration").all(|c| c.header("if-none-match").is_none()), "Jellyfin always sends the body");

    let add = json!({"oidEndpoint": "https://new.example.com", "oidClientId": "jf", "displayName": "Newcomer"});
    let r = http1_client().post(s.proxy.url("/sso/OID/Add/newcomer")).header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).json(&add).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (h2, b2) = branding(&s.proxy).await;
    assert!(b2["LoginDisclaimer"].as_str().unwrap().contains("action=\"/sso/OID/start/newcomer\" class=\"jsp-sso-form\"><button type=\"submit\" class=\"raised block emby-button button-submit jsp-sso-provider\"><span>Sign in with Newcomer"));
    assert!(!b1["LoginDisclaimer"].as_str().unwrap().contains("newcomer"));
    assert_ne!(h2["etag"], etag.as_str(), "a changed body has a changed ETag");
    let stale = http1_client().get(s.proxy.url("/Branding/Configuration")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(stale.status(), 200);

    let r = http1_client().get(s.proxy.url("/sso/OID/Del/newcomer")).header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!branding(&s.proxy).await.1["LoginDisclaimer"].as_str().unwrap().contains("newcomer"));
}

#[tokio::test]
async fn css_answers_compressed_and_oversized_answers() {
    let s = setup("").await;
    set_branding(&s.jf, "Hi", ".op{}").await;
    for path in ["/Branding/Css", "/Branding/Css.css"] {
        let css = http1_client().get(s.proxy.url(path)).send().await.unwrap().text().await.unwrap();
        assert!(css.starts_with(".op{}\n") && css.contains(".jsp-sso"), "{path}: {css}");
        assert!(!css.contains("manualLoginForm"), "passwords are not hidden unless asked");
    }

    // The double compresses for a client that accepts gzip; through the proxy the answer is rewritten anyway.
    let direct = reqwest::Client::new().get(format!("{}/Branding/Configuration", s.jf.url())).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(direct.headers()["content-encoding"], "gzip");
    let r = http1_client().get(s.proxy.url("/Branding/Configuration")).header("accept-encoding", "gzip, br").send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    let b: Value = r.json().await.unwrap();
    assert!(b["LoginDisclaimer"].as_str().unwrap().starts_with("Hi\n\n<div class=\"jsp-sso\">"));
    let asked = s.jf.calls().into_iter().rfind(|c| c.path == "/Branding/Configuration").unwrap();
    assert_eq!(asked.header("accept-encoding"), Some("identity"));

    // Above the cap the answer passes unchanged, byte for byte.
    let big = format!(".x{{content:\"{}\"}}", "a".repeat(300 * 1024));
    set_branding(&s.jf, "Hi", &big).await;
    let direct = reqwest::Client::new().get(format!("{}/Branding/Configuration", s.jf.url())).send().await.unwrap().bytes().await.unwrap();
    let through = http1_client().get(s.proxy.url("/Branding/Configuration")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(through.len(), direct.len());
    assert!(through == direct, "an oversized answer is not rewritten");
}

#[tokio::test]
async fn switches_buttons_off_hide_password_form_and_public_users() {
    let s = setup("sso:\n  login_page:\n    buttons: false\n    hide_password_form: true\n    hide_public_users: true\n").await;
    // Jellyfin creates users hidden (AddDefaultPermissions); an administrator shows this one.
    let visible = s.jf.add_user("visible", "pw", false);
    s.jf.update_policy(&visible, |p| {
        p.insert("IsHidden".into(), json!(false));
    });
    let (_, b) = branding(&s.proxy).await;
    assert!(b.get("LoginDisclaimer").is_none(), "no buttons: the disclaimer is Jellyfin's: {b}");
    let css = b["CustomCss"].as_str().unwrap();
    for class in [".manualLoginForm", ".visualLoginForm", ".btnManual", ".btnForgotPassword"] {
        assert!(css.contains(&format!("#loginPage {class}")), "{class} hidden: {css}");
    }
    let direct: Value = reqwest::get(format!("{}/Users/Public", s.jf.url())).await.unwrap().json().await.unwrap();
    assert_eq!(direct[0]["Name"], "visible", "Jellyfin lists the user");
    let through: Value = http1_client().get(s.proxy.url("/Users/Public")).send().await.unwrap().json().await.unwrap();
    assert_eq!(through, json!([]));
}

#[tokio::test]
async fn picker_page_lists_every_enabled_provider_escaped() {
    let s = setup("").await;
    let r = http1_client().get(s.proxy.url("/sso/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("action=\"/sso/OID/start/corp\"><button type=\"submit\">Sign in with Corporate SSO</button>"));
    assert!(html.contains("action=\"/sso/SAML/start/uni\""));
    assert!(html.contains("Sign in with &lt;img src=x onerror=alert(1)&gt;&lt;script&gt;"));
    assert!(!html.contains("start/off") && !html.contains("<script>alert"));
}

#[tokio::test]
async fn auto_redirect_sends_browser_navigations_to_the_provider_and_local_is_the_way_back() {
    let s = setup("sso:\n  login_page:\n    auto_redirect: corp\n").await;
    let nav = |path: &str| http1_client().get(s.proxy.url(path)).header("accept", "text/html,*/*").header("sec-fetch-mode", "navigate").header("sec-fetch-dest", "document");
    for path in ["/web/index.html", "/web/", "/"] {
        let r = nav(path).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers().get("location").and_then(|v| v.to_str().ok())), (302, Some("/sso/OID/start/corp")), "{path}");
    }
    let local = nav("/web/index.html?local=1").send().await.unwrap();
    assert_eq!(local.status(), 200);
    assert!(local.text().await.unwrap().contains("Jellyfin Web Double"));
    let fetch = http1_client().get(s.proxy.url("/web/index.html")).header("sec-fetch-mode", "cors").send().await.unwrap();
    assert_eq!(fetch.status(), 200, "a fetch is not redirected");
    let signed_in = nav("/web/index.html").header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).send().await.unwrap();
    assert_eq!(signed_in.status(), 200, "a request with credentials is not redirected");

    let other = setup("sso:\n  login_page:\n    auto_redirect: off\n").await;
    let r = http1_client().get(other.proxy.url("/web/index.html")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 200, "a disabled provider is no redirect target");
}

/// Chromium through the real OP, started from the web client's page (the disclaimer rendered
/// as jellyfin-web does) or, with `picker`, from `/sso/`. Returns the driver's result.
async fn chromium(picker: bool) -> (Value, JellyfinDouble, TestProxy) {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let listener = TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let op = OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient::basic(port, "pocket")],
        accounts: vec![OpAccount { login: "u-dana".into(), password: "pw".into(), claims: json!({"preferred_username": "dana"}), userinfo_only: vec![] }],
        par: true,
        ..Default::default()
    })
    .await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\nsso:\n  login_page:\n    hide_public_users: true\n    hide_password_form: true\nproviders:\n  oid:\n    pocket:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      disableHttps: true\n      displayName: Pocket ID\n",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &yaml).await;
    set_branding(&jf, "Members only.", "").await;
    let start = proxy.url(if picker { "/sso/" } else { "/web/index.html" });
    let mut envs = vec![("START_URL", start), ("LABEL", "Pocket ID".into()), ("LOGIN", "u-dana".into()), ("PASSWORD", "pw".into())];
    if picker {
        envs.push(("PICKER", "1".into()));
    }
    let r = node::run(&node::webclient_dir().join("login-page.mjs"), &envs, None, "BROWSER_RESULT").await;
    assert!(r.get("error").is_none(), "browser: {r:#}");
    // Signed in with a token the double issued for this browser's device, as user dana.
    assert_eq!(r["url"], proxy.url("/web/index.html"));
    assert_eq!(r["autoLogin"], "true");
    assert_eq!(r["tabs"], 1, "the sign-in stayed in the same tab");
    let server = &r["credentials"]["Servers"][0];
    let token = server["AccessToken"].as_str().unwrap();
    let session = jf.sessions().into_iter().find(|s| s.token == token).expect("the double issued this token");
    assert_eq!(Some(session.device_id.as_str()), r["deviceId"].as_str());
    assert_eq!(server["UserId"], jf.user_by_name("dana").expect("user provisioned")["Id"]);
    (r, jf, proxy)
}

/// Chromium on the web client's page, the disclaimer rendered as jellyfin-web does: the SSO-only
/// CSS hides the password form and user list, the button leads (same tab) through the real OP
/// to a signed-in web client; the user the proxy creates is hidden from the login screen.
#[tokio::test]
async fn chromium_follows_the_login_page_button_to_the_op_and_lands_signed_in() {
    let (r, jf, _proxy) = chromium(false).await;
    assert_eq!(r["buttons"], json!(["Sign in with Pocket ID", "Sign in on a TV or another device"]));
    assert_eq!(r["qrVisible"], true);
    let hidden_by_css = json!({".manualLoginForm": false, ".visualLoginForm": false, ".btnManual": false, ".btnQuick": true, ".btnForgotPassword": false});
    assert_eq!(r["visible"], hidden_by_css, "the SSO-only CSS hides the password form and the user list, not Quick Connect");
    let user = jf.user_by_name("dana").unwrap();
    // Jellyfin's own default for a new user too (AddDefaultPermissions); the proxy sets it explicitly.
    assert_eq!(user["Policy"]["IsHidden"], true, "created hidden from the login screen");
    let public: Value = reqwest::get(format!("{}/Users/Public", jf.url())).await.unwrap().json().await.unwrap();
    assert!(public.as_array().unwrap().is_empty(), "not even Jellyfin lists the new user: {public}");
}

/// The picker's button works in a browser too (its CSP lets the start redirect to the OP).
#[tokio::test]
async fn chromium_signs_in_from_the_picker_page() {
    chromium(true).await;
}
