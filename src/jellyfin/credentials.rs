//! Every way a Jellyfin client can present credentials, in one place, read exactly as
//! Jellyfin reads them.
//!
//! Jellyfin's `AuthorizationContext` (Jellyfin.Server.Implementations/Security/
//! AuthorizationContext.cs, `GetAuthorizationDictionary`, `GetAuthorization`, `GetParts`,
//! `GetAuthorizationInfoFromDictionary`) accepts a token in `Authorization: MediaBrowser …`
//! (or the legacy `Emby` scheme), the legacy `X-Emby-Authorization` header with the same
//! parameters, the legacy `X-Emby-Token` and `X-MediaBrowser-Token` headers, and the `ApiKey`
//! (always) or legacy `api_key` query parameter (docs/jellyfin-api.md has the per-version
//! table). [`jellyfin_reads`] is that code, ported: the proxy's session injection ("does this
//! request already carry credentials?"), the admin API's caller identification ("which token
//! does it present?") and the legacy translation all ask it, so none of them can disagree
//! with Jellyfin, or with each other, about what a request presents.
//!
//! [`translate_legacy`] (with `jellyfin.legacy_auth: translate`) rewrites the legacy forms,
//! which Jellyfin 12 refuses (`EnableLegacyAuthorization` is off and forced off), into the one
//! it accepts: `Authorization: MediaBrowser …` with the same parameters, `api_key` → `ApiKey`.

use http::{HeaderMap, Uri};

/// Headers whose whole value is (or carries) a credential.
pub const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "x-emby-authorization", "x-emby-token", "x-mediabrowser-token"];
/// Query parameters that carry a token (compared without case, as ASP.NET does).
pub const QUERY_KEYS: [&str; 2] = ["apikey", "api_key"];

/// Build a `MediaBrowser` authorization header. Values are percent-encoded, which Jellyfin's
/// `AuthorizationContext` decodes, so quotes and commas in device names cannot break it.
pub fn mediabrowser_header(params: &[(&str, &str)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        .collect();
    format!("MediaBrowser {}", parts.join(", "))
}

/// `WebUtility.UrlDecode`: `+` → space, `%XX` → that byte, anything else (a `%` without two
/// hex digits after it too) kept; the bytes read as UTF-8. Not form decoding: `&` and `=`
/// are ordinary characters in a header value.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GetParts`: one pass over the text after the scheme. `"` flips an "in quotes" flag (Jellyfin
/// writes it `escaped = (!escaped) == (c == '"')` for `"` and `,`), so a `,` or `=` inside
/// quotes is text; `=` outside quotes ends a key (whitespace-trimmed; a second one makes the
/// text since the first the key), `,` outside quotes ends a value. A value loses every leading
/// and trailing `"` (not spaces) and is URL-decoded. Keys are case-sensitive; a repeated key
/// keeps its first place and takes the last value (a `Dictionary`).
fn get_parts(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |key: String, raw: &str| {
        let value = url_decode(raw.trim_matches('"'));
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => out.push((key, value)),
        }
    };
    let (mut quoted, mut start, mut key) = (false, 0, String::new());
    // Bytes, not chars: the three that matter are ASCII, and UTF-8 never hides one.
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                if start < i {
                    set(std::mem::take(&mut key), &text[start..i]);
                }
                start = i + 1;
            }
            b'=' if !quoted => {
                key = text[start..i].trim().to_string();
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        set(key, &text[start..]);
    }
    out
}

/// `GetAuthorization`: the scheme is the text before the first space, `MediaBrowser` or
/// `Emby` (any case; whether Jellyfin still takes `Emby` is [`jellyfin_reads`]'s business),
/// then [`get_parts`]. The value is first trimmed of spaces and tabs, as Kestrel hands it over.
pub fn parse_mediabrowser_header(value: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = value.trim_matches([' ', '\t']).split_once(' ')?;
    if !(scheme.eq_ignore_ascii_case("MediaBrowser") || scheme.eq_ignore_ascii_case("Emby")) {
        return None;
    }
    Some(get_parts(rest))
}

fn is_emby(value: &str) -> bool {
    value.trim_matches([' ', '\t']).split_once(' ').is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("Emby"))
}

/// Where the token Jellyfin reads came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// The `Token` parameter of the parameters read (from `Authorization` or, legacy,
    /// `X-Emby-Authorization`).
    Parameter,
    XEmbyToken,
    XMediaBrowserToken,
    /// `?ApiKey=` (any case).
    ApiKey,
    /// `?api_key=` (any case).
    LegacyApiKey,
}

