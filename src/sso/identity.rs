//! Identity and grants: one implementation for OIDC and SAML.
//!
//! A protocol turns what the identity provider asserted into an [`Identity`] (subject,
//! username, roles, avatar). [`decide`] then applies the provider's [`GrantRules`]: the role
//! gate (is this person allowed at all?), administrator, folders and Live TV. [`apply`]
//! writes the decision into a Jellyfin user policy, changing only the fields we own.

use serde_json::Value;

use crate::config::provider::GrantRules;
use crate::jellyfin::UserPolicy;

pub use crate::config::Protocol;

/// Who the identity provider says this person is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub protocol: Protocol,
    pub provider: String,
    /// Stable key of the account link (`sub` by default): never the changeable username.
    pub subject: String,
    /// The Jellyfin user name to use or match.
    pub username: String,
    pub roles: Vec<String>,
    pub avatar_url: Option<String>,
    /// The provider's session id for this login (OIDC `sid`, SAML `SessionIndex`), so a
    /// single logout reaches exactly the sessions of that provider session.
    #[serde(default)]
    pub sid: Option<String>,
    /// This login's ID token and refresh token, already encrypted with the state key
    /// ([`crate::sso::token_crypto`]), for the logout hint and re-validation.
    #[serde(default)]
    pub tokens: SealedTokens,
    /// The names the SSO plugin may have keyed this person's link by (OIDC: the subject, then
    /// the username claim as the plugin read it), for links imported from it: a login whose
    /// subject has no link takes the first imported one of these ([`crate::sso::legacy_links`]).
    #[serde(default)]
    pub legacy_names: Vec<String>,
}

/// A login's tokens, encrypted, bound to (protocol, provider, subject).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedTokens {
    #[serde(default, with = "crate::sso::token_crypto::sealed_json")]
    pub id_token: Option<Vec<u8>>,
    #[serde(default, with = "crate::sso::token_crypto::sealed_json")]
    pub refresh_token: Option<Vec<u8>>,
}

/// What the rules decided for this identity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    pub allowed: bool,
    pub is_admin: bool,
    pub all_folders: bool,
    pub folders: Vec<String>,
    pub live_tv: bool,
    pub live_tv_management: bool,
}

fn has_any(roles: &[String], wanted: &[String]) -> bool {
    roles.iter().any(|r| wanted.contains(r))
}

/// Apply the provider's rules to the identity's roles.
pub fn decide(roles: &[String], rules: &GrantRules) -> Grants {
    let is_admin = has_any(roles, &rules.admin_roles);
    // An empty `roles` list lets everyone in; an admin role also lets one in.
    let allowed = rules.roles.is_empty() || has_any(roles, &rules.roles) || is_admin;
    let (all_folders, folders) = if rules.enable_folder_roles {
        let mut f: Vec<String> = rules
            .folder_role_mapping
            .iter()
            .filter(|m| roles.contains(&m.role))
            .flat_map(|m| m.folders.iter().cloned())
            .collect();
        f.sort();
        f.dedup();
        (false, f)
    } else {
        (rules.enable_all_folders, rules.enabled_folders.clone())
    };
    let (live_tv, live_tv_management) = if rules.enable_live_tv_roles {
        (has_any(roles, &rules.live_tv_roles), has_any(roles, &rules.live_tv_management_roles))
    } else {
        (rules.enable_live_tv, rules.enable_live_tv_management)
    };
    Grants { allowed, is_admin, all_folders, folders, live_tv, live_tv_management }
}

/// Write the grants into `policy`, touching only the fields the proxy owns.
pub fn apply(policy: &mut UserPolicy, g: &Grants) {
    policy.is_administrator = g.is_admin;
    policy.enable_all_folders = g.all_folders;
    policy.enabled_folders = if g.all_folders { Vec::new() } else { g.folders.clone() };
    policy.enable_live_tv_access = g.live_tv;
    policy.enable_live_tv_management = g.live_tv_management;
}

/// Split a claim path on `.`, where `\.` is a literal dot: `realm_access.roles`,
/// `https://example\.com/roles`.
pub fn claim_path(path: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                parts.last_mut().unwrap().push('.');
                chars.next();
            }
            '.' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// The roles at `path` in `claims`: walk objects, end at a list of strings, one string, or
