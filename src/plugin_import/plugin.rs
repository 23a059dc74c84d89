//! The plugin's configuration classes, read from the XML tree, and each field mapped to the
//! proxy's provider JSON (the plugin's own JSON names, which `proxy.yaml` and the admin API
//! take) or reported as dropped with the reason.
//!
//! The classes are 9p4/jellyfin-plugin-sso `SSO-Auth/Config/PluginConfiguration.cs`
//! (`PluginConfiguration`, `OidConfig`, `SamlConfig`, `FolderRoleMap`) and
//! `SSO-Auth/SerializableDictionary.cs`, whose `WriteXml` writes each map as
//! `<item><key><string>NAME</string></key><value>VALUE</value></item>`; a provider's value is
//! its class serialized under its `[XmlRoot("PluginConfiguration")]`, a link's value a
//! `<guid>`. `string[]` is `<string>` children, `List<FolderRoleMap>` is
//! `[XmlArray("FolderRoleMappings")]` of `FolderRoleMappings` items, a null `int?` is
//! `xsi:nil="true"`, a null string is no element at all. Elements a fork adds (the Flowfin /
//! iderex fork's `ProviderConfigBase`) are mapped where the proxy has the same setting and
//! otherwise reported as unknown.

use serde_json::{json, Map, Value};

use super::xml::Element;
use crate::config::Protocol;

/// What became of one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Copied to this key of the provider's JSON.
    Mapped(&'static str),
    /// Not imported, for this reason.
    Dropped(String),
    /// Not a field of the plugin's classes (a fork's?): not imported.
    Unknown,
}

/// One provider of the plugin, mapped.
#[derive(Debug, Clone)]
pub struct PluginProvider {
    pub protocol: Protocol,
    pub name: String,
    pub line: usize,
    /// The provider in the plugin's JSON shape, for `ProviderConfig::from_plugin_json`.
    pub json: Map<String, Value>,
    /// Every element, with what became of it: (element, line, fate).
    pub fields: Vec<(String, usize, Fate)>,
    /// JSON key → the element and line it came from (to name them in problems).
    pub origin: Vec<(&'static str, String, usize)>,
    /// `CanonicalLinks`: (canonical name, Jellyfin user id as written, line).
    pub links: Vec<(String, String, usize)>,
    /// Canonical names known to be subjects (a fork's `CanonicalLinkIssuers` keys).
    pub subject_keys: Vec<String>,
    /// `DefaultUsernameClaim` present and empty: the plugin's claim loop never matched, so it
    /// keyed every link by `sub`.
    pub links_keyed_by_sub: bool,
    /// Problems found while reading (bad booleans, a broken map): (line, message).
    pub problems: Vec<(usize, String)>,
}

/// How an element's text becomes JSON.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Bool,
    List,
    FolderMaps,
}

