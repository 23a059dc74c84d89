//! Signing out: `GET|POST /sso/logout`, and noticing the Jellyfin web client's own sign-out.
//!
//! - `/sso/logout` ends this browser's Jellyfin session (the token minted for it, with
//!   `POST /Sessions/Logout` as that token), forgets its record, clears the proxy's cookies
//!   and, when the provider offers RP-initiated logout (`end_session_endpoint`), sends the
//!   browser there with the ID token of *this* session as `id_token_hint`, `client_id`, and
//!   the proxy's public URL as `post_logout_redirect_uri`; otherwise to Jellyfin's login page.
//!   No return target is ever read from the request.
//! - When the web client calls `POST /Sessions/Logout` with the token of this browser's
//!   session (the router forwards it untouched and hands the answer back unchanged), the
//!   record and the browser session go too; with the provider's `signOutOfProvider`, the
//!   session is kept as a note instead, and the next page load is sent to `/sso/logout`.

use http::header::{HeaderMap, SET_COOKIE};
use http::{Method, Response, Uri};
use url::Url;

use super::error::SsoError;
use super::http::redirect;
use super::identity::Protocol;
use super::registry::Provider;
use super::revocation::Why;
use super::session::{BrowserSession, SessionLookup, SignedOut};
use super::{token_crypto, Sso};
use crate::body::Body;
use crate::context::RequestContext;
use crate::cookie::{self, SameSite};
use crate::jellyfin::credentials::presented_token;

impl Sso {
    /// `GET|POST /sso/logout`.
    pub(super) async fn logout(&self, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let mut target = None;
        if let Some(session) = self.sessions.get(&ctx.cookies).await {
            self.sessions.remove(&ctx.cookies).await?;
            let (subject, sealed, sid) = match session.signed_out.clone() {
                // The web client already ended the Jellyfin session.
                Some(note) => (Some(note.subject), note.id_token, None),
                None => {
                    if let Err(e) = self.jellyfin.logout(&session.token).await {
                        tracing::warn!(error = %e, "ending the Jellyfin session at sign-out failed; revoking its device");
                    }
                    match self.state.durable.mint(&session.user_id, &session.device_id).await? {
                        Some(m) => {
                            // The device too: nothing minted for this browser outlives the sign-out.
                            if let Err(e) = self.revoke(&m, Why::SignOut).await {
                                tracing::warn!(error = %e, "revoking the signed-out device failed");
                            }
                            (Some(m.subject), m.id_token, m.sid)
                        }
                        None => (None, None, None),
                    }
                }
            };
            let hint = match (&subject, sealed) {
                (Some(subject), Some(sealed)) => {
                    token_crypto::open_string(&self.seal_key, &token_crypto::purpose_of("id_token", &session.protocol, &session.provider, subject), &sealed)
                }
                _ => None,
            };
            target = match (self.registry.enabled(Protocol::Saml, &session.provider), subject) {
                (Ok(Provider::Saml(idp)), Some(subject)) if session.protocol == Protocol::Saml.as_str() => {
                    self.saml_logout_request(&idp, &subject, sid.as_deref()).and_then(|u| Url::parse(&u).ok())
                }
                _ => self.provider_logout_url(&session, hint.as_deref()).await,
            };
        }
        let login_page = format!("{}/web/index.html#/login.html", self.config().public_url.base_path());
        let mut r = redirect(target.as_ref().map(Url::as_str).unwrap_or(&login_page));
        let h = r.headers_mut();
        h.append(SET_COOKIE, cookie::clear(cookie::SESSION, SameSite::Strict));
        h.append(SET_COOKIE, cookie::clear(cookie::FLOW, SameSite::Lax));
        h.append(SET_COOKIE, cookie::clear(cookie::SAML_FLOW, SameSite::None));
        Ok(r)
    }