/// What Jellyfin reads from a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JellyfinReads {
    /// The parameters of the header it parsed (`None`: no header, or not one of its schemes).
    pub params: Option<Vec<(String, String)>>,
    /// Whether those came from `X-Emby-Authorization` (else `Authorization`).
    pub params_from_legacy_header: bool,
    /// The token and its source; `None` when there is none, or only whitespace
    /// (`HasToken` is `!string.IsNullOrWhiteSpace(Token)`).
    pub token: Option<(String, TokenSource)>,
}

/// A header value as Kestrel hands it over: without surrounding spaces and tabs.
fn header_text(v: &http::HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).trim_matches([' ', '\t']).to_string()
}

/// A header's values as ASP.NET's `StringValues` turns into a string: joined with `,`.
fn joined(headers: &HeaderMap, name: &str) -> String {
    headers.get_all(name).iter().map(header_text).collect::<Vec<_>>().join(",")
}

/// The query's values for `key` (without case, as `IQueryCollection`), joined with `,`.
fn query_joined(uri: &Uri, key: &str) -> String {
    let q = uri.query().unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.into_owned()).collect::<Vec<_>>().join(",")
}

/// `GetAuthorizationDictionary` + `GetAuthorizationInfoFromDictionary` of Jellyfin 10.11 and
/// later, with `EnableLegacyAuthorization` = `legacy`: the parameters of the first
/// `Authorization` value (legacy: of the first `X-Emby-Authorization` one when `Authorization`
/// is absent or empty); then the first non-empty of `Token`, `X-Emby-Token`,
/// `X-MediaBrowser-Token`, `?ApiKey=`, `?api_key=` (the 2nd, 3rd and 5th legacy only).
pub fn jellyfin_reads(headers: &HeaderMap, uri: &Uri, legacy: bool) -> JellyfinReads {
    let mut name = "authorization";
    if legacy && joined(headers, name).is_empty() {
        name = "x-emby-authorization";
    }
    let params = headers
        .get(name)
        .map(header_text)
        .filter(|v| legacy || !is_emby(v))
        .and_then(|v| parse_mediabrowser_header(&v));
    let mut token = params.as_ref().and_then(|p| p.iter().find(|(k, _)| k == "Token")).map(|(_, v)| (v.clone(), TokenSource::Parameter));
    let sources: [(bool, TokenSource); 4] = [(legacy, TokenSource::XEmbyToken), (legacy, TokenSource::XMediaBrowserToken), (true, TokenSource::ApiKey), (legacy, TokenSource::LegacyApiKey)];
    for (on, source) in sources {
        if !on || token.as_ref().is_some_and(|(t, _)| !t.is_empty()) {
            continue;
        }
        let value = match source {
            TokenSource::XEmbyToken => joined(headers, "x-emby-token"),
            TokenSource::XMediaBrowserToken => joined(headers, "x-mediabrowser-token"),
            TokenSource::ApiKey => query_joined(uri, "ApiKey"),
            _ => query_joined(uri, "api_key"),
        };
        token = Some((value, source));
    }
    let params_from_legacy_header = params.is_some() && name != "authorization";
    JellyfinReads { params, params_from_legacy_header, token: token.filter(|(t, _)| !t.trim().is_empty()) }
}

/// Is `key` (a query parameter name) one that carries a token?
pub fn is_token_query_key(key: &str) -> bool {
    QUERY_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

/// Does the request carry Jellyfin credentials of any kind (even an empty or broken one)?
pub fn has_credentials(headers: &HeaderMap, uri: &Uri) -> bool {
    CREDENTIAL_HEADERS.iter().any(|h| headers.contains_key(*h))
        || uri.query().is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| is_token_query_key(&k)))
}

/// The token a request presents, as Jellyfin 10.11+ with legacy authorization on reads it
/// (so a legacy client is identified as its own server would identify it).
pub fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    jellyfin_reads(headers, uri, true).token.map(|(t, _)| t)
}

/// Legacy headers: dropped after translation.
const LEGACY_HEADERS: [&str; 3] = ["x-emby-authorization", "x-emby-token", "x-mediabrowser-token"];

fn is_legacy_query_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("api_key")
}

