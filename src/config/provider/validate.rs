//! Validation of provider settings: raw ([`RawOidcConfig`]) → typed ([`OidcConfig`]), and
//! the helpers the SAML validator (`saml.rs`) shares.
//!
//! One validator per protocol serves `proxy.yaml` and the admin API's `Add` body, so both
//! accept and refuse exactly the same things. Each problem is recorded with its dotted path
//! (under the caller's prefix, e.g. `providers.oid.corp`). The grant rules, the same for
//! both protocols, have one validator used by both.

use std::path::Path;

use url::Url;

use super::raw::{known_keys, RawGrants, RawOidcConfig, OID_KEYS};
use super::{GrantRules, OidcConfig, Preset, TokenAuthMethod};
use crate::config::field::{join, Field, Problems};
use crate::config::secret;

/// App passwords per user when `maxAppPasswords` is not set, and the most it may be set to.
const DEFAULT_MAX_APP_PASSWORDS: u32 = 10;
const MAX_APP_PASSWORDS_LIMIT: u32 = 100;

impl RawGrants {
    pub(super) fn validate(self, prefix: &str, p: &mut Problems) -> GrantRules {
        let f = |k: &str| join(prefix, k);
        let rules = GrantRules {
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
            app_passwords: p.take(&f("appPasswords"), self.app_passwords, false),
            max_app_passwords: p.take(&f("maxAppPasswords"), self.max_app_passwords, DEFAULT_MAX_APP_PASSWORDS),
        };
        if rules.max_app_passwords > MAX_APP_PASSWORDS_LIMIT {
            p.push(f("maxAppPasswords"), format!("at most {MAX_APP_PASSWORDS_LIMIT} app passwords per user"));
        }
        // Jellyfin refuses a policy whose folder ids are not Guids (UserPolicy.EnabledFolders is
        // Guid[]): catch that here instead of at someone's login.
        for (i, id) in rules.enabled_folders.iter().enumerate() {
            if !is_guid(id) {
                p.push(format!("{}.{i}", f("enabledFolders")), format!("`{id}` is not a Jellyfin library id (32 hex digits, see Dashboard > Libraries or GET /Library/VirtualFolders)"));
            }
        }
        for (i, m) in rules.folder_role_mapping.iter().enumerate() {
            for id in m.folders.iter().filter(|id| !is_guid(id)) {
                p.push(format!("{}.{i}.folders", f("folderRoleMapping")), format!("`{id}` is not a Jellyfin library id (32 hex digits)"));
            }
        }
        rules
    }
}

/// A Guid as Jellyfin parses it: 32 hex digits, dashes and braces allowed.
fn is_guid(s: &str) -> bool {
    let hex: Vec<char> = s.trim().trim_matches(|c| c == '{' || c == '}').chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.iter().all(char::is_ascii_hexdigit)
}

/// Provider names appear in URLs (`/sso/OID/start/{name}`): keep them to a safe alphabet.
pub fn valid_provider_name(name: &str) -> bool {
    // A name is a URL path segment: `.` and `..` (and anything of dots only) would be
    // resolved away by browsers and proxies on the way.
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.chars().all(|c| c == '.')
}

fn non_empty(list: Vec<String>) -> Vec<String> {
    list.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// A required URL setting: missing, unparsable or refused by `scheme_ok` are problems.
fn required_url(p: &mut Problems, path: &str, f: Field<String>, what: &str, scheme_ok: impl Fn(&Url) -> Result<(), &'static str>) -> Option<Url> {
    let Some(s) = opt_string(p, path, f) else {
        p.push(path, format!("is required: {what}"));
        return None;
    };
    match Url::parse(&s) {
        Ok(u) => match scheme_ok(&u) {
            Ok(()) => Some(u),
            Err(why) => {
                p.push(path, why);
                None
            }
        },
        Err(e) => {
            p.push(path, format!("not a URL: {e}"));
            None
        }
    }
}

/// `displayName`: a label shown on the login page (escaped there), at most 100 characters.
pub(super) fn display_name(p: &mut Problems, path: &str, f: Field<String>) -> Option<String> {
    let label = opt_string(p, path, f)?;
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        p.push(path, "must be at most 100 characters, without control characters");
    }
    Some(label)
}

