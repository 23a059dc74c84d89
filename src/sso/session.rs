//! The proxy's own browser session, set after a login: it lets plain browser navigations
//! (a GET or HEAD that carries no Jellyfin credentials) reach Jellyfin with the user's token,
//! and it signs the person in at `/sso/link` and `/sso/app-passwords` (it keeps the login's
//! identity and grants, so device linking resolves the user exactly as the login did).
//!
//! The cookie (`__Host-jsp-session`: Secure, HttpOnly, SameSite=Strict, with an expiry) holds
//! a random id; the ephemeral state keys the session by its SHA-256, so a memory dump holds
//! no usable cookie. Injection is never done for other methods, for `/sso/`, or when the
//! request already carries credentials of any form Jellyfin accepts
//! ([`crate::jellyfin::credentials`]). SameSite=Strict is not enough on its own: another
//! port of the same host or a sibling subdomain is the same *site*, so the token is only
//! injected when `Origin` (if sent) is the proxy's own origin and `Sec-Fetch-Site` (if sent)
//! says same-origin or a typed-in navigation; a websocket upgrade needs an `Origin` that
//! matches. A response that used an injected token is marked `Cache-Control: private` and
//! `Vary: Cookie` by the router. A session lookup that fails (a state backend down) injects
//! nothing and the request goes on, and it waits at most [`LOOKUP_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

use super::identity::{Grants, Identity};
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
    /// The verified identity and its grants, so `/sso/link` can resolve the Jellyfin user
    /// exactly as the login did (absent in sessions made before this field existed).
    #[serde(default)]
    pub identity: Option<Identity>,
    #[serde(default)]
    pub grants: Option<Grants>,
    /// Set once the web client signed out with `token` while the provider wants its own
    /// sign-out too: nothing is injected any more, and the next page load goes through
    /// `/sso/logout`, which uses this to send the browser to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_out: Option<SignedOut>,
}

/// What the provider's logout needs after the Jellyfin session is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedOut {
    /// The identity's subject, which the sealed ID token is bound to.
    pub subject: String,
    /// The ID token of this login, still encrypted with the state key.
    #[serde(default, with = "crate::sso::token_crypto::sealed_json")]
    pub id_token: Option<Vec<u8>>,
}

/// The longest a request waits for its browser session (a shared store that is slow or gone
/// must not hold up ordinary traffic).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_millis(300);

pub struct Sessions {
    ephemeral: Arc<dyn Ephemeral>,
    /// `sso.session_ttl` in milliseconds (a reload changes it for sessions started after).
    ttl_ms: std::sync::atomic::AtomicU64,
    /// The proxy's public origin (`https://host[:port]`), the only one a token is sent for.
    origin: String,
}

/// Where the session of a minted device is found (a digest no cookie can have: cookies are
/// random tokens, this is the digest of a different shape of string).
fn device_key(user_id: &str, device_id: &str) -> [u8; 32] {
    digest(&format!("device-session|{}|{device_id}", crate::state::normalise_user_id(user_id)))
}

/// Is this request from the proxy's own origin, as far as the browser tells?
fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let origin_ok = match header("origin") {
        Some(o) => o.eq_ignore_ascii_case(origin),
        None => !crate::proxy::headers::is_upgrade_request(headers),
    };
    let site_ok = match header("sec-fetch-site") {
        Some(site) => site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"),
        None => true,
    };
    origin_ok && site_ok
}

impl Sessions {
    pub fn new(ephemeral: Arc<dyn Ephemeral>, ttl: Duration, origin: String) -> Sessions {
        Sessions { ephemeral, ttl_ms: std::sync::atomic::AtomicU64::new(ttl.as_millis() as u64), origin }
    }

