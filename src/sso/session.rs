//! The proxy's own browser session, set after a login: it lets plain browser navigations
//! (a GET or HEAD that carries no Jellyfin credentials) reach Jellyfin with the user's token.
//!
//! The cookie (`__Host-jsp-session`: Secure, HttpOnly, SameSite=Strict, with an expiry) holds
//! a random id; the ephemeral state keys the session by its SHA-256, so a memory dump holds
//! no usable cookie. Injection is never done for other methods, for `/sso/`, or when the
//! request already carries credentials of any form Jellyfin accepts
//! ([`crate::jellyfin::credentials`]). A session lookup that fails (a state backend down)
//! injects nothing and the request goes on, and it waits at most [`LOOKUP_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

use crate::cookie::{self, Cookies, SameSite};
use crate::jellyfin::credentials::has_credentials;
use crate::state::{digest, looks_like_token, random_token, Ephemeral, Kind, StateError};

/// What a browser session remembers: the token to inject, and whose session on which
/// device it is (so signing out can revoke exactly this browser's Jellyfin session).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserSession {
    pub token: String,
    pub user_id: String,
    pub device_id: String,
    pub protocol: String,
    pub provider: String,
}

/// The longest a request waits for its browser session (a shared store that is slow or gone
/// must not hold up ordinary traffic).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(300);

pub struct Sessions {
    ephemeral: Arc<dyn Ephemeral>,
    ttl: Duration,
}

impl Sessions {
    pub fn new(ephemeral: Arc<dyn Ephemeral>, ttl: Duration) -> Sessions {
        Sessions { ephemeral, ttl }
    }

    /// Start a browser session; returns the `Set-Cookie` value.
    pub async fn create(&self, session: &BrowserSession) -> Result<HeaderValue, StateError> {
        let id = random_token();
        let value = serde_json::to_vec(session).expect("session serializes");
        self.ephemeral.set(Kind::Session, &digest(&id), value, self.ttl).await?;
        Ok(cookie::set(cookie::SESSION, &id, SameSite::Strict, self.ttl))
    }

    /// The token to inject for this request, if any.
    pub async fn token_for(&self, method: &Method, headers: &HeaderMap, uri: &Uri, cookies: &Cookies) -> Option<String> {
        if !(method == Method::GET || method == Method::HEAD) || has_credentials(headers, uri) {
            return None;
        }
        let id = cookies.session.as_deref().filter(|c| looks_like_token(c))?;
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.ephemeral.get(Kind::Session, &digest(id))).await {
            Ok(Ok(Some(bytes))) => serde_json::from_slice::<BrowserSession>(&bytes).ok().map(|s| s.token),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "browser session lookup failed; forwarding without it");
                None
            }
            Err(_) => {
                tracing::warn!(timeout = ?LOOKUP_TIMEOUT, "browser session lookup took too long; forwarding without it");
                None
            }
        }
    }

    /// Add `Authorization: MediaBrowser Token="…"` when the rules allow.
    pub async fn inject(&self, method: &Method, headers: &mut HeaderMap, uri: &Uri, cookies: &Cookies) {
        if let Some(token) = self.token_for(method, headers, uri, cookies).await {
            if let Ok(v) = HeaderValue::from_str(&format!("MediaBrowser Token=\"{token}\"")) {
                headers.insert(AUTHORIZATION, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Caps, MemoryEphemeral};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[tokio::test]
    async fn injects_only_for_credential_less_get_with_session() {
        let s = Sessions::new(Arc::new(MemoryEphemeral::new(Caps::default())), Duration::from_secs(60));
        let session = BrowserSession { token: "tok".into(), user_id: "u".into(), device_id: "d".into(), protocol: "oid".into(), provider: "p".into() };
        let set = s.create(&session).await.unwrap();
        let set = set.to_str().unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure"));
        let id = set.split(';').next().unwrap().split_once('=').unwrap().1;
        let h = headers(&[("cookie", &format!("a=b; {}={id}", cookie::SESSION))]);
        let c = Cookies::parse(&h);
        let uri: Uri = "/Items/1/Images/Primary".parse().unwrap();
        assert_eq!(s.token_for(&Method::GET, &h, &uri, &c).await.as_deref(), Some("tok"));
        assert_eq!(s.token_for(&Method::POST, &h, &uri, &c).await, None);
        let with_auth = headers(&[("authorization", "MediaBrowser Token=\"x\"")]);
        assert_eq!(s.token_for(&Method::GET, &with_auth, &uri, &c).await, None);
        let with_legacy = headers(&[("x-mediabrowser-token", "x")]);
        assert_eq!(s.token_for(&Method::GET, &with_legacy, &uri, &c).await, None, "every credential form counts");
        let with_key: Uri = "/Items?api_key=zzz".parse().unwrap();
        assert_eq!(s.token_for(&Method::GET, &h, &with_key, &c).await, None);
        let forged = headers(&[("cookie", "__Host-jsp-session=forged")]);
        assert_eq!(s.token_for(&Method::GET, &forged, &uri, &Cookies::parse(&forged)).await, None);
    }
}
