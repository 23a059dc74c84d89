//! Who is calling (`Jellyfin.Server.Implementations/Security/AuthorizationContext.cs`,
//! `Jellyfin.Api/Auth/CustomAuthenticationHandler.cs`, `AuthService`): the `Authorization`
//! header parsed like `GetParts`, the token sources in Jellyfin's order, and the legacy ones
//! (`X-Emby-Authorization`, the `Emby` scheme, `X-Emby-Token`, `X-MediaBrowser-Token`,
//! `?api_key=`) behind `EnableLegacyAuthorization`. The proxy must speak exactly what a real
//! server accepts, so this is strict where Jellyfin is strict.

use std::collections::HashMap;

use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use crate::policy::flag;
use crate::reply::{empty, Body};
use crate::server::Inner;

/// `WebUtility.UrlDecode`: `+` → space, `%XX` → that byte (the result read as UTF-8), anything
/// else (including a `%` not followed by two hex digits) kept.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap() as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `AuthorizationContext.GetParts`: one pass over the text after the scheme. `"` and `,` flip an
/// "escaped" flag with `escaped = (!escaped) == (c == '"')`, so commas inside quotes don't
/// split; `=` outside quotes ends a key (trimmed); a value loses every leading and trailing `"`
/// (not spaces) and is URL-decoded. Keys are case-sensitive; a repeated key: the last wins.
pub fn get_parts(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut escaped, mut start, mut key) = (false, 0usize, String::new());
    let value = |from: usize, to: usize| url_decode(chars[from..to].iter().collect::<String>().trim_matches('"'));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == ',' {
            // "Applying a XOR logic to evaluate whether it is opening or closing a value".
            escaped = escaped != (c == '"');
            if c == ',' && !escaped {
                if start < i {
                    out.insert(std::mem::take(&mut key), value(start, i));
                }
                start = i + 1;
            }
        } else if !escaped && c == '=' {
            key = chars[start..i].iter().collect::<String>().trim().to_string();
            start = i + 1;
        }
        i += 1;
    }
    if start < i {
        out.insert(key, value(start, i));
    }
    out
}

/// `AuthorizationContext.GetAuthorization`: the scheme is the text before the first space,
/// `MediaBrowser` (any case), or `Emby` when legacy authorization is on; then `GetParts`.
pub fn parse_auth_params(value: &str, legacy: bool) -> Option<HashMap<String, String>> {
    let (scheme, rest) = value.split_once(' ')?;
    if !(scheme.eq_ignore_ascii_case("MediaBrowser") || (legacy && scheme.eq_ignore_ascii_case("Emby"))) {
        return None;
    }
    Some(get_parts(rest))
}

/// Who made a request (`AuthorizationContext`, `AuthService`, `CustomAuthenticationHandler`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Caller {
    /// No token: `AuthenticateResult.NoResult()`.
    Anonymous,
    /// An unknown token, or a disabled user's (`AuthService`: SecurityException → `Fail`).
    Invalid,
    ApiKey { token: String },
    User { id: String, token: String, admin: bool },
}

impl Caller {
    /// `CustomAuthenticationHandler`: an API key or an administrator gets the Administrator role.
    pub(crate) fn admin(&self) -> bool {
        matches!(self, Caller::ApiKey { .. } | Caller::User { admin: true, .. })
    }
    pub(crate) fn authenticated(&self) -> bool {
        !matches!(self, Caller::Anonymous | Caller::Invalid)
    }
    /// The UserId claim (`Guid.Empty`, here None, for an API key).
    pub(crate) fn user_id(&self) -> Option<&str> {
        match self {
            Caller::User { id, .. } => Some(id),
            _ => None,
        }
    }
    pub(crate) fn token(&self) -> Option<&str> {
        match self {
            Caller::User { token, .. } | Caller::ApiKey { token } => Some(token),
            _ => None,
        }
    }
}

/// `AuthorizationInfo`: the header's parameters, completed from the token's device row or key.
#[derive(Clone, Debug)]
pub(crate) struct AuthInfo {
    pub(crate) client: Option<String>,
    pub(crate) device: Option<String>,
    pub(crate) device_id: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) caller: Caller,
}