pub(super) fn opt_string(p: &mut Problems, path: &str, f: Field<String>) -> Option<String> {
    p.opt(path, f).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl RawOidcConfig {
    /// Validate into an [`OidcConfig`], recording problems under `prefix` (e.g. `providers.oid.corp`).
    pub fn validate(self, name: &str, prefix: &str, base_dir: &Path, p: &mut Problems) -> Option<OidcConfig> {
        let before = p.len();
        let f = |k: &str| join(prefix, k);
        p.unknown(prefix, &self.unknown, &known_keys(OID_KEYS));
        if !valid_provider_name(name) {
            p.push(prefix, "provider names may use letters, digits, `_`, `-` and `.` (at most 64)");
        }
        let preset = opt_string(p, &f("preset"), self.preset).and_then(|name| {
            let found = Preset::from_name(&name);
            if found.is_none() {
                p.push(f("preset"), format!("unknown preset `{name}`; the presets are: {}", Preset::names()));
            }
            found
        });
        let defaults = preset.map(Preset::defaults);
        let disable_https = p.take(&f("disableHttps"), self.disable_https, false);
        let issuer = required_url(p, &f("oidEndpoint"), self.oid_endpoint, "the issuer URL of the identity provider", |u| match u.scheme() {
            "https" => Ok(()),
            "http" if disable_https => Ok(()),
            "http" => Err("is http://; use https:// or set disableHttps: true (insecure, for testing)"),
            _ => Err("must be an https:// URL"),
        });
        let client_id = opt_string(p, &f("oidClientId"), self.oid_client_id);
        if client_id.is_none() {
            p.push(f("oidClientId"), "is required: the client id registered at the identity provider");
        }
        let client_secret = secret(p, &f("oidSecret"), self.oid_secret, self.oid_secret_file, base_dir);
        let method_text = opt_string(p, &f("tokenEndpointAuthMethod"), self.token_endpoint_auth_method);
        let token_auth_method = match method_text.as_deref() {
            None if client_secret.is_some() => defaults.as_ref().map_or(TokenAuthMethod::ClientSecretBasic, |d| d.token_auth_method),
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
        let preset_scopes = defaults.as_ref().map(|d| d.scopes.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
        let mut scopes = non_empty(p.take(&f("oidScopes"), self.oid_scopes, preset_scopes));
        scopes.retain(|s| s != "openid");
        let role_claim = opt_string(p, &f("roleClaim"), self.role_claim).unwrap_or_else(|| defaults.as_ref().map_or("roles", |d| d.role_claim).to_string());
        let _ = p.opt(&f("schemeOverride"), self.scheme_override);
        let _ = p.opt(&f("portOverride"), self.port_override);
        let grants = self.grants.validate(prefix, p);
        let session = self.session.validate(prefix, true, p);
        let provider = OidcConfig {
            name: name.to_string(),
            display_name: display_name(p, &f("displayName"), self.display_name),
            enabled: p.take(&f("enabled"), self.enabled, true),
            issuer: issuer?,
            client_id: client_id?,
            client_secret,
            token_auth_method,
            scopes,
            role_claim,
            username_claim: opt_string(p, &f("defaultUsernameClaim"), self.default_username_claim).or_else(|| defaults.as_ref().map(|d| d.username_claim.to_string())),
            subject_claim: opt_string(p, &f("subjectClaim"), self.subject_claim).unwrap_or_else(|| "sub".to_string()),
            avatar_url_format: opt_string(p, &f("avatarUrlFormat"), self.avatar_url_format),
            grants,
            session,
            disable_https,
            disable_pushed_authorization: p.take(&f("disablePushedAuthorization"), self.disable_pushed_authorization, false),
            do_not_validate_endpoints: p.take(&f("doNotValidateEndpoints"), self.do_not_validate_endpoints, false),
            do_not_validate_issuer_name: p.take(&f("doNotValidateIssuerName"), self.do_not_validate_issuer_name, false),
            do_not_load_profile: p.take(&f("doNotLoadProfile"), self.do_not_load_profile, false),
            preset,
        };
        (p.len() == before).then_some(provider)
    }
}

/// Certificates given as PEM (one or more blocks) or bare base64 DER, as IdP consoles show them.
pub fn parse_certificates(texts: &[String]) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine;
    use rustls_pki_types::pem::PemObject;
    let mut out = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let t = t.trim();
        if t.contains("-----BEGIN") {
            let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(t.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("certificate {i}: not valid PEM: {e}"))?;
            if certs.is_empty() {
                return Err(format!("certificate {i}: no CERTIFICATE block in the PEM"));
            }
            out.extend(certs.into_iter().map(|c| c.to_vec()));
        } else {
            let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            let der = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|e| format!("certificate {i}: neither PEM nor base64 DER: {e}"))?;
            out.push(der);
        }
    }
    for (i, der) in out.iter().enumerate() {
        // The same parser the SAML verifier uses, so what passes here is usable there.
        saml::X509Certificate::from_der(der).map_err(|e| format!("certificate {i}: not a usable X.509 certificate: {e}"))?;
    }
    Ok(out)
}

