//! App passwords: for apps that can only send a user name and password (Infuse, scripts).
//!
//! - `GET /sso/app-passwords`: JSON list (no secrets) for API clients, a page for browsers;
//!   `POST` `{"name"}` → `{"id","name","password"}`, the only time the password is shown;
//!   `DELETE /sso/app-passwords/{id}`: revoke it and delete the Jellyfin devices it minted.
//! - Callers: a Jellyfin token (any form Jellyfin accepts) or the proxy's browser session
//!   (whose token is checked with Jellyfin the same way). Users act on their own passwords;
//!   administrators (and the API key) may list and revoke anyone's with `?userId=`, but make
//!   passwords only for themselves (a password is shown once, to its owner). A
//!   session-authenticated change must come from this site (`Sec-Fetch-Site`, JSON body),
//!   on top of the session cookie being SameSite=Strict.
//! - A password is `jsp_` + a 16-hex-digit id + `_` + 32 random bytes (256 bits, base64url);
//!   only HMAC-SHA256 of it under the state key is stored, compared in constant time
//!   ([`verify`]). Whether a user may have them, and how many, comes from the providers the
//!   user is linked with (`appPasswords`, `maxAppPasswords`).

use http::{Method, Response, StatusCode};
use rand::RngCore;
use serde::Deserialize;

use super::callers::same_id;
use super::error::SsoError;
use super::http::{json_ok, json_response, query_map, read_json, SsoRequest};
use super::identity::Protocol;
use super::mac::{ct_eq, mac};
use super::route::SsoRoute;
use super::{app_passwords_page, Sso};
use crate::body::Body;
use crate::context::RequestContext;
use crate::jellyfin::credentials::presented_token;
use crate::jellyfin::Caller;
use crate::state::{now_secs, random_token, AppPassword, Link};

const PREFIX: &str = "jsp_";
const ID_LEN: usize = 16;
const MAC_PURPOSE: &str = "app-password";

/// The id inside a string shaped like an app password (else `None`: not one of ours).
pub fn parse_id(password: &str) -> Option<&str> {
    let rest = password.strip_prefix(PREFIX)?;
    let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?);
    let secret = secret.strip_prefix('_')?;
    (id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() == 43).then_some(id)
}

/// The stored hash of `password`.
pub fn hash(key: &[u8; 32], password: &str) -> Vec<u8> {
    mac(key, MAC_PURPOSE, password.as_bytes()).to_vec()
}

/// Does `password` match the stored `record` (constant time)?
pub fn verify(key: &[u8; 32], record: &AppPassword, password: &str) -> bool {
    ct_eq(&hash(key, password), &record.hash)
}

fn new_password() -> (String, String) {
    let mut b = [0u8; ID_LEN / 2];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let password = format!("{PREFIX}{id}_{}", random_token());
    (id, password)
}

#[derive(Deserialize)]
struct NewPassword {
    name: String,
}

/// Who is asking, as far as app passwords go.
struct Asker {
    /// The user acted on (empty: an API key that named nobody).
    user_id: String,
    admin: bool,
    by_cookie: bool,
    /// The caller acts on their own passwords (not an administrator on someone else's).
    own: bool,
}

impl Sso {
    /// The providers' word on app passwords for `user_id`: `(linked provider allowing them, max)`.
    pub(super) async fn app_password_rules(&self, user_id: &str) -> Result<Option<(Link, u32)>, SsoError> {
        let mut best: Option<(Link, u32)> = None;
        for link in self.state.durable.links_of_user(user_id).await? {
            let Some(proto) = Protocol::from_name(&link.protocol) else { continue };
            let Ok(p) = self.registry.enabled(proto, &link.provider) else { continue };
            let g = p.grants();
            if g.app_passwords && best.as_ref().is_none_or(|(_, m)| g.max_app_passwords > *m) {
                best = Some((link, g.max_app_passwords));
            }
        }
        Ok(best)
    }

    async fn asker(&self, req: &SsoRequest, ctx: &RequestContext) -> Result<Asker, SsoError> {
        let (token, by_cookie) = match presented_token(req.headers(), req.uri()) {
            Some(t) => (t, false),
            None => match self.sessions.current(&ctx.cookies).await? {
                Some((_, s)) => (s.token, true),
                None => return Err(SsoError::Unauthorized),
            },
        };
        let caller = self.callers.identify(&token).await?.ok_or(SsoError::Unauthorized)?;
        let wanted = query_map(req).into_iter().find(|(k, _)| k.eq_ignore_ascii_case("userId")).map(|(_, v)| v).filter(|v| !v.is_empty());
        let (own, admin) = match caller {
            Caller::ApiKey => (None, true),
            Caller::User { id, is_admin, .. } => (Some(id), is_admin),
        };
        let own_id = own.clone();
        let user_id = match (wanted, own) {
            (Some(w), Some(o)) if same_id(&w, &o) => o,
            (Some(w), _) if admin => w,
            (Some(_), _) => return Err(SsoError::Forbidden("manage another user's app passwords")),
            (None, Some(o)) => o,
            // An API key names the user, except to revoke a password by its id.
            (None, None) => String::new(),
        };
        let own = own_id.is_some_and(|o| same_id(&o, &user_id));
        Ok(Asker { user_id, admin, by_cookie, own })
    }

