//! Providers in the SSO plugin's JSON shape, in and out: the admin API's `Add` body is read
//! with [`ProviderConfig::from_plugin_json`] (one entry point, by protocol, validated with
//! exactly the rules used for `proxy.yaml`), and `Get` answers with `to_plugin_json`, secrets
//! replaced by [`REDACTED`].

use std::path::Path;

use figment::providers::Serialized;
use serde::de::DeserializeOwned;

use super::raw::{RawOidcConfig, RawSamlConfig};
use super::{GrantRules, OidcConfig, Protocol, ProviderConfig, SamlConfig};
use crate::config::field::{Problem, Problems};

impl ProviderConfig {
    /// Validate a provider of `protocol` given as the plugin's JSON (the admin API's `Add`
    /// body, or one stored by it), with exactly the rules used for `proxy.yaml`. A relative
    /// file path (`oidSecretFile`, `samlCertificateFile`) resolves against `state_dir`.
    pub fn from_plugin_json(protocol: Protocol, name: &str, json: &serde_json::Value, state_dir: &Path) -> Result<ProviderConfig, Vec<Problem>> {
        let mut p = Problems::default();
        if !json.is_object() {
            p.push(name, "the provider must be a JSON object");
            return Err(p.into_vec());
        }
        let provider = match protocol {
            Protocol::Oidc => extract::<RawOidcConfig>(name, json)?.validate(name, "", state_dir, &mut p).map(ProviderConfig::Oidc),
            Protocol::Saml => extract::<RawSamlConfig>(name, json)?.validate(name, "", state_dir, &mut p).map(ProviderConfig::Saml),
        };
        match provider {
            Some(provider) if p.is_empty() => Ok(provider),
            _ => Err(p.into_vec()),
        }
    }

    /// The plugin's JSON shape; secrets are redacted.
    pub fn to_plugin_json(&self) -> serde_json::Value {
        match self {
            ProviderConfig::Oidc(p) => p.to_plugin_json(),
            ProviderConfig::Saml(p) => p.to_plugin_json(),
        }
    }
}

/// Read the raw settings from a JSON object; a shape figment refuses is one problem under `name`.
fn extract<R: DeserializeOwned>(name: &str, json: &serde_json::Value) -> Result<R, Vec<Problem>> {
    figment::Figment::from(Serialized::defaults(json)).extract().map_err(|e| {
        let mut p = Problems::default();
        p.push(name, e.kind.to_string());
        p.into_vec()
    })
}

/// Validate a provider given as the plugin's JSON (the admin API's `Add` body), with exactly
/// the rules used for `proxy.yaml`.
pub fn oidc_from_json(name: &str, json: &serde_json::Value, base_dir: &Path) -> Result<OidcConfig, Vec<Problem>> {
    match ProviderConfig::from_plugin_json(Protocol::Oidc, name, json, base_dir)? {
        ProviderConfig::Oidc(p) => Ok(p),
        ProviderConfig::Saml(_) => unreachable!("asked for an OIDC provider"),
    }
}

/// Validate a SAML provider given as JSON (the admin API's `Add` body).
pub fn saml_from_json(name: &str, json: &serde_json::Value, base_dir: &Path) -> Result<SamlConfig, Vec<Problem>> {
    match ProviderConfig::from_plugin_json(Protocol::Saml, name, json, base_dir)? {
        ProviderConfig::Saml(p) => Ok(p),
        ProviderConfig::Oidc(_) => unreachable!("asked for a SAML provider"),
    }
}

/// Marker returned instead of secrets by the admin API's `Get`.
pub const REDACTED: &str = "********";

