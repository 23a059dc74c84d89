//! The OIDC side of a login: the callback's query and the verified claims, turned into an
//! [`Identity`]. Everything before (the redirect) is [`super::oidc`]; everything after is
//! the shared path in [`super::login`].

use http::Response;

use super::error::SsoError;
use super::http::SsoRequest;
use super::identity::{self, Identity, Protocol};
use super::login::PendingFlow;
use super::oidc::{OidcError, OidcProvider};
use super::registry::Provider;
use super::token_crypto;
use super::Sso;
use crate::body::Body;
use crate::context::RequestContext;

impl Sso {
    /// `GET /sso/OID/redirect/{p}?code&state` (or `error`).
    pub(super) async fn oidc_callback(&self, provider: Provider, req: &SsoRequest, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let Provider::Oidc(oidc) = &provider else { return Err(SsoError::UnknownProvider(provider.name().to_string())) };
        let name = provider.name();
        let callback = Callback::parse(req.uri().query().unwrap_or(""))?;
        let browser = ctx.cookies.flow.as_deref();
        let PendingFlow::Oidc { linking, auth, next, .. } = self.take_flow(&callback.state, browser, &provider).await? else {
            return Err(SsoError::MissingState);
        };
        let code = callback.code(name, oidc.issuer(), !oidc.config.do_not_validate_issuer_name)?;
        let finished = oidc.finish(code, &auth).await.map_err(|e| match e {
            OidcError::InvalidToken(detail) => SsoError::InvalidToken { provider: name.into(), detail },
            other => SsoError::IdpUnavailable { provider: name.into(), detail: other.to_string() },
        })?;
        let mut identity = oidc_identity(oidc, &finished.claims)?;
        let key = &self.seal_key;
        identity.tokens = super::identity::SealedTokens {
            id_token: Some(token_crypto::seal(key, &token_crypto::purpose("id_token", &identity), finished.id_token.as_bytes())),
            // Kept only when the provider re-validates sessions with it.
            refresh_token: finished
                .refresh_token
                .filter(|_| oidc.config.session.revalidate_interval.is_some())
                .map(|t| token_crypto::seal(key, &token_crypto::purpose("refresh_token", &identity), t.as_bytes())),
        };
        self.conclude(&provider, identity, linking, next, browser.unwrap_or_default()).await
    }
}

/// What the callback's query says (RFC 6749 §4.1.2: `code` and `state`, or `error`; RFC 9207:
/// `iss`). The flow is taken by `state` before anything else is looked at, so a refusal or a
/// broken answer still spends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub state: String,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

impl Callback {
    /// The parameters of `query` (the first of each name counts); no `state` → 400.
    pub fn parse(query: &str) -> Result<Callback, SsoError> {
        let (mut state, mut code, mut error, mut error_description, mut iss) = (None, None, None, None, None);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "state" => &mut state,
                "code" => &mut code,
                "error" => &mut error,
                "error_description" => &mut error_description,
                "iss" => &mut iss,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.into_owned());
        }
        Ok(Callback { state: state.ok_or(SsoError::MissingState)?, code, error, error_description, iss })
    }

    /// The authorization code, once the provider's refusal (`error`) and a foreign `iss`
    /// (unless `check_issuer` is off) are ruled out.
    pub fn code(&self, provider: &str, issuer: &str, check_issuer: bool) -> Result<&str, SsoError> {
        if let Some(error) = &self.error {
            return Err(SsoError::IdpRefused { provider: provider.into(), error: error.clone(), description: self.error_description.clone() });
        }
        if let Some(iss) = &self.iss {
            if check_issuer && iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
                return Err(SsoError::InvalidToken { provider: provider.into(), detail: format!("callback iss {iss} is not the issuer") });
            }
        }
        self.code.as_deref().ok_or_else(|| SsoError::BadRequest("the callback has no code".into()))
    }
}

/// Build the identity from verified OIDC claims.
pub fn oidc_identity(provider: &OidcProvider, claims: &serde_json::Value) -> Result<Identity, SsoError> {
    let cfg = &provider.config;
    let invalid = |detail: String| SsoError::InvalidToken { provider: cfg.name.clone(), detail };
    let subject = identity::string_claim(claims, &cfg.subject_claim).ok_or_else(|| invalid(format!("no `{}` claim to link the account by", cfg.subject_claim)))?;
    let username = cfg
        .username_claim
        .as_deref()
        .and_then(|c| identity::string_claim(claims, c))
        .or_else(|| identity::string_claim(claims, "preferred_username"))
        .or_else(|| identity::string_claim(claims, "sub"))
        .and_then(|u| identity::clean_username(&u))
        .ok_or_else(|| invalid("no usable username claim".into()))?;
    Ok(Identity {
        protocol: Protocol::Oidc,
        provider: cfg.name.clone(),
        subject,
        username,
        roles: identity::roles_at(claims, &cfg.role_claim),
        avatar_url: cfg.avatar_url_format.as_deref().and_then(|f| identity::avatar_url(f, claims)),
        sid: claims.get("sid").and_then(serde_json::Value::as_str).map(str::to_string),
        tokens: Default::default(),
    })
}
