//! SSO provider settings, with the SSO plugin's JSON field names (`oidEndpoint`, `roleClaim`,
//! ...), so a provider copied from the plugin works unchanged.
//!
//! This file holds the typed, validated providers ([`OidcConfig`], [`SamlConfig`], their
//! shared [`GrantRules`]), the [`Protocol`] they speak and the protocol-neutral
//! [`ProviderConfig`]. The lenient raw types are in `raw.rs`, raw → typed in `validate.rs`,
//! and the plugin's JSON in and out in `json.rs`. The same raw types and validator serve
//! `providers.oid.<name>` in `proxy.yaml` and the admin API's `POST /sso/OID/Add/{name}` body,
//! so both accept and refuse exactly the same things.

mod json;
mod preset;
mod raw;
mod saml;
mod session;
mod validate;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Secret;

pub use json::{oidc_from_json, saml_from_json, REDACTED};
pub use preset::{Preset, PresetDefaults};
pub use raw::{OneOrMany, RawGrants, RawOidcConfig, RawSamlConfig};
pub use session::SessionRules;
pub use validate::{parse_certificates, valid_provider_name};

/// Who gets in and with what, from the identity's roles. Shared by OIDC and SAML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantRules {
    pub enable_authorization: bool,
    pub enable_all_folders: bool,
    pub enabled_folders: Vec<String>,
    pub roles: Vec<String>,
    pub admin_roles: Vec<String>,
    pub enable_folder_roles: bool,
    pub folder_role_mapping: Vec<FolderRoleMap>,
    pub enable_live_tv_roles: bool,
    pub enable_live_tv: bool,
    pub enable_live_tv_management: bool,
    pub live_tv_roles: Vec<String>,
    pub live_tv_management_roles: Vec<String>,
    /// Adopt an existing Jellyfin *administrator* whose name matches (off: never silently).
    pub adopt_existing_admins: bool,
    /// Authentication provider for users the proxy creates (`defaultProvider`); `None` means
    /// password login is refused for them.
    pub default_provider: Option<String>,
    /// Users of this provider may make app passwords (`appPasswords`, default off).
    pub app_passwords: bool,
    /// At most this many app passwords per user (`maxAppPasswords`, default 10).
    pub max_app_passwords: u32,
}

/// One entry of `folderRoleMapping`: members of `role` see `folders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderRoleMap {
    #[serde(alias = "Role")]
    pub role: String,
    #[serde(alias = "Folders", default)]
    pub folders: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl TokenAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::None => "none",
        }
    }
}

/// A validated OpenID Connect provider.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    pub name: String,
    /// The label on the login page's button (`displayName`); the name when unset.
    pub display_name: Option<String>,
    pub enabled: bool,
    /// The issuer URL (`oidEndpoint`); discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub token_auth_method: TokenAuthMethod,
    /// Extra scopes (`oidScopes`); `openid profile` are always requested.
    pub scopes: Vec<String>,
    pub role_claim: String,
    pub username_claim: Option<String>,
    /// The claim that keys account links; `sub` unless configured.
    pub subject_claim: String,
    pub avatar_url_format: Option<String>,
    pub grants: GrantRules,
    /// When its sessions end (sign-out, max age, re-validation).
    pub session: SessionRules,
    pub disable_https: bool,
    pub disable_pushed_authorization: bool,
    pub do_not_validate_endpoints: bool,
    pub do_not_validate_issuer_name: bool,
    pub do_not_load_profile: bool,
    /// The identity provider product (`preset`), for the checks it relaxes exactly; its
    /// defaults are already in the fields above.
    pub preset: Option<Preset>,
}

impl OidcConfig {
    /// The relaxing switches in use, for a warning at start-up.
    pub fn relaxations(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.disable_https {
            v.push("disableHttps (http issuer allowed)");
        }
        if self.do_not_validate_endpoints {
            v.push("doNotValidateEndpoints (endpoints may be on another host than the issuer)");
        }
        if self.do_not_validate_issuer_name {
            v.push("doNotValidateIssuerName (ID token issuer not checked)");
        }
        if self.preset == Some(Preset::Google) && self.grants.roles.is_empty() && self.grants.admin_roles.is_empty() {
            v.push("preset google without roles (any Google account may sign in; list the allowed e-mail addresses in roles)");
        }
        v
    }
}

