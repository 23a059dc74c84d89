//! Provider presets end to end: for each product, the real test OpenID Provider (npm
//! `oidc-provider`) is shaped like it (its issuer and endpoint paths, where it puts roles or
//! groups and in which form, its client authentication, Google's endpoints on three other
//! hosts, Entra's `{tenantid}` issuer and Graph userinfo), the proxy binary runs with
//! `preset:` and only `roles`/`adminRoles`, and a cookie-keeping HTTP client signs in: the
//! allowed person gets in with the right name, the administrator becomes one, anyone else is
//! refused and no user is made. The same set-up without the preset fails as it does for an
//! operator today, which is what proves each preset does something.
//!
//! Google and Entra are reached at their real host names (`http://accounts.google.com`, ...):
//! the proxy and the browser use the test OP as their HTTP proxy (`HTTP_PROXY`), and the OP
//! serves every host of the product by host and path.

mod support;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::browser::{absolute, completion_data, Browser, Page};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::{free_port, ProxyProcess};

const KEY: &str = "test-api-key";
/// An Entra tenant id (a GUID), for the Entra-shaped OP.
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// One product: how the OP behaves, how the proxy is pointed at it, and its three people.
struct Product {
    preset: &'static str,
    op: OpConfig,
    /// `oidEndpoint` (`None`: the OP's issuer).
    oid_endpoint: Option<String>,
    /// How the client is registered at the OP (the product's default or usual method).
    auth_method: &'static str,
    /// Reached through the OP as HTTP proxy (the product's own host names).
    through_proxy: bool,
    /// `roles` and `adminRoles`, in the product's terms.
    grants: &'static str,
    /// Logins of the allowed person, the administrator and the refused one, and the Jellyfin
    /// usernames the first two must get.
    people: [(&'static str, &'static str); 3],
}

fn account(login: &str, claims: Value, userinfo_only: &[&str]) -> OpAccount {
    OpAccount { login: login.into(), password: "pw".into(), claims, userinfo_only: userinfo_only.iter().map(|s| s.to_string()).collect() }
}

fn shaped(issuer: &str, endpoints: Value, scope_claims: Value, accounts: Vec<OpAccount>) -> OpConfig {
    OpConfig { accounts, issuer: Some(issuer.into()), endpoints: Some(endpoints), scope_claims: Some(scope_claims), ..Default::default() }
}

struct Running {
    jf: JellyfinDouble,
    _op: OpenIdProvider,
    proxy: ProxyProcess,
    proxy_via: Option<String>,
    _dir: tempfile::TempDir,
}