    /// The provider's end-session URL for this session, if it offers one.
    async fn provider_logout_url(&self, session: &BrowserSession, id_token_hint: Option<&str>) -> Option<Url> {
        let protocol = Protocol::from_name(&session.protocol)?;
        let Ok(Provider::Oidc(p)) = self.registry.enabled(protocol, &session.provider) else { return None };
        let d = match p.discovery(false).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(provider = %session.provider, error = %e, "cannot reach the provider for its logout; signing out of Jellyfin only");
                return None;
            }
        };
        let mut url = d.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", &p.config.client_id);
            q.append_pair("post_logout_redirect_uri", &self.post_logout_redirect_uri());
        }
        Some(url)
    }

    /// Where providers send the browser after their logout: the proxy's public URL.
    pub fn post_logout_redirect_uri(&self) -> String {
        self.config().public_url.join("/")
    }

    /// Before forwarding: is this the web client signing out with this browser's own session
    /// token? Returns that session, to finish the job once Jellyfin has answered.
    pub async fn web_client_signing_out(&self, method: &Method, uri: &Uri, headers: &HeaderMap, session: &SessionLookup<'_>) -> Option<BrowserSession> {
        if method != Method::POST || !session.has_cookie() {
            return None;
        }
        let path = uri.path().strip_prefix(self.config().public_url.base_path()).unwrap_or(uri.path());
        if !path.trim_end_matches('/').eq_ignore_ascii_case("/Sessions/Logout") {
            return None;
        }
        let token = presented_token(headers, uri)?;
        session.get().await.filter(|s| s.signed_out.is_none() && !s.token.is_empty() && s.token == token).cloned()
    }

    /// After Jellyfin accepted the web client's sign-out of `session`'s token.
    pub async fn web_client_signed_out(&self, ctx: &RequestContext, session: BrowserSession) {
        let provider = session.provider.clone();
        let mint = match self.state.durable.mint(&session.user_id, &session.device_id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "reading the signed-out session's record failed");
                None
            }
        };
        if let Some(m) = &mint {
            if let Err(e) = self.state.durable.remove_mint(&m.user_id, &m.device_id).await {
                tracing::warn!(error = %e, "forgetting the signed-out session failed");
            }
        }
        let wants_provider = Protocol::from_name(&session.protocol)
            .and_then(|p| self.registry.enabled(p, &session.provider).ok())
            .is_some_and(|p| p.session_rules().sign_out_of_provider);
        let result = match (wants_provider, mint) {
            (true, Some(m)) => self.sessions.mark_signed_out(&ctx.cookies, session, SignedOut { subject: m.subject, id_token: m.id_token }).await,
            (true, None) => self.sessions.mark_signed_out(&ctx.cookies, session, SignedOut { subject: String::new(), id_token: None }).await,
            (false, _) => self.sessions.remove(&ctx.cookies).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "updating the browser session after the web client's sign-out failed");
        }
        tracing::info!(%provider, "the web client signed out of a session the proxy minted");
    }

    /// A page load (a top-level navigation) of a browser whose provider logout is still
    /// due: the redirect to `/sso/logout`. The session is `session`, the request's one
    /// lookup shared with token injection.
    pub async fn pending_provider_logout(&self, method: &Method, headers: &HeaderMap, session: &SessionLookup<'_>) -> Option<Response<Body>> {
        if method != Method::GET || !session.has_cookie() || !is_navigation(headers) {
            return None;
        }
        session.get().await?.signed_out.as_ref()?;
        Some(redirect(&format!("{}/sso/logout", self.config().public_url.base_path())))
    }
}

/// A top-level page load: `Sec-Fetch-Mode: navigate`, or, from a browser that does not
/// send fetch metadata, a request that accepts HTML.
fn is_navigation(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        Some(mode) => mode.eq_ignore_ascii_case("navigate"),
        None => headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigation_is_told_by_fetch_metadata_or_accept() {
        let mut h = HeaderMap::new();
        assert!(!is_navigation(&h));
        h.insert("accept", "text/html,application/xhtml+xml".parse().unwrap());
        assert!(is_navigation(&h));
        h.insert("sec-fetch-mode", "cors".parse().unwrap());
        assert!(!is_navigation(&h), "fetch metadata wins over Accept");
        h.insert("sec-fetch-mode", "navigate".parse().unwrap());
        assert!(is_navigation(&h));
    }
}