/// an object whose keys are the roles (Zitadel: `{"role": {"<org id>": "<org domain>"}}`).
pub fn roles_at(claims: &Value, path: &str) -> Vec<String> {
    let mut cur = claims;
    for key in claim_path(path) {
        match cur.get(&key) {
            Some(v) => cur = v,
            None => return Vec::new(),
        }
    }
    match cur {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Value::Object(roles) => roles.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A string claim (numbers are accepted too: some providers send numeric ids).
pub fn string_claim(claims: &Value, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The avatar URL from `avatarUrlFormat`, with each `@{claim}` replaced. A format that is
/// exactly one `@{claim}` takes the claim as the URL; otherwise substituted values are
/// percent-encoded so a claim cannot change the host. Only http(s) URLs come out.
pub fn avatar_url(format: &str, claims: &Value) -> Option<String> {
    let whole = format.trim();
    let url = if let Some(name) = whole.strip_prefix("@{").and_then(|s| s.strip_suffix('}')).filter(|n| !n.contains('}')) {
        string_claim(claims, name)?
    } else {
        let mut out = String::new();
        let mut rest = whole;
        while let Some(start) = rest.find("@{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}')?;
            let value = string_claim(claims, &after[..end])?;
            out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    };
    let parsed = url::Url::parse(&url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

/// Jellyfin user names: trimmed, not empty, at most 64 characters without control characters.
pub fn clean_username(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control)).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::provider::FolderRoleMap;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn claim_paths_walk_objects_and_respect_escaped_dots() {
        let c = json!({"groups": ["a", "b"], "realm_access": {"roles": ["admin"]}, "https://x.io/role": "r", "one": "solo", "n": 3});
        assert_eq!(roles_at(&c, "groups"), s(&["a", "b"]));
        assert_eq!(roles_at(&c, "realm_access.roles"), s(&["admin"]));
        assert_eq!(roles_at(&c, "https://x\\.io/role"), s(&["r"]));
        assert_eq!(roles_at(&c, "one"), s(&["solo"]));
        assert!(roles_at(&c, "n").is_empty());
        assert!(roles_at(&c, "missing.path").is_empty());
        let z = json!({"urn:zitadel:iam:org:project:roles": {"jellyfin-users": {"1": "acme.example"}, "jellyfin-admins": {"1": "acme.example"}}});
        assert_eq!(roles_at(&z, "urn:zitadel:iam:org:project:roles"), s(&["jellyfin-admins", "jellyfin-users"]));
        assert_eq!(claim_path("a\\.b.c"), s(&["a.b", "c"]));
    }

    #[test]
    fn role_gate_admin_and_folders() {
        let rules = GrantRules {
            roles: s(&["media"]),
            admin_roles: s(&["admins"]),
            enable_folder_roles: true,
            folder_role_mapping: vec![
                FolderRoleMap { role: "media".into(), folders: s(&["f1", "f2"]) },
                FolderRoleMap { role: "kids".into(), folders: s(&["f3"]) },
            ],
            ..Default::default()
        };
        let g = decide(&s(&["media"]), &rules);
        assert!(g.allowed && !g.is_admin);
        assert_eq!(g.folders, s(&["f1", "f2"]));
        assert!(!g.all_folders);
        assert!(!decide(&s(&["other"]), &rules).allowed);
        let admin = decide(&s(&["admins"]), &rules);
        assert!(admin.allowed && admin.is_admin);
        assert!(decide(&[], &GrantRules::default()).allowed, "empty roles list allows everyone");
    }

    #[test]
    fn live_tv_flags_or_roles() {
        let flags = GrantRules { enable_live_tv: true, ..Default::default() };
        let g = decide(&[], &flags);
        assert!(g.live_tv && !g.live_tv_management);
        let by_role = GrantRules { enable_live_tv_roles: true, live_tv_roles: s(&["tv"]), live_tv_management_roles: s(&["dvr"]), enable_live_tv: true, ..Default::default() };
        let g = decide(&s(&["dvr"]), &by_role);
        assert!(!g.live_tv && g.live_tv_management);
    }

    #[test]
    fn apply_changes_only_owned_fields() {
        let mut p: UserPolicy = serde_json::from_value(json!({"IsAdministrator": true, "EnableAllFolders": true, "EnabledFolders": [], "AuthenticationProviderId": "X", "PasswordResetProviderId": "Y", "MaxActiveSessions": 3})).unwrap();
        apply(&mut p, &Grants { allowed: true, is_admin: false, all_folders: false, folders: s(&["f1"]), live_tv: true, live_tv_management: false });
        assert!(!p.is_administrator && !p.enable_all_folders);
        assert_eq!(p.enabled_folders, s(&["f1"]));
        assert!(p.enable_live_tv_access);
        assert_eq!(p.authentication_provider_id, "X");
        assert_eq!(p.rest["MaxActiveSessions"], 3);
    }

    #[test]
    fn avatar_urls() {
        let c = json!({"sub": "a/b?c", "picture": "https://img.example/p.png", "bad": "javascript:alert(1)"});
        assert_eq!(avatar_url("https://img.example/@{sub}.png", &c).unwrap(), "https://img.example/a%2Fb%3Fc.png");
        assert_eq!(avatar_url("@{picture}", &c).unwrap(), "https://img.example/p.png");
        assert_eq!(avatar_url("@{bad}", &c), None);
        assert_eq!(avatar_url("https://x/@{missing}", &c), None);
    }

    #[test]
    fn usernames() {
        assert_eq!(clean_username("  alice "), Some("alice".into()));
        assert_eq!(clean_username(""), None);
        assert_eq!(clean_username("a\nb"), None);
    }
}