/// The fields of `OidConfig` and `SamlConfig` the proxy has, by element name → (JSON key, kind).
fn known(protocol: Protocol, element: &str) -> Option<(&'static str, Kind)> {
    use Kind::*;
    let common = match element {
        "Enabled" => Some(("enabled", Bool)),
        "EnableAuthorization" => Some(("enableAuthorization", Bool)),
        "EnableAllFolders" => Some(("enableAllFolders", Bool)),
        "EnabledFolders" => Some(("enabledFolders", List)),
        "AdminRoles" => Some(("adminRoles", List)),
        "Roles" => Some(("roles", List)),
        "EnableFolderRoles" => Some(("enableFolderRoles", Bool)),
        "EnableLiveTvRoles" => Some(("enableLiveTvRoles", Bool)),
        "EnableLiveTv" => Some(("enableLiveTv", Bool)),
        "EnableLiveTvManagement" => Some(("enableLiveTvManagement", Bool)),
        "LiveTvRoles" => Some(("liveTvRoles", List)),
        "LiveTvManagementRoles" => Some(("liveTvManagementRoles", List)),
        "FolderRoleMappings" => Some(("folderRoleMapping", FolderMaps)),
        "DefaultProvider" => Some(("defaultProvider", Text)),
        // A fork's (Flowfin/iderex `ProviderConfigBase.LoginButtonText`): the button's label.
        "LoginButtonText" => Some(("displayName", Text)),
        _ => None,
    };
    common.or(match (protocol, element) {
        (Protocol::Oidc, "OidEndpoint") => Some(("oidEndpoint", Text)),
        (Protocol::Oidc, "OidClientId") => Some(("oidClientId", Text)),
        (Protocol::Oidc, "OidSecret") => Some(("oidSecret", Text)),
        (Protocol::Oidc, "RoleClaim") => Some(("roleClaim", Text)),
        (Protocol::Oidc, "OidScopes") => Some(("oidScopes", List)),
        (Protocol::Oidc, "DefaultUsernameClaim") => Some(("defaultUsernameClaim", Text)),
        (Protocol::Oidc, "AvatarUrlFormat") => Some(("avatarUrlFormat", Text)),
        (Protocol::Oidc, "DisableHttps") => Some(("disableHttps", Bool)),
        (Protocol::Oidc, "DisablePushedAuthorization") => Some(("disablePushedAuthorization", Bool)),
        (Protocol::Oidc, "DoNotValidateEndpoints") => Some(("doNotValidateEndpoints", Bool)),
        (Protocol::Oidc, "DoNotValidateIssuerName") => Some(("doNotValidateIssuerName", Bool)),
        (Protocol::Oidc, "DoNotLoadProfile") => Some(("doNotLoadProfile", Bool)),
        (Protocol::Saml, "SamlEndpoint") => Some(("samlEndpoint", Text)),
        (Protocol::Saml, "SamlClientId") => Some(("samlClientId", Text)),
        (Protocol::Saml, "SamlCertificate") => Some(("samlCertificate", Text)),
        // The fork's single-logout URL and second certificate (key rollover).
        (Protocol::Saml, "SamlSloEndpoint") => Some(("samlLogoutEndpoint", Text)),
        (Protocol::Saml, "SamlSecondaryCertificate") => Some(("samlCertificate", Text)),
        _ => None,
    })
}

/// Fields of the plugin the proxy does not take, and why.
fn dropped(protocol: Protocol, e: &Element) -> Option<String> {
    let why = match e.name.as_str() {
        "SchemeOverride" | "PortOverride" => "the proxy builds every URL it gives the identity provider from public_url".to_string(),
        "NewPath" if e.text.trim() == "true" => "the proxy always uses the new paths".to_string(),
        "NewPath" => {
            let (kind, old, new) = match protocol {
                Protocol::Oidc => ("redirect URI", "/sso/OID/r/", "/sso/OID/redirect/"),
                Protocol::Saml => ("assertion consumer URL", "/sso/SAML/p/", "/sso/SAML/post/"),
            };
            format!("the plugin used the old paths; the proxy sends {new}{{name}} as the {kind} (the old {old}{{name}} is still answered): register the new one at the identity provider")
        }
        // The fork always-on or proxy-wide equivalents.
        "RequirePkce" => "the proxy always uses PKCE".to_string(),
        _ => return None,
    };
    Some(why)
}

/// Read one provider (`<PluginConfiguration>` inside a map's `<value>`).
pub fn provider(protocol: Protocol, name: &str, line: usize, body: &Element) -> PluginProvider {
    let mut p = PluginProvider {
        protocol,
        name: name.to_string(),
        line,
        json: Map::new(),
        fields: Vec::new(),
        origin: Vec::new(),
        links: Vec::new(),
        subject_keys: Vec::new(),
        links_keyed_by_sub: false,
        problems: Vec::new(),
    };
    for e in &body.children {
        let fate = field(&mut p, e);
        p.fields.push((e.name.clone(), e.line, fate));
    }
    p
}

