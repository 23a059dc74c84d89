//! Every way a Jellyfin client can present credentials, in one place.
//!
//! Jellyfin's `AuthorizationContext` (Jellyfin.Server.Implementations/Security/
//! AuthorizationContext.cs) accepts a token in `Authorization: MediaBrowser …` (or the
//! legacy `Emby` scheme), the legacy `X-Emby-Authorization` header with the same parameters,
//! the legacy `X-Emby-Token` and `X-MediaBrowser-Token` headers, and the `ApiKey` (always) or
//! legacy `api_key` query parameter (docs/jellyfin-api.md has the per-version table). Both
//! the proxy's session injection ("does this request already carry credentials?") and the
//! admin API's caller identification ("which token does it present?") ask this module, so
//! they can never disagree about a form.
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

/// Parse the parameters of a `MediaBrowser`/`Emby` authorization header, as Jellyfin's
/// `AuthorizationContext` does: `Key="value"` pairs separated by commas, values percent-decoded.
pub fn parse_mediabrowser_header(value: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !(scheme.eq_ignore_ascii_case("MediaBrowser") || scheme.eq_ignore_ascii_case("Emby")) {
        return None;
    }
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    let bytes = rest.as_bytes();
    let mut push = |part: &str| {
        if let Some((k, v)) = part.split_once('=') {
            let v = v.trim().trim_matches('"');
            let decoded = url::form_urlencoded::parse(format!("v={v}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
            out.push((k.trim().to_string(), decoded));
        }
    };
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&rest[start..]);
    Some(out)
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

/// The token a request presents, in the order Jellyfin 10.11+ reads them: `Authorization`,
/// `X-Emby-Authorization`, `X-Emby-Token`, `X-MediaBrowser-Token`, then the query.
pub fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    for name in ["authorization", "x-emby-authorization"] {
        if let Some(params) = headers.get(name).and_then(|v| v.to_str().ok()).and_then(parse_mediabrowser_header) {
            if let Some((_, t)) = params.into_iter().find(|(k, v)| k.eq_ignore_ascii_case("Token") && !v.is_empty()) {
                return Some(t);
            }
        }
    }
    for name in ["x-emby-token", "x-mediabrowser-token"] {
        if let Some(t) = headers.get(name).and_then(|v| v.to_str().ok()).filter(|t| !t.is_empty()) {
            return Some(t.to_string());
        }
    }
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, v)| is_token_query_key(k) && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// Legacy headers: dropped after translation.
const LEGACY_HEADERS: [&str; 3] = ["x-emby-authorization", "x-emby-token", "x-mediabrowser-token"];

fn is_legacy_query_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("api_key")
}

fn header_params(headers: &HeaderMap, name: &str) -> Option<(String, Vec<(String, String)>)> {
    let v = headers.get(name)?.to_str().ok()?;
    let scheme = v.trim().split(' ').next().unwrap_or("").to_string();
    parse_mediabrowser_header(v).map(|p| (scheme, p))
}

fn token_of(params: &[(String, String)]) -> Option<&str> {
    params.iter().find(|(k, v)| k.eq_ignore_ascii_case("Token") && !v.is_empty()).map(|(_, v)| v.as_str())
}

/// Rewrite every legacy credential form into the one Jellyfin 12 accepts, in place. A
/// request that also carries a modern credential (`Authorization: MediaBrowser` with a
/// token, or `ApiKey` in the query) keeps only that one. Returns whether anything changed.
pub fn translate_legacy(headers: &mut HeaderMap, uri: &mut Uri) -> bool {
    let query = uri.query().unwrap_or("");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let legacy_query = pairs.iter().any(|(k, _)| is_legacy_query_key(k));
    let emby_scheme = header_params(headers, "authorization").filter(|(s, _)| s.eq_ignore_ascii_case("Emby"));
    let legacy_headers = LEGACY_HEADERS.iter().any(|h| headers.contains_key(*h));
    let emby_present = emby_scheme.is_some();
    if !(legacy_query || legacy_headers || emby_scheme.is_some()) {
        return false;
    }
    let modern = header_params(headers, "authorization").filter(|(s, _)| s.eq_ignore_ascii_case("MediaBrowser")).map(|(_, p)| p);
    let modern_token = modern.as_deref().and_then(token_of).is_some()
        || pairs.iter().any(|(k, v)| k.eq_ignore_ascii_case("ApiKey") && !v.is_empty());

    // What the legacy forms say, in Jellyfin's order: the header parameters, then the token headers.
    let legacy_params = emby_scheme.map(|(_, p)| p).or_else(|| header_params(headers, "x-emby-authorization").map(|(_, p)| p));
    let header_token = legacy_params.as_deref().and_then(token_of).map(str::to_string).or_else(|| {
        ["x-emby-token", "x-mediabrowser-token"].iter().find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).filter(|t| !t.is_empty()).map(str::to_string))
    });
    for h in LEGACY_HEADERS {
        headers.remove(h);
    }
    let mut rename_query = false;
    if !modern_token {
        let mut params = modern.or(legacy_params).unwrap_or_default();
        match header_token {
            Some(t) => {
                params.retain(|(k, _)| !k.eq_ignore_ascii_case("Token"));
                params.push(("Token".into(), t));
            }
            None => rename_query = legacy_query,
        }
        // Only parameters whose names are plain words survive the rebuild: a name with a quote
        // or a comma in it (never one Jellyfin knows) would shift the quoting of the header we
        // write and hide the parameters after it, the token among them.
        params.retain(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if emby_present {
            // Replaced below when anything is left to say; never left behind in the Emby scheme.
            headers.remove(http::header::AUTHORIZATION);
        }
        if !params.is_empty() {
            let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Ok(v) = http::HeaderValue::from_str(&mediabrowser_header(&refs)) {
                headers.insert(http::header::AUTHORIZATION, v);
            }
        }
    } else if headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("emby ")) {
        headers.remove("authorization");
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