/// A validated SAML provider. With [`SamlConfig::metadata`], the IdP's entity id, endpoints
/// and signing certificates come from its metadata; what is set here explicitly wins
/// (certificates: both are trusted).
#[derive(Debug, Clone, PartialEq)]
pub struct SamlConfig {
    pub name: String,
    /// The label on the login page's button (`displayName`); the name when unset.
    pub display_name: Option<String>,
    pub enabled: bool,
    /// The IdP's single sign-on URL (`samlEndpoint`), HTTP-Redirect binding; from the
    /// metadata when unset.
    pub sso_url: Option<Url>,
    /// The IdP's single logout URL (`samlLogoutEndpoint`), HTTP-Redirect binding: where
    /// `/sso/logout` sends a LogoutRequest and where LogoutResponses go.
    pub slo_url: Option<Url>,
    /// Our SP entity id (`samlClientId`), the Audience the IdP must address.
    pub sp_entity_id: String,
    /// The IdP's entity id: the Issuer its responses must carry (from the metadata when unset).
    pub idp_entity_id: Option<String>,
    /// Signing certificates of the IdP, DER (several for key rollover); may be empty with metadata.
    pub certificates: Vec<Vec<u8>>,
    /// `samlIdpMetadataUrl` / `samlIdpMetadataFile`.
    pub metadata: Option<SamlMetadataConfig>,
    /// Our signing and decryption key pair; `None`: the one generated in `state_dir`.
    pub sp_key: Option<SpKeyFiles>,
    /// `samlSignRequests`: sign AuthnRequests and our logout messages.
    pub sign_requests: bool,
    /// `samlRequireEncryptedAssertions`: refuse a response whose assertion is not encrypted.
    pub require_encrypted_assertions: bool,
    /// `samlAllowCbcEncryption`: accept AES-CBC encrypted assertions (ADFS, Entra); then the
    /// Response itself must be signed, so the ciphertext is authenticated before decryption.
    pub allow_cbc_encryption: bool,
    /// The attribute that carries roles (`Role` as in the plugin).
    pub role_attribute: String,
    /// An attribute to use as the Jellyfin username instead of the NameID.
    pub username_attribute: Option<String>,
    pub clock_skew: std::time::Duration,
    pub grants: GrantRules,
    /// When its sessions end (sign-out, max age).
    pub session: SessionRules,
}

/// Where a SAML provider's IdP metadata comes from, how often it is re-read, and the
/// certificates it must be signed with (none pinned: accepted unsigned, as over HTTPS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlMetadataConfig {
    pub source: MetadataSource,
    /// `samlIdpMetadataRefresh` (default [`SamlMetadataConfig::DEFAULT_REFRESH`]).
    pub refresh: std::time::Duration,
    /// `samlIdpMetadataCertificate`: the metadata must carry a signature by one of these (DER).
    pub pinned: Vec<Vec<u8>>,
}

impl SamlMetadataConfig {
    pub const DEFAULT_REFRESH: std::time::Duration = std::time::Duration::from_secs(3600);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataSource {
    Url(Url),
    File(std::path::PathBuf),
}

/// `samlSpKeyFile` and `samlSpCertificateFile` (PEM), resolved against the config's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpKeyFiles {
    pub key: std::path::PathBuf,
    pub cert: std::path::PathBuf,
}

/// The sign-in protocol of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "Oid")]
    Oidc,
    Saml,
}

impl Protocol {
    /// Lower case, as in `providers.oid` / `providers.saml` and the plugin's `/sso/oid/...` routes.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Oidc => "oid",
            Protocol::Saml => "saml",
        }
    }

    /// As in the plugin's URLs: `/sso/OID/start/{name}`, `/sso/SAML/start/{name}`.
    pub fn url_segment(self) -> &'static str {
        match self {
            Protocol::Oidc => "OID",
            Protocol::Saml => "SAML",
        }
    }

    /// The inverse of [`Protocol::as_str`] (names in the durable state).
    pub fn from_name(s: &str) -> Option<Protocol> {
        match s {
            "oid" => Some(Protocol::Oidc),
            "saml" => Some(Protocol::Saml),
            _ => None,
        }
    }
}

/// A validated provider of either protocol, for code that does not care which.
// Not boxed: a handful exist, each for the life of a configuration, and the OIDC variant's
// size is no cost on any request path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderConfig {
    Oidc(OidcConfig),
    Saml(SamlConfig),
}

