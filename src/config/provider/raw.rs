//! The raw provider settings: the SSO plugin's JSON shape (`oidEndpoint`, `roleClaim`, ...),
//! read leniently.
//!
//! figment fills these from `providers.oid.<name>` / `providers.saml.<name>` in `proxy.yaml`
//! and from the admin API's `Add` body alike. Every setting is a [`Field`] and unknown keys
//! are kept, so `validate.rs` can report every mistake at once. The `*_KEYS` lists are the
//! accepted keys, for the "did you mean" hint.

use std::path::PathBuf;

use serde::Deserialize;

use super::FolderRoleMap;
use crate::config::field::{Field, Unknown};

/// The plugin's JSON shape, leniently read.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct RawOidcConfig {
    #[serde(alias = "oidendpoint")]
    pub(super) oid_endpoint: Field<String>,
    #[serde(alias = "oidclientid")]
    pub(super) oid_client_id: Field<String>,
    #[serde(alias = "oidsecret")]
    pub(super) oid_secret: Field<String>,
    #[serde(alias = "oidsecretfile", alias = "oidSecret_file")]
    pub(super) oid_secret_file: Field<PathBuf>,
    pub(super) enabled: Field<bool>,
    pub(super) role_claim: Field<String>,
    pub(super) oid_scopes: Field<Vec<String>>,
    pub(super) default_username_claim: Field<String>,
    pub(super) avatar_url_format: Field<String>,
    pub(super) disable_https: Field<bool>,
    pub(super) disable_pushed_authorization: Field<bool>,
    pub(super) do_not_validate_endpoints: Field<bool>,
    pub(super) do_not_validate_issuer_name: Field<bool>,
    pub(super) do_not_load_profile: Field<bool>,
    pub(super) scheme_override: Field<String>,
    pub(super) port_override: Field<u16>,
    pub(super) token_endpoint_auth_method: Field<String>,
    pub(super) subject_claim: Field<String>,
    pub(super) display_name: Field<String>,
    /// The identity provider product (`preset.rs`), whose defaults apply to what is not set.
    pub(super) preset: Field<String>,
    #[serde(flatten)]
    pub(super) grants: RawGrants,
    #[serde(flatten)]
    pub(super) session: super::session::RawSessionRules,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}

pub(super) const OID_KEYS: &[&str] = &[
    "oidEndpoint", "oidClientId", "oidSecret", "oidSecretFile", "enabled", "roleClaim", "oidScopes", "defaultUsernameClaim",
    "avatarUrlFormat", "disableHttps", "disablePushedAuthorization", "doNotValidateEndpoints", "doNotValidateIssuerName",
    "doNotLoadProfile", "schemeOverride", "portOverride", "tokenEndpointAuthMethod", "subjectClaim", "displayName", "preset",
];

/// The grant settings, shared by OIDC and SAML providers (flattened into both).
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct RawGrants {
    pub(super) enable_authorization: Field<bool>,
    pub(super) enable_all_folders: Field<bool>,
    pub(super) enabled_folders: Field<Vec<String>>,
    pub(super) admin_roles: Field<Vec<String>>,
    pub(super) roles: Field<Vec<String>>,
    pub(super) enable_folder_roles: Field<bool>,
    pub(super) folder_role_mapping: Field<Vec<FolderRoleMap>>,
    pub(super) enable_live_tv_roles: Field<bool>,
    pub(super) enable_live_tv: Field<bool>,
    pub(super) enable_live_tv_management: Field<bool>,
    pub(super) live_tv_roles: Field<Vec<String>>,
    pub(super) live_tv_management_roles: Field<Vec<String>>,
    pub(super) default_provider: Field<String>,
    pub(super) adopt_existing_admins: Field<bool>,
    pub(super) app_passwords: Field<bool>,
    pub(super) max_app_passwords: Field<u32>,
}

const GRANT_KEYS: &[&str] = &[
    "enableAuthorization", "enableAllFolders", "enabledFolders", "adminRoles", "roles", "enableFolderRoles", "folderRoleMapping",
    "enableLiveTvRoles", "enableLiveTv", "enableLiveTvManagement", "liveTvRoles", "liveTvManagementRoles", "defaultProvider",
    "adoptExistingAdmins", "appPasswords", "maxAppPasswords",
];

pub(super) fn known_keys(own: &[&'static str]) -> Vec<&'static str> {
    own.iter().chain(GRANT_KEYS).chain(super::session::SESSION_KEYS).copied().collect()
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct RawSamlConfig {
    pub(super) saml_endpoint: Field<String>,
    pub(super) saml_logout_endpoint: Field<String>,
    pub(super) saml_client_id: Field<String>,
    pub(super) saml_certificate: Field<OneOrMany>,
    pub(super) saml_certificate_file: Field<PathBuf>,
    pub(super) saml_idp_entity_id: Field<String>,
    pub(super) saml_idp_metadata_url: Field<String>,
    pub(super) saml_idp_metadata_file: Field<PathBuf>,
    pub(super) saml_idp_metadata_certificate: Field<OneOrMany>,
    pub(super) saml_idp_metadata_certificate_file: Field<PathBuf>,
    pub(super) saml_idp_metadata_refresh: Field<String>,
    pub(super) saml_sign_requests: Field<bool>,
    pub(super) saml_require_encrypted_assertions: Field<bool>,
    pub(super) saml_allow_cbc_encryption: Field<bool>,
    pub(super) saml_sp_key_file: Field<PathBuf>,
    pub(super) saml_sp_certificate_file: Field<PathBuf>,
    /// The plugin's own fields that mean nothing here (accepted so its JSON works as it is).
    pub(super) port_override: Field<serde_json::Value>,
    pub(super) new_path: Field<serde_json::Value>,
    pub(super) enabled: Field<bool>,
    pub(super) role_attribute: Field<String>,
    pub(super) username_attribute: Field<String>,
    pub(super) clock_skew: Field<String>,
    pub(super) scheme_override: Field<String>,
    pub(super) display_name: Field<String>,
    #[serde(flatten)]
    pub(super) grants: RawGrants,
    #[serde(flatten)]
    pub(super) session: super::session::RawSessionRules,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}

pub(super) const SAML_KEYS: &[&str] = &[
    "samlEndpoint", "samlLogoutEndpoint", "samlClientId", "samlCertificate", "samlCertificateFile", "samlIdpEntityId", "samlIdpMetadataUrl",
    "samlIdpMetadataFile", "samlIdpMetadataCertificate", "samlIdpMetadataCertificateFile", "samlIdpMetadataRefresh", "samlSignRequests",
    "samlRequireEncryptedAssertions", "samlAllowCbcEncryption", "samlSpKeyFile", "samlSpCertificateFile", "enabled", "roleAttribute",
    "usernameAttribute", "clockSkew", "schemeOverride", "portOverride", "newPath", "displayName",
];

/// A string or a list of strings.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}
