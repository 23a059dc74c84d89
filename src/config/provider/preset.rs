//! Provider presets (`preset: keycloak` on an OIDC provider, `"preset": "keycloak"` in the
//! admin API's JSON): what each identity provider product needs that the plugin's defaults
//! do not give, known once here instead of rediscovered by every operator.
//!
//! A preset gives defaults for the claims, scopes and client authentication (explicit fields
//! still win, see `validate.rs`), and names the few exceptions to the endpoint and issuer
//! checks that the product needs, each exact: Google serves its token, userinfo and key
//! endpoints from three `googleapis.com` hosts beside its issuer; Entra serves userinfo from
//! Microsoft Graph and its issuer carries the tenant (multi-tenant discovery names it with a
//! `{tenantid}` placeholder). Nothing here relaxes a check for a provider without a preset.
//! The facts for each product, with their sources, are in `docs/providers/`.

use serde_json::Value;
use url::Url;

use super::TokenAuthMethod;

/// An identity provider product whose needs are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    PocketId,
    Authelia,
    Authentik,
    Keycloak,
    Kanidm,
    Google,
    Entra,
    Zitadel,
}

/// The defaults a preset gives; an explicit field of the provider wins over each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetDefaults {
    /// Extra scopes (`oidScopes`), beside the `openid profile` always requested.
    pub scopes: &'static [&'static str],
    pub role_claim: &'static str,
    pub username_claim: &'static str,
    pub token_auth_method: TokenAuthMethod,
}

/// The Zitadel claim that holds a user's roles of the client's project: an object whose keys
/// are the role names (`{"jellyfin-users": {"<org id>": "<org domain>"}}`).
pub const ZITADEL_ROLES_CLAIM: &str = "urn:zitadel:iam:org:project:roles";

/// Entra's issuer host; its issuers are `https://login.microsoftonline.com/{tenant}/v2.0`.
pub const ENTRA_HOST: &str = "login.microsoftonline.com";
/// The placeholder in the issuer of Entra's multi-tenant discovery (`common`, `organizations`).
pub const ENTRA_TENANT_PLACEHOLDER: &str = "{tenantid}";

impl Preset {
    pub const ALL: [Preset; 8] =
        [Preset::PocketId, Preset::Authelia, Preset::Authentik, Preset::Keycloak, Preset::Kanidm, Preset::Google, Preset::Entra, Preset::Zitadel];