impl GrantRules {
    /// The grant fields in the plugin's JSON shape (shared by OIDC and SAML providers).
    fn to_plugin_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let v = serde_json::json!({
            "enableAuthorization": self.enable_authorization,
            "enableAllFolders": self.enable_all_folders,
            "enabledFolders": self.enabled_folders,
            "adminRoles": self.admin_roles,
            "roles": self.roles,
            "enableFolderRoles": self.enable_folder_roles,
            "folderRoleMapping": self.folder_role_mapping,
            "enableLiveTvRoles": self.enable_live_tv_roles,
            "enableLiveTv": self.enable_live_tv,
            "enableLiveTvManagement": self.enable_live_tv_management,
            "liveTvRoles": self.live_tv_roles,
            "liveTvManagementRoles": self.live_tv_management_roles,
            "defaultProvider": self.default_provider.clone().unwrap_or_default(),
            "adoptExistingAdmins": self.adopt_existing_admins,
            "appPasswords": self.app_passwords,
            "maxAppPasswords": self.max_app_passwords,
        });
        match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

impl OidcConfig {
    /// The plugin's JSON shape, with the secret redacted.
    pub fn to_plugin_json(&self) -> serde_json::Value {
        let mut m = self.grants.to_plugin_json();
        let own = serde_json::json!({
            "oidEndpoint": self.issuer.as_str(),
            "oidClientId": self.client_id,
            "oidSecret": self.client_secret.as_ref().map(|_| REDACTED),
            "enabled": self.enabled,
            "roleClaim": self.role_claim,
            "oidScopes": self.scopes,
            "defaultUsernameClaim": self.username_claim.clone().unwrap_or_default(),
            "avatarUrlFormat": self.avatar_url_format.clone().unwrap_or_default(),
            "disableHttps": self.disable_https,
            "disablePushedAuthorization": self.disable_pushed_authorization,
            "doNotValidateEndpoints": self.do_not_validate_endpoints,
            "doNotValidateIssuerName": self.do_not_validate_issuer_name,
            "doNotLoadProfile": self.do_not_load_profile,
            "schemeOverride": "",
            "portOverride": null,
            "tokenEndpointAuthMethod": self.token_auth_method.as_str(),
            "subjectClaim": self.subject_claim,
            "displayName": self.display_name.clone().unwrap_or_default(),
            "preset": self.preset.map(super::Preset::name).unwrap_or_default(),
        });
        m.extend(own.as_object().expect("object literal").clone());
        m.extend(self.session.to_plugin_json());
        serde_json::Value::Object(m)
    }
}

impl SamlConfig {
    /// The plugin's JSON shape (certificates are public: returned as base64 DER).
    pub fn to_plugin_json(&self) -> serde_json::Value {
        use base64::Engine;
        let certs: Vec<String> = self.certificates.iter().map(|c| base64::engine::general_purpose::STANDARD.encode(c)).collect();
        let mut m = self.grants.to_plugin_json();
        let (metadata_url, metadata_file) = match self.metadata.as_ref().map(|m| &m.source) {
            Some(super::MetadataSource::Url(u)) => (u.as_str().to_string(), String::new()),
            Some(super::MetadataSource::File(f)) => (String::new(), f.display().to_string()),
            None => (String::new(), String::new()),
        };
        let pinned: Vec<String> = self.metadata.iter().flat_map(|m| &m.pinned).map(|c| base64::engine::general_purpose::STANDARD.encode(c)).collect();
        let own = serde_json::json!({
            "samlEndpoint": self.sso_url.as_ref().map(|u| u.as_str()).unwrap_or_default(),
            "samlLogoutEndpoint": self.slo_url.as_ref().map(|u| u.as_str()).unwrap_or_default(),
            "samlClientId": self.sp_entity_id,
            "samlIdpEntityId": self.idp_entity_id.clone().unwrap_or_default(),
            "samlCertificate": if certs.len() == 1 { serde_json::json!(certs[0]) } else { serde_json::json!(certs) },
            "samlIdpMetadataUrl": metadata_url,
            "samlIdpMetadataFile": metadata_file,
            "samlIdpMetadataCertificate": pinned,
            "samlIdpMetadataRefresh": humantime::format_duration(self.metadata.as_ref().map_or(super::SamlMetadataConfig::DEFAULT_REFRESH, |m| m.refresh)).to_string(),
            "samlSignRequests": self.sign_requests,
            "samlRequireEncryptedAssertions": self.require_encrypted_assertions,
            "samlAllowCbcEncryption": self.allow_cbc_encryption,
            "samlSpKeyFile": self.sp_key.as_ref().map(|k| k.key.display().to_string()).unwrap_or_default(),
            "samlSpCertificateFile": self.sp_key.as_ref().map(|k| k.cert.display().to_string()).unwrap_or_default(),
            "enabled": self.enabled,
            "roleAttribute": self.role_attribute,
            "usernameAttribute": self.username_attribute.clone().unwrap_or_default(),
            "clockSkew": humantime::format_duration(self.clock_skew).to_string(),
            "schemeOverride": "",
            "displayName": self.display_name.clone().unwrap_or_default(),
        });
        // What is not set is left out, so the JSON reads back as the same provider.
        let mut own = own;
        if let Some(o) = own.as_object_mut() {
            for k in ["samlCertificate", "samlIdpMetadataUrl", "samlIdpMetadataFile", "samlIdpMetadataCertificate", "samlSpKeyFile", "samlSpCertificateFile"] {
                if o.get(k).is_some_and(|v| v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty)) {
                    o.remove(k);
                }
            }
        }
        m.extend(own.as_object().expect("object literal").clone());
        m.extend(self.session.to_plugin_json());
        serde_json::Value::Object(m)
    }
}
