//! Jellyfin's own reading of a request's credentials, written a second time, line by line from
//! its C# (jellyfin/jellyfin, Jellyfin.Server.Implementations/Security/AuthorizationContext.cs:
//! `GetAuthorizationDictionary`, `GetAuthorization`, `GetParts`,
//! `GetAuthorizationInfoFromDictionary`, 10.11 and later), with no code shared with the
//! proxy's port in src/jellyfin/credentials.rs. The `authorization` fuzz target holds the
//! proxy to it: the proxy's parser must agree with it on every header, and a translated
//! request must make it read the token it read before.
//!
//! ASP.NET details it keeps: a header or query value with several values is read as one
//! string, joined with `,` (`StringValues` → `string`); query keys match without case
//! (`IQueryCollection`); Kestrel hands header values over without surrounding spaces/tabs;
//! the token is "none" when it is only whitespace (`HasToken => !IsNullOrWhiteSpace(Token)`).

use std::collections::HashMap;

use http::{HeaderMap, Uri};

/// `WebUtility.UrlDecode` (System.Net): `+` is a space; `%` and two hex digits is a byte;
/// everything else is itself; the bytes are UTF-8.
fn url_decode(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut bytes = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        if ch == '+' {
            bytes.push(b' ');
        } else if ch == '%' && pos + 2 < chars.len() {
            match (chars[pos + 1].to_digit(16), chars[pos + 2].to_digit(16)) {
                (Some(h1), Some(h2)) => {
                    bytes.push((h1 * 16 + h2) as u8);
                    pos += 3;
                    continue;
                }
                _ => bytes.push(b'%'),
            }
        } else {
            let mut buf = [0; 4];
            bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        pos += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `GetParts`, as written (its boolean expressions too).
#[allow(clippy::nonminimal_bool)]
pub fn get_parts(authorization_header: &str) -> HashMap<String, String> {
    let span: Vec<char> = authorization_header.chars().collect();
    let text = |from: usize, to: usize| span[from..to].iter().collect::<String>();
    let mut result = HashMap::new();
    let mut escaped = false;
    let mut start = 0;
    let mut key = String::new();
    let mut i = 0;
    while i < span.len() {
        let token = span[i];
        if token == '"' || token == ',' {
            // "Applying a XOR logic to evaluate whether it is opening or closing a value"
            escaped = (!escaped) == (token == '"');
            if token == ',' && !escaped {
                // "Meeting a comma after a closing escape char means the value is complete"
                if start < i {
                    result.insert(key.clone(), url_decode(text(start, i).trim_matches('"')));
                    key = String::new();
                }
                start = i + 1;
            }
        } else if !escaped && token == '=' {
            key = text(start, i).trim().to_string();
            start = i + 1;
        }
        i += 1;
    }
    // "Add last value"
    if start < i {
        result.insert(key, url_decode(text(start, i).trim_matches('"')));
    }
    result
}

/// `GetAuthorization`: the scheme before the first space; `Emby` only with legacy on.
pub fn get_authorization(header: &str, legacy: bool) -> Option<HashMap<String, String>> {
    let first_space = header.find(' ')?;
    let name = &header[..first_space];
    let valid = name.eq_ignore_ascii_case("MediaBrowser") || (legacy && name.eq_ignore_ascii_case("Emby"));
    valid.then(|| get_parts(&header[first_space + 1..]))
}

fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).trim_matches([' ', '\t']).to_string()).collect()
}

fn query(uri: &Uri, name: &str) -> Option<String> {
    let v: Vec<String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.into_owned()).collect();
    (!v.is_empty()).then(|| v.join(","))
}

/// What Jellyfin reads: the parameters of the header it parsed, and the token (or none).
pub fn read(headers: &HeaderMap, uri: &Uri, legacy: bool) -> (Option<HashMap<String, String>>, Option<String>) {
    let mut auth = values(headers, "authorization");
    if legacy && auth.join(",").is_empty() {
        auth = values(headers, "x-emby-authorization");
    }
    let dict = auth.first().and_then(|a| get_authorization(a, legacy));
    let empty = |t: &Option<String>| t.as_deref().is_none_or(str::is_empty);
    let header = |name: &str| {
        let v = values(headers, name);
        (!v.is_empty()).then(|| v.join(","))
    };
    let mut token = dict.as_ref().and_then(|d| d.get("Token").cloned());
    if legacy && empty(&token) {
        token = header("x-emby-token");
    }
    if legacy && empty(&token) {
        token = header("x-mediabrowser-token");
    }
    if empty(&token) {
        token = query(uri, "ApiKey");
    }
    if legacy && empty(&token) {
        token = query(uri, "api_key");
    }
    (dict, token.filter(|t| !t.trim().is_empty()))
}
