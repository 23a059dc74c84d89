//! Single logout from an OpenID Provider: Back-Channel Logout 1.0 at
//! `POST /sso/OID/backchannel-logout/{p}` and Front-Channel Logout at
//! `GET /sso/OID/frontchannel-logout/{p}?iss&sid`.
//!
//! The `logout_token` is verified as the back-channel specification (section 2.6) requires:
//! a JWS signed with an asymmetric algorithm by a key in the provider's JWKS (an unknown
//! `kid` fetches the keys once more, rate-limited, as for ID tokens), then `iss`, `aud`,
//! `iat` (within the skew), `exp` when present, the `events` claim with the back-channel
//! member, `sid` and/or `sub`, no `nonce`, and a `jti` never seen before (remembered in the
//! ephemeral state). Only then are the sessions of that `sid` (or of that subject at this
//! provider) revoked. Any failed check is a 400 with a JSON error and nothing revoked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use openidconnect::core::CoreJwsSigningAlgorithm;

use super::jwk::Jwk;
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse};
use serde_json::Value;

use super::error::{LogoutTokenError, SsoError};
use super::http::{SsoRequest, json_response, read_form};
use super::oidc::{OidcProvider, ALLOWED_ALGS, SKEW};
use super::revocation::Why;
use super::Sso;
use crate::body::{full, Body};
use crate::state::{Kind, MintedSession};

/// The `events` member that makes a JWT a logout token.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Largest back-channel request body.
const MAX_FORM: usize = 64 * 1024;
/// A logout token older than this is refused (and its `jti` need not be remembered longer).
const MAX_AGE: Duration = Duration::from_secs(600);

/// Whose sessions a verified logout token ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutTarget {
    pub sid: Option<String>,
    pub sub: Option<String>,
    pub jti: String,
    /// Until when the `jti` must be remembered.
    pub remember_until: u64,
}

fn b64(part: &str) -> Result<Vec<u8>, LogoutTokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| LogoutTokenError::Malformed)
}

/// The JWS parts: (header, claims, signing input, signature).
pub(crate) fn split(jwt: &str) -> Result<(Value, Value, String, Vec<u8>), LogoutTokenError> {
    let parts: Vec<&str> = jwt.trim().split('.').collect();
    let [h, c, s] = parts.as_slice() else { return Err(LogoutTokenError::Malformed) };
    let header: Value = serde_json::from_slice(&b64(h)?).map_err(|_| LogoutTokenError::Malformed)?;
    let claims: Value = serde_json::from_slice(&b64(c)?).map_err(|_| LogoutTokenError::Malformed)?;
    Ok((header, claims, format!("{h}.{c}"), b64(s)?))
}

/// The header's algorithm, if it is one we accept (asymmetric only: never `none` or HMAC).
pub(crate) fn algorithm(header: &Value) -> Result<CoreJwsSigningAlgorithm, LogoutTokenError> {
    let name = header.get("alg").and_then(Value::as_str).unwrap_or("").to_string();
    let alg: CoreJwsSigningAlgorithm = serde_json::from_value(Value::String(name.clone())).map_err(|_| LogoutTokenError::Algorithm(name.clone()))?;
    if !ALLOWED_ALGS.contains(&alg) {
        return Err(LogoutTokenError::Algorithm(name));
    }
    Ok(alg)
}

/// Check a signature against the keys of `kid` (every signing key when the header has none).
/// `Ok(false)`: no key with that id (worth one refetch).
fn verify_with(keys: &[Jwk], kid: Option<&str>, alg: &CoreJwsSigningAlgorithm, input: &[u8], sig: &[u8]) -> Result<bool, LogoutTokenError> {
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.key_id().is_some_and(|id| id.as_str() == kid)))
        .filter(|k| k.key_use().is_none_or(|u| u.allows_signature()))
        .filter(|k| match k.signing_alg() {
            JsonWebKeyAlgorithm::Algorithm(a) => a == alg,
            JsonWebKeyAlgorithm::Unspecified => true,
            JsonWebKeyAlgorithm::Unsupported => false,
        })
        .collect();
    if candidates.is_empty() {
        return Ok(false);
    }
    if candidates.iter().any(|k| k.verify_signature(alg, input, sig).is_ok()) {
        Ok(true)
    } else {
        Err(LogoutTokenError::Signature)
    }
}

