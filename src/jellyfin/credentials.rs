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

#[cfg(test)]
mod tests {
    use super::*;

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
