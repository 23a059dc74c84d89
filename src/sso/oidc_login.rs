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
use crate::config::provider::{OidcConfig, Preset};
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
    let claims = &usable_claims(claims);
    let invalid = |detail: String| SsoError::InvalidToken { provider: cfg.name.clone(), detail };
    let subject = identity::string_claim(claims, &cfg.subject_claim).ok_or_else(|| invalid(format!("no `{}` claim to link the account by", cfg.subject_claim)))?;
    let short = cfg.preset.is_some_and(Preset::short_names);
    let username = cfg
        .username_claim
        .as_deref()
        .and_then(|c| identity::string_claim(claims, c))
        .or_else(|| identity::string_claim(claims, "preferred_username"))
        .or_else(|| identity::string_claim(claims, "sub"))
        .map(|u| if short { short_name(&u).to_string() } else { u })
        .and_then(|u| identity::clean_username(&u))
        .ok_or_else(|| invalid("no usable username claim".into()))?;
    Ok(Identity {
        protocol: Protocol::Oidc,
        provider: cfg.name.clone(),
        subject,
        username,
        roles: oidc_roles(cfg, claims),
        avatar_url: cfg.avatar_url_format.as_deref().and_then(|f| identity::avatar_url(f, claims)),
        sid: claims.get("sid").and_then(serde_json::Value::as_str).map(str::to_string),
        tokens: Default::default(),
        legacy_names: plugin_link_names(cfg.username_claim.as_deref(), claims),
    })
}

/// The keys the SSO plugin may have stored this person's canonical link under, most
/// trustworthy first: `sub` (the plugin fell back to it without the username claim, and
/// forks key links by it), then the username claim's value as the plugin read it, untrimmed
/// and uncleaned: `DefaultUsernameClaim`, else `preferred_username`
/// (9p4/jellyfin-plugin-sso `SSO-Auth/Api/SSOController.cs`, `OidPost`: the claim loop sets
/// `timedState.Username`, the `sub` loop after it is the fallback; `OidAuth` passes that
/// name to `CreateCanonicalLinkAndUserIfNotExist`).
pub fn plugin_link_names(username_claim: Option<&str>, claims: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let claim = username_claim.unwrap_or("preferred_username");
    let raw = |name: &str| match claims.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    for name in [raw("sub"), raw(claim)].into_iter().flatten() {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The roles at the provider's `roleClaim`; with the Kanidm preset, each `name@domain` SPN
/// also counts as its `name`, so `roles` can list group names.
pub fn oidc_roles(cfg: &OidcConfig, claims: &serde_json::Value) -> Vec<String> {
    let mut roles = identity::roles_at(&usable_claims(claims), &cfg.role_claim);
    if cfg.preset.is_some_and(Preset::short_names) {
        let short: Vec<String> = roles.iter().filter(|r| r.contains('@')).map(|r| short_name(r).to_string()).collect();
        for s in short {
            if !roles.contains(&s) {
                roles.push(s);
            }
        }
    }
    roles
}

fn short_name(spn: &str) -> &str {
    spn.rsplit_once('@').map_or(spn, |(name, _)| name)
}

/// The claims without `email` when the provider says it is not verified (`email_verified`
/// false), so an unverified address can never be a username or pass a role gate of e-mail
/// addresses.
fn usable_claims(claims: &serde_json::Value) -> serde_json::Value {
    let unverified = matches!(claims.get("email_verified"), Some(serde_json::Value::Bool(false)))
        || claims.get("email_verified").and_then(serde_json::Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case("false"));
    let mut c = claims.clone();
    if unverified {
        if let Some(m) = c.as_object_mut() {
            m.remove("email");
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::provider::oidc_from_json;
    use serde_json::json;

    fn provider(extra: serde_json::Value) -> OidcProvider {
        let mut j = json!({"oidEndpoint": "https://id.example.com", "oidClientId": "jf", "oidSecret": "s"});
        j.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let cfg = oidc_from_json("p", &j, std::path::Path::new("/nonexistent")).unwrap();
        OidcProvider::new(cfg, "https://jf.example/sso/OID/redirect/p", crate::sso::idp_http::IdpHttp::new(reqwest::Client::new(), Default::default()))
    }

    #[test]
    fn kanidm_spns_count_as_short_names_for_roles_and_username() {
        let claims = json!({"sub": "5f1c", "preferred_username": "alice@idm.example.com", "groups": ["jellyfin_users@idm.example.com", "00000000-0000-0000-0000-000000000035"]});
        let id = oidc_identity(&provider(json!({"preset": "kanidm"})), &claims).unwrap();
        assert_eq!(id.username, "alice");
        assert_eq!(id.roles, ["jellyfin_users@idm.example.com", "00000000-0000-0000-0000-000000000035", "jellyfin_users"]);
        // Without the preset the SPN is kept as it is.
        let id = oidc_identity(&provider(json!({"roleClaim": "groups"})), &claims).unwrap();
        assert_eq!(id.username, "alice@idm.example.com");
        assert_eq!(id.roles, ["jellyfin_users@idm.example.com", "00000000-0000-0000-0000-000000000035"]);
    }

    #[test]
    fn an_unverified_email_is_neither_username_nor_role() {
        let google = provider(json!({"preset": "google", "roles": ["alice@gmail.com"]}));
        let verified = json!({"sub": "1234567890", "email": "alice@gmail.com", "email_verified": true});
        let id = oidc_identity(&google, &verified).unwrap();
        assert_eq!((id.username.as_str(), id.roles.as_slice()), ("alice@gmail.com", &["alice@gmail.com".to_string()][..]));
        let unverified = json!({"sub": "1234567890", "email": "alice@gmail.com", "email_verified": false});
        let id = oidc_identity(&google, &unverified).unwrap();
        assert_eq!(id.username, "1234567890", "falls back to the subject");
        assert!(id.roles.is_empty());
        assert!(oidc_roles(&google.config, &json!({"email": "alice@gmail.com", "email_verified": "false"})).is_empty());
    }
}
