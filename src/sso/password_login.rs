//! Jellyfin's password endpoints, guarded: app passwords, the password policy and the
//! brute-force guard, before anything is forwarded.
//!
//! The paths are matched as Jellyfin's routing matches them (`Jellyfin.Api/Controllers/
//! UserController.cs`, 10.9–12.0): `POST /Users/AuthenticateByName` and the obsolete
//! `POST /Users/{userId}/Authenticate?pw=`, under the base path, without regard to case,
//! percent-decoded, with or without a trailing slash, and (10.9–10.11,
//! `Jellyfin.Api/Middleware/LegacyEmbyRouteRewriteMiddleware.cs`) behind `/emby` or
//! `/mediabrowser`. Empty segments are skipped, so a path is intercepted if Jellyfin could
//! possibly route it there. The body (at most 16 KiB) is read once and, when the request goes
//! on to Jellyfin, forwarded byte for byte.
//!
//! For each attempt: the brute-force guard ([`super::brute_force`]) first (429 with
//! Retry-After and Jellyfin's error text); then an app password of that user signs in
//! through Quick Connect for the requesting device and answers Jellyfin's own
//! `AuthenticationResult`; else the policy (`password_login:`) may refuse with Jellyfin's
//! own 401; else the request is forwarded and Jellyfin's answer (401 or 200) feeds the guard.
//! Passwords are never logged.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::app_passwords::{parse_id, verify};
use super::identity::{Identity, Protocol};
use super::provision::How;
use super::Sso;
use crate::body::{full, Body};
use crate::config::password_login::PasswordMode;
use crate::context::RequestContext;
use crate::jellyfin::credentials::parse_mediabrowser_header;
use crate::jellyfin::{names_equal, DeviceInfo};
use crate::state::now_secs;

/// Largest body read at a password endpoint.
pub const MAX_BODY: usize = 16 * 1024;
/// What Jellyfin's `ExceptionMiddleware` answers for an exception outside development mode.
const JELLYFIN_ERROR_TEXT: &str = "Error processing request.";

/// Which password endpoint a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordPath {
    ByName,
    /// The obsolete `/Users/{userId}/Authenticate`, password in `?pw=`.
    ById(String),
}

/// What the router does with a request.
pub enum Intercept {
    /// Not a password endpoint: forward as usual.
    Forward(Request<Incoming>),
    /// Forward the body that was read; report Jellyfin's status to [`Sso::password_outcome`].
    Buffered { parts: http::request::Parts, body: Bytes, attempt: Attempt },
    /// The proxy answers.
    Answer(Response<Body>),
}

/// A password attempt waiting for Jellyfin's verdict.
pub struct Attempt {
    ip: IpAddr,
    username: String,
}

/// Match `path` (under `base`) to a password endpoint.
pub fn password_path(method: &Method, path: &str, base: &str) -> Option<PasswordPath> {
    if method != Method::POST {
        return None;
    }
    let rest = if base.is_empty() { path } else { path.get(..base.len()).filter(|p| p.eq_ignore_ascii_case(base)).map(|_| &path[base.len()..])? };
    let segs: Vec<String> = rest.split('/').filter(|s| !s.is_empty()).map(super::route::decode).collect();
    let mut s: Vec<&str> = segs.iter().map(String::as_str).collect();
    if s.first().is_some_and(|f| f.eq_ignore_ascii_case("emby") || f.eq_ignore_ascii_case("mediabrowser")) {
        s.remove(0);
    }
    match s.as_slice() {
        [u, a] if u.eq_ignore_ascii_case("users") && a.eq_ignore_ascii_case("authenticatebyname") => Some(PasswordPath::ByName),
        [u, id, a] if u.eq_ignore_ascii_case("users") && a.eq_ignore_ascii_case("authenticate") => Some(PasswordPath::ById(id.to_string())),
        _ => None,
    }
}

/// The body, at most [`MAX_BODY`] bytes (413 above, by `Content-Length` or while reading).
async fn read_limited(headers: &http::HeaderMap, body: Incoming) -> Result<Bytes, super::error::SsoError> {
    use http_body_util::BodyExt;
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(super::error::SsoError::TooLarge(MAX_BODY));
    }
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(super::error::SsoError::TooLarge(MAX_BODY)),
        Err(e) => Err(super::error::SsoError::BadRequest(format!("the request body could not be read: {e}"))),
    }
}

/// Jellyfin's answer to a refused password login: `status` with its error text.
pub fn jellyfin_error(status: StatusCode, retry_after: Option<u64>) -> Response<Body> {
    let mut r = Response::new(full(JELLYFIN_ERROR_TEXT));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Some(s) = retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// `Username` and `Pw` of an `AuthenticateUserByName` body (System.Text.Json, as Jellyfin
/// configures it, matches property names without case).
fn credentials_of(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let get = |k: &str| v.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).and_then(|(_, x)| x.as_str()).map(str::to_string);
    Some((get("Username").unwrap_or_default(), get("Pw").unwrap_or_default()))
}