impl AuthInfo {
    /// The four device fields `AuthenticateNewSessionInternal` / `TryConnect` require
    /// (`ArgumentException.ThrowIfNullOrEmpty` → 400): client, device, device id, version.
    pub(crate) fn device_fields(&self) -> Option<(String, String, String, String)> {
        let need = |x: &Option<String>| x.clone().filter(|s| !s.is_empty());
        Some((need(&self.client)?, need(&self.device)?, need(&self.device_id)?, need(&self.version)?))
    }
}

fn nonempty(s: Option<&String>) -> Option<String> {
    s.filter(|v| !v.is_empty()).cloned()
}

/// `AuthorizationContext.GetAuthorizationDictionary` + `GetAuthorizationInfoFromDictionary` for
/// the double's version and legacy setting (`query` has lowercase keys: IQueryCollection is
/// case-insensitive). Like Jellyfin, a different Device or Version in the header updates the
/// token's device row (except for Chromecast clients).
pub(crate) fn authorize(g: &mut Inner, headers: &HeaderMap, query: &HashMap<String, String>) -> AuthInfo {
    let legacy = g.opts.legacy_auth;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string).filter(|v| !v.is_empty());
    let header = if g.version().at_least(10, 11) {
        // 10.11+: Authorization; X-Emby-Authorization only as a legacy fallback.
        h("authorization").or_else(|| if legacy { h("x-emby-authorization") } else { None })
    } else if legacy {
        // 10.9/10.10: X-Emby-Authorization is read before Authorization.
        h("x-emby-authorization").or_else(|| h("authorization"))
    } else {
        h("authorization")
    };
    let params = header.and_then(|v| parse_auth_params(&v, legacy)).unwrap_or_default();
    let mut info = AuthInfo {
        client: params.get("Client").cloned(),
        device: params.get("Device").cloned(),
        device_id: params.get("DeviceId").cloned(),
        version: params.get("Version").cloned(),
        caller: Caller::Anonymous,
    };
    // The first non-empty of: Token, X-Emby-Token, X-MediaBrowser-Token, ?ApiKey=, ?api_key=
    // (the 2nd, 3rd and 5th only with legacy authorization).
    let mut token = nonempty(params.get("Token"));
    if legacy {
        token = token.or_else(|| h("x-emby-token")).or_else(|| h("x-mediabrowser-token"));
    }
    token = token.or_else(|| nonempty(query.get("apikey")));
    if legacy {
        token = token.or_else(|| nonempty(query.get("api_key")));
    }
    // `HasToken => !string.IsNullOrWhiteSpace(Token)`.
    let Some(token) = token.filter(|t| !t.trim().is_empty()) else { return info };
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|x| x.trim().is_empty());
    if let Some(i) = g.sessions.iter().position(|s| s.token == token) {
        let s = &mut g.sessions[i];
        if blank(&info.client) {
            info.client = Some(s.client.clone());
        }
        if blank(&info.device_id) {
            info.device_id = Some(s.device_id.clone());
        }
        let chromecast = info.client.as_deref().unwrap_or("").to_ascii_lowercase().contains("chromecast");
        match &info.device {
            d if blank(d) => info.device = Some(s.device_name.clone()),
            Some(d) if !d.eq_ignore_ascii_case(&s.device_name) && !chromecast => s.device_name = d.clone(),
            _ => {}
        }
        match &info.version {
            v if blank(v) => info.version = Some(s.app_version.clone()),
            Some(v) if !v.eq_ignore_ascii_case(&s.app_version) && !chromecast => s.app_version = v.clone(),
            _ => {}
        }
        let uid = s.user_id.clone();
        info.caller = match g.user(&uid) {
            // AuthService: "User account has been disabled."
            Some(u) if flag(&u.policy, "IsDisabled") => Caller::Invalid,
            Some(u) => Caller::User { admin: flag(&u.policy, "IsAdministrator"), id: uid, token },
            None => Caller::Invalid,
        };
    } else if let Some(k) = g.api_keys.iter().find(|k| k.token == token) {
        // IsApiKey: Client = the key's name; missing device fields from the server.
        info.client = Some(k.name.clone());
        if blank(&info.device_id) {
            info.device_id = Some(g.server_id.clone());
        }
        if blank(&info.device) {
            info.device = Some(g.opts.server_name.clone());
        }
        if blank(&info.version) {
            info.version = Some(g.opts.version.clone());
        }
        info.caller = Caller::ApiKey { token };
    } else {
        // AuthService: "Invalid token."
        info.caller = Caller::Invalid;
    }
    info
}

