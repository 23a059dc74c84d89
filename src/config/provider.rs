//! SSO provider settings, with the SSO plugin's JSON field names (`oidEndpoint`, `roleClaim`,
//! ...), so a provider copied from the plugin works unchanged.
//!
//! The same raw types and validator serve `providers.oid.<name>` in `proxy.yaml` and the admin
//! API's `POST /sso/OID/Add/{name}` body, so both accept and refuse exactly the same things.

use std::path::Path;

use serde::{Deserialize, Serialize};
use url::Url;

use super::field::{join, Field, Problems, Unknown};
use super::{secret, Secret};

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
#[derive(Debug, Clone)]
pub struct OidProvider {
    pub name: String,
    pub enabled: bool,
    /// The issuer URL (`oidEndpoint`); discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub token_auth_method: TokenAuthMethod,
    pub scopes: Vec<String>,
    pub role_claim: String,
    pub username_claim: Option<String>,
    /// The claim that keys account links; `sub` unless configured.
    pub subject_claim: String,
    pub avatar_url_format: Option<String>,
    pub grants: GrantRules,
    pub disable_https: bool,
    pub disable_pushed_authorization: bool,
    pub do_not_validate_endpoints: bool,
    pub do_not_validate_issuer_name: bool,
    pub do_not_load_profile: bool,
}

/// The plugin's JSON shape, leniently read.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct RawOidProvider {
    #[serde(alias = "oidendpoint")]
    oid_endpoint: Field<String>,
    #[serde(alias = "oidclientid")]
    oid_client_id: Field<String>,
    #[serde(alias = "oidsecret")]
    oid_secret: Field<String>,
    #[serde(alias = "oidsecretfile", alias = "oidSecret_file")]
    oid_secret_file: Field<std::path::PathBuf>,
    enabled: Field<bool>,
    enable_authorization: Field<bool>,
    enable_all_folders: Field<bool>,
    enabled_folders: Field<Vec<String>>,
    admin_roles: Field<Vec<String>>,
    roles: Field<Vec<String>>,
    role_claim: Field<String>,
    oid_scopes: Field<Vec<String>>,
    default_username_claim: Field<String>,
    avatar_url_format: Field<String>,
    enable_folder_roles: Field<bool>,
    folder_role_mapping: Field<Vec<FolderRoleMap>>,
    enable_live_tv_roles: Field<bool>,
    enable_live_tv: Field<bool>,
    enable_live_tv_management: Field<bool>,
    live_tv_roles: Field<Vec<String>>,
    live_tv_management_roles: Field<Vec<String>>,
    disable_https: Field<bool>,
    disable_pushed_authorization: Field<bool>,
    do_not_validate_endpoints: Field<bool>,
    do_not_validate_issuer_name: Field<bool>,
    do_not_load_profile: Field<bool>,
    scheme_override: Field<String>,
    port_override: Field<u16>,
    default_provider: Field<String>,
    token_endpoint_auth_method: Field<String>,
    subject_claim: Field<String>,
    adopt_existing_admins: Field<bool>,
    #[serde(flatten)]
    unknown: Unknown,
}

pub const OID_KEYS: &[&str] = &[
    "oidEndpoint", "oidClientId", "oidSecret", "oidSecretFile", "enabled", "enableAuthorization", "enableAllFolders",
    "enabledFolders", "adminRoles", "roles", "roleClaim", "oidScopes", "defaultUsernameClaim", "avatarUrlFormat",
    "enableFolderRoles", "folderRoleMapping", "enableLiveTvRoles", "enableLiveTv", "enableLiveTvManagement", "liveTvRoles",
    "liveTvManagementRoles", "disableHttps", "disablePushedAuthorization", "doNotValidateEndpoints", "doNotValidateIssuerName",
    "doNotLoadProfile", "schemeOverride", "portOverride", "defaultProvider", "tokenEndpointAuthMethod", "subjectClaim",
    "adoptExistingAdmins",
];