/// Start the double, the product-shaped OP and the proxy binary with `provider_yaml` (the
/// lines under the provider after its endpoint, client and secret).
async fn run(product: &Product, provider_yaml: &str) -> Running {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let port = free_port();
    let mut op = product.op.clone();
    op.clients = vec![OpClient {
        auth_method: product.auth_method.into(),
        ..OpClient::basic(port, "idp")
    }];
    let op = OpenIdProvider::start(&op).await;
    let endpoint = product.oid_endpoint.clone().unwrap_or_else(|| op.issuer.clone());
    let yaml = format!(
        "  api_key: {KEY}\nproviders:\n  oid:\n    idp:\n      oidEndpoint: \"{endpoint}\"\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      disableHttps: true\n{provider_yaml}"
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy_via = product.through_proxy.then(|| op.http_proxy().to_string());
    let envs: Vec<(&str, &str)> = match &proxy_via {
        Some(p) => vec![("HTTP_PROXY", p.as_str()), ("NO_PROXY", "127.0.0.1,localhost")],
        None => vec![],
    };
    let proxy = ProxyProcess::start_with(dir.path(), port, &jf.url(), &yaml, &envs).await;
    Running { jf, _op: op, proxy, proxy_via, _dir: dir }
}

fn is_callback(u: &str) -> bool {
    u.contains("/sso/OID/redirect/")
}

/// A whole sign-in as `login`: Ok(the AuthenticationResult) or Err(the page that ended it).
async fn login(r: &Running, login: &str) -> Result<Value, Page> {
    let mut b = match &r.proxy_via {
        Some(p) => Browser::with_proxy(p),
        None => Browser::new(),
    };
    let page = b.follow(&r.proxy.url("/sso/OID/start/idp"), is_callback).await;
    if !page.status.is_redirection() && !page.body.contains("<form") {
        return Err(page);
    }
    let page = if page.status.is_redirection() { page } else { b.submit_form(&page, &[("login", login), ("password", "pw")], is_callback).await };
    assert!(page.status.is_redirection(), "expected the callback, got {} {}\n{}", page.status, page.url, page.body);
    let cb = absolute(&page.url, page.headers["location"].to_str().unwrap());
    let page = b.get(&cb).await;
    if page.status != 200 {
        return Err(page);
    }
    let data = completion_data(&page);
    let body = json!({"deviceId": format!("dev-{login}"), "deviceName": "Firefox", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let done = b.post_json(&r.proxy.url(data["authUrl"].as_str().unwrap()), &body).await;
    if done.status != 200 {
        return Err(done);
    }
    Ok(serde_json::from_str(&done.body).unwrap())
}

/// With the preset and only the grants: the person gets in under the right name, the
/// administrator becomes one, the third is refused with no user made.
async fn preset_works(product: &Product) {
    let r = run(product, &format!("      preset: {}\n{}", product.preset, product.grants)).await;
    let [(user, user_name), (admin, admin_name), (refused, _)] = product.people;
    let ok = login(&r, user).await.unwrap_or_else(|p| panic!("{}: {user}: {} {}\n{:?}", product.preset, p.status, p.body, r.proxy.stderr_lines.lock().unwrap()));
    assert_eq!(ok["User"]["Name"], user_name, "{}", product.preset);
    assert_eq!(r.jf.user_by_name(user_name).unwrap()["Policy"]["IsAdministrator"], false, "{}", product.preset);
    let ok = login(&r, admin).await.unwrap_or_else(|p| panic!("{}: {admin}: {} {}", product.preset, p.status, p.body));
    assert_eq!(ok["User"]["Name"], admin_name, "{}", product.preset);
    assert_eq!(r.jf.user_by_name(admin_name).unwrap()["Policy"]["IsAdministrator"], true, "{}", product.preset);
    let before = r.jf.user_count();
    let no = login(&r, refused).await.expect_err("refused");
    assert_eq!(no.status, 401, "{}: {}", product.preset, no.body);
    assert!(no.body.contains("not allowed on this server"), "{}: {}", product.preset, no.body);
    assert_eq!(r.jf.user_count(), before, "{}: nobody was made for the refused person", product.preset);
}

/// The same set-up without the preset (and `without` in its place): the allowed person is
/// refused by the role gate, the way the claims do not reach it without the preset.
async fn without_preset_refused(product: &Product, without: &str) {
    let r = run(product, &format!("{without}{}", product.grants)).await;
    let no = login(&r, product.people[0].0).await.expect_err("without the preset the role gate has nothing to go on");
    assert_eq!(no.status, 401, "{}: {}", product.preset, no.body);
    assert!(no.body.contains("not allowed on this server"), "{}: {}", product.preset, no.body);
    assert_eq!(r.jf.user_count(), 0);
}

/// The same set-up without the preset: discovery is refused, so signing in cannot start.
async fn without_preset_discovery_refused(product: &Product, log: &str) {
    let r = run(product, product.grants).await;
    let page = login(&r, product.people[0].0).await.expect_err("without the preset discovery fails");
    assert_eq!(page.status, 502, "{}: {}", product.preset, page.body);
    assert!(page.body.contains("identity provider"), "{}", page.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !r.proxy.log_contains(log) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(r.proxy.log_contains(log), "{}: the log says why ({log}): {:?}", product.preset, r.proxy.stderr_lines.lock().unwrap());
}

const GRANTS: &str = "      roles: [jellyfin-users]\n      adminRoles: [jellyfin-admins]\n      enableAuthorization: true\n";

/// Three people whose groups are `groups` claims of plain names (Pocket ID, Authelia, authentik).
fn group_people(only_userinfo: &[&str]) -> Vec<OpAccount> {
    vec![
        account("alice", json!({"preferred_username": "alice", "email": "alice@example.com", "groups": ["jellyfin-users", "family"]}), only_userinfo),
        account("boss", json!({"preferred_username": "boss", "email": "boss@example.com", "groups": ["jellyfin-admins"]}), only_userinfo),
        account("mallory", json!({"preferred_username": "mallory", "groups": ["other"]}), only_userinfo),
    ]
}

const PEOPLE: [(&str, &str); 3] = [("alice", "alice"), ("boss", "boss"), ("mallory", "")];

fn pocket_id_like() -> Product {
    // Pocket ID: issuer = its address; `groups` with the `groups` scope, in the ID token too.
    let op = shaped(
        "{origin}",
        json!({"authorization_endpoint": "{origin}/authorize", "token_endpoint": "{origin}/api/oidc/token", "userinfo_endpoint": "{origin}/api/oidc/userinfo",
               "jwks_uri": "{origin}/.well-known/jwks.json", "end_session_endpoint": "{origin}/api/oidc/end-session"}),
        json!({"openid": ["sub"], "profile": ["preferred_username", "name", "picture"], "email": ["email", "email_verified"], "groups": ["groups"]}),
        group_people(&[]),
    );
    Product { preset: "pocket-id", op, oid_endpoint: None, auth_method: "client_secret_basic", through_proxy: false, grants: GRANTS, people: PEOPLE }
}

fn authelia_like() -> Product {
    // Authelia: `groups` with the `groups` scope and only at userinfo (4.39's claims policy);
    // PAR offered; the client must authenticate exactly as registered (its default: basic).
    let mut op = shaped(
        "{origin}",
        json!({"authorization_endpoint": "{origin}/api/oidc/authorization", "token_endpoint": "{origin}/api/oidc/token", "userinfo_endpoint": "{origin}/api/oidc/userinfo",
               "jwks_uri": "{origin}/jwks.json", "pushed_authorization_request_endpoint": "{origin}/api/oidc/pushed-authorization-request"}),
        json!({"openid": ["sub"], "profile": ["preferred_username", "name"], "email": ["email", "email_verified"], "groups": ["groups"]}),
        group_people(&["groups", "preferred_username"]),
    );
    op.par = true;
    Product { preset: "authelia", op, oid_endpoint: None, auth_method: "client_secret_basic", through_proxy: false, grants: GRANTS, people: PEOPLE }
}

fn authentik_like() -> Product {
    // authentik: one issuer per application, with a trailing slash; `groups` comes with the
    // default `profile` scope mapping.
    let op = shaped(
        "{origin}/application/o/jellyfin/",
        json!({"authorization_endpoint": "{origin}/application/o/authorize/", "token_endpoint": "{origin}/application/o/token/", "userinfo_endpoint": "{origin}/application/o/userinfo/",
               "jwks_uri": "{origin}/application/o/jellyfin/jwks/", "end_session_endpoint": "{origin}/application/o/jellyfin/end-session/"}),
        json!({"openid": ["sub"], "profile": ["preferred_username", "name", "groups"], "email": ["email", "email_verified"]}),
        group_people(&[]),
    );
    Product { preset: "authentik", op, oid_endpoint: None, auth_method: "client_secret_basic", through_proxy: false, grants: GRANTS, people: PEOPLE }
}

fn keycloak_like() -> Product {
    // Keycloak 26: realm roles under `realm_access.roles`, from the default `roles` client
    // scope (always granted), at userinfo and not in the ID token.
    let people = vec![
        account("alice", json!({"preferred_username": "alice", "realm_access": {"roles": ["jellyfin-users", "default-roles-home"]}}), &["realm_access"]),
        account("boss", json!({"preferred_username": "boss", "realm_access": {"roles": ["jellyfin-admins"]}}), &["realm_access"]),
        account("mallory", json!({"preferred_username": "mallory", "realm_access": {"roles": ["default-roles-home"]}}), &["realm_access"]),
    ];
    let kc = "{origin}/realms/home/protocol/openid-connect";
    let op = shaped(
        "{origin}/realms/home",
        json!({"authorization_endpoint": format!("{kc}/auth"), "token_endpoint": format!("{kc}/token"), "userinfo_endpoint": format!("{kc}/userinfo"),
               "jwks_uri": format!("{kc}/certs"), "end_session_endpoint": format!("{kc}/logout")}),
        json!({"openid": ["sub", "realm_access"], "profile": ["preferred_username", "name"], "email": ["email", "email_verified"]}),
        people,
    );
    Product { preset: "keycloak", op, oid_endpoint: None, auth_method: "client_secret_basic", through_proxy: false, grants: GRANTS, people: PEOPLE }
}

fn kanidm_like() -> Product {
    // Kanidm: one issuer per client; names and groups as SPNs `name@domain`, groups also by UUID.
    let d = "idm.example.com";
    let people = vec![
        account("alice", json!({"preferred_username": format!("alice@{d}"), "groups": [format!("jellyfin_users@{d}"), "3a1c5b0e-8f2d-4c44-9a51-6f2b1f0c9e11", format!("idm_all_persons@{d}")]}), &[]),
        account("boss", json!({"preferred_username": format!("boss@{d}"), "groups": [format!("jellyfin_admins@{d}")]}), &[]),
        account("mallory", json!({"preferred_username": format!("mallory@{d}"), "groups": [format!("idm_all_persons@{d}")]}), &[]),
    ];
    let op = shaped(
        "{origin}/oauth2/openid/jellyfin",
        json!({"authorization_endpoint": "{origin}/ui/oauth2", "token_endpoint": "{origin}/oauth2/token", "userinfo_endpoint": "{origin}/oauth2/openid/jellyfin/userinfo",
               "jwks_uri": "{origin}/oauth2/openid/jellyfin/public_key.jwk"}),
        json!({"openid": ["sub"], "profile": ["preferred_username", "name"], "email": ["email", "email_verified"], "groups": ["groups"]}),
        people,
    );
    let grants = "      roles: [jellyfin_users]\n      adminRoles: [jellyfin_admins]\n      enableAuthorization: true\n";
    Product { preset: "kanidm", op, oid_endpoint: None, auth_method: "client_secret_basic", through_proxy: false, grants, people: [("alice", "alice"), ("boss", "boss"), ("mallory", "")] }
}

fn google_like() -> Product {
    // Google: token, userinfo and keys on three googleapis.com hosts; a numeric subject; no
    // groups, so `roles` lists e-mail addresses.
    let people = vec![
        account("108204268033311374519", json!({"email": "alice@gmail.com", "email_verified": true, "name": "Alice"}), &[]),
        account("113956243580236417220", json!({"email": "boss@gmail.com", "email_verified": true, "name": "Boss"}), &[]),
        account("100876543210987654321", json!({"email": "mallory@gmail.com", "email_verified": true, "name": "Mallory"}), &[]),
    ];
    let op = shaped(
        "http://accounts.google.com",
        json!({"authorization_endpoint": "http://accounts.google.com/o/oauth2/v2/auth", "token_endpoint": "http://oauth2.googleapis.com/token",
               "userinfo_endpoint": "http://openidconnect.googleapis.com/v1/userinfo", "jwks_uri": "http://www.googleapis.com/oauth2/v3/certs",
               "revocation_endpoint": "http://oauth2.googleapis.com/revoke", "end_session_endpoint": null}),
        json!({"openid": ["sub"], "profile": ["name", "picture"], "email": ["email", "email_verified"]}),
        people,
    );
    let grants = "      roles: [alice@gmail.com]\n      adminRoles: [boss@gmail.com]\n      enableAuthorization: true\n";
    Product {
        preset: "google",
        op,
        oid_endpoint: None,
        auth_method: "client_secret_post",
        through_proxy: true,
        grants,
        people: [("108204268033311374519", "alice@gmail.com"), ("113956243580236417220", "boss@gmail.com"), ("100876543210987654321", "")],
    }
}

fn entra_like() -> Product {
    // Entra ID, multi-tenant (`common`): the document's issuer has a `{tenantid}` placeholder,
    // tokens carry the tenant's own issuer and `tid`; userinfo is on Microsoft Graph; app
    // roles in `roles`, groups as object ids; no `iss` on the callback.
    let t = format!("http://login.microsoftonline.com/{TENANT}");
    let c = "http://login.microsoftonline.com/common";
    let group = "5e1d8f3a-2b4c-4d6e-8f90-1a2b3c4d5e6f";
    let people = vec![
        account("u-alice", json!({"tid": TENANT, "preferred_username": "alice@contoso.com", "roles": ["Jellyfin.User"], "groups": [group]}), &[]),
        account("u-boss", json!({"tid": TENANT, "preferred_username": "boss@contoso.com", "roles": ["Jellyfin.Admin"], "groups": [group]}), &[]),
        account("u-mallory", json!({"tid": TENANT, "preferred_username": "mallory@contoso.com", "groups": [group]}), &[]),
    ];
    let mut op = shaped(
        &format!("{t}/v2.0"),
        json!({"authorization_endpoint": format!("{t}/oauth2/v2.0/authorize"), "token_endpoint": format!("{t}/oauth2/v2.0/token"),
               "jwks_uri": format!("{t}/discovery/v2.0/keys"), "userinfo_endpoint": "http://graph.microsoft.com/oidc/userinfo",
               "end_session_endpoint": format!("{t}/oauth2/v2.0/logout")}),
        json!({"openid": ["sub", "tid", "roles", "groups"], "profile": ["preferred_username", "name"], "email": ["email"]}),
        people,
    );
    op.discovery = Some(json!({"/common/v2.0": {
        "issuer": "http://login.microsoftonline.com/{tenantid}/v2.0",
        "authorization_endpoint": format!("{c}/oauth2/v2.0/authorize"), "token_endpoint": format!("{c}/oauth2/v2.0/token"),
        "jwks_uri": format!("{c}/discovery/v2.0/keys"), "end_session_endpoint": format!("{c}/oauth2/v2.0/logout"),
    }}));
    op.iss_param = Some(false);
    let grants = "      roles: [Jellyfin.User]\n      adminRoles: [Jellyfin.Admin]\n      enableAuthorization: true\n";
    Product {
        preset: "entra",
        op,
        oid_endpoint: Some(format!("{c}/v2.0")),
        auth_method: "client_secret_post",
        through_proxy: true,
        grants,
        people: [("u-alice", "alice@contoso.com"), ("u-boss", "boss@contoso.com"), ("u-mallory", "")],
    }
}

fn zitadel_like() -> Product {
    // ZITADEL: project roles as the keys of an object, asserted at userinfo.
    let roles = |names: &[&str]| -> Value { names.iter().map(|n| (n.to_string(), json!({"287563912345678901": "acme.zitadel.cloud"}))).collect::<serde_json::Map<_, _>>().into() };
    let claim = "urn:zitadel:iam:org:project:roles";
    let people = vec![
        account("alice", json!({"preferred_username": "alice", claim: roles(&["jellyfin-users"])}), &[claim]),
        account("boss", json!({"preferred_username": "boss", claim: roles(&["jellyfin-admins", "jellyfin-users"])}), &[claim]),
        account("mallory", json!({"preferred_username": "mallory", claim: roles(&["billing"])}), &[claim]),
    ];
    let op = shaped(
        "{origin}",
        json!({"authorization_endpoint": "{origin}/oauth/v2/authorize", "token_endpoint": "{origin}/oauth/v2/token", "userinfo_endpoint": "{origin}/oidc/v1/userinfo",
               "jwks_uri": "{origin}/oauth/v2/keys", "end_session_endpoint": "{origin}/oidc/v1/end_session"}),
        json!({"openid": ["sub", claim], "profile": ["preferred_username", "name"], "email": ["email", "email_verified"]}),
        people,
    );
    Product { preset: "zitadel", op, oid_endpoint: None, auth_method: "client_secret_basic", through_proxy: false, grants: GRANTS, people: PEOPLE }
}

#[tokio::test]
async fn pocket_id() {
    preset_works(&pocket_id_like()).await;
    without_preset_refused(&pocket_id_like(), "").await;
}

#[tokio::test]
async fn authelia() {
    preset_works(&authelia_like()).await;
    without_preset_refused(&authelia_like(), "").await;
}

#[tokio::test]
async fn authentik() {
    preset_works(&authentik_like()).await;
    without_preset_refused(&authentik_like(), "").await;
}

#[tokio::test]
async fn keycloak() {
    preset_works(&keycloak_like()).await;
    without_preset_refused(&keycloak_like(), "").await;
}

#[tokio::test]
async fn kanidm() {
    preset_works(&kanidm_like()).await;
    // Even with the claim and scope set by hand, the SPNs do not match the group names.
    without_preset_refused(&kanidm_like(), "      roleClaim: groups\n      oidScopes: [groups]\n").await;
}

#[tokio::test]
async fn google() {
    preset_works(&google_like()).await;
    without_preset_discovery_refused(&google_like(), "is not on the issuer's origin").await;
}

#[tokio::test]
async fn entra() {
    preset_works(&entra_like()).await;
    without_preset_discovery_refused(&entra_like(), "names issuer").await;
}

#[tokio::test]
async fn zitadel() {
    preset_works(&zitadel_like()).await;
    without_preset_refused(&zitadel_like(), "").await;
}
