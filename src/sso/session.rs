//! The proxy's own browser session, set after a login: it lets plain browser navigations
//! (a GET or HEAD that carries no Jellyfin credentials) reach Jellyfin with the user's token.
//!
//! The cookie (`__Host-jsp-session`: Secure, HttpOnly, SameSite=Strict, with an expiry) holds
//! a random id; the map is keyed by its SHA-256, so a memory dump holds no usable cookie.
//! Injection is never done for other methods, for `/sso/`, or when the request already
//! carries credentials. Sessions are bounded in number and swept when expired.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::header::{HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};

use crate::sso::flows::random_token;

pub const SESSION_COOKIE: &str = "__Host-jsp-session";
const MAX_SESSIONS: usize = 100_000;

struct Session {
    token: String,
    expires: Instant,
}

pub struct Sessions {
    map: DashMap<[u8; 32], Session>,
    ttl: Duration,
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

/// Value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Does the request already carry Jellyfin credentials of any kind?
pub fn has_credentials(headers: &HeaderMap, uri: &Uri) -> bool {
    const HEADERS: [&str; 4] = ["authorization", "x-emby-authorization", "x-emby-token", "x-mediabrowser-token"];
    if HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return true;
    }
    uri.query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k.eq_ignore_ascii_case("api_key") || k.eq_ignore_ascii_case("apikey"))
    })
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions { map: DashMap::new(), ttl }
    }

    /// Start a session for `token`; returns the `Set-Cookie` value.
    pub fn create(&self, token: &str) -> String {
        if self.map.len() >= MAX_SESSIONS {
            self.sweep();
            if self.map.len() >= MAX_SESSIONS {
                // Drop the sessions closest to expiry rather than refuse a login.
                let mut v: Vec<([u8; 32], Instant)> = self.map.iter().map(|e| (*e.key(), e.expires)).collect();
                v.sort_by_key(|(_, t)| *t);
                for (k, _) in v.into_iter().take(MAX_SESSIONS / 10) {
                    self.map.remove(&k);
                }
            }
        }
        let id = random_token();
        self.map.insert(key(&id), Session { token: token.to_string(), expires: Instant::now() + self.ttl });
        format!("{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}", self.ttl.as_secs())
    }

    /// The token to inject for this request, if any.
    pub fn token_for(&self, method: &Method, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        if !(method == Method::GET || method == Method::HEAD) || has_credentials(headers, uri) {
            return None;
        }
        let id = cookie(headers, SESSION_COOKIE)?;
        let s = self.map.get(&key(id))?;
        (s.expires > Instant::now()).then(|| s.token.clone())
    }

    /// Add `Authorization: MediaBrowser Token="…"` when the rules allow.
    pub fn inject(&self, method: &Method, headers: &mut HeaderMap, uri: &Uri) {
        if let Some(token) = self.token_for(method, headers, uri) {
            if let Ok(v) = HeaderValue::from_str(&format!("MediaBrowser Token=\"{token}\"")) {
                headers.insert(AUTHORIZATION, v);
            }
        }
    }

    pub fn sweep(&self) {
        let now = Instant::now();
        self.map.retain(|_, s| s.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn injects_only_for_credential_less_get_with_session() {
        let s = Sessions::new(Duration::from_secs(60));
        let set = s.create("tok");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure"));
        let id = set.split(';').next().unwrap().split_once('=').unwrap().1;
        let cookie = format!("a=b; {SESSION_COOKIE}={id}");
        let uri: Uri = "/Items/1/Images/Primary".parse().unwrap();
        assert_eq!(s.token_for(&Method::GET, &headers(&[("cookie", &cookie)]), &uri).as_deref(), Some("tok"));
        assert_eq!(s.token_for(&Method::POST, &headers(&[("cookie", &cookie)]), &uri), None);
        assert_eq!(s.token_for(&Method::GET, &headers(&[("cookie", &cookie), ("authorization", "MediaBrowser Token=\"x\"")]), &uri), None);
        let with_key: Uri = "/Items?api_key=zzz".parse().unwrap();
        assert_eq!(s.token_for(&Method::GET, &headers(&[("cookie", &cookie)]), &with_key), None);
        assert_eq!(s.token_for(&Method::GET, &headers(&[("cookie", "__Host-jsp-session=forged")]), &uri), None);
    }
}