/// The claim checks of section 2.6, steps 3–7 (the signature is checked before this).
pub fn check_claims(claims: &Value, issuer: Option<&str>, client_id: &str, now: u64) -> Result<LogoutTarget, LogoutTokenError> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_string);
    let n = |k: &str| claims.get(k).and_then(Value::as_u64);
    if let Some(issuer) = issuer {
        if s("iss").as_deref().map(|i| i.trim_end_matches('/')) != Some(issuer.trim_end_matches('/')) {
            return Err(LogoutTokenError::Claim("iss is not the provider's issuer"));
        }
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(LogoutTokenError::Claim("aud does not name this client"));
    }
    let iat = n("iat").ok_or(LogoutTokenError::Claim("iat is missing"))?;
    if iat > now + SKEW.as_secs() {
        return Err(LogoutTokenError::Claim("iat is in the future"));
    }
    if iat + MAX_AGE.as_secs() + SKEW.as_secs() < now {
        return Err(LogoutTokenError::Claim("iat is too old"));
    }
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_u64().ok_or(LogoutTokenError::Claim("exp is not a number"))?;
        if exp.saturating_add(SKEW.as_secs()) < now {
            return Err(LogoutTokenError::Claim("the token has expired"));
        }
    }
    let event = claims.get("events").and_then(|e| e.get(BACKCHANNEL_EVENT));
    if !event.is_some_and(Value::is_object) {
        return Err(LogoutTokenError::Claim("events has no back-channel logout member"));
    }
    if claims.get("nonce").is_some() {
        return Err(LogoutTokenError::Claim("a logout token must not have a nonce"));
    }
    let (sid, sub) = (s("sid"), s("sub"));
    if sid.is_none() && sub.is_none() {
        return Err(LogoutTokenError::Claim("neither sid nor sub"));
    }
    let jti = s("jti").ok_or(LogoutTokenError::Claim("jti is missing"))?;
    // A replay is refused by the `iat` check once `iat + MAX_AGE + SKEW` has passed, so the
    // jti need not be remembered longer, whatever `exp` says (an `exp` near u64::MAX once
    // overflowed here: fuzz/regressions/logout_token/).
    let remember_until = iat + MAX_AGE.as_secs() + 2 * SKEW.as_secs();
    Ok(LogoutTarget { sid, sub, jti, remember_until })
}

impl Sso {
    /// Verify a logout token from `p` completely (signature, claims, replay).
    pub(super) async fn verify_logout_token(&self, p: &OidcProvider, jwt: &str) -> Result<LogoutTarget, SsoError> {
        let bad = |e: LogoutTokenError| SsoError::LogoutToken { provider: p.config.name.clone(), reason: e };
        let (header, claims, input, sig) = split(jwt).map_err(bad)?;
        let alg = algorithm(&header).map_err(bad)?;
        let kid = header.get("kid").and_then(Value::as_str);
        let unavailable = |e: super::oidc::OidcError| SsoError::IdpUnavailable { provider: p.config.name.clone(), detail: e.to_string() };
        let d = p.discovery(false).await.map_err(unavailable)?;
        let mut found = verify_with(d.meta.jwks().keys(), kid, &alg, input.as_bytes(), &sig).map_err(bad)?;
        if !found && p.may_refetch_keys() {
            tracing::info!(provider = %p.config.name, "logout token signed with an unknown key: fetching the provider's keys again");
            let d = p.discovery(true).await.map_err(unavailable)?;
            found = verify_with(d.meta.jwks().keys(), kid, &alg, input.as_bytes(), &sig).map_err(bad)?;
        }
        if !found {
            return Err(bad(LogoutTokenError::UnknownKey));
        }
        let issuer = (!p.config.do_not_validate_issuer_name).then(|| p.issuer());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let target = check_claims(&claims, issuer, &p.config.client_id, now).map_err(bad)?;
        let until = UNIX_EPOCH + Duration::from_secs(target.remember_until);
        let key = format!("{}:{}", p.config.name, target.jti);
        if !self.state.ephemeral.first_seen(Kind::LogoutJti, &key, until).await? {
            return Err(bad(LogoutTokenError::Replayed));
        }
        Ok(target)
    }

    /// The sessions a logout of `sid` / `sub` at `provider` ends.
    /// `sub` narrows a `sid` only when accounts are linked by `sub` (the default).
    async fn sessions_of(&self, p: &OidcProvider, sid: Option<&str>, sub: Option<&str>) -> Result<Vec<MintedSession>, SsoError> {
        let oid = super::identity::Protocol::Oidc.as_str();
        let provider = p.config.name.as_str();
        let sub = sub.filter(|_| p.config.subject_claim == "sub");
        let mints = match (sid, sub) {
            (Some(sid), _) => self.state.durable.mints_by_sid(provider, sid).await?,
            (None, Some(sub)) => self.state.durable.mints_by_subject(oid, provider, sub).await?,
            (None, None) => Vec::new(),
        };
        Ok(mints.into_iter().filter(|m| m.protocol == oid && sub.is_none_or(|s| m.subject == s)).collect())
    }