/// The requesting device, from its `Authorization` (or `X-Emby-Authorization`) header.
fn device_of(headers: &http::HeaderMap) -> Option<DeviceInfo> {
    for name in ["authorization", "x-emby-authorization"] {
        let Some(p) = headers.get(name).and_then(|v| v.to_str().ok()).and_then(parse_mediabrowser_header) else { continue };
        let get = |k: &str| p.iter().find(|(n, v)| n.eq_ignore_ascii_case(k) && !v.trim().is_empty()).map(|(_, v)| v.clone());
        if let (Some(client), Some(device), Some(device_id), Some(version)) = (get("Client"), get("Device"), get("DeviceId"), get("Version")) {
            return Some(DeviceInfo { client, device, device_id, version });
        }
    }
    None
}

impl Sso {
    /// The router's hook: see the module documentation.
    pub async fn intercept_password(&self, req: Request<Incoming>, ctx: &RequestContext) -> Intercept {
        let Some(kind) = password_path(req.method(), req.uri().path(), self.config().public_url.base_path()) else { return Intercept::Forward(req) };
        // Boxed: every forwarded request awaits this, and only the password paths need the
        // large future below.
        Box::pin(self.intercept_password_path(kind, req, ctx)).await
    }

    async fn intercept_password_path(&self, kind: PasswordPath, req: Request<Incoming>, ctx: &RequestContext) -> Intercept {
        let (parts, body) = req.into_parts();
        let body = match read_limited(&parts.headers, body).await {
            Ok(b) => b,
            Err(e) => return Intercept::Answer(crate::error::respond_as(&e, true)),
        };
        let (username, pw) = match &kind {
            PasswordPath::ByName => credentials_of(&body).unwrap_or_default(),
            PasswordPath::ById(id) => {
                let q = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes());
                let pw = q.into_iter().find(|(k, _)| k.eq_ignore_ascii_case("pw")).map(|(_, v)| v.into_owned()).unwrap_or_default();
                let name = self.jellyfin.user(id).await.map(|u| u.name).unwrap_or_default();
                (name, pw)
            }
        };
        let ip = ctx.client_ip;
        match self.password_guard.begin(ip, &username).await {
            Ok(Ok(())) => {}
            Ok(Err(wait)) => {
                tracing::warn!(target: "audit", client = %ip, user = %username, retry_after = wait.as_secs(), "password login refused: too many failures");
                self.obs.password_refused(&username, "too_many_failures");
                return Intercept::Answer(jellyfin_error(StatusCode::TOO_MANY_REQUESTS, Some(wait.as_secs().max(1))));
            }
            Err(e) => {
                tracing::error!(error = %e, "brute-force guard unavailable; refusing password login");
                return Intercept::Answer(jellyfin_error(StatusCode::SERVICE_UNAVAILABLE, None));
            }
        }
        if parse_id(&pw).is_some() {
            match self.app_password_login(&parts, &username, &pw).await {
                Ok(Some(resp)) => {
                    self.password_outcome(Attempt { ip, username }, Some(resp.status())).await;
                    return Intercept::Answer(resp);
                }
                Ok(None) => {}
                Err(e) => {
                    self.password_outcome(Attempt { ip, username }, None).await;
                    return Intercept::Answer(crate::error::respond_as(&e, true));
                }
            }
        }
        if let Some(refusal) = self.policy_refuses(&username, ip).await {
            let _ = self.password_guard.failed(ip, &username).await;
            tracing::warn!(target: "audit", client = %ip, user = %username, reason = refusal, "password login refused by password_login policy");
            self.obs.password_refused(&username, refusal);
            return Intercept::Answer(jellyfin_error(StatusCode::UNAUTHORIZED, None));
        }
        Intercept::Buffered { parts, body, attempt: Attempt { ip, username } }
    }

    /// The verdict on a password login (Jellyfin's status, `None` when there was no answer),
    /// for the guard.
    pub async fn password_outcome(&self, attempt: Attempt, status: Option<StatusCode>) {
        let g = &self.password_guard;
        let r = match status {
            Some(StatusCode::UNAUTHORIZED) => g.failed(attempt.ip, &attempt.username).await,
            Some(s) if s.is_success() => g.succeeded(attempt.ip, &attempt.username).await,
            _ => g.abandoned(attempt.ip, &attempt.username).await,
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "brute-force guard not updated");
        }
    }

    /// `Some(reason)` when the policy refuses a Jellyfin password for `username` from `ip`.
    async fn policy_refuses(&self, username: &str, ip: IpAddr) -> Option<&'static str> {
        let policy = self.config().password_login.clone();
        match policy.mode {
            PasswordMode::Allow => None,
            PasswordMode::SsoOnly => {
                let listed = policy.break_glass.iter().any(|b| names_equal(b, username));
                let from_ok = policy.break_glass_networks.is_empty() || policy.break_glass_networks.iter().any(|n| n.contains(&ip));
                (!(listed && from_ok)).then_some(if listed { "break-glass user outside its networks" } else { "sso_only" })
            }
            PasswordMode::AppPasswordsOnly => {
                let user = match self.jellyfin.find_user_by_name(username).await {
                    Ok(Some(u)) => u,
                    // Unknown users and a Jellyfin that cannot be asked: Jellyfin decides.
                    _ => return None,
                };
                match self.state.durable.links_of_user(&user.id).await {
                    Ok(links) if links.is_empty() => None,
                    Ok(_) => Some("app_passwords_only: the user signs in with SSO"),
                    Err(_) => Some("app_passwords_only: links unreadable"),
                }
            }
        }
    }

    /// `Ok(None)`: not a valid app password of this user (the request goes on).
    async fn app_password_login(&self, parts: &http::request::Parts, username: &str, pw: &str) -> Result<Option<Response<Body>>, super::error::SsoError> {
        let id = parse_id(pw).expect("checked by the caller");
        let Some(record) = self.state.durable.app_password(id).await? else { return Ok(None) };
        if !verify(&self.state.key, &record, pw) {
            return Ok(None);
        }
        let user = self.jellyfin.user(&record.user_id).await?;
        if !names_equal(&user.name, username) || user.policy.as_ref().is_some_and(|p| p.is_disabled) {
            return Ok(None);
        }
        let Some((link, _)) = self.app_password_rules(&user.id).await? else { return Ok(None) };
        let Some(device) = device_of(&parts.headers) else { return Ok(Some(jellyfin_error(StatusCode::BAD_REQUEST, None))) };
        let result = self.jellyfin.mint_token(&user.id, &device).await?;
        let who = Identity {
            protocol: Protocol::from_name(&link.protocol).unwrap_or(Protocol::Oidc),
            provider: link.provider,
            subject: link.subject,
            username: user.name.clone(),
            roles: Vec::new(),
            avatar_url: None,
            sid: None,
            tokens: Default::default(),
            legacy_names: Vec::new(),
        };
        self.provision.record_with(&who, &user.id, &device, How::AppPassword, Some(record.id.clone())).await?;
        self.state.durable.touch_app_password(&record.id, &device.device, now_secs()).await?;
        tracing::info!(user = %user.name, app_password = %record.id, device = %device.device_id, "signed in with an app password");
        self.obs.app_password("app_password.used", &user.id, Some(&user.name), &record.id, Some(&device.device_id));
        let json = serde_json::to_vec(&result).expect("AuthenticationResult serializes");
        Ok(Some(super::http::json_response(StatusCode::OK, json)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_password_paths() {
        let by_id = Some(PasswordPath::ById("ab12".into()));
        for p in ["/Users/AuthenticateByName", "/users/authenticatebyname/", "/USERS/AuthenticateBy%4Eame", "/emby/Users/AuthenticateByName", "/MediaBrowser/users/authenticatebyname", "//Users//AuthenticateByName"] {
            assert_eq!(password_path(&Method::POST, p, ""), Some(PasswordPath::ByName), "{p}");
        }
        assert_eq!(password_path(&Method::POST, "/jf/Users/AuthenticateByName", "/jf"), Some(PasswordPath::ByName));
        assert_eq!(password_path(&Method::POST, "/JF/emby/Users/ab12/Authenticate/", "/jf"), by_id);
        assert_eq!(password_path(&Method::POST, "/Users/ab12/authenticate", ""), by_id);
        assert_eq!(password_path(&Method::GET, "/Users/AuthenticateByName", ""), None);
        assert_eq!(password_path(&Method::POST, "/Users/AuthenticateWithQuickConnect", ""), None);
        assert_eq!(password_path(&Method::POST, "/Users/ab12/Password", ""), None);
        assert_eq!(password_path(&Method::POST, "/Users/AuthenticateByName", "/jf"), None, "outside the base path is not Jellyfin's");
    }

    #[test]
    fn body_and_device_are_read_as_jellyfin_reads_them() {
        assert_eq!(credentials_of(br#"{"username":"ann","PW":"x"}"#), Some(("ann".into(), "x".into())));
        assert_eq!(credentials_of(b"not json"), None);
        let mut h = http::HeaderMap::new();
        h.insert("x-emby-authorization", "MediaBrowser Client=\"Infuse\", Device=\"iPad\", DeviceId=\"d1\", Version=\"7\"".parse().unwrap());
        assert_eq!(device_of(&h).unwrap().device_id, "d1");
        h.insert("authorization", "MediaBrowser Client=\"x\"".parse().unwrap());
        assert_eq!(device_of(&h).unwrap().client, "Infuse", "an incomplete Authorization falls back to X-Emby-Authorization");
    }
}