    /// The name in `preset:`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::PocketId => "pocket-id",
            Preset::Authelia => "authelia",
            Preset::Authentik => "authentik",
            Preset::Keycloak => "keycloak",
            Preset::Kanidm => "kanidm",
            Preset::Google => "google",
            Preset::Entra => "entra",
            Preset::Zitadel => "zitadel",
        }
    }

    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The names, for an error message.
    pub fn names() -> String {
        Preset::ALL.map(Preset::name).join(", ")
    }

    pub fn defaults(self) -> PresetDefaults {
        use TokenAuthMethod::{ClientSecretBasic, ClientSecretPost};
        let (scopes, role_claim, username_claim, token_auth_method): (&'static [&'static str], _, _, _) = match self {
            // `groups` only with the `groups` scope; in the ID token and userinfo.
            Preset::PocketId => (&["email", "groups"], "groups", "preferred_username", ClientSecretBasic),
            // `groups` only with the `groups` scope, and (since 4.39) only at userinfo;
            // Authelia's default client authentication is client_secret_basic.
            Preset::Authelia => (&["email", "groups"], "groups", "preferred_username", ClientSecretBasic),
            // authentik's default `profile` scope mapping carries `groups`.
            Preset::Authentik => (&["email"], "groups", "preferred_username", ClientSecretBasic),
            // The `roles` client scope is a default scope; realm roles at userinfo (and in
            // the access token), not in the ID token.
            Preset::Keycloak => (&["email"], "realm_access.roles", "preferred_username", ClientSecretBasic),
            // `groups` lists group SPNs (`name@domain`) and UUIDs; see `short_names`.
            Preset::Kanidm => (&["email", "groups"], "groups", "preferred_username", ClientSecretBasic),
            // No groups at all: `roles` lists the e-mail addresses that may sign in. The
            // subject is a number, so the username is the (verified) e-mail address.
            Preset::Google => (&["email"], "email", "email", ClientSecretPost),
            // App roles in `roles`; `groups` (object ids) only when the app asks for them.
            Preset::Entra => (&["email"], "roles", "preferred_username", ClientSecretPost),
            Preset::Zitadel => (&["email"], ZITADEL_ROLES_CLAIM, "preferred_username", ClientSecretBasic),
        };
        PresetDefaults { scopes, role_claim, username_claim, token_auth_method }
    }

    /// The exact hosts, beside the issuer's, that this product's endpoints are on (with the
    /// issuer's scheme and default port); every other host is still refused.
    pub fn endpoint_hosts(self) -> &'static [&'static str] {
        match self {
            // https://accounts.google.com/.well-known/openid-configuration
            Preset::Google => &["oauth2.googleapis.com", "openidconnect.googleapis.com", "www.googleapis.com"],
            // userinfo_endpoint: https://graph.microsoft.com/oidc/userinfo
            Preset::Entra => &["graph.microsoft.com"],
            _ => &[],
        }
    }

    /// Whether `endpoint` may be on another origin than `issuer` for this preset.
    pub fn allows_endpoint(self, issuer: &Url, endpoint: &Url) -> bool {
        endpoint.scheme() == issuer.scheme()
            && endpoint.port().is_none()
            && endpoint.host_str().is_some_and(|h| self.endpoint_hosts().iter().any(|k| h.eq_ignore_ascii_case(k)))
    }

    /// Whether the discovery document's `issuer` is the right one for `configured` (the
    /// `oidEndpoint`). Exact (but for a trailing `/`), except for Entra, where the configured
    /// tenant may be a domain name, `common`, `organizations` or `consumers` and the document
    /// names the tenant's id, or `{tenantid}` for the multi-tenant endpoints.
    pub fn discovery_issuer_ok(preset: Option<Preset>, configured: &Url, document: &str) -> bool {
        let trim = |s: &str| s.trim_end_matches('/').to_string();
        if trim(document) == trim(configured.as_str()) {
            return true;
        }
        if preset != Some(Preset::Entra) {
            return false;
        }
        let Ok(doc) = Url::parse(document) else { return false };
        match (entra_tenant(configured), entra_tenant(&doc)) {
            (Some(mine), Some(theirs)) => {
                doc.origin() == configured.origin() && (theirs == ENTRA_TENANT_PLACEHOLDER || is_guid(&theirs)) && !(is_guid(&mine) && mine != theirs)
            }
            _ => false,
        }
    }

    /// Whether a verified ID token's `iss` is the one the discovery document promised:
    /// exact, except Entra's `{tenantid}` issuer, which must come back with the token's own
    /// tenant (`tid`, a GUID) in its place.
    pub fn token_issuer_ok(preset: Option<Preset>, document: &str, claims: &Value) -> bool {
        let Some(iss) = claims.get("iss").and_then(Value::as_str) else { return false };
        let trim = |s: &str| s.trim_end_matches('/').to_string();
        if trim(iss) == trim(document) {
            return true;
        }
        preset == Some(Preset::Entra)
            && document.contains(ENTRA_TENANT_PLACEHOLDER)
            && claims
                .get("tid")
                .and_then(Value::as_str)
                .filter(|tid| is_guid(tid))
                .is_some_and(|tid| trim(iss) == trim(&document.replace(ENTRA_TENANT_PLACEHOLDER, tid)))
    }

    /// Whether the ID token's issuer is checked by [`Preset::token_issuer_ok`] instead of the
    /// OIDC library's exact comparison (only for Entra's `{tenantid}` document).
    pub fn own_issuer_check(preset: Option<Preset>, document: &str) -> bool {
        preset == Some(Preset::Entra) && document.contains(ENTRA_TENANT_PLACEHOLDER)
    }

    /// Kanidm names groups and people by SPN, `name@domain`, always of its one domain: the
    /// short name is what `roles` lists and what the Jellyfin username is.
    pub fn short_names(self) -> bool {
        self == Preset::Kanidm
    }
}

/// The tenant segment of an Entra issuer `{scheme}://login.microsoftonline.com/{tenant}/v2.0`.
fn entra_tenant(u: &Url) -> Option<String> {
    if !u.host_str().is_some_and(|h| h.eq_ignore_ascii_case(ENTRA_HOST)) || u.port().is_some() {
        return None;
    }
    let segs: Vec<&str> = u.path().trim_matches('/').split('/').collect();
    match segs.as_slice() {
        [tenant, "v2.0"] if !tenant.is_empty() => {
            Some(percent_encoding::percent_decode_str(tenant).decode_utf8_lossy().into_owned())
        }
        _ => None,
    }
}