/// Only parameters whose names are plain words survive a rebuild: a name with a quote, a comma
/// or an `=` in it (never one Jellyfin knows) would shift the quoting of the header we write
/// and hide the parameters after it, the token among them.
fn plain_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Rewrite every legacy credential form into the one Jellyfin 12 accepts, in place, so that
/// Jellyfin 12 reads the token a legacy-enabled Jellyfin read from the original request — or,
/// when the request also carries a credential Jellyfin 12 reads already (`Authorization:
/// MediaBrowser` with a token, `?ApiKey=`), that one, and the request means what it meant
/// without translation. The parameters of the legacy header (device, client, …) come along.
/// Returns whether anything changed.
pub fn translate_legacy(headers: &mut HeaderMap, uri: &mut Uri) -> bool {
    let query = uri.query().unwrap_or("").to_string();
    let legacy_query = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| is_legacy_query_key(&k));
    let emby_first = headers.get(http::header::AUTHORIZATION).is_some_and(|v| is_emby(&String::from_utf8_lossy(v.as_bytes())));
    let legacy_headers = LEGACY_HEADERS.iter().any(|h| headers.contains_key(*h));
    if !(legacy_query || legacy_headers || emby_first) {
        return false;
    }
    let modern = jellyfin_reads(headers, uri, false);
    let old = jellyfin_reads(headers, uri, true);
    let mut rename_query = false;
    // The header to write instead of the request's `Authorization` (`Some(None)`: remove it).
    let mut new_header: Option<Option<String>> = None;
    if modern.token.is_some() {
        if emby_first {
            new_header = Some(None);
        }
    } else {
        let token = old.token.map(|(t, source)| {
            let has_api_key = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k.eq_ignore_ascii_case("ApiKey"));
            // `api_key` → `ApiKey` keeps the value byte for byte, when no `ApiKey` is there to join it.
            rename_query = source == TokenSource::LegacyApiKey && !has_api_key;
            t
        });
        let header_token = token.filter(|_| !rename_query);
        if emby_first || old.params_from_legacy_header || header_token.is_some() {
            let mut params: Vec<(String, String)> = old.params.unwrap_or_default().into_iter().filter(|(k, _)| k != "Token" && plain_key(k)).collect();
            params.extend(header_token.map(|t| ("Token".to_string(), t)));
            let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            new_header = Some((!refs.is_empty()).then(|| mediabrowser_header(&refs)));
        }
    }
    for h in LEGACY_HEADERS {
        headers.remove(h);
    }
    match new_header {
        Some(Some(v)) => match http::HeaderValue::from_str(&v) {
            Ok(v) => {
                headers.insert(http::header::AUTHORIZATION, v);
            }
            Err(_) => {
                headers.remove(http::header::AUTHORIZATION);
            }
        },
        Some(None) => {
            headers.remove(http::header::AUTHORIZATION);
        }
        None => {}
    }
    if legacy_query {
        // Other parameters keep their exact bytes; `api_key` is renamed, or dropped when a
        // modern credential (or a header token) already speaks for the request.
        let kept: Vec<String> = query
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let key = url::form_urlencoded::parse(format!("{k}=").as_bytes()).next().map(|(k, _)| k.into_owned()).unwrap_or_default();
                match (is_legacy_query_key(&key), rename_query) {
                    (false, _) => Some(pair.to_string()),
                    (true, true) => Some(format!("ApiKey={v}")),
                    (true, false) => None,
                }
            })
            .collect();
        let pq = if kept.is_empty() { uri.path().to_string() } else { format!("{}?{}", uri.path(), kept.join("&")) };
        let mut parts = uri.clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(parts) {
                *uri = u;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(pairs: &[(&str, &str)], uri: &str) -> (HeaderMap, Uri) {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let mut u: Uri = uri.parse().unwrap();
        translate_legacy(&mut h, &mut u);
        (h, u)
    }

    fn auth(h: &HeaderMap) -> Option<Vec<(String, String)>> {
        h.get("authorization").and_then(|v| parse_mediabrowser_header(v.to_str().unwrap()))
    }

    #[test]
    fn each_legacy_form_becomes_the_modern_one() {
        let device = "MediaBrowser Client=\"Infuse\", Device=\"Apple TV\", DeviceId=\"d1\", Version=\"8\", Token=\"t1\"";
        let (h, _) = legacy(&[("x-emby-authorization", device)], "/Users/Me");
        assert_eq!(auth(&h).unwrap(), parse_mediabrowser_header(device).unwrap(), "same parameters");
        assert!(h.get("authorization").unwrap().to_str().unwrap().starts_with("MediaBrowser "));
        assert!(!h.contains_key("x-emby-authorization"));
        let (h, _) = legacy(&[("authorization", "Emby Client=\"HA\", Token=\"t2\"")], "/Users/Me");
        assert_eq!(auth(&h).unwrap(), vec![("Client".into(), "HA".into()), ("Token".into(), "t2".into())]);
        for name in ["x-emby-token", "x-mediabrowser-token"] {
            let (h, _) = legacy(&[(name, "t3")], "/Users/Me");
            assert_eq!(auth(&h).unwrap(), vec![("Token".into(), "t3".into())], "{name}");
            assert!(!h.contains_key(name));
        }
        // A device header without a token, plus X-Emby-Token: one header with both.
        let (h, _) = legacy(&[("x-emby-authorization", "MediaBrowser Client=\"x\""), ("x-emby-token", "t4")], "/");
        assert_eq!(auth(&h).unwrap(), vec![("Client".into(), "x".into()), ("Token".into(), "t4".into())]);
        let (h, u) = legacy(&[], "/socket?deviceId=a%20b&api_key=t5&x=1");
        assert_eq!(u.to_string(), "/socket?deviceId=a%20b&ApiKey=t5&x=1");
        assert!(!h.contains_key("authorization"));
    }

    #[test]
    fn a_modern_credential_wins_and_the_legacy_one_goes() {
        let (h, u) = legacy(&[("authorization", "MediaBrowser Token=\"good\""), ("x-emby-token", "old"), ("x-emby-authorization", "Emby Token=\"old\"")], "/Items?api_key=old&a=1");
        assert_eq!(auth(&h).unwrap(), vec![("Token".into(), "good".into())]);
        assert!(!h.contains_key("x-emby-token") && !h.contains_key("x-emby-authorization"));
        assert_eq!(u.to_string(), "/Items?a=1");
        let (h, u) = legacy(&[("x-mediabrowser-token", "old")], "/Items?ApiKey=good&API_KEY=old");
        assert!(!h.contains_key("authorization") && !h.contains_key("x-mediabrowser-token"));
        assert_eq!(u.to_string(), "/Items?ApiKey=good");
        // Modern only: untouched.
        let mut h = HeaderMap::new();
        h.insert("authorization", "MediaBrowser Token=\"m\"".parse().unwrap());
        let mut u: Uri = "/Items?ApiKey=k".parse().unwrap();
        assert!(!translate_legacy(&mut h, &mut u));
        assert_eq!(u.to_string(), "/Items?ApiKey=k");
    }

    #[test]
    fn header_values_are_encoded() {
        let h = mediabrowser_header(&[("Device", "Bob's \"Phone\", 2"), ("Token", "abc")]);
        assert_eq!(h, "MediaBrowser Device=\"Bob%27s+%22Phone%22%2C+2\", Token=\"abc\"");
    }

    #[test]
    fn parses_mediabrowser_headers() {
        let p = parse_mediabrowser_header("MediaBrowser Client=\"Jellyfin Web\", Device=\"Bob%27s, Phone\", Token=\"abc\"").unwrap();
        assert_eq!(p, vec![("Client".into(), "Jellyfin Web".into()), ("Device".into(), "Bob's, Phone".into()), ("Token".into(), "abc".into())]);
        assert!(parse_mediabrowser_header("Bearer abc").is_none());
    }

    #[test]
    fn tokens_from_every_place_in_jellyfins_order() {
        let mut h = HeaderMap::new();
        let u: Uri = "/sso/OID/Get".parse().unwrap();
        assert_eq!(presented_token(&h, &u), None);
        assert!(!has_credentials(&h, &u));
        h.insert("x-mediabrowser-token", "t0".parse().unwrap());
        assert_eq!(presented_token(&h, &u).as_deref(), Some("t0"));
        assert!(has_credentials(&h, &u));
        h.insert("x-emby-token", "t1".parse().unwrap());
        assert_eq!(presented_token(&h, &u).as_deref(), Some("t1"));
        h.insert("x-emby-authorization", "MediaBrowser Client=\"x\", Token=\"t2\"".parse().unwrap());
        assert_eq!(presented_token(&h, &u).as_deref(), Some("t2"));
        h.insert("authorization", "MediaBrowser Token=\"t3\"".parse().unwrap());
        assert_eq!(presented_token(&h, &u).as_deref(), Some("t3"));
        for q in ["/sso/OID/Get?ApiKey=t4", "/x?api_key=t4", "/x?APIKEY=t4"] {
            let q: Uri = q.parse().unwrap();
            assert_eq!(presented_token(&HeaderMap::new(), &q).as_deref(), Some("t4"));
            assert!(has_credentials(&HeaderMap::new(), &q));
        }
        assert!(!has_credentials(&HeaderMap::new(), &"/x?apikeys=1".parse().unwrap()));
    }
}
