//! One OpenID Connect provider at run time: discovery (cached, refreshed), the authorization
//! request (PKCE S256, nonce, state; pushed when the provider offers PAR), and the callback
//! (code exchange, ID token verification, userinfo), built on the `openidconnect` crate.
//!
//! The relaxing switches relax only what they name: `disableHttps` allows an http issuer and
//! endpoints, `doNotValidateEndpoints` allows endpoints on another origin than the issuer,
//! `doNotValidateIssuerName` skips the issuer comparison (discovery document and ID token).
//! ID tokens must be signed with an allow-listed asymmetric algorithm (never `none` or HMAC);
//! an unknown `kid` triggers one JWKS refetch (rate-limited) so key rotation works.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{CoreAuthPrompt, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreResponseType};
use openidconnect::{
    AuthType, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, JsonWebKeySet, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;
use tokio::sync::RwLock;
use url::Url;

use crate::config::provider::{OidcConfig, Preset, TokenAuthMethod};

/// How long a discovery document and its keys are used before they are fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// At most one JWKS refetch for an unknown key id in this interval.
const JWKS_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Accepted ID token clock skew.
pub(super) const SKEW: Duration = Duration::from_secs(120);

pub use super::oidc_types::{AllClaims, Metadata, OidcClient, ParMetadata, TokenResp, ALLOWED_ALGS};


/// Why talking to the identity provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("pushed authorization request failed: {0}")]
    Par(String),
    #[error("code exchange failed: {0}")]
    Exchange(String),
    #[error("{0}")]
    InvalidToken(String),
    #[error("userinfo failed: {0}")]
    Userinfo(String),
}

pub(super) struct Discovered {
    pub(super) meta: Metadata,
    par_endpoint: Option<Url>,
    pub(super) end_session_endpoint: Option<Url>,
    fetched: Instant,
}

/// What a finished code exchange yields: the verified, merged claims, and the raw tokens a
/// minted session keeps (encrypted) for logout and re-validation.
pub struct Finished {
    pub claims: Value,
    pub id_token: String,
    pub refresh_token: Option<String>,
}

/// What the browser's flow must remember between start and callback.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuthRequest {
    pub pkce_verifier: String,
    pub nonce: String,
}

impl AuthRequest {
    /// A fresh PKCE verifier (32 random bytes) and nonce.
    pub fn new_random() -> AuthRequest {
        AuthRequest { pkce_verifier: PkceCodeVerifier::new(crate::state::random_token()).secret().clone(), nonce: crate::state::random_token() }
    }
}

/// A configured OIDC provider with its cached discovery.
pub struct OidcProvider {
    pub config: OidcConfig,
    redirect_uri: RedirectUrl,
    pub(super) http: super::idp_http::IdpHttp,
    discovered: RwLock<Option<Arc<Discovered>>>,
    last_jwks_refetch: std::sync::Mutex<Option<Instant>>,
}

pub(super) fn short(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    s.chars().take(300).collect()
}

impl OidcProvider {
    pub fn new(config: OidcConfig, redirect_uri: &str, http: super::idp_http::IdpHttp) -> OidcProvider {
        let http = http.for_provider(&config.name);
        OidcProvider {
            config,
            redirect_uri: RedirectUrl::new(redirect_uri.to_string()).expect("public_url joins are valid URLs"),
            http,
            discovered: RwLock::new(None),
            last_jwks_refetch: std::sync::Mutex::new(None),
        }
    }