    /// `POST /sso/OID/backchannel-logout/{p}` with the form field `logout_token`.
    pub(super) async fn backchannel_logout(&self, p: &OidcProvider, req: SsoRequest) -> Result<Response<Body>, SsoError> {
        let form = read_form(req, MAX_FORM).await?;
        let jwt = form.get("logout_token").ok_or_else(|| SsoError::LogoutToken { provider: p.config.name.clone(), reason: LogoutTokenError::Missing })?;
        let target = self.verify_logout_token(p, jwt).await?;
        let mints = self.sessions_of(p, target.sid.as_deref(), target.sub.as_deref()).await?;
        let n = self.revoke_all(&mints, Why::BackChannel).await?;
        tracing::info!(provider = %p.config.name, sessions = n, by_sid = target.sid.is_some(), "back-channel logout");
        Ok(json_response(StatusCode::OK, b"{}".to_vec()))
    }

    /// `GET /sso/OID/frontchannel-logout/{p}?iss&sid`: the provider's page loads this in a
    /// frame. Unsigned by nature, so it needs both a matching `iss` and a `sid`.
    pub(super) async fn frontchannel_logout(&self, p: &OidcProvider, query: &std::collections::HashMap<String, String>) -> Result<Response<Body>, SsoError> {
        let bad = |e| SsoError::LogoutToken { provider: p.config.name.clone(), reason: e };
        let iss = query.get("iss").ok_or(bad(LogoutTokenError::Claim("iss is missing")))?;
        if !p.config.do_not_validate_issuer_name && iss.trim_end_matches('/') != p.issuer().trim_end_matches('/') {
            return Err(bad(LogoutTokenError::Claim("iss is not the provider's issuer")));
        }
        let sid = query.get("sid").filter(|s| !s.is_empty()).ok_or(bad(LogoutTokenError::Claim("sid is missing")))?;
        let mints = self.sessions_of(p, Some(sid), None).await?;
        let n = self.revoke_all(&mints, Why::FrontChannel).await?;
        tracing::info!(provider = %p.config.name, sessions = n, "front-channel logout");
        let mut r = Response::new(full("<!doctype html><title>Signed out</title><p>Signed out.</p>"));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good(now: u64) -> Value {
        json!({"iss": "https://op", "aud": ["jf", "other"], "iat": now, "jti": "j1", "sid": "s1",
               "events": {BACKCHANNEL_EVENT: {}}})
    }

    #[test]
    fn claims_follow_section_2_6() {
        let now = 1_800_000_000;
        let t = check_claims(&good(now), Some("https://op/"), "jf", now).unwrap();
        assert_eq!((t.sid.as_deref(), t.sub, t.jti.as_str()), (Some("s1"), None, "j1"));
        assert!(t.remember_until >= now + MAX_AGE.as_secs());
        let mut far = good(now);
        far["exp"] = json!(u64::MAX);
        let t = check_claims(&far, Some("https://op/"), "jf", now).expect("a far exp is no reason to refuse");
        assert_eq!(t.remember_until, now + MAX_AGE.as_secs() + 2 * SKEW.as_secs(), "bounded by iat, not exp");
        let refuse = |f: &dyn Fn(&mut Value)| {
            let mut c = good(now);
            f(&mut c);
            check_claims(&c, Some("https://op"), "jf", now).unwrap_err()
        };
        refuse(&|c| c["iss"] = json!("https://evil"));
        refuse(&|c| c["aud"] = json!("someone-else"));
        refuse(&|c| c["iat"] = json!(now + 3600));
        refuse(&|c| c["iat"] = json!(now - 86400));
        refuse(&|c| c["exp"] = json!(now - 3600));
        refuse(&|c| {
            c.as_object_mut().unwrap().remove("events");
        });
        refuse(&|c| c["events"] = json!({"http://schemas.openid.net/event/other": {}}));
        refuse(&|c| c["events"] = json!({BACKCHANNEL_EVENT: "yes"}));
        refuse(&|c| c["nonce"] = json!("n"));
        refuse(&|c| {
            c.as_object_mut().unwrap().remove("sid");
        });
        refuse(&|c| {
            c.as_object_mut().unwrap().remove("jti");
        });
        let mut by_sub = good(now);
        by_sub.as_object_mut().unwrap().remove("sid");
        by_sub["sub"] = json!("alice");
        assert_eq!(check_claims(&by_sub, None, "jf", now).unwrap().sub.as_deref(), Some("alice"));
    }

    #[test]
    fn only_asymmetric_algorithms() {
        assert!(algorithm(&json!({"alg": "RS256"})).is_ok());
        assert!(algorithm(&json!({"alg": "ES256"})).is_ok());
        for bad in ["none", "HS256", "HS512", "", "nonsense"] {
            assert!(algorithm(&json!({"alg": bad})).is_err(), "{bad}");
        }
        assert!(algorithm(&json!({})).is_err());
        assert!(split("a.b").is_err());
        assert!(split("not.base64!.x").is_err());
    }
}