/// Provider names appear in URLs (`/sso/OID/start/{name}`): keep them to a safe alphabet.
pub fn valid_provider_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn non_empty(list: Vec<String>) -> Vec<String> {
    list.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn opt_string(p: &mut Problems, path: &str, f: Field<String>) -> Option<String> {
    p.opt(path, f).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl RawOidProvider {
    /// Validate into an [`OidProvider`], recording problems under `prefix` (e.g. `providers.oid.corp`).
    pub fn validate(self, name: &str, prefix: &str, base_dir: &Path, p: &mut Problems) -> Option<OidProvider> {
        let before = p.len();
        let f = |k: &str| join(prefix, k);
        p.unknown(prefix, &self.unknown, OID_KEYS);
        if !valid_provider_name(name) {
            p.push(prefix, "provider names may use letters, digits, `_`, `-` and `.` (at most 64)");
        }
        let disable_https = p.take(&f("disableHttps"), self.disable_https, false);
        let issuer = match opt_string(p, &f("oidEndpoint"), self.oid_endpoint) {
            None => {
                p.push(f("oidEndpoint"), "is required: the issuer URL of the identity provider");
                None
            }
            Some(s) => match Url::parse(&s) {
                Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && disable_https) => Some(u),
                Ok(u) if u.scheme() == "http" => {
                    p.push(f("oidEndpoint"), "is http://; use https:// or set disableHttps: true (insecure, for testing)");
                    None
                }
                Ok(_) => {
                    p.push(f("oidEndpoint"), "must be an https:// URL");
                    None
                }
                Err(e) => {
                    p.push(f("oidEndpoint"), format!("not a URL: {e}"));
                    None
                }
            },
        };
        let client_id = opt_string(p, &f("oidClientId"), self.oid_client_id);
        if client_id.is_none() {
            p.push(f("oidClientId"), "is required: the client id registered at the identity provider");
        }
        let client_secret = secret(p, &f("oidSecret"), self.oid_secret, self.oid_secret_file, base_dir);
        let method_text = opt_string(p, &f("tokenEndpointAuthMethod"), self.token_endpoint_auth_method);
        let token_auth_method = match method_text.as_deref() {
            None if client_secret.is_some() => TokenAuthMethod::ClientSecretBasic,
            None => TokenAuthMethod::None,
            Some("client_secret_basic") => TokenAuthMethod::ClientSecretBasic,
            Some("client_secret_post") => TokenAuthMethod::ClientSecretPost,
            Some("none") => TokenAuthMethod::None,
            Some(other) => {
                p.push(f("tokenEndpointAuthMethod"), format!("must be client_secret_basic, client_secret_post or none (got `{other}`)"));
                TokenAuthMethod::ClientSecretBasic
            }
        };
        if token_auth_method != TokenAuthMethod::None && client_secret.is_none() && client_id.is_some() {
            p.push(f("oidSecret"), format!("is required with tokenEndpointAuthMethod {}", token_auth_method.as_str()));
        }
        let mut scopes = non_empty(p.take(&f("oidScopes"), self.oid_scopes, Vec::new()));
        scopes.retain(|s| s != "openid");
        let role_claim = opt_string(p, &f("roleClaim"), self.role_claim).unwrap_or_else(|| "roles".to_string());
        let _ = p.opt(&f("schemeOverride"), self.scheme_override);
        let _ = p.opt(&f("portOverride"), self.port_override);
        let grants = GrantRules {
            enable_authorization: p.take(&f("enableAuthorization"), self.enable_authorization, false),
            enable_all_folders: p.take(&f("enableAllFolders"), self.enable_all_folders, false),
            enabled_folders: non_empty(p.take(&f("enabledFolders"), self.enabled_folders, Vec::new())),
            roles: non_empty(p.take(&f("roles"), self.roles, Vec::new())),
            admin_roles: non_empty(p.take(&f("adminRoles"), self.admin_roles, Vec::new())),
            enable_folder_roles: p.take(&f("enableFolderRoles"), self.enable_folder_roles, false),
            folder_role_mapping: p.take(&f("folderRoleMapping"), self.folder_role_mapping, Vec::new()),
            enable_live_tv_roles: p.take(&f("enableLiveTvRoles"), self.enable_live_tv_roles, false),
            enable_live_tv: p.take(&f("enableLiveTv"), self.enable_live_tv, false),
            enable_live_tv_management: p.take(&f("enableLiveTvManagement"), self.enable_live_tv_management, false),
            live_tv_roles: non_empty(p.take(&f("liveTvRoles"), self.live_tv_roles, Vec::new())),
            live_tv_management_roles: non_empty(p.take(&f("liveTvManagementRoles"), self.live_tv_management_roles, Vec::new())),
            adopt_existing_admins: p.take(&f("adoptExistingAdmins"), self.adopt_existing_admins, false),
            default_provider: opt_string(p, &f("defaultProvider"), self.default_provider),
        };
        let provider = OidProvider {
            name: name.to_string(),
            enabled: p.take(&f("enabled"), self.enabled, true),
            issuer: issuer?,
            client_id: client_id?,
            client_secret,
            token_auth_method,
            scopes,
            role_claim,
            username_claim: opt_string(p, &f("defaultUsernameClaim"), self.default_username_claim),
            subject_claim: opt_string(p, &f("subjectClaim"), self.subject_claim).unwrap_or_else(|| "sub".to_string()),
            avatar_url_format: opt_string(p, &f("avatarUrlFormat"), self.avatar_url_format),
            grants,
            disable_https,
            disable_pushed_authorization: p.take(&f("disablePushedAuthorization"), self.disable_pushed_authorization, false),
            do_not_validate_endpoints: p.take(&f("doNotValidateEndpoints"), self.do_not_validate_endpoints, false),
            do_not_validate_issuer_name: p.take(&f("doNotValidateIssuerName"), self.do_not_validate_issuer_name, false),
            do_not_load_profile: p.take(&f("doNotLoadProfile"), self.do_not_load_profile, false),
        };
        (p.len() == before).then_some(provider)
    }
}

impl OidProvider {
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
        v
    }
}