/// `[Authorize]`: 401 (empty) without a valid token. Authorization runs before model binding,
/// so handlers check it first.
pub(crate) fn authorized(caller: &Caller) -> Result<(), Response<Body>> {
    if caller.authenticated() {
        Ok(())
    } else {
        Err(empty(StatusCode::UNAUTHORIZED))
    }
}

/// `RequiresElevation`: 401 without a valid token, 403 (empty) for non-administrators.
pub(crate) fn elevated(caller: &Caller) -> Result<(), Response<Body>> {
    authorized(caller)?;
    if caller.admin() {
        Ok(())
    } else {
        Err(empty(StatusCode::FORBIDDEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::test_util::inner;

    #[test]
    fn header_parameters_parse_like_get_parts() {
        let p = parse_auth_params("MediaBrowser Client=\"Jellyfin Web\", Device=\"Bob%27s+Phone\", DeviceId=\"a,b\", Version=\"10.10.7\", Token=\"t\"", false).unwrap();
        assert_eq!(p["Client"], "Jellyfin Web");
        assert_eq!(p["Device"], "Bob's Phone", "WebUtility.UrlDecode: %27 and +");
        assert_eq!(p["DeviceId"], "a,b", "a comma inside quotes does not split");
        assert_eq!(p["Token"], "t");
        // Unquoted values, any scheme case, keys trimmed but case-sensitive, last repeat wins.
        let p = parse_auth_params("mediabrowser  token=x, Token=y,Token=z", false).unwrap();
        assert_eq!(p.get("token").map(String::as_str), Some("x"));
        assert_eq!(p["Token"], "z");
        // No backslash escaping; every surrounding quote goes; a bad % stays.
        assert_eq!(get_parts("Device=\"\"x\"\"")["Device"], "x");
        assert_eq!(get_parts("Device=\"100%\"")["Device"], "100%");
        assert_eq!(get_parts("Device=\"%E2%9C%93\"")["Device"], "✓");
        // Scheme: only MediaBrowser, or Emby with legacy authorization; no space → nothing.
        assert!(parse_auth_params("Emby Token=\"t\"", false).is_none());
        assert!(parse_auth_params("Emby Token=\"t\"", true).is_some());
        assert!(parse_auth_params("Bearer t", true).is_none());
        assert!(parse_auth_params("MediaBrowser", false).is_none());
    }

    #[test]
    fn token_sources_follow_the_version_and_legacy_setting() {
        let mut g = inner("10.11.11");
        let q = |s: &str| -> HashMap<String, String> { url::form_urlencoded::parse(s.as_bytes()).map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect() };
        let mut h = HeaderMap::new();
        h.insert("x-emby-token", "key".parse().unwrap());
        assert_eq!(authorize(&mut g, &h, &q("")).caller, Caller::Anonymous, "X-Emby-Token is legacy");
        assert_eq!(authorize(&mut g, &HeaderMap::new(), &q("api_key=key")).caller, Caller::Anonymous, "api_key is legacy");
        assert!(authorize(&mut g, &HeaderMap::new(), &q("ApiKey=key")).caller.admin(), "ApiKey= always counts");
        assert_eq!(authorize(&mut g, &HeaderMap::new(), &q("ApiKey=nope")).caller, Caller::Invalid);
        g.opts.legacy_auth = true;
        assert!(authorize(&mut g, &h, &q("")).caller.admin());
        // 10.10 with legacy: X-Emby-Authorization is read before Authorization.
        let mut g = inner("10.10.7");
        g.opts.legacy_auth = true;
        let mut h = HeaderMap::new();
        h.insert("x-emby-authorization", "MediaBrowser Token=\"key\"".parse().unwrap());
        h.insert("authorization", "MediaBrowser Token=\"other\"".parse().unwrap());
        assert!(authorize(&mut g, &h, &HashMap::new()).caller.admin());
        // An API key fills the device fields from the server.
        let i = authorize(&mut g, &h, &HashMap::new());
        assert_eq!(i.client.as_deref(), Some("test"));
        assert_eq!(i.device_id.as_deref(), Some(g.server_id.as_str()));
    }

}