impl ProviderConfig {
    pub fn name(&self) -> &str {
        match self {
            ProviderConfig::Oidc(p) => &p.name,
            ProviderConfig::Saml(p) => &p.name,
        }
    }

    pub fn enabled(&self) -> bool {
        match self {
            ProviderConfig::Oidc(p) => p.enabled,
            ProviderConfig::Saml(p) => p.enabled,
        }
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            ProviderConfig::Oidc(_) => Protocol::Oidc,
            ProviderConfig::Saml(_) => Protocol::Saml,
        }
    }

    pub fn grants(&self) -> &GrantRules {
        match self {
            ProviderConfig::Oidc(p) => &p.grants,
            ProviderConfig::Saml(p) => &p.grants,
        }
    }

    /// What people see for this provider: `displayName`, else the name.
    pub fn label(&self) -> &str {
        let (name, display) = match self {
            ProviderConfig::Oidc(p) => (&p.name, &p.display_name),
            ProviderConfig::Saml(p) => (&p.name, &p.display_name),
        };
        display.as_deref().unwrap_or(name)
    }
}

impl From<OidcConfig> for ProviderConfig {
    fn from(p: OidcConfig) -> Self {
        ProviderConfig::Oidc(p)
    }
}

impl From<SamlConfig> for ProviderConfig {
    fn from(p: SamlConfig) -> Self {
        ProviderConfig::Saml(p)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use base64::Engine;
    use figment::providers::Env;
    use serde_json::json;

    use super::*;
    use crate::config::Config;

    fn oid_json() -> serde_json::Value {
        json!({ "oidEndpoint": "https://id.example.com", "oidClientId": "jf", "roles": ["media"], "enabled": false })
    }

    fn saml_json(cert_der: &[u8]) -> serde_json::Value {
        json!({
            "samlEndpoint": "https://idp.example/sso",
            "samlClientId": "jf",
            "samlIdpEntityId": "https://idp.example",
            "samlCertificate": base64::engine::general_purpose::STANDARD.encode(cert_der),
            "adminRoles": ["admins"],
        })
    }

    #[test]
    fn protocol_names_and_serde() {
        assert_eq!((Protocol::Oidc.as_str(), Protocol::Oidc.url_segment()), ("oid", "OID"));
        assert_eq!((Protocol::Saml.as_str(), Protocol::Saml.url_segment()), ("saml", "SAML"));
        assert_eq!(serde_json::to_value(Protocol::Oidc).unwrap(), json!("Oid"));
        assert_eq!(serde_json::to_value(Protocol::Saml).unwrap(), json!("Saml"));
        assert_eq!(serde_json::from_value::<Protocol>(json!("Oid")).unwrap(), Protocol::Oidc);
        assert_eq!(serde_json::from_value::<Protocol>(json!("Saml")).unwrap(), Protocol::Saml);
        assert!(serde_json::from_value::<Protocol>(json!("Oidc")).is_err());
        assert_eq!((Protocol::from_name("oid"), Protocol::from_name("saml"), Protocol::from_name("OID")), (Some(Protocol::Oidc), Some(Protocol::Saml), None));
    }

    #[test]
    fn from_plugin_json_by_protocol() {
        let dir = Path::new("/nonexistent");
        let p = ProviderConfig::from_plugin_json(Protocol::Oidc, "corp", &oid_json(), dir).unwrap();
        assert!(matches!(p, ProviderConfig::Oidc(_)));
        assert_eq!((p.name(), p.enabled(), p.protocol()), ("corp", false, Protocol::Oidc));
        assert_eq!(p.grants().roles, ["media"]);
        assert_eq!(p.to_plugin_json(), oidc_from_json("corp", &oid_json(), dir).unwrap().to_plugin_json());
        // What `to_plugin_json` gives back is accepted again, unchanged.
        let again = ProviderConfig::from_plugin_json(Protocol::Oidc, "corp", &p.to_plugin_json(), dir).unwrap();
        assert_eq!(again.to_plugin_json(), p.to_plugin_json());
        assert_eq!((p.label(), &p.to_plugin_json()["displayName"]), ("corp", &json!("")), "no displayName: the name");

        let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
        let s = ProviderConfig::from_plugin_json(Protocol::Saml, "corp", &saml_json(cert.der()), dir).unwrap();
        assert!(matches!(&s, ProviderConfig::Saml(x) if x.certificates == [cert.der().to_vec()]));
        assert_eq!((s.name(), s.enabled(), s.protocol()), ("corp", true, Protocol::Saml));
        assert_eq!(s.grants().admin_roles, ["admins"]);
        assert_eq!(s.to_plugin_json(), saml_from_json("corp", &saml_json(cert.der()), dir).unwrap().to_plugin_json());
        let again = ProviderConfig::from_plugin_json(Protocol::Saml, "corp", &s.to_plugin_json(), dir).unwrap();
        assert_eq!(again.to_plugin_json(), s.to_plugin_json());
    }

    #[test]
    fn display_name_round_trips_for_both_protocols() {
        let dir = Path::new("/nonexistent");
        let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
        for (protocol, mut json) in [(Protocol::Oidc, oid_json()), (Protocol::Saml, saml_json(cert.der()))] {
            json["displayName"] = json!("  Corporate <SSO>  ");
            let p = ProviderConfig::from_plugin_json(protocol, "corp", &json, dir).unwrap();
            assert_eq!(p.label(), "Corporate <SSO>");
            assert_eq!(p.to_plugin_json()["displayName"], json!("Corporate <SSO>"));
            let again = ProviderConfig::from_plugin_json(protocol, "corp", &p.to_plugin_json(), dir).unwrap();
            assert_eq!(again.label(), "Corporate <SSO>");
            json["displayName"] = json!(7);
            let ps = ProviderConfig::from_plugin_json(protocol, "corp", &json, dir).unwrap_err();
            assert!(ps.iter().any(|p| p.path == "displayName"), "{ps:?}");
        }
    }

    #[test]
    fn from_plugin_json_problems_match_the_per_protocol_functions() {
        let dir = Path::new("/nonexistent");
        let not_object = json!(["oidEndpoint"]);
        let ps = ProviderConfig::from_plugin_json(Protocol::Oidc, "corp", &not_object, dir).unwrap_err();
        assert_eq!(ps.len(), 1);
        assert_eq!((ps[0].path.as_str(), ps[0].message.as_str()), ("corp", "the provider must be a JSON object"));
        assert_eq!(ps, saml_from_json("corp", &not_object, dir).unwrap_err());
        // An OIDC provider is not a SAML one: its keys are unknown there, its required ones missing.
        let ps = ProviderConfig::from_plugin_json(Protocol::Saml, "corp", &oid_json(), dir).unwrap_err();
        assert!(ps.iter().any(|p| p.path == "oidEndpoint" && p.message.starts_with("unknown key")), "{ps:?}");
        assert!(ps.iter().any(|p| p.path == "samlEndpoint" && p.message.starts_with("is required")), "{ps:?}");
        assert_eq!(ps, saml_from_json("corp", &oid_json(), dir).unwrap_err());
        let bad_name = ProviderConfig::from_plugin_json(Protocol::Oidc, "a b", &oid_json(), dir).unwrap_err();
        assert_eq!(bad_name, oidc_from_json("a b", &oid_json(), dir).unwrap_err());
        assert!(bad_name.iter().any(|p| p.message.starts_with("provider names may use")), "{bad_name:?}");
    }

    #[test]
    fn config_lists_file_providers_of_both_protocols() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
        std::fs::write(dir.path().join("idp.pem"), cert.pem()).unwrap();
        let text = "providers:\n  oid:\n    b:\n      oidEndpoint: https://id.example.com\n      oidClientId: jf\n    a:\n      oidEndpoint: https://id.example.com\n      oidClientId: jf\n      enabled: false\n  saml:\n    corp:\n      samlEndpoint: https://idp.example/sso\n      samlClientId: jf\n      samlIdpEntityId: https://idp.example\n      samlCertificateFile: idp.pem\n";
        let c = Config::from_parts(Some(text), "p.yaml", dir.path(), Env::prefixed("JSP_TEST_NEVER_SET_")).unwrap();
        let listed: Vec<_> = c.providers().map(|p| (p.protocol(), p.name().to_string(), p.enabled())).collect();
        assert_eq!(listed, [(Protocol::Oidc, "a".into(), false), (Protocol::Oidc, "b".into(), true), (Protocol::Saml, "corp".into(), true)]);
        assert_eq!(c.providers().filter(ProviderConfig::enabled).count(), 2);
        let empty = Config::from_parts(Some("{}"), "p.yaml", dir.path(), Env::prefixed("JSP_TEST_NEVER_SET_")).unwrap();
        assert_eq!(empty.providers().count(), 0);
    }
}
