//! `/sso/link`: sign a TV (or any app showing a Quick Connect code) in with single sign-on.
//!
//! - `GET /sso/link` without a proxy browser session: one button per enabled provider, each
//!   starting a login at `/sso/link/start/{OID,SAML}/{p}` whose flow records that the
//!   completion page returns here ([`super::login::Next::DeviceLink`]), never a URL parameter.
//! - With a session: a form posting `code` and an anti-CSRF field, the HMAC of the session
//!   id under the state key (so it is worthless for any other session and never stored).
//! - `POST /sso/link`: the field is checked (403), the code must be exactly 6 digits (400,
//!   before Jellyfin hears of it), the guessing limit is reserved (429 after 5 wrong codes
//!   per session or client address in 10 minutes), the user is resolved as a login resolves
//!   it ([`super::provision::Provisioner::resolve`], with the role gate re-applied to the
//!   current provider settings), then Jellyfin authorizes the code for that user. The mint
//!   is recorded (`device-link`) with the device Jellyfin opened the session for.
//! - `GET /sso/link/qr.svg`: the page's address as a QR code.
//!
//! Codes are never logged: log lines name the user and the outcome only.

use std::collections::HashSet;
use std::time::Duration;

use http::Response;

use super::attempts::Attempts;
use super::device_link_page as page;
use super::error::SsoError;
use super::http::{read_form, SsoRequest};
use super::identity::{self, Protocol};
use super::login::Next;
use super::mac::{ct_eq, mac_b64};
use super::provision::How;
use super::session::BrowserSession;
use super::Sso;
use crate::body::Body;
use crate::context::RequestContext;
use crate::jellyfin::quick_connect::Authorize;
use crate::jellyfin::DeviceInfo;
use crate::state::Kind;

/// Wrong codes allowed per session and per client address within [`GUESS_WINDOW`].
pub const MAX_WRONG_CODES: u64 = 5;
pub const GUESS_WINDOW: Duration = Duration::from_secs(600);
/// The form is tiny; anything larger is not ours.
const MAX_FORM: usize = 4 * 1024;

/// The guessing limit of device linking.
pub fn guard(ephemeral: std::sync::Arc<dyn crate::state::Ephemeral>) -> Attempts {
    Attempts::new(ephemeral, Kind::Rate("device-link"), MAX_WRONG_CODES, GUESS_WINDOW)
}

/// Is `code` exactly six ASCII digits (what Jellyfin's `GenerateCode` makes)?
pub fn valid_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

impl Sso {
    fn csrf_for(&self, session_id: &str) -> String {
        mac_b64(&self.state.key, "device-link-csrf", session_id.as_bytes())
    }

    /// `GET /sso/link`.
    pub(super) async fn link_page(&self, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let base = self.config().public_url.base_path().to_string();
        let base = base.as_str();
        match self.sessions.current(&ctx.cookies).await? {
            Some((id, s)) if s.identity.is_some() => Ok(page::form(base, &self.csrf_for(&id), None)),
            _ => {
                let providers = self.registry.all_enabled();
                let list: Vec<(&str, &str)> = providers.iter().map(|p| (p.protocol().url_segment(), p.name())).collect();
                Ok(page::sign_in(base, &list))
            }
        }
    }

    /// `GET /sso/link/start/{OID,SAML}/{p}`: a login that returns to `/sso/link`.
    pub(super) async fn link_start(&self, protocol: Protocol, provider: &str, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let p = self.registry.enabled(protocol, provider)?;
        self.begin_for(p, false, Next::DeviceLink, ctx).await
    }

    /// `GET /sso/link/qr.svg`.
    pub(super) fn link_qr(&self) -> Result<Response<Body>, SsoError> {
        page::qr_svg(&self.config().public_url.join("/sso/link"))
    }

