//! Re-validation: for OIDC providers with `revalidateInterval`, each minted session that
//! kept a refresh token is refreshed in the background once per interval, and the refreshed
//! identity is judged again by the provider's rules.
//!
//! - `invalid_grant` (the user was disabled, consent revoked, the session ended at the
//!   provider) → every Jellyfin session of that identity is revoked.
//! - A refreshed identity that no longer passes the role gate → the same.
//! - Still allowed → the grants are written into the Jellyfin policy again (so a lost admin
//!   role is taken away) when the provider manages grants, the rotated refresh token and the
//!   new ID token are stored encrypted, and `lastValidated` is set.
//! - The provider unreachable or answering something else → nothing is revoked, a warning
//!   is logged, and the session is tried again on the next pass.

use std::sync::Arc;

use openidconnect::core::CoreErrorResponseType;
use openidconnect::{Nonce, OAuth2TokenResponse, RefreshToken, RequestTokenError, TokenResponse};
use serde_json::Value;

use super::identity;
use super::oidc::{is_unknown_key, short, OidcProvider, TokenResp};
use super::revocation::Why;
use super::{token_crypto, Sso};
use crate::state::{now_secs, MintedSession};

/// What one refresh found.
enum Outcome {
    /// Still fine: the claims of the refreshed identity, and the new tokens.
    Valid { claims: Value, refresh_token: Option<String>, id_token: Option<String> },
    /// The provider says the grant is gone.
    Invalid(String),
    /// Nothing can be concluded now.
    Unknown(String),
}

impl Sso {
    /// The background loop: the max-age sweep and re-validation, at the lifecycle tick.
    pub(super) async fn lifecycle_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.lifecycle_tick()).await;
            self.sweep_max_age().await;
            self.revalidate_due().await;
        }
    }

    /// One pass: every session due for re-validation at every provider that asks for it.
    pub(super) async fn revalidate_due(&self) {
        for p in self.registry.oidc_providers() {
            let Some(interval) = p.config.session.revalidate_interval else { continue };
            let now = now_secs();
            let mints = match self.state.durable.mints_older_than(&p.config.name, now + 1).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(provider = %p.config.name, error = %e, "reading sessions to re-validate failed");
                    continue;
                }
            };
            let due = mints.into_iter().filter(|m| {
                m.protocol == identity::Protocol::Oidc.as_str() && m.refresh_token.is_some() && m.last_validated.unwrap_or(m.minted_at) + interval.as_secs() <= now
            });
            for m in due {
                self.revalidate(&p, m).await;
            }
        }
    }

    async fn revalidate(&self, p: &OidcProvider, m: MintedSession) {
        let purpose = |kind| token_crypto::purpose_of(kind, &m.protocol, &m.provider, &m.subject);
        let Some(refresh) = m.refresh_token.as_deref().and_then(|s| token_crypto::open_string(&self.seal_key, &purpose("refresh_token"), s)) else {
            tracing::warn!(user = %m.user_id, device = %m.device_id, "a stored refresh token does not open with the state key; the session cannot be re-validated");
            return;
        };
        match refresh_once(p, &refresh, &m).await {
            Outcome::Unknown(why) => {
                tracing::warn!(provider = %p.config.name, error = %why, "re-validation not possible now (provider unreachable?); nothing revoked");
            }
            Outcome::Invalid(why) => {
                tracing::info!(provider = %p.config.name, user = %m.user_id, reason = %why, "the provider no longer vouches for this identity");
                let _ = self.revoke_identity(&m.protocol, &m.provider, &m.subject, Why::Revalidation).await;
            }
            Outcome::Valid { claims, refresh_token, id_token } => {
                let roles = super::oidc_login::oidc_roles(&p.config, &claims);
                let grants = identity::decide(&roles, &p.config.grants);
                if !grants.allowed {
                    tracing::info!(provider = %p.config.name, user = %m.user_id, "the refreshed identity no longer has a permitted role");
                    let _ = self.revoke_identity(&m.protocol, &m.provider, &m.subject, Why::Revalidation).await;
                    return;
                }
                if p.config.grants.enable_authorization {
                    if let Err(e) = self.jellyfin.update_policy(&m.user_id, |pol| identity::apply(pol, &grants)).await {
                        tracing::warn!(user = %m.user_id, error = %e, "updating the policy after re-validation failed");
                    }
                }
                let mut updated = m.clone();
                if let Some(rt) = refresh_token {
                    updated.refresh_token = Some(token_crypto::seal(&self.seal_key, &purpose("refresh_token"), rt.as_bytes()));
                }
                if let Some(it) = id_token {
                    updated.id_token = Some(token_crypto::seal(&self.seal_key, &purpose("id_token"), it.as_bytes()));
                }
                updated.last_validated = Some(now_secs());
                if let Err(e) = self.state.durable.record_mint(updated).await {
                    tracing::warn!(user = %m.user_id, error = %e, "recording the re-validation failed");
                }
            }
        }
    }
}

/// Refresh once and verify what comes back.
async fn refresh_once(p: &OidcProvider, refresh: &str, m: &MintedSession) -> Outcome {
    let d = match p.discovery(false).await {
        Ok(d) => d,
        Err(e) => return Outcome::Unknown(e.to_string()),
    };
    let client = p.client(&d);
    let refresh = RefreshToken::new(refresh.to_string());
    let request = match client.exchange_refresh_token(&refresh) {
        Ok(r) => r,
        Err(e) => return Outcome::Unknown(short(e)),
    };
    let token: TokenResp = match request.request_async(&p.http).await {
        Ok(t) => t,
        Err(RequestTokenError::ServerResponse(e)) if *e.error() == CoreErrorResponseType::InvalidGrant => return Outcome::Invalid("invalid_grant".into()),
        Err(e) => return Outcome::Unknown(short(crate::error::error_chain(&e))),
    };
    let accept_any_nonce = |_: Option<&Nonce>| -> Result<(), String> { Ok(()) };
    let mut claims = match token.id_token() {
        Some(id) => {
            let first = p.verify(&d, id, accept_any_nonce);
            let verified = match first {
                Err(e) if is_unknown_key(&e) && p.may_refetch_keys() => match p.discovery(true).await {
                    Ok(d) => p.verify(&d, id, accept_any_nonce),
                    Err(e) => return Outcome::Unknown(e.to_string()),
                },
                r => r,
            };
            match verified {
                Ok(c) => c,
                // A provider that sends a token we cannot verify is not vouching for anyone.
                Err(e) => return Outcome::Invalid(format!("refreshed ID token failed verification: {}", short(e))),
            }
        }
        None => serde_json::json!({ "sub": m.subject }),
    };
    if p.config.subject_claim == "sub" && claims.get("sub").and_then(Value::as_str) != Some(m.subject.as_str()) {
        return Outcome::Invalid("the refreshed identity has another subject".into());
    }
    claims = match p.with_userinfo(claims, token.access_token()).await {
        Ok(c) => c,
        Err(e) => return Outcome::Unknown(e.to_string()),
    };
    Outcome::Valid { claims, refresh_token: token.refresh_token().map(|t| t.secret().clone()), id_token: token.id_token().map(|t| t.to_string()) }
}
