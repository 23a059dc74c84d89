//! The plugin's admin API: provider administration, account links, `States`, `Unregister`,
//! and who may call what.
//!
//! A caller is identified by the Jellyfin token it presents (`Authorization: MediaBrowser
//! Token=…`, or for old scripts `X-Emby-Authorization`, `X-Emby-Token`, `api_key=`), which
//! the proxy asks Jellyfin about ([`Jellyfin::identify`]) and caches for 30 seconds under the
//! token's SHA-256, never the token. "API key" rules accept an API key or an administrator;
//! "user or admin" accepts the user named in the path or an administrator.
//!
//! Providers in `proxy.yaml` belong to the operator and cannot be changed here (409).
//! Providers added here are validated by the same code as the file and persisted in the
//! state directory; the change takes effect at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::error::SsoError;
use super::identity::Protocol;
use super::oidc::OidcProvider;
use super::saml::SamlIdp;
use super::{json_response, read_json, Sso};
use crate::body::Body;
use crate::config::provider::{oid_from_json, saml_from_json, REDACTED};
use crate::jellyfin::{parse_mediabrowser_header, Caller, Jellyfin};

const CALLER_TTL: Duration = Duration::from_secs(30);
const CALLER_CACHE_MAX: usize = 10_000;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Rule<'a> {
    /// An API key or an administrator user.
    Admin,
    /// The user with this id, or an administrator.
    UserOrAdmin(&'a str),
}

/// Recently identified tokens, keyed by SHA-256 of the token.
#[derive(Default)]
pub struct CallerCache {
    map: DashMap<[u8; 32], (Option<Caller>, Instant)>,
}

impl CallerCache {
    pub async fn identify(&self, jellyfin: &Jellyfin, token: &str) -> Result<Option<Caller>, SsoError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(e) = self.map.get(&key) {
            if e.1.elapsed() < CALLER_TTL {
                return Ok(e.0.clone());
            }
        }
        let caller = jellyfin.identify(token).await?;
        if self.map.len() >= CALLER_CACHE_MAX {
            self.map.retain(|_, e| e.1.elapsed() < CALLER_TTL);
            if self.map.len() >= CALLER_CACHE_MAX {
                self.map.clear();
            }
        }
        self.map.insert(key, (caller.clone(), Instant::now()));
        Ok(caller)
    }
}

/// The token a request presents, from any of the places Jellyfin clients put it.
pub fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    for name in ["authorization", "x-emby-authorization"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            if let Some(params) = parse_mediabrowser_header(v) {
                if let Some((_, t)) = params.into_iter().find(|(k, _)| k.eq_ignore_ascii_case("Token")) {
                    if !t.is_empty() {
                        return Some(t);
                    }
                }
            }
        }
    }
    if let Some(t) = headers.get("x-emby-token").and_then(|v| v.to_str().ok()).filter(|t| !t.is_empty()) {
        return Some(t.to_string());
    }
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, v)| (k.eq_ignore_ascii_case("api_key") || k.eq_ignore_ascii_case("apikey")) && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// Jellyfin ids compare without dashes and case ("N" and "D" GUID formats).
pub fn same_id(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
    norm(a) == norm(b)
}

fn mode_of(s: &str) -> Result<Protocol, SsoError> {
    match s.to_ascii_lowercase().as_str() {
        "oid" => Ok(Protocol::Oid),
        "saml" => Ok(Protocol::Saml),
        _ => Err(SsoError::BadRequest("mode must be oid or saml".into())),
    }
}

impl Sso {
    /// Check that the request's caller satisfies `rule`; returns the caller.
    pub(super) async fn authorize(&self, headers: &HeaderMap, uri: &Uri, rule: Rule<'_>, what: &'static str) -> Result<Caller, SsoError> {
        let token = presented_token(headers, uri).ok_or(SsoError::Unauthorized)?;
        let caller = self.callers.identify(&self.login.jellyfin, &token).await?.ok_or(SsoError::Unauthorized)?;
        let allowed = match (&caller, rule) {
            (Caller::ApiKey, _) => true,
            (Caller::User { is_admin: true, .. }, _) => true,
            (Caller::User { id, .. }, Rule::UserOrAdmin(user)) => same_id(id, user),
            (Caller::User { .. }, Rule::Admin) => false,
        };
        if allowed {
            Ok(caller)
        } else {
            Err(SsoError::Forbidden(what))
        }
    }