    /// `/sso/app-passwords` and `/sso/app-passwords/{id}`.
    pub(super) async fn app_passwords(&self, route: SsoRoute, req: SsoRequest, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let asker = self.asker(&req, ctx).await?;
        let cross_site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|v| v != "same-origin" && v != "none");
        if asker.by_cookie && req.method() != Method::GET && cross_site {
            return Err(SsoError::Csrf);
        }
        if asker.user_id.is_empty() && !matches!(route, SsoRoute::AppPasswordDelete { .. }) {
            return Err(SsoError::BadRequest("an API key must name the user: ?userId=".into()));
        }
        match (route, req.method().clone()) {
            (SsoRoute::AppPasswords, Method::GET) if !ctx.wants_json => Ok(app_passwords_page::page(self.config().public_url.base_path())),
            (SsoRoute::AppPasswords, Method::GET) => {
                let list: Vec<_> = self.state.durable.app_passwords_of_user(&asker.user_id).await?.iter().map(listing).collect();
                Ok(json_ok(&list))
            }
            (SsoRoute::AppPasswords, _) => {
                let is_json = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
                if asker.by_cookie && !is_json {
                    return Err(SsoError::Csrf);
                }
                // A password is shown once, to its owner: administrators list and revoke only.
                if !asker.own {
                    return Err(SsoError::Forbidden("make app passwords for another user"));
                }
                let body: NewPassword = read_json(req).await?;
                self.create_app_password(&asker, body.name.trim()).await
            }
            (SsoRoute::AppPasswordDelete { id }, _) => {
                let record = self.state.durable.app_password(&id).await?.filter(|r| asker.admin || same_id(&r.user_id, &asker.user_id));
                let record = record.ok_or_else(|| SsoError::NotFoundWhat("no such app password".into()))?;
                self.revoke_app_password(&record).await?;
                Ok(json_ok(&serde_json::json!({})))
            }
            _ => Err(SsoError::NotFound),
        }
    }

    async fn create_app_password(&self, asker: &Asker, name: &str) -> Result<Response<Body>, SsoError> {
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(SsoError::BadRequest("`name`: 1 to 100 characters, no control characters".into()));
        }
        let (_, max) = self.app_password_rules(&asker.user_id).await?.ok_or(SsoError::Forbidden("make app passwords (no linked provider allows them)"))?;
        if self.state.durable.app_passwords_of_user(&asker.user_id).await?.len() as u64 >= u64::from(max) {
            return Err(SsoError::Conflict(format!("at most {max} app passwords per user: revoke one first")));
        }
        let (id, password) = new_password();
        let record = AppPassword { id: id.clone(), user_id: asker.user_id.clone(), name: name.into(), hash: hash(&self.state.key, &password), created_at: now_secs(), last_used_at: None, last_device: None };
        self.state.durable.add_app_password(record).await?;
        tracing::info!(user = %asker.user_id, id = %id, "app password created");
        self.obs.app_password("app_password.created", &asker.user_id, None, &id, None);
        let body = serde_json::json!({ "id": id, "name": name, "password": password });
        Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
    }

    /// Remove an app password and sign out every device it minted.
    pub(super) async fn revoke_app_password(&self, record: &AppPassword) -> Result<(), SsoError> {
        self.state.durable.remove_app_password(&record.id).await?;
        for m in self.state.durable.mints_of_user(&record.user_id).await?.into_iter().filter(|m| m.app_password_id.as_deref() == Some(&record.id)) {
            if let Err(e) = self.jellyfin.delete_device(&m.device_id).await {
                tracing::warn!(device = %m.device_id, error = %e, "revoked app password: the device could not be deleted in Jellyfin");
            }
            self.state.durable.remove_mint(&m.user_id, &m.device_id).await?;
            self.obs.revoked(super::revocation::Why::AppPasswordRevoked, &m);
        }
        tracing::info!(user = %record.user_id, id = %record.id, "app password revoked");
        self.obs.app_password("app_password.revoked", &record.user_id, None, &record.id, None);
        Ok(())
    }

    /// Revoke every app password of `user_id` (their last link is gone, or Unregister).
    pub(super) async fn revoke_all_app_passwords(&self, user_id: &str) -> Result<(), SsoError> {
        for r in self.state.durable.app_passwords_of_user(user_id).await? {
            self.revoke_app_password(&r).await?;
        }
        Ok(())
    }
}

fn listing(r: &AppPassword) -> serde_json::Value {
    serde_json::json!({ "id": r.id, "name": r.name, "userId": r.user_id, "created": r.created_at, "lastUsed": r.last_used_at, "device": r.last_device })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_an_id_and_256_random_bits() {
        let (id, pw) = new_password();
        assert_eq!(parse_id(&pw), Some(id.as_str()));
        assert_eq!(pw.len(), PREFIX.len() + ID_LEN + 1 + 43);
        assert_ne!(new_password().1, pw);
        for bad in ["", "jsp_", "hunter2", &pw[..pw.len() - 1], &pw.replacen("jsp_", "jsx_", 1), &format!("{pw}x")] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
        let key = [1u8; 32];
        let rec = AppPassword { id, user_id: "u".into(), name: "n".into(), hash: hash(&key, &pw), created_at: 0, last_used_at: None, last_device: None };
        assert!(verify(&key, &rec, &pw));
        assert!(!verify(&key, &rec, &pw.replace('_', "-")));
        assert!(!verify(&[2u8; 32], &rec, &pw), "the state key is part of the hash");
    }
}