fn field(p: &mut PluginProvider, e: &Element) -> Fate {
    match e.name.as_str() {
        "CanonicalLinks" => {
            for (key, value, line) in map_items(e, &mut p.problems) {
                p.links.push((key, value.child("guid").map(|g| g.text.trim().to_string()).unwrap_or_else(|| value.text.trim().to_string()), line));
            }
            return Fate::Mapped("links");
        }
        "CanonicalLinkIssuers" => {
            p.subject_keys.extend(map_items(e, &mut p.problems).into_iter().map(|(k, _, _)| k));
            return Fate::Dropped("the fork's issuer of each subject-keyed link: those links are imported as subject links; the proxy ties links to the provider they were imported under".into());
        }
        _ => {}
    }
    if let Some(why) = dropped(p.protocol, e) {
        return Fate::Dropped(why);
    }
    let Some((key, kind)) = known(p.protocol, &e.name) else { return Fate::Unknown };
    if e.nil {
        return Fate::Dropped("null in the file".into());
    }
    let value = match kind {
        Kind::Text => {
            if e.name == "DefaultUsernameClaim" && e.text.trim().is_empty() {
                // `config.DefaultUsernameClaim?.Trim() ?? "preferred_username"` is "" here, which
                // no claim matches: the plugin named people (and keyed links) by `sub`.
                p.links_keyed_by_sub = true;
                Value::String("sub".into())
            } else if e.name == "OidSecret" && e.text.starts_with("ssoenc:") {
                p.problems.push((e.line, "OidSecret is encrypted with the fork's key file (`ssoenc:`), which this import cannot read: give the secret with --set oid.NAME.oidSecretFile=PATH".into()));
                return Fate::Dropped("encrypted by the fork".into());
            } else if e.text.trim().is_empty() {
                return Fate::Dropped("empty".into());
            } else {
                Value::String(e.text.clone())
            }
        }
        Kind::Bool => match e.text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => {
                p.problems.push((e.line, format!("<{}> must be true or false, not `{other}`", e.name)));
                return Fate::Dropped("not a boolean".into());
            }
        },
        Kind::List => Value::Array(strings(e)),
        Kind::FolderMaps => Value::Array(
            e.children
                .iter()
                .map(|m| {
                    let role = m.child("Role").map(|r| r.text.clone()).unwrap_or_default();
                    let folders = m.child("Folders").map(strings).unwrap_or_default();
                    json!({ "role": role, "folders": folders })
                })
                .collect(),
        ),
    };
    if key == "samlCertificate" {
        // `SamlCertificate` and the fork's `SamlSecondaryCertificate` make one list.
        let list = p.json.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = list {
            a.push(value);
        }
    } else {
        p.json.insert(key.to_string(), value);
    }
    p.origin.push((key, e.name.clone(), e.line));
    Fate::Mapped(key)
}

/// The `<string>` children of a `string[]` (null entries left out).
fn strings(e: &Element) -> Vec<Value> {
    e.children.iter().filter(|s| !s.nil).map(|s| Value::String(s.text.clone())).collect()
}

/// The items of a `SerializableDictionary`: (key, the `<value>` element, line).
pub fn map_items<'a>(e: &'a Element, problems: &mut Vec<(usize, String)>) -> Vec<(String, &'a Element, usize)> {
    let mut out = Vec::new();
    for item in &e.children {
        if item.name != "item" {
            problems.push((item.line, format!("<{}> inside <{}>: expected <item>", item.name, e.name)));
            continue;
        }
        let key = item.child("key").map(|k| k.child("string").map(|s| s.text.clone()).unwrap_or_else(|| k.text.clone()));
        match (key, item.child("value")) {
            (Some(key), Some(value)) => out.push((key, value, item.line)),
            _ => problems.push((item.line, format!("an <item> of <{}> without <key> and <value>", e.name))),
        }
    }
    out
}