    /// How long sessions started from now on last (`sso.session_ttl`, changed by a reload).
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(ttl.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Start a browser session; returns the `Set-Cookie` value. The session is also found by
    /// its Jellyfin device ([`Sessions::end_for_device`]), so a revocation on any proxy ends it.
    pub async fn create(&self, session: &BrowserSession) -> Result<HeaderValue, StateError> {
        let id = random_token();
        let value = serde_json::to_vec(session).expect("session serializes");
        let ttl = self.ttl();
        self.ephemeral.set(Kind::Session, &digest(&id), value, ttl).await?;
        self.ephemeral.set(Kind::DeviceSession, &device_key(&session.user_id, &session.device_id), digest(&id).to_vec(), ttl).await?;
        Ok(cookie::set(cookie::SESSION, &id, SameSite::Strict, ttl))
    }

    /// End the browser session that holds the token minted for `device_id` of `user_id`, if
    /// one does: its Jellyfin session was revoked (single logout, the sessions API, …), so
    /// nothing may be injected for it any more.
    pub async fn end_for_device(&self, user_id: &str, device_id: &str) -> Result<(), StateError> {
        let key = device_key(user_id, device_id);
        if let Some(session) = self.ephemeral.get(Kind::DeviceSession, &key).await? {
            if let Ok(session) = <[u8; 32]>::try_from(session.as_slice()) {
                self.ephemeral.delete(Kind::Session, &session).await?;
            }
            self.ephemeral.delete(Kind::DeviceSession, &key).await?;
        }
        Ok(())
    }

    /// The browser session of these cookies, with its cookie value (the session id).
    pub async fn current(&self, cookies: &Cookies) -> Result<Option<(String, BrowserSession)>, StateError> {
        let Some(id) = cookies.session.as_deref().filter(|c| looks_like_token(c)) else { return Ok(None) };
        let found = self.ephemeral.get(Kind::Session, &digest(id)).await?;
        Ok(found.and_then(|b| serde_json::from_slice::<BrowserSession>(&b).ok()).map(|s| (id.to_string(), s)))
    }

    /// This browser's session, if its cookie names one (a failing lookup is `None`).
    pub async fn get(&self, cookies: &Cookies) -> Option<BrowserSession> {
        let id = cookies.session.as_deref().filter(|c| looks_like_token(c))?;
        match self.ephemeral.get(Kind::Session, &digest(id)).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "browser session lookup failed");
                None
            }
        }
    }

    /// End this browser's session.
    pub async fn remove(&self, cookies: &Cookies) -> Result<(), StateError> {
        if let Some(id) = cookies.session.as_deref().filter(|c| looks_like_token(c)) {
            self.ephemeral.delete(Kind::Session, &digest(id)).await?;
        }
        Ok(())
    }

    /// Keep this browser's session only as a note that the provider's logout is still due.
    pub async fn mark_signed_out(&self, cookies: &Cookies, mut session: BrowserSession, note: SignedOut) -> Result<(), StateError> {
        let Some(id) = cookies.session.as_deref().filter(|c| looks_like_token(c)) else { return Ok(()) };
        session.token.clear();
        session.signed_out = Some(note);
        let value = serde_json::to_vec(&session).expect("session serializes");
        self.ephemeral.set(Kind::Session, &digest(id), value, self.ttl()).await
    }

    /// This request's browser session for forwarding decisions, looked up at most once
    /// however many checks ask ([`SessionLookup`]).
    pub fn lookup<'a>(&'a self, cookies: &'a Cookies) -> SessionLookup<'a> {
        SessionLookup { sessions: self, cookies, found: tokio::sync::OnceCell::new() }
    }

    /// The session of these cookies, waiting at most [`LOOKUP_TIMEOUT`]; a failing or slow
    /// lookup is `None` (logged), so ordinary traffic goes on without it.
    async fn find_bounded(&self, cookies: &Cookies) -> Option<BrowserSession> {
        let id = cookies.session.as_deref().filter(|c| looks_like_token(c))?;
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.ephemeral.get(Kind::Session, &digest(id))).await {
            Ok(Ok(Some(bytes))) => serde_json::from_slice::<BrowserSession>(&bytes).ok(),
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

    /// The token to inject for this request, if any.
    pub async fn token_for(&self, method: &Method, headers: &HeaderMap, uri: &Uri, cookies: &Cookies) -> Option<String> {
        self.lookup(cookies).token_for(method, headers, uri).await
    }
}

/// One request's browser session, fetched from the ephemeral state on first use only: the
/// router's checks before forwarding (a provider logout still due, the web client signing
/// out, token injection) share one lookup. Nothing is fetched for a request without a
/// session cookie, or one no check needs it for.
pub struct SessionLookup<'a> {
    sessions: &'a Sessions,
    cookies: &'a Cookies,
    found: tokio::sync::OnceCell<Option<BrowserSession>>,
}

