//! `jellyfin-sso-proxy import-plugin-config`: the SSO plugin's saved configuration (fixtures in
//! tests/fixtures/plugin/, built from the plugin's and a fork's C# classes) imported by the
//! real binary, then used by a proxy against the real OpenID Provider and the Jellyfin double.

mod support;

use std::path::Path;
use std::process::Output;

use base64::Engine;
use figment::providers::Env;
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use jellyfin_sso_proxy::config::Config;
use jellyfin_sso_proxy::state::{open_durable, Durable};
use serde_json::{json, Value};
use support::browser::{completion_data, Browser};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::{http1_client, TestProxy};

const KEY: &str = "test-api-key";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugin").join(name)).unwrap()
}

/// A Jellyfin id (32 hex digits) as .NET writes a `Guid`: 8-4-4-4-12, upper case here.
fn dashed(id: &str) -> String {
    let h = id.replace('-', "").to_uppercase();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn account(login: &str, claims: Value) -> OpAccount {
    OpAccount { login: login.into(), password: "pw".into(), claims, userinfo_only: vec![] }
}

/// The double, the OP (client for provider `provider` of a proxy on the reserved port), a
/// state directory and the `state:` section both the command and the proxy use.
struct World {
    jf: JellyfinDouble,
    op: OpenIdProvider,
    listener: tokio::net::TcpListener,
    dir: tempfile::TempDir,
    state_yaml: String,
}

async fn world(provider: &str) -> World {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let listener = TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let mut client = OpClient::basic(port, provider);
    client.client_secret = Some("jellyfin-secret".into());
    let accounts = vec![
        account("u-alice", json!({"preferred_username": "alice", "groups": ["jellyfin-users"]})),
        account("u-impostor", json!({"preferred_username": "impostor", "groups": ["jellyfin-users"]})),
        account("u-boss", json!({"preferred_username": "boss", "groups": ["jellyfin-admins"]})),
        account("u-dave", json!({"preferred_username": "dave.new", "groups": []})),
    ];
    let op = OpenIdProvider::start(&OpConfig { clients: vec![client], accounts, par: false, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let state_yaml = if support::shared_state_wanted() { support::shared_state_yaml(dir.path()) } else { String::new() };
    World { jf, op, listener, dir, state_yaml }
}

impl World {
    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// The proxy.yaml the command reads (and the proxy starts from, plus `extra`).
    fn yaml(&self, extra: &str) -> String {
        format!(
            "listen: 127.0.0.1:{}\npublic_url: https://127.0.0.1:{}\nstate_dir: data\nlog:\n  level: warn\njellyfin:\n  url: {}\n  api_key: {KEY}\n{}{extra}",
            self.port(),
            self.port(),
            self.jf.url(),
            self.state_yaml
        )
    }

    /// Run the real binary: `import-plugin-config` on `xml` (written to the state directory).
    fn import(&self, xml: &str, args: &[&str]) -> Output {
        let config = self.dir.path().join("proxy.yaml");
        std::fs::write(&config, self.yaml("")).unwrap();
        let file = self.dir.path().join("SSO-Auth.xml");
        std::fs::write(&file, xml).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy"))
            .arg("--config")
            .arg(&config)
            .arg("import-plugin-config")
            .arg(&file)
            .args(args)
            // The binary reads JSP_* as settings; the test's own switch is not one.
            .env_remove("JSP_TEST_STATE")
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    async fn durable(&self) -> std::sync::Arc<dyn Durable> {
        let c = Config::from_parts(Some(&self.yaml("")), "proxy.yaml", self.dir.path(), Env::prefixed("JSP_TEST_UNUSED_")).unwrap();
        open_durable(&c.state, &c.state_dir).await.unwrap()
    }

    async fn start(self, extra: &str) -> (JellyfinDouble, OpenIdProvider, TestProxy) {
        let yaml = format!("jellyfin:\n  url: {}\n  api_key: {KEY}\n{}{extra}", self.jf.url(), self.state_yaml);
        let proxy = TestProxy::start_on(self.listener, self.dir, &yaml).await;
        (self.jf, self.op, proxy)
    }
}

/// The upstream fixture with the double's user ids, the OP's issuer and a SAML certificate.
fn upstream_xml(w: &World, alice: &str, boss: &str, carol: &str) -> String {
    let cert = rcgen::generate_simple_self_signed(vec!["idp.example.com".into()]).unwrap().cert;
    fixture("SSO-Auth.xml")
        .replace("@ISSUER@", &w.op.issuer)
        .replace("@ALICE@", &dashed(alice))
        .replace("@BOSS@", &dashed(boss))
        .replace("@CAROL@", &dashed(carol))
        .replace("@SAML_CERT@", &base64::engine::general_purpose::STANDARD.encode(cert.der()))
}

const ENTITY: &str = "--set=saml.corp.samlIdpEntityId=https://idp.example.com/metadata";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Sign `login` in at provider `provider` through the proxy; the AuthenticationResult or the status.
async fn login(proxy: &TestProxy, provider: &str, login: &str) -> Result<Value, (u16, String)> {
    let mut b = Browser::new();
    let is_callback = |u: &str| u.contains("/sso/OID/redirect/");
    let page = b.follow(&proxy.url(&format!("/sso/OID/start/{provider}")), is_callback).await;
    let page = if page.status.is_redirection() { page } else { b.submit_form(&page, &[("login", login), ("password", "pw")], is_callback).await };
    assert!(page.status.is_redirection(), "{} {}", page.status, page.body);
    let cb = support::browser::absolute(&page.url, page.headers["location"].to_str().unwrap());
    let page = b.get(&cb).await;
    if page.status != 200 {
        return Err((page.status.as_u16(), page.body));
    }
    let data = completion_data(&page);
    let body = json!({"deviceId": format!("dev-{login}"), "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let done = b.post_json(&proxy.url(data["authUrl"].as_str().unwrap()), &body).await;
    if done.status != 200 {
        return Err((done.status.as_u16(), done.body));
    }
    Ok(serde_json::from_str(&done.body).unwrap())
}

#[tokio::test]
async fn the_fragment_starts_the_proxy_and_an_imported_link_signs_its_person_in_then_is_keyed_by_subject() {
    let w = world("test").await;
    // The plugin's users: alice's account was renamed in Jellyfin (or linked on the plugin's
    // linking page), so only the link, not her name, leads to it.
    let alice = w.jf.add_user("Alice Smith", "pw", false);
    let boss = w.jf.add_user("boss-account", "pw", true);
    let carol = w.jf.add_user("carol", "pw", false);
    let out_file = w.dir.path().join("providers.yaml");
    let out = w.import(&upstream_xml(&w, &alice, &boss, &carol), &[ENTITY, "--output", out_file.to_str().unwrap()]);
    let report = stderr(&out);
    assert!(out.status.success(), "{report}");
    for line in [
        "oid/test: <OidEndpoint> (line",
        ") → oidEndpoint",
        "oid/test: <SchemeOverride> (line",
        "saml/corp: <PortOverride> (line",
        "saml/corp: <NewPath> (line",
        "register the new one at the identity provider",
        "oid/test: 2 link(s): 0 by subject, 2 by username",
        "saml/corp: 1 link(s): 1 by subject, 0 by username",
        "samlIdpEntityId set from the command line",
    ] {
        assert!(report.contains(line), "report lacks {line:?}:\n{report}");
    }
    let fragment = std::fs::read_to_string(&out_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777, 0o600, "it holds the client secret");
    }
    assert!(fragment.contains("providers:") && fragment.contains("oidClientId: jellyfin"), "{fragment}");
    assert!(out.stdout.is_empty(), "with --output, nothing on standard output");

    let durable = w.durable().await;
    assert_eq!(durable.legacy_link("oid", "test", "alice").await.unwrap().unwrap().user_id, alice.to_lowercase());
    assert_eq!(durable.link("saml", "corp", "carol@example.com").await.unwrap().unwrap().user_id, carol.to_lowercase(), "SAML: keyed by the NameID already");
    drop(durable);

    // The fragment, as it is, is proxy.yaml's providers section.
    let (jf, op, proxy) = w.start(&fragment).await;
    // Before her first login, the admin API lists alice's imported link by the plugin's name.
    let admin = support::jellyfin_password_login(&jf.url(), "boss-account", "pw").await.unwrap();
    let links = |user: String| {
        let (url, admin) = (proxy.url(&format!("/sso/oid/links/{user}")), admin.clone());
        async move {
            let r = support::http1_client().get(url).header("authorization", format!("MediaBrowser Token=\"{admin}\"")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(links(alice.clone()).await, json!({"test": ["alice"]}), "the imported name link is listed");
    let r = login(&proxy, "test", "u-alice").await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r["User"]["Id"], alice, "the imported link led to the plugin's account");
    assert!(jf.user_by_name("alice").is_none(), "no new account was made");

    let c = Config::from_parts(Some(&proxy_yaml(&proxy, &jf.url())), "p", proxy.dir.path(), Env::prefixed("JSP_TEST_UNUSED_")).unwrap();
    let durable = open_durable(&c.state, &c.state_dir).await.unwrap();
    assert_eq!(durable.link("oid", "test", "u-alice").await.unwrap().unwrap().user_id.to_lowercase(), alice.to_lowercase(), "re-keyed to the subject");
    assert!(durable.legacy_link("oid", "test", "alice").await.unwrap().is_none(), "the name link is gone");
    assert_eq!(links(alice.clone()).await, json!({"test": ["u-alice"]}), "listed by subject now, once");

    // Someone else who now holds the name `alice` at the provider does not get in to her account.
    op.set_claims("u-impostor", json!({"preferred_username": "alice", "groups": ["jellyfin-users"]})).await;
    if let Ok(r) = login(&proxy, "test", "u-impostor").await {
        assert_ne!(r["User"]["Id"], alice, "a different subject with the same preferred_username");
    }
    // Alice herself, renamed at the provider, still reaches it by her subject.
    op.set_claims("u-alice", json!({"preferred_username": "alice.renamed", "groups": ["jellyfin-users"]})).await;
    assert_eq!(login(&proxy, "test", "u-alice").await.unwrap()["User"]["Id"], alice);

    // A name link to an administrator is not followed without adoptExistingAdmins.
    let (status, _) = login(&proxy, "test", "u-boss").await.expect_err("administrator not adopted by name");
    assert_eq!(status, 403);
    assert!(durable.legacy_link("oid", "test", "boss").await.unwrap().is_some(), "left for the operator");
    assert!(durable.link("oid", "test", "u-boss").await.unwrap().is_none());
}

/// The proxy's own yaml is not kept; rebuild the `state:` part from its directory.
fn proxy_yaml(proxy: &TestProxy, jellyfin: &str) -> String {
    let shared = if support::shared_state_wanted() { support::shared_state_yaml(proxy.dir.path()) } else { String::new() };
    format!("state_dir: data\njellyfin:\n  url: {jellyfin}\n{shared}")
}

#[tokio::test]
async fn into_state_providers_appear_in_the_admin_api() {
    let w = world("test").await;
    let (alice, boss, carol) = (w.jf.add_user("alice", "pw", false), w.jf.add_user("boss", "pw", true), w.jf.add_user("carol", "pw", false));
    let out = w.import(&upstream_xml(&w, &alice, &boss, &carol), &[ENTITY, "--into-state"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no fragment with --into-state");
    assert!(stderr(&out).contains("2 API provider(s)"), "{}", stderr(&out));
    let (_jf, _op, proxy) = w.start("").await;
    for (path, name, key, want) in [("/sso/OID/Get", "test", "oidClientId", "jellyfin"), ("/sso/SAML/Get", "corp", "samlClientId", "jellyfin-sp")] {
        let r = http1_client().get(proxy.url(path)).header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v[name][key], want, "{v}");
    }
    let r = http1_client().get(proxy.url("/sso/OID/Get")).header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["test"]["oidSecret"], "********", "secrets stay redacted");
    assert_eq!(v["test"]["roles"], json!(["jellyfin-users"]));
    // Signing in works with the stored provider, through the imported link.
    assert_eq!(login(&proxy, "test", "u-alice").await.unwrap()["User"]["Id"], alice);
}

#[tokio::test]
async fn invalid_input_writes_nothing_and_names_the_line() {
    let w = world("test").await;
    let (alice, boss, carol) = ("0f8fad5bd9cb469fa16570867728950e", "1f8fad5bd9cb469fa16570867728950e", "2f8fad5bd9cb469fa16570867728950e");
    let good = upstream_xml(&w, alice, boss, carol);
    let empty = |d: &std::sync::Arc<dyn Durable>| {
        let d = d.clone();
        async move { d.providers().await.unwrap().is_empty() && d.legacy_link("oid", "test", "alice").await.unwrap().is_none() && d.link("saml", "corp", "carol@example.com").await.unwrap().is_none() }
    };

    // Without the SAML entity id the plugin never had: refused, with the way out.
    let out = w.import(&good, &["--into-state"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("samlIdpEntityId") && stderr(&out).contains("nothing was written"), "{}", stderr(&out));

    // A bad user id and a bad boolean: every problem, with its line; nothing written.
    let bad = good.replace(&dashed(alice), "not-a-guid").replace("<DisableHttps>true</DisableHttps>", "<DisableHttps>yes</DisableHttps>");
    let out = w.import(&bad, &[ENTITY, "--into-state"]);
    let report = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(report.contains(&format!("line {}: <DisableHttps> must be true or false", line_of("<DisableHttps>yes"))), "{report}");
    assert!(report.contains("`not-a-guid` is not a Jellyfin user id"), "{report}");

    // Broken XML: the line and column.
    let broken = good.replacen("</OidClientId>", "</OidClient>", 1);
    let out = w.import(&broken, &[ENTITY]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("line {}", line_of("<OidClientId>"))), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no fragment");

    // An existing, different API provider of the same name is not replaced.
    let durable = w.durable().await;
    assert!(empty(&durable).await, "nothing was written by any refused run");
    durable.put_provider(jellyfin_sso_proxy::state::StoredProvider { protocol: "oid".into(), name: "test".into(), json: json!({"oidEndpoint": "https://other.example"}) }).await.unwrap();
    drop(durable);
    let out = w.import(&good, &[ENTITY, "--into-state"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists with other settings"), "{}", stderr(&out));
    let durable = w.durable().await;
    assert_eq!(durable.providers().await.unwrap().len(), 1);
    assert!(durable.legacy_link("oid", "test", "alice").await.unwrap().is_none(), "no links either");
}

#[tokio::test]
async fn a_forks_fields_are_reported_and_its_subject_keyed_links_kept() {
    let w = world("forked").await;
    let (dave, erin) = (w.jf.add_user("dave", "pw", false), w.jf.add_user("erin", "pw", false));
    let xml = fixture("SSO-Auth.fork.xml").replace("@ISSUER@", &w.op.issuer).replace("@DAVE@", &dashed(&dave)).replace("@ERIN@", &dashed(&erin));
    let out = w.import(&xml, &["--into-state"]);
    let report = stderr(&out);
    assert!(out.status.success(), "{report}");
    for element in ["BaseUrlOverride", "EnableBackChannelLogout", "AllowExistingAccountLink", "CanonicalLinkLastLogins", "AcrValues", "MaxAge", "RoleClaimIsObjectMap"] {
        assert!(report.contains(&format!("oid/forked: <{element}> (line")) && report.contains("(a fork's field?): not imported"), "{element}:\n{report}");
    }
    for element in ["EnableRateLimit", "ManageLoginPageButtons", "DisablePasswordLogin"] {
        assert!(report.contains(&format!("<{element}> is not in the plugin's PluginConfiguration")), "{element}:\n{report}");
    }
    assert!(report.contains("<LoginButtonText> (line") && report.contains("→ displayName"), "{report}");
    assert!(report.contains("<RequirePkce> (line") && report.contains("always uses PKCE"), "{report}");
    assert!(report.contains("1 by subject, 1 by username"), "{report}");
    let durable = w.durable().await;
    assert_eq!(durable.provider("oid", "forked").await.unwrap().unwrap().json["displayName"], "Sign in with Forked & Co");
    assert!(durable.legacy_link("oid", "forked", "erin").await.unwrap().is_some());
    drop(durable);
    // The fork's subject-keyed link is a subject link: dave, renamed at the provider, gets in.
    let (_jf, _op, proxy) = w.start("").await;
    assert_eq!(login(&proxy, "forked", "u-dave").await.unwrap()["User"]["Id"], dave);
}
