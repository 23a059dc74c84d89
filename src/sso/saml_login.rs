//! The SAML side of a login: the ACS (HTTP-POST binding) and the SP metadata, and the
//! verified assertion turned into an [`Identity`]. The AuthnRequest is built by
//! [`super::saml`]; from the identity on, the shared path in [`super::login`] takes over.
//!
//! The IdP's POST to the ACS is cross-site, so it carries only the SameSite=None
//! `__Host-jsp-saml` cookie, not the Lax flow cookie; it is cleared once used. Signature
//! verification (RSA) runs on a blocking thread so a worker's other connections go on.

use http::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use http::Response;

use super::error::SsoError;
use super::http::{read_form, SsoRequest};
use super::identity::{self, Identity, Protocol};
use super::login::PendingFlow;
use super::registry::Provider;
use super::saml::{self, SamlError, SamlIdp};
use super::Sso;
use crate::body::{full, Body};
use crate::context::RequestContext;
use crate::cookie::{self, SameSite};

impl Sso {
    /// `POST /sso/SAML/post/{p}` (and the plugin's alias `/sso/SAML/p/{p}`).
    pub(super) async fn saml_acs(&self, provider: Provider, req: SsoRequest, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let Provider::Saml(idp) = &provider else { return Err(SsoError::UnknownProvider(provider.name().to_string())) };
        let name = provider.name().to_string();
        let browser = ctx.cookies.saml_flow.clone().or_else(|| ctx.cookies.flow.clone());
        let form = read_form(req, saml::MAX_ACS_BODY).await?;
        let relay = form.get("RelayState").ok_or(SsoError::MissingState)?;
        let response = form.get("SAMLResponse").ok_or_else(|| SsoError::BadRequest("the POST has no SAMLResponse".into()))?;
        let PendingFlow::Saml { linking, tracker, next, .. } = self.take_flow(relay, browser.as_deref(), &provider).await? else {
            return Err(SsoError::MissingState);
        };
        let tracker = self.open_tracker(&tracker)?;
        let (idp2, response, relay2, replay) = (idp.clone(), response.clone(), relay.clone(), self.replay.clone());
        let asserted = tokio::task::spawn_blocking(move || idp2.finish(&response, &relay2, &tracker, &replay))
            .await
            .map_err(|e| SsoError::Storage(format!("SAML verification task failed: {e}")))?
            .map_err(|e| saml_error(&name, e))?;
        let identity = saml_identity(idp, &asserted)?;
        let mut page = self.conclude(&provider, identity, linking, next, browser.as_deref().unwrap_or_default()).await?;
        // The cross-site cookie has done its job.
        page.headers_mut().append(SET_COOKIE, cookie::clear(cookie::SAML_FLOW, SameSite::None));
        Ok(page)
    }

    /// `GET /sso/SAML/metadata/{p}`: our SP metadata, for the IdP administrator.
    pub(super) fn saml_metadata(&self, provider: Provider) -> Result<Response<Body>, SsoError> {
        let Provider::Saml(idp) = &provider else { return Err(SsoError::UnknownProvider(provider.name().to_string())) };
        let xml = idp.metadata_xml().map_err(|e| saml_error(provider.name(), e))?;
        let mut r = Response::new(full(xml.into_bytes()));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
        Ok(r)
    }
}

/// Build the identity from a verified SAML assertion: the link key is the NameID (or, for a
/// transient NameID, the username attribute), the username the `usernameAttribute` or the
/// NameID, the roles the values of `roleAttribute`.
pub fn saml_identity(idp: &SamlIdp, a: &saml::Asserted) -> Result<Identity, SsoError> {
    let cfg = &idp.config;
    let invalid = |detail: String| SsoError::InvalidToken { provider: cfg.name.clone(), detail };
    let username = match &cfg.username_attribute {
        Some(attr) => a.values(attr).into_iter().find(|v| !v.trim().is_empty()).ok_or_else(|| invalid(format!("the assertion has no `{attr}` attribute")))?,
        None => a.name_id.clone(),
    };
    let username = identity::clean_username(&username).ok_or_else(|| invalid("no usable username in the assertion".into()))?;
    let subject = match (a.transient, &cfg.username_attribute) {
        (false, _) => a.name_id.clone(),
        (true, Some(_)) => username.clone(),
        (true, None) => return Err(invalid("the NameID is transient, so it cannot identify an account: set usernameAttribute or have the IdP send a persistent NameID".into())),
    };
    Ok(Identity { protocol: Protocol::Saml, provider: cfg.name.clone(), subject, username, roles: a.values(&cfg.role_attribute), avatar_url: None, sid: a.session_index.clone(), tokens: Default::default(), legacy_names: Vec::new() })
}

/// The words for a failed SAML step.
pub fn saml_error(provider: &str, e: SamlError) -> SsoError {
    let provider = provider.to_string();
    match e {
        SamlError::Malformed(m) => SsoError::BadRequest(format!("The sign-in response is malformed: {m}")),
        SamlError::Status { code, message } => SsoError::IdpRefused { provider, error: code, description: message },
        SamlError::Invalid(detail) => SsoError::InvalidToken { provider, detail },
        SamlError::Full => SsoError::ReplayCacheFull,
        SamlError::Setup(detail) => SsoError::IdpUnavailable { provider, detail },
        SamlError::Backend(detail) => SsoError::Storage(detail),
        e @ SamlError::Metadata(_) => SsoError::IdpUnavailable { provider, detail: e.to_string() },
    }
}