impl SessionLookup<'_> {
    /// Does the request carry a session cookie at all? (No lookup.)
    pub fn has_cookie(&self) -> bool {
        self.cookies.session.is_some()
    }

    /// The session (see [`Sessions::find_bounded`]).
    pub async fn get(&self) -> Option<&BrowserSession> {
        if !self.has_cookie() {
            return None;
        }
        self.found.get_or_init(|| self.sessions.find_bounded(self.cookies)).await.as_ref()
    }

    /// The token to inject for this request, if any.
    pub async fn token_for(&self, method: &Method, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        if !(method == Method::GET || method == Method::HEAD) || has_credentials(headers, uri) || !same_origin(headers, &self.sessions.origin) {
            return None;
        }
        self.get().await.filter(|s| s.signed_out.is_none()).map(|s| s.token.clone())
    }

    /// Add `Authorization: MediaBrowser Token="…"` when the rules allow; true if it did.
    pub async fn inject(&self, method: &Method, headers: &mut HeaderMap, uri: &Uri) -> bool {
        if let Some(token) = self.token_for(method, headers, uri).await {
            if let Ok(v) = HeaderValue::from_str(&format!("MediaBrowser Token=\"{token}\"")) {
                headers.insert(AUTHORIZATION, v);
                return true;
            }
        }
        false
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
        let s = Sessions::new(Arc::new(MemoryEphemeral::new(Caps::default())), Duration::from_secs(60), "https://media.example".into());
        let session = BrowserSession { token: "tok".into(), user_id: "u".into(), device_id: "d".into(), protocol: "oid".into(), provider: "p".into(), identity: None, grants: None, signed_out: None };
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
        // Same site, other origin (another port or a sibling subdomain): nothing.
        let with = |extra: &[(&str, &str)]| {
            let mut h = h.clone();
            for (k, v) in extra {
                h.insert(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(s.token_for(&Method::GET, &with(&[("origin", "https://media.example:9444")]), &uri, &c).await, None);
        assert_eq!(s.token_for(&Method::GET, &with(&[("sec-fetch-site", "same-site")]), &uri, &c).await, None);
        assert_eq!(s.token_for(&Method::GET, &with(&[("sec-fetch-site", "cross-site")]), &uri, &c).await, None);
        assert_eq!(s.token_for(&Method::GET, &with(&[("origin", "https://media.example"), ("sec-fetch-site", "same-origin")]), &uri, &c).await.as_deref(), Some("tok"));
        assert_eq!(s.token_for(&Method::GET, &with(&[("sec-fetch-site", "none")]), &uri, &c).await.as_deref(), Some("tok"), "a typed-in address");
        // A websocket upgrade needs the proxy's own Origin.
        let ws = [("connection", "Upgrade"), ("upgrade", "websocket")];
        assert_eq!(s.token_for(&Method::GET, &with(&ws), &uri, &c).await, None);
        assert_eq!(s.token_for(&Method::GET, &with(&[ws[0], ws[1], ("origin", "https://evil.example")]), &uri, &c).await, None);
        assert_eq!(s.token_for(&Method::GET, &with(&[ws[0], ws[1], ("origin", "https://media.example")]), &uri, &c).await.as_deref(), Some("tok"));
        let forged = headers(&[("cookie", "__Host-jsp-session=forged")]);
        assert_eq!(s.token_for(&Method::GET, &forged, &uri, &Cookies::parse(&forged)).await, None);
        assert_eq!(s.get(&c).await.unwrap().device_id, "d");
        s.mark_signed_out(&c, session.clone(), SignedOut { subject: "sub".into(), id_token: None }).await.unwrap();
        assert_eq!(s.token_for(&Method::GET, &h, &uri, &c).await, None, "a signed-out session injects nothing");
        let kept = s.get(&c).await.unwrap();
        assert!(kept.token.is_empty() && kept.signed_out.is_some(), "the note keeps no token");
        s.remove(&c).await.unwrap();
        assert!(s.get(&c).await.is_none());
    }

    #[tokio::test]
    async fn a_revoked_device_ends_its_browser_session_and_only_that_one() {
        let s = Sessions::new(Arc::new(MemoryEphemeral::new(Caps::default())), Duration::from_secs(60), "https://media.example".into());
        let session = |device: &str| BrowserSession { token: format!("tok-{device}"), user_id: "U-1".into(), device_id: device.into(), protocol: "oid".into(), provider: "p".into(), identity: None, grants: None, signed_out: None };
        let cookies = |set: HeaderValue| Cookies::parse(&headers(&[("cookie", set.to_str().unwrap().split(';').next().unwrap())]));
        let (a, b) = (cookies(s.create(&session("a")).await.unwrap()), cookies(s.create(&session("b")).await.unwrap()));
        let uri: Uri = "/web/".parse().unwrap();
        s.end_for_device("u1", "a").await.unwrap();
        assert_eq!(s.token_for(&Method::GET, &HeaderMap::new(), &uri, &a).await, None, "the revoked device's token is no longer injected");
        assert!(s.get(&a).await.is_none());
        assert_eq!(s.token_for(&Method::GET, &HeaderMap::new(), &uri, &b).await.as_deref(), Some("tok-b"));
        s.end_for_device("u1", "unknown").await.unwrap();
    }
}