    /// The cached discovery, fetched again when older than an hour. If a refresh fails, the
    /// previous document keeps serving.
    pub(super) async fn discovery(&self, force: bool) -> Result<Arc<Discovered>, OidcError> {
        if !force {
            if let Some(d) = self.discovered.read().await.as_ref() {
                if d.fetched.elapsed() < DISCOVERY_TTL {
                    return Ok(d.clone());
                }
            }
        }
        let mut slot = self.discovered.write().await;
        if !force {
            if let Some(d) = slot.as_ref() {
                if d.fetched.elapsed() < DISCOVERY_TTL {
                    return Ok(d.clone());
                }
            }
        }
        match self.fetch_discovery().await {
            Ok(d) => {
                let d = Arc::new(d);
                *slot = Some(d.clone());
                Ok(d)
            }
            Err(e) => match slot.as_ref() {
                Some(stale) => {
                    tracing::warn!(provider = %self.config.name, error = %e, "discovery refresh failed; using the previous document");
                    Ok(stale.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_discovery(&self) -> Result<Discovered, OidcError> {
        let issuer = self.config.issuer.as_str().trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let resp = self.http.timed(self.http.get(&url).send()).await.map_err(|e| OidcError::Discovery(format!("{url}: {}", short(e))))?;
        if !resp.status().is_success() {
            return Err(OidcError::Discovery(format!("{url} answered {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(|e| OidcError::Discovery(short(e)))?;
        let mut meta: Metadata = serde_json::from_slice(&bytes).map_err(|e| OidcError::Discovery(format!("not a discovery document: {}", short(e))))?;
        if !self.config.do_not_validate_issuer_name && !Preset::discovery_issuer_ok(self.config.preset, &self.config.issuer, meta.issuer().as_str()) {
            return Err(OidcError::Discovery(format!(
                "the document names issuer {} but oidEndpoint is {issuer} (set doNotValidateIssuerName only if this is expected)",
                meta.issuer().as_str()
            )));
        }
        let mut endpoints = vec![meta.authorization_endpoint().url().clone(), meta.jwks_uri().url().clone()];
        endpoints.extend(meta.token_endpoint().map(|u| u.url().clone()));
        endpoints.extend(meta.userinfo_endpoint().map(|u| u.url().clone()));
        let par_endpoint = match &meta.additional_metadata().pushed_authorization_request_endpoint {
            Some(s) => Some(Url::parse(s).map_err(|e| OidcError::Discovery(format!("bad PAR endpoint: {e}")))?),
            None => None,
        };
        endpoints.extend(par_endpoint.clone());
        let end_session_endpoint = match &meta.additional_metadata().end_session_endpoint {
            Some(s) => Some(Url::parse(s).map_err(|e| OidcError::Discovery(format!("bad end_session_endpoint: {e}")))?),
            None => None,
        };
        endpoints.extend(end_session_endpoint.clone());
        self.check_endpoints(&endpoints)?;
        if meta.token_endpoint().is_none() {
            return Err(OidcError::Discovery("the provider has no token endpoint".into()));
        }
        let jwks = JsonWebKeySet::fetch_async(meta.jwks_uri(), &self.http).await.map_err(|e| OidcError::Discovery(format!("keys: {}", short(e))))?;
        meta = meta.set_jwks(jwks);
        Ok(Discovered { meta, par_endpoint, end_session_endpoint, fetched: Instant::now() })
    }

    fn check_endpoints(&self, endpoints: &[Url]) -> Result<(), OidcError> {
        let issuer_origin = self.config.issuer.origin();
        for e in endpoints {
            if e.scheme() != "https" && !self.config.disable_https {
                return Err(OidcError::Discovery(format!("endpoint {e} is not https (disableHttps allows it)")));
            }
            let preset_host = self.config.preset.is_some_and(|p| p.allows_endpoint(&self.config.issuer, e));
            if !self.config.do_not_validate_endpoints && e.origin() != issuer_origin && !preset_host {
                return Err(OidcError::Discovery(format!(
                    "endpoint {e} is not on the issuer's origin {} (doNotValidateEndpoints allows it)",
                    issuer_origin.ascii_serialization()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn client(&self, d: &Discovered) -> OidcClient {
        let secret = match self.config.token_auth_method {
            TokenAuthMethod::None => None,
            _ => self.config.client_secret.as_ref().map(|s| ClientSecret::new(s.expose().to_string())),
        };
        let auth_type = match self.config.token_auth_method {
            TokenAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        };
        OidcClient::from_provider_metadata(d.meta.clone(), ClientId::new(self.config.client_id.clone()), secret)
            .set_redirect_uri(self.redirect_uri.clone())
            .set_auth_type(auth_type)
    }

    /// Build the URL to send the browser to, for the flow whose id is `state`.
    pub async fn authorization_url(&self, state: &str, auth: &AuthRequest) -> Result<Url, OidcError> {
        let d = self.discovery(false).await?;
        let client = self.client(&d);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(auth.pkce_verifier.clone()));
        let state_owned = state.to_string();
        let nonce_owned = auth.nonce.clone();
        let mut req = client
            .authorize_url(AuthenticationFlow::<CoreResponseType>::AuthorizationCode, move || CsrfToken::new(state_owned), move || Nonce::new(nonce_owned))
            .set_pkce_challenge(challenge);
        // `openid profile`, as the plugin's OIDC library requested, then the extra scopes.
        req = req.add_scope(Scope::new("profile".into()));
        for s in self.config.scopes.iter().filter(|s| *s != "profile") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        // A refresh token is asked for only when the provider re-validates sessions with it.
        if self.config.session.revalidate_interval.is_some() && !self.config.scopes.iter().any(|s| s == "offline_access") {
            req = req.add_scope(Scope::new("offline_access".into())).add_prompt(CoreAuthPrompt::Consent);
        }
        let (url, _, _) = req.url();

        let use_par = d.par_endpoint.is_some() && !self.config.disable_pushed_authorization;
        if !use_par {
            return Ok(url);
        }
        let par = d.par_endpoint.clone().expect("checked");
        let mut form: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let mut builder = self.http.post(par.clone());
        match (self.config.token_auth_method, &self.config.client_secret) {
            (TokenAuthMethod::ClientSecretBasic, Some(secret)) => {
                // RFC 6749 §2.3.1: form-encode id and secret before Basic.
                let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                builder = builder.basic_auth(enc(&self.config.client_id), Some(enc(secret.expose())));
                form.retain(|(k, _)| k != "client_secret");
            }
            (TokenAuthMethod::ClientSecretPost, Some(secret)) => form.push(("client_secret".into(), secret.expose().to_string())),
            _ => {}
        }
        let resp = self.http.timed(builder.form(&form).send()).await.map_err(|e| OidcError::Par(short(e)))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| OidcError::Par(format!("{status}: {}", short(e))))?;
        let request_uri = body.get("request_uri").and_then(Value::as_str).ok_or_else(|| OidcError::Par(format!("{status}: {}", short(&body))))?;
        let mut redirect = d.meta.authorization_endpoint().url().clone();
        redirect.query_pairs_mut().append_pair("client_id", &self.config.client_id).append_pair("request_uri", request_uri);
        Ok(redirect)
    }

    /// Exchange the code, verify the ID token, fetch userinfo; return the merged claims and
    /// the raw tokens.
    pub async fn finish(&self, code: &str, auth: &AuthRequest) -> Result<Finished, OidcError> {
        let d = self.discovery(false).await?;
        let client = self.client(&d);
        let token: TokenResp = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Exchange(short(e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(auth.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(short(openidconnect_error_chain(&e))))?;
        let id_token = token.id_token().ok_or_else(|| OidcError::InvalidToken("the token response has no id_token".into()))?;
        let nonce = Nonce::new(auth.nonce.clone());

        let claims = match self.verify(&d, id_token, &nonce) {
            Err(e) if is_unknown_key(&e) && self.may_refetch_keys() => {
                tracing::info!(provider = %self.config.name, "ID token signed with an unknown key: fetching the provider's keys again");
                let d = self.discovery(true).await?;
                self.verify(&d, id_token, &nonce).map_err(|e| OidcError::InvalidToken(short(e)))?
            }
            r => r.map_err(|e| OidcError::InvalidToken(short(e)))?,
        };
        let raw_id_token = id_token.to_string();
        let refresh_token = token.refresh_token().map(|t| t.secret().clone());
        let claims = self.with_userinfo(claims, token.access_token()).await?;
        Ok(Finished { claims, id_token: raw_id_token, refresh_token })
    }

    /// Merge the userinfo answer into verified ID token claims (unless `doNotLoadProfile`).
    pub(super) async fn with_userinfo(&self, claims: Value, access_token: &openidconnect::AccessToken) -> Result<Value, OidcError> {
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
        if self.config.do_not_load_profile {
            return Ok(claims);
        }
        let d = self.discovery(false).await?;
        let client = self.client(&d);
        let Ok(request) = client.user_info(access_token.clone(), Some(openidconnect::SubjectIdentifier::new(subject))) else {
            return Ok(claims); // no userinfo endpoint
        };
        let info: openidconnect::UserInfoClaims<AllClaims, CoreGenderClaim> = request
            .require_signed_response(false)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Userinfo(short(openidconnect_error_chain(&e))))?;
        let info = serde_json::to_value(&info).map_err(|e| OidcError::Userinfo(short(e)))?;
        Ok(merge_claims(claims, info))
    }

    /// Verify signature, iss, aud, azp, exp, iat, nonce against the discovery `d`; return the
    /// token's own claims. The issuer is the document's, compared exactly by the library,
    /// except for a preset's own rule ([`Preset::token_issuer_ok`]), checked after the rest.
    pub(super) fn verify<N: openidconnect::NonceVerifier>(&self, d: &Discovered, id_token: &openidconnect::IdToken<AllClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>, nonce: N) -> Result<Value, openidconnect::ClaimsVerificationError> {
        let client = self.client(d);
        let document_issuer = d.meta.issuer().as_str();
        let own_issuer_check = !self.config.do_not_validate_issuer_name && Preset::own_issuer_check(self.config.preset, document_issuer);
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(ALLOWED_ALGS)
            .require_issuer_match(!self.config.do_not_validate_issuer_name && !own_issuer_check)
            .set_issue_time_verifier_fn(|iat| {
                let now = chrono_now();
                if iat.timestamp() > now + SKEW.as_secs() as i64 {
                    Err("issued in the future".into())
                } else if iat.timestamp() < now - 24 * 3600 {
                    Err("issued more than a day ago".into())
                } else {
                    Ok(())
                }
            });
        id_token.claims(&verifier, nonce)?;
        // Verified: read the exact claims from the payload.
        let jwt = id_token.to_string();
        let payload = jwt.split('.').nth(1).unwrap_or_default();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| openidconnect::ClaimsVerificationError::Other(e.to_string()))?;
        let claims: Value = serde_json::from_slice(&bytes).map_err(|e| openidconnect::ClaimsVerificationError::Other(e.to_string()))?;
        if own_issuer_check && !Preset::token_issuer_ok(self.config.preset, document_issuer, &claims) {
            return Err(openidconnect::ClaimsVerificationError::InvalidIssuer(format!(
                "the ID token's issuer {} is not {document_issuer} for its tenant",
                claims.get("iss").and_then(Value::as_str).unwrap_or("(none)")
            )));
        }
        Ok(claims)
    }

    pub(super) fn may_refetch_keys(&self) -> bool {
        let mut last = self.last_jwks_refetch.lock().expect("lock");
        if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_MIN_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// The issuer as configured (for the RFC 9207 `iss` check on the callback).
    pub fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// Fetch discovery now (used at start-up to report problems early).
    pub async fn warm_up(&self) -> Result<(), OidcError> {
        self.discovery(false).await.map(|_| ())
    }
}

pub(super) fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub(super) fn is_unknown_key(e: &openidconnect::ClaimsVerificationError) -> bool {
    matches!(e, openidconnect::ClaimsVerificationError::SignatureVerification(openidconnect::SignatureVerificationError::NoMatchingKey))
}

fn openidconnect_error_chain(e: &dyn std::error::Error) -> String {
    crate::error::error_chain(e)
}

/// Userinfo fills in what the ID token lacks; on a conflict the signed ID token wins.
pub fn merge_claims(id_token: Value, userinfo: Value) -> Value {
    let mut merged = match userinfo {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    if let Value::Object(id) = id_token {
        for (k, v) in id {
            merged.insert(k, v);
        }
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_prefers_id_token_and_keeps_userinfo_extras() {
        let m = merge_claims(json!({"sub": "1", "preferred_username": "a"}), json!({"sub": "1", "preferred_username": "b", "realm_access": {"roles": ["x"]}}));
        assert_eq!(m["preferred_username"], "a");
        assert_eq!(m["realm_access"]["roles"][0], "x");
    }
}