    /// `POST /sso/link` with `code` and `csrf`.
    pub(super) async fn link_submit(&self, req: SsoRequest, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let base = self.config().public_url.base_path().to_string();
        let session = self.sessions.current(&ctx.cookies).await?;
        let form = read_form(req, MAX_FORM).await?;
        let Some((sid, session)) = session.filter(|(_, s)| s.identity.is_some()) else {
            return Err(SsoError::Csrf);
        };
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        if !ct_eq(sent.as_bytes(), self.csrf_for(&sid).as_bytes()) {
            return Err(SsoError::Csrf);
        }
        let code = form.get("code").map(|c| c.trim()).unwrap_or("");
        if !valid_code(code) {
            return Ok(page::form(&base, &self.csrf_for(&sid), Some(page::Notice::BadFormat)).with_status(http::StatusCode::BAD_REQUEST));
        }
        let keys = [format!("session:{sid}"), format!("ip:{}", ctx.client_ip)];
        if let Err(wait) = self.link_guard.reserve(&keys).await? {
            tracing::warn!(target: "audit", client = %ctx.client_ip, user = %session.user_id, "device linking refused: too many wrong codes");
            return Err(SsoError::TooManyAttempts { retry_after: wait.as_secs().max(1) });
        }
        let outcome = self.authorize_device(&session, code).await;
        // Only a wrong or used code counts; a success or a failure of ours is given back.
        if !matches!(outcome, Ok(Authorize::UnknownCode | Authorize::AlreadyUsed)) {
            self.link_guard.refund(&keys).await?;
        }
        let notice = match outcome? {
            Authorize::Authorized => page::Notice::Linked,
            Authorize::UnknownCode => page::Notice::Unknown,
            Authorize::AlreadyUsed => page::Notice::Used,
        };
        let status = if notice == page::Notice::Linked { http::StatusCode::OK } else { http::StatusCode::NOT_FOUND };
        Ok(page::form(&base, &self.csrf_for(&sid), Some(notice)).with_status(status))
    }

    /// Resolve the session's user as a login would, then authorize the code for them.
    async fn authorize_device(&self, session: &BrowserSession, code: &str) -> Result<Authorize, SsoError> {
        let who = session.identity.as_ref().expect("checked by the caller");
        let protocol = Protocol::from_name(&session.protocol).ok_or(SsoError::Csrf)?;
        let provider = self.registry.enabled(protocol, &session.provider)?;
        // The role gate with the provider's settings of now, not of the login.
        let grants = identity::decide(&who.roles, provider.grants());
        if !grants.allowed {
            return Err(SsoError::NotAllowed { provider: provider.name().to_string(), username: who.username.clone() });
        }
        let user = self.provision.resolve(who, provider.grants(), &grants).await?;
        let before: HashSet<String> = self.jellyfin.sessions_of(&user.id).await?.into_iter().map(|s| s.device_id).collect();
        let outcome = self.jellyfin.authorize_code(code, &user.id).await?;
        if outcome != Authorize::Authorized {
            tracing::info!(user = %user.name, outcome = ?outcome, "device linking: code not authorized");
            return Ok(outcome);
        }
        // Which device? Jellyfin does not say; the session it just opened is new, or else the
        // most recently active one of this user.
        let after = self.jellyfin.sessions_of(&user.id).await?;
        let fresh = after.iter().find(|s| !before.contains(&s.device_id)).cloned();
        let device = match fresh {
            Some(s) => Some(s),
            None => self.jellyfin.newest_session_of(&user.id).await?,
        };
        let device = device.map(|s| DeviceInfo { client: s.client, device: s.device_name, device_id: s.device_id, version: String::new() });
        let device = device.unwrap_or_else(|| DeviceInfo { client: String::new(), device: String::new(), device_id: "unknown".into(), version: String::new() });
        self.provision.record(who, &user.id, &device, How::DeviceLink).await?;
        tracing::info!(user = %user.name, provider = %who.provider, device = %device.device_id, "device linked with Quick Connect");
        Ok(Authorize::Authorized)
    }
}

/// Set a status on a response (builder style).
trait WithStatus {
    fn with_status(self, s: http::StatusCode) -> Self;
}

impl WithStatus for Response<Body> {
    fn with_status(mut self, s: http::StatusCode) -> Self {
        *self.status_mut() = s;
        self
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        assert!(valid_code("123456"));
        for bad in ["12345", "1234567", "12345a", "", "١٢٣٤٥٦", "12 456", "+12345"] {
            assert!(!valid_code(bad), "{bad}");
        }
    }
}