/// A GUID in its usual 8-4-4-4-12 form.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

    #[test]
    fn names_round_trip_and_unknown_is_none() {
        for p in Preset::ALL {
            assert_eq!(Preset::from_name(p.name()), Some(p));
        }
        assert_eq!(Preset::from_name("Keycloak"), None);
        assert_eq!(Preset::from_name("okta"), None);
        assert!(Preset::names().starts_with("pocket-id, authelia"));
    }

    #[test]
    fn only_the_named_hosts_with_the_issuers_scheme_and_default_port_are_allowed() {
        let google = Url::parse("https://accounts.google.com").unwrap();
        for ok in ["https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v3/certs", "https://openidconnect.googleapis.com/v1/userinfo"] {
            assert!(Preset::Google.allows_endpoint(&google, &Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in [
            "https://evil.googleapis.com/token",
            "https://oauth2.googleapis.com.evil.example/token",
            "http://oauth2.googleapis.com/token",
            "https://oauth2.googleapis.com:8443/token",
            "https://graph.microsoft.com/oidc/userinfo",
        ] {
            assert!(!Preset::Google.allows_endpoint(&google, &Url::parse(bad).unwrap()), "{bad}");
        }
        let entra = Url::parse("https://login.microsoftonline.com/x/v2.0").unwrap();
        assert!(Preset::Entra.allows_endpoint(&entra, &Url::parse("https://graph.microsoft.com/oidc/userinfo").unwrap()));
        assert!(!Preset::Entra.allows_endpoint(&entra, &Url::parse("https://oauth2.googleapis.com/token").unwrap()));
        assert!(!Preset::Keycloak.allows_endpoint(&entra, &Url::parse("https://graph.microsoft.com/oidc/userinfo").unwrap()));
    }

    #[test]
    fn entra_discovery_issuer_may_name_the_tenant_id_or_the_placeholder() {
        let cfg = |s: &str| Url::parse(s).unwrap();
        let e = Some(Preset::Entra);
        let guid_iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
        assert!(Preset::discovery_issuer_ok(e, &cfg("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"), &guid_iss));
        assert!(Preset::discovery_issuer_ok(e, &cfg(&guid_iss), &guid_iss));
        assert!(Preset::discovery_issuer_ok(e, &cfg("https://login.microsoftonline.com/common/v2.0"), "https://login.microsoftonline.com/{tenantid}/v2.0"));
        // Another tenant's id, another host, a non-GUID tenant, or no preset: refused.
        let other = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0";
        assert!(!Preset::discovery_issuer_ok(e, &cfg(&guid_iss), other));
        assert!(!Preset::discovery_issuer_ok(e, &cfg("https://login.microsoftonline.com/common/v2.0"), &format!("https://login.evil.example/{TID}/v2.0")));
        assert!(!Preset::discovery_issuer_ok(e, &cfg("https://login.microsoftonline.com/common/v2.0"), "https://login.microsoftonline.com/contoso/v2.0"));
        assert!(!Preset::discovery_issuer_ok(None, &cfg("https://login.microsoftonline.com/common/v2.0"), &guid_iss));
        assert!(!Preset::discovery_issuer_ok(Some(Preset::Google), &cfg("https://login.microsoftonline.com/common/v2.0"), &guid_iss));
    }

    #[test]
    fn entra_placeholder_issuer_is_filled_with_the_tokens_own_tenant() {
        let doc = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let e = Some(Preset::Entra);
        let iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
        assert!(Preset::token_issuer_ok(e, doc, &json!({"iss": iss, "tid": TID})));
        assert!(!Preset::token_issuer_ok(e, doc, &json!({"iss": iss, "tid": "00000000-0000-0000-0000-000000000001"})));
        assert!(!Preset::token_issuer_ok(e, doc, &json!({"iss": iss})));
        assert!(!Preset::token_issuer_ok(e, doc, &json!({"iss": "https://login.microsoftonline.com/x/v2.0", "tid": "x"})));
        assert!(!Preset::token_issuer_ok(None, doc, &json!({"iss": iss, "tid": TID})));
        // A tenant-specific document: exact.
        assert!(Preset::token_issuer_ok(e, &iss, &json!({"iss": iss})));
        assert!(!Preset::token_issuer_ok(e, &iss, &json!({"iss": doc, "tid": TID})));
    }

    #[test]
    fn guids() {
        assert!(is_guid(TID));
        assert!(!is_guid("9188040d6c674c5bb11236a304b66dad"));
        assert!(!is_guid("{tenantid}"));
        assert!(!is_guid("9188040d-6c67-4c5b-b112-36a304b66da/"));
    }

    mod config {
        use std::path::Path;

        use figment::providers::Env;
        use serde_json::json;

        use crate::config::provider::{oidc_from_json, Preset, ProviderConfig, Protocol, TokenAuthMethod};
        use crate::config::{Config, ConfigError};

        fn load(text: &str) -> Result<Config, ConfigError> {
            Config::from_parts(Some(text), "proxy.yaml", Path::new("/etc/jsp"), Env::prefixed("JSP_TEST_NEVER_SET_"))
        }

        const HEAD: &str = "providers:\n  oid:\n    kc:\n      oidEndpoint: https://kc.example.com/realms/home\n      oidClientId: jf\n      oidSecret: s\n";

        #[test]
        fn a_preset_in_proxy_yaml_sets_its_defaults() {
            let c = load(&format!("{HEAD}      preset: keycloak\n")).unwrap();
            let p = &c.oidc_providers[0];
            assert_eq!(p.preset, Some(Preset::Keycloak));
            assert_eq!((p.role_claim.as_str(), p.username_claim.as_deref()), ("realm_access.roles", Some("preferred_username")));
            assert_eq!(p.scopes, ["email"]);
            assert_eq!(p.token_auth_method, TokenAuthMethod::ClientSecretBasic);
            let c = load(&format!("{HEAD}      preset: google\n")).unwrap();
            let g = &c.oidc_providers[0];
            assert_eq!((g.role_claim.as_str(), g.username_claim.as_deref(), g.token_auth_method), ("email", Some("email"), TokenAuthMethod::ClientSecretPost));
            assert!(g.relaxations().iter().any(|r| r.contains("any Google account")), "{:?}", g.relaxations());
        }

        #[test]
        fn explicit_fields_win_over_the_preset() {
            let text = format!("{HEAD}      preset: keycloak\n      roleClaim: resource_access.jellyfin.roles\n      oidScopes: []\n      defaultUsernameClaim: email\n      tokenEndpointAuthMethod: client_secret_post\n");
            let p = &load(&text).unwrap().oidc_providers[0];
            assert_eq!(p.role_claim, "resource_access.jellyfin.roles");
            assert!(p.scopes.is_empty(), "an explicit empty list is a choice too");
            assert_eq!(p.username_claim.as_deref(), Some("email"));
            assert_eq!(p.token_auth_method, TokenAuthMethod::ClientSecretPost);
            // A public client (no secret) stays one.
            let public = "providers:\n  oid:\n    g:\n      oidEndpoint: https://accounts.google.com\n      oidClientId: jf\n      preset: google\n";
            assert_eq!(load(public).unwrap().oidc_providers[0].token_auth_method, TokenAuthMethod::None);
        }

        #[test]
        fn an_unknown_preset_names_the_field_and_line() {
            let Err(ConfigError::Invalid(ps)) = load(&format!("{HEAD}      preset: okta\n")) else { panic!("expected a problem") };
            assert_eq!(ps.len(), 1, "{ps:?}");
            assert_eq!(ps[0].path, "providers.oid.kc.preset");
            assert_eq!(ps[0].location.as_deref(), Some("proxy.yaml line 7"));
            assert!(ps[0].message.contains("unknown preset `okta`") && ps[0].message.contains("pocket-id, authelia"), "{}", ps[0].message);
            let Err(ConfigError::Invalid(ps)) = load(&format!("{HEAD}      preset: [keycloak]\n")) else { panic!("expected a problem") };
            assert_eq!(ps[0].path, "providers.oid.kc.preset");
        }

        #[test]
        fn the_admin_api_json_takes_the_same_preset_and_gives_it_back() {
            let dir = Path::new("/nonexistent");
            let body = json!({"oidEndpoint": "https://login.microsoftonline.com/common/v2.0", "oidClientId": "jf", "oidSecret": "s", "preset": "entra", "roles": ["Jellyfin.User"]});
            let p = ProviderConfig::from_plugin_json(Protocol::Oidc, "entra", &body, dir).unwrap();
            let ProviderConfig::Oidc(o) = &p else { panic!() };
            assert_eq!((o.preset, o.role_claim.as_str(), o.token_auth_method), (Some(Preset::Entra), "roles", TokenAuthMethod::ClientSecretPost));
            let out = p.to_plugin_json();
            assert_eq!(out["preset"], "entra");
            assert_eq!(out["roleClaim"], "roles");
            let again = ProviderConfig::from_plugin_json(Protocol::Oidc, "entra", &out, dir).unwrap();
            assert_eq!(again.to_plugin_json(), out);
            // No preset: an empty string, accepted back as none.
            let plain = oidc_from_json("x", &json!({"oidEndpoint": "https://id.example.com", "oidClientId": "jf"}), dir).unwrap();
            assert_eq!(plain.to_plugin_json()["preset"], "");
            assert_eq!(oidc_from_json("x", &plain.to_plugin_json(), dir).unwrap().preset, None);
            let bad = oidc_from_json("x", &json!({"oidEndpoint": "https://id.example.com", "oidClientId": "jf", "preset": "okta"}), dir).unwrap_err();
            assert_eq!(bad.len(), 1);
            assert_eq!(bad[0].path, "preset");
        }
    }
}