    /// Admin routes; `None` when the path is not one of them.
    pub(super) async fn admin_route(&self, segs: &[&str], req: Request<Incoming>) -> Option<Result<Response<Body>, SsoError>> {
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let m = req.method().clone();
        let (h, u) = (req.headers().clone(), req.uri().clone());
        Some(match (m.as_str(), l.as_slice()) {
            ("GET", [mode @ ("oid" | "saml"), "getnames"]) => Ok(self.get_names(mode_of(mode).expect("matched"))),
            ("GET", [mode @ ("oid" | "saml"), "get"]) => {
                let mode = mode_of(mode).expect("matched");
                self.with(&h, &u, Rule::Admin, "list providers", self.get_providers(mode)).await
            }
            ("GET", ["oid", "states"]) => self.with(&h, &u, Rule::Admin, "list login states", self.states()).await,
            ("POST", [mode @ ("oid" | "saml"), "add", _]) => match self.authorize(&h, &u, Rule::Admin, "add providers").await {
                Ok(_) => self.add_provider(mode_of(mode).expect("matched"), segs[2], req).await,
                Err(e) => Err(e),
            },
            ("GET", [mode @ ("oid" | "saml"), "del", _]) => match self.authorize(&h, &u, Rule::Admin, "delete providers").await {
                Ok(_) => self.del_provider(mode_of(mode).expect("matched"), segs[2]).await,
                Err(e) => Err(e),
            },
            ("GET", [mode @ ("oid" | "saml"), "links", user]) => {
                let mode = mode_of(mode);
                match (mode, self.authorize(&h, &u, Rule::UserOrAdmin(user), "read another user's links").await) {
                    (Ok(mode), Ok(_)) => Ok(self.links(mode, segs[2])),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            ("POST", [mode, "link", _, user]) => match (mode_of(mode), self.authorize(&h, &u, Rule::UserOrAdmin(user), "link another user's account").await) {
                (Ok(mode), Ok(_)) => self.link(mode, segs[2].to_string(), segs[3].to_string(), req).await,
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            ("DELETE", [mode, "link", _, user, _]) => {
                match (mode_of(mode), self.authorize(&h, &u, Rule::UserOrAdmin(user), "remove another user's links").await) {
                    (Ok(mode), Ok(_)) => self.unlink(mode, segs[2], segs[3], segs[4]).await,
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            ("POST", ["unregister", _]) => match self.authorize(&h, &u, Rule::Admin, "unregister users").await {
                Ok(_) => self.unregister(segs[1].to_string(), req).await,
                Err(e) => Err(e),
            },
            _ => return None,
        })
    }

    async fn with(&self, h: &HeaderMap, u: &Uri, rule: Rule<'_>, what: &'static str, resp: Response<Body>) -> Result<Response<Body>, SsoError> {
        self.authorize(h, u, rule, what).await.map(|_| resp)
    }

    /// `GET /sso/{mode}/GetNames`: enabled providers (public).
    fn get_names(&self, mode: Protocol) -> Response<Body> {
        let mut names: Vec<String> = match mode {
            Protocol::Oid => self.oidc_providers().into_iter().filter(|p| p.config.enabled).map(|p| p.config.name.clone()).collect(),
            Protocol::Saml => self.saml.read().expect("providers lock").values().filter(|p| p.config.enabled).map(|p| p.config.name.clone()).collect(),
        };
        names.sort();
        json_response(StatusCode::OK, serde_json::to_vec(&names).expect("json"))
    }

    /// `GET /sso/{mode}/Get`: every provider in the plugin's shape, secrets redacted.
    fn get_providers(&self, mode: Protocol) -> Response<Body> {
        let all: BTreeMap<String, serde_json::Value> = match mode {
            Protocol::Oid => self.oidc_providers().into_iter().map(|p| (p.config.name.clone(), p.config.to_plugin_json())).collect(),
            Protocol::Saml => self.saml.read().expect("providers lock").values().map(|p| (p.config.name.clone(), p.config.to_plugin_json())).collect(),
        };
        json_response(StatusCode::OK, serde_json::to_vec(&all).expect("json"))
    }

    /// `GET /sso/OID/States`: pending logins, without any secret.
    fn states(&self) -> Response<Body> {
        let list: Vec<serde_json::Value> = self
            .flows
            .list(|f| (f.protocol, f.provider.clone(), f.linking))
            .into_iter()
            .map(|(age, (protocol, provider, linking))| {
                serde_json::json!({ "protocol": protocol.as_str(), "provider": provider, "ageSeconds": age.as_secs(), "isLinking": linking })
            })
            .collect();
        json_response(StatusCode::OK, serde_json::to_vec(&list).expect("json"))
    }

    fn file_defined(&self, mode: Protocol, name: &str) -> bool {
        match mode {
            Protocol::Oid => self.config.oid_providers.iter().any(|p| p.name == name),
            Protocol::Saml => self.config.saml_providers.iter().any(|p| p.name == name),
        }
    }

    /// `POST /sso/{mode}/Add/{p}`: add or replace an API-managed provider, validated exactly
    /// as `proxy.yaml` is, effective at once.
    async fn add_provider(&self, mode: Protocol, name: &str, req: Request<Incoming>) -> Result<Response<Body>, SsoError> {
        if self.file_defined(mode, name) {
            return Err(SsoError::Conflict(format!("provider {name} is defined in proxy.yaml; change it there")));
        }
        let mut body: serde_json::Value = read_json(req).await?;
        // A `Get` → `Add` round trip sends the redaction marker back: keep the stored secret.
        if mode == Protocol::Oid && body.get("oidSecret").and_then(|v| v.as_str()) == Some(REDACTED) {
            let stored = self.login.store().read().oid_providers.get(name).and_then(|p| p.get("oidSecret").cloned());
            match stored {
                Some(s) => body["oidSecret"] = s,
                None => return Err(SsoError::BadRequest("oidSecret: send the secret itself, not the redaction marker".into())),
            }
        }
        let problems = |ps: Vec<crate::config::field::Problem>| SsoError::BadRequest(ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "));
        let (key, value) = (name.to_string(), body.clone());
        let json = match mode {
            Protocol::Oid => {
                let provider = oid_from_json(name, &body, &self.config.state_dir).map_err(problems)?;
                self.login.store().update(move |s| s.oid_providers.insert(key, value)).await.map_err(|e| SsoError::Conflict(format!("could not save: {e}")))?;
                let json = provider.to_plugin_json();
                self.install_oid(provider);
                json
            }
            Protocol::Saml => {
                let provider = saml_from_json(name, &body, &self.config.state_dir).map_err(problems)?;
                let idp = SamlIdp::new(provider, |path| self.config.public_url.join(path)).map_err(|e| SsoError::BadRequest(e.to_string()))?;
                self.login.store().update(move |s| s.saml_providers.insert(key, value)).await.map_err(|e| SsoError::Conflict(format!("could not save: {e}")))?;
                let json = idp.config.to_plugin_json();
                self.saml.write().expect("providers lock").insert(name.to_string(), Arc::new(idp));
                json
            }
        };
        tracing::info!(provider = name, protocol = mode.as_str(), "provider added through the API");
        Ok(json_response(StatusCode::OK, serde_json::to_vec(&json).expect("json")))
    }

    pub(super) fn install_oid(&self, provider: crate::config::provider::OidProvider) {
        let redirect = self.config.public_url.join(&format!("/sso/OID/redirect/{}", provider.name));
        let name = provider.name.clone();
        let p = Arc::new(OidcProvider::new(provider, &redirect, self.idp_http.clone()));
        self.oidc.write().expect("providers lock").insert(name, p);
    }

    /// `GET /sso/{mode}/Del/{p}`.
    async fn del_provider(&self, mode: Protocol, name: &str) -> Result<Response<Body>, SsoError> {
        if self.file_defined(mode, name) {
            return Err(SsoError::Conflict(format!("provider {name} is defined in proxy.yaml; remove it there")));
        }
        let state = self.login.store().read();
        let known = match mode {
            Protocol::Oid => state.oid_providers.contains_key(name),
            Protocol::Saml => state.saml_providers.contains_key(name),
        };
        if !known {
            return Err(SsoError::UnknownProvider(name.to_string()));
        }
        let key = name.to_string();
        self.login
            .store()
            .update(move |s| match mode {
                Protocol::Oid => s.oid_providers.remove(&key),
                Protocol::Saml => s.saml_providers.remove(&key),
            })
            .await
            .map_err(|e| SsoError::Conflict(format!("could not save: {e}")))?;
        match mode {
            Protocol::Oid => self.oidc.write().expect("providers lock").remove(name).map(|_| ()),
            Protocol::Saml => self.saml.write().expect("providers lock").remove(name).map(|_| ()),
        };
        tracing::info!(provider = name, protocol = mode.as_str(), "provider deleted through the API");
        Ok(json_response(StatusCode::OK, b"{}".to_vec()))
    }

    /// `GET /sso/{mode}/links/{user}`: provider → canonical names linked to that user.
    fn links(&self, mode: Protocol, user: &str) -> Response<Body> {
        let state = self.login.store().read();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in state.links.iter().filter(|l| l.mode == mode && same_id(&l.user_id, user)) {
            out.entry(l.provider.clone()).or_default().push(l.canonical_name.clone());
        }
        json_response(StatusCode::OK, serde_json::to_vec(&out).expect("json"))
    }

    /// `POST /sso/{mode}/Link/{p}/{user}` with the completion page's body: link the identity
    /// of a finished linking flow to that user.
    async fn link(&self, mode: Protocol, provider: String, user: String, req: Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let browser = super::session::cookie(req.headers(), super::FLOW_COOKIE).map(str::to_string);
        let body: super::AuthBody = read_json(req).await?;
        let pending = self.completions.take(&body.data, browser.as_deref())?;
        if pending.identity.provider != provider || pending.identity.protocol != mode || !pending.linking {
            return Err(SsoError::BadRequest("this sign-in is not a linking flow for this provider".into()));
        }
        let user_dto = self.login.jellyfin.user(&user).await?;
        let link = crate::store::Link {
            mode,
            provider,
            canonical_name: pending.identity.subject.clone(),
            user_id: user_dto.id.clone(),
            linked_at: crate::store::now_secs(),
        };
        let json = serde_json::to_vec(&link).expect("json");
        self.login.store().update(move |s| s.put_link(link)).await.map_err(|e| SsoError::Conflict(format!("could not save: {e}")))?;
        Ok(json_response(StatusCode::OK, json))
    }

    /// `DELETE /sso/{mode}/Link/{p}/{user}/{canonicalName}`.
    async fn unlink(&self, mode: Protocol, provider: &str, user: &str, canonical: &str) -> Result<Response<Body>, SsoError> {
        let (p, u, c) = (provider.to_string(), user.to_string(), canonical.to_string());
        let removed = self
            .login
            .store()
            .update(move |s| {
                let before = s.links.len();
                s.links.retain(|l| !(l.mode == mode && l.provider == p && same_id(&l.user_id, &u) && l.canonical_name == c));
                before - s.links.len()
            })
            .await
            .map_err(|e| SsoError::Conflict(format!("could not save: {e}")))?;
        if removed == 0 {
            return Err(SsoError::NotFoundWhat("no such link".into()));
        }
        Ok(json_response(StatusCode::OK, b"{}".to_vec()))
    }

    /// `POST /sso/Unregister/{username}` with a JSON string: the new authentication provider.
    /// The user's links are removed too.
    async fn unregister(&self, username: String, req: Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let provider: String = read_json(req).await?;
        if provider.trim().is_empty() || provider.len() > 256 {
            return Err(SsoError::BadRequest("body: a JSON string naming the authentication provider".into()));
        }
        let user = self.login.jellyfin.find_user_by_name(&username).await?.ok_or_else(|| SsoError::NotFoundWhat(format!("no Jellyfin user {username}")))?;
        self.login
            .jellyfin
            .update_policy(&user.id, |p| p.authentication_provider_id = provider.trim().to_string())
            .await?;
        let id = user.id.clone();
        self.login.store().update(move |s| s.links.retain(|l| !same_id(&l.user_id, &id))).await.map_err(|e| SsoError::Conflict(format!("could not save: {e}")))?;
        tracing::info!(user = %user.name, "user unregistered from SSO");
        Ok(json_response(StatusCode::OK, b"{}".to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_every_legacy_place() {
        let mut h = HeaderMap::new();
        let u: Uri = "/sso/OID/Get".parse().unwrap();
        assert_eq!(presented_token(&h, &u), None);
        h.insert("x-emby-token", "t1".parse().unwrap());
        assert_eq!(presented_token(&h, &u).as_deref(), Some("t1"));
        h.insert("x-emby-authorization", "MediaBrowser Client=\"x\", Token=\"t2\"".parse().unwrap());
        assert_eq!(presented_token(&h, &u).as_deref(), Some("t2"));
        h.insert("authorization", "MediaBrowser Token=\"t3\"".parse().unwrap());
        assert_eq!(presented_token(&h, &u).as_deref(), Some("t3"));
        let q: Uri = "/sso/OID/Get?ApiKey=t4".parse().unwrap();
        assert_eq!(presented_token(&HeaderMap::new(), &q).as_deref(), Some("t4"));
    }

    #[test]
    fn ids_compare_in_both_guid_formats() {
        assert!(same_id("4f8c3a2b1d6e4f0a9b8c7d6e5f4a3b2c", "4F8C3A2B-1D6E-4F0A-9B8C-7D6E5F4A3B2C"));
        assert!(!same_id("4f8c", "4f8d"));
    }
}