/// Validate a provider given as the plugin's JSON (the admin API's `Add` body), with exactly
/// the rules used for `proxy.yaml`.
pub fn oid_from_json(name: &str, json: &serde_json::Value, base_dir: &Path) -> Result<OidProvider, Vec<super::field::Problem>> {
    use figment::providers::Serialized;
    let mut p = Problems::default();
    if !json.is_object() {
        p.push(name, "the provider must be a JSON object");
        return Err(p.into_vec());
    }
    let raw: RawOidProvider = match figment::Figment::from(Serialized::defaults(json)).extract() {
        Ok(r) => r,
        Err(e) => {
            p.push(name, e.kind.to_string());
            return Err(p.into_vec());
        }
    };
    match raw.validate(name, "", base_dir, &mut p) {
        Some(provider) if p.is_empty() => Ok(provider),
        _ => Err(p.into_vec()),
    }
}

/// Marker returned instead of secrets by the admin API's `Get`.
pub const REDACTED: &str = "********";

impl OidProvider {
    /// The plugin's JSON shape, with the secret redacted.
    pub fn to_plugin_json(&self) -> serde_json::Value {
        let g = &self.grants;
        serde_json::json!({
            "oidEndpoint": self.issuer.as_str(),
            "oidClientId": self.client_id,
            "oidSecret": self.client_secret.as_ref().map(|_| REDACTED),
            "enabled": self.enabled,
            "enableAuthorization": g.enable_authorization,
            "enableAllFolders": g.enable_all_folders,
            "enabledFolders": g.enabled_folders,
            "adminRoles": g.admin_roles,
            "roles": g.roles,
            "roleClaim": self.role_claim,
            "oidScopes": self.scopes,
            "defaultUsernameClaim": self.username_claim.clone().unwrap_or_default(),
            "avatarUrlFormat": self.avatar_url_format.clone().unwrap_or_default(),
            "enableFolderRoles": g.enable_folder_roles,
            "folderRoleMapping": g.folder_role_mapping,
            "enableLiveTvRoles": g.enable_live_tv_roles,
            "enableLiveTv": g.enable_live_tv,
            "enableLiveTvManagement": g.enable_live_tv_management,
            "liveTvRoles": g.live_tv_roles,
            "liveTvManagementRoles": g.live_tv_management_roles,
            "disableHttps": self.disable_https,
            "disablePushedAuthorization": self.disable_pushed_authorization,
            "doNotValidateEndpoints": self.do_not_validate_endpoints,
            "doNotValidateIssuerName": self.do_not_validate_issuer_name,
            "doNotLoadProfile": self.do_not_load_profile,
            "schemeOverride": "",
            "portOverride": null,
            "defaultProvider": g.default_provider.clone().unwrap_or_default(),
            "tokenEndpointAuthMethod": self.token_auth_method.as_str(),
            "subjectClaim": self.subject_claim,
            "adoptExistingAdmins": g.adopt_existing_admins,
        })
    }
}
