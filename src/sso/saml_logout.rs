//! SAML Single Logout at `/sso/SAML/logout/{p}`, with the `saml` crate's own logout support.
//!
//! - IdP-initiated: a `LogoutRequest` (HTTP-Redirect query or HTTP-POST form) is verified by
//!   the library (`ServiceProvider::consume_logout_request`: the signature against the
//!   pinned certificates, Destination, Issuer, NotOnOrAfter); the proxy adds what the
//!   library leaves to its caller: `IssueInstant` within the clock skew and ten minutes, and
//!   the request `ID` never seen before (the ephemeral replay set). Then the sessions of
//!   that `SessionIndex` (or, without one, of that NameID at this provider) are revoked and
//!   a `LogoutResponse` (library-built; signed over the query with our SP key when
//!   `samlSignRequests` is on) goes back to the IdP's single logout URL when there is one
//!   (`samlLogoutEndpoint`, or the IdP metadata's HTTP-Redirect SingleLogoutService).
//! - SP-initiated: `/sso/logout` of a SAML session sends a `LogoutRequest` (library-built,
//!   signed like the LogoutResponse) to that URL; the IdP's `LogoutResponse` arriving here changes
//!   nothing (the session was ended before the request was sent) and lands on Jellyfin's
//!   login page.

use std::time::{Duration, SystemTime};

use http::{Method, Response, StatusCode};
use saml::{Binding, ConsumeLogoutRequest, Dispatch, LogoutStatus, NameId, NameIdFormat, ParsedLogoutRequest, StartLogout};

use super::error::SsoError;
use super::http::{SsoRequest, read_form, redirect};
use super::revocation::Why;
use super::saml::{SamlError, SamlIdp, MAX_ACS_BODY};
use super::saml_login::saml_error;
use super::Sso;
use crate::body::{full, Body};
use crate::state::{Kind, MintedSession};

/// How far from now a LogoutRequest's IssueInstant may be, beyond the clock skew.
const MAX_AGE: Duration = Duration::from_secs(600);


/// A `LogoutRequest` (`body`: the HTTP-Redirect query, or the HTTP-POST form's base64
/// `SAMLRequest`) verified by the library, with an `IssueInstant` within the clock skew and
/// [`MAX_AGE`] of `now`. Not yet checked for replay (that needs the ephemeral state).
pub fn verify_logout_request(idp: &SamlIdp, binding: Binding, body: &str, now: SystemTime) -> Result<ParsedLogoutRequest, SsoError> {
    let name = &idp.config.name;
    let (sp, descriptor) = idp.parts().map_err(|e| saml_error(name, e))?;
    let parsed = sp
        .consume_logout_request(
            &descriptor,
            ConsumeLogoutRequest {
                peer_crypto_policy: None,
                body: body.as_bytes(),
                binding,
                detached_signature: None,
                expected_destination: &idp.slo_url,
                now,
                clock_skew: idp.config.clock_skew,
            },
        )
        .map_err(|e| saml_error(name, SamlError::from(e)))?;
    let window = idp.config.clock_skew + MAX_AGE;
    let fresh = parsed.issue_instant <= now + idp.config.clock_skew && parsed.issue_instant + window >= now;
    if !fresh {
        return Err(saml_error(name, SamlError::Invalid("the LogoutRequest's IssueInstant is too far from now".into())));
    }
    Ok(parsed)
}

impl Sso {
    /// `GET|POST /sso/SAML/logout/{p}`.
    pub(super) async fn saml_logout(&self, idp: &SamlIdp, req: SsoRequest) -> Result<Response<Body>, SsoError> {
        let name = idp.config.name.clone();
        let (binding, body, relay, is_request) = if req.method() == Method::GET {
            let qs = req.uri().query().unwrap_or("").to_string();
            let is_request = url::form_urlencoded::parse(qs.as_bytes()).any(|(k, _)| k == "SAMLRequest");
            (Binding::HttpRedirect, qs, None, is_request)
        } else {
            let form = read_form(req, MAX_ACS_BODY).await?;
            match (form.get("SAMLRequest"), form.get("SAMLResponse")) {
                (Some(r), _) => (Binding::HttpPost, r.clone(), form.get("RelayState").cloned(), true),
                (None, Some(r)) => (Binding::HttpPost, r.clone(), None, false),
                (None, None) => return Err(SsoError::BadRequest("no SAMLRequest or SAMLResponse".into())),
            }
        };
        if !is_request {
            // The answer to our own LogoutRequest: the local session is already gone.
            return Ok(redirect(&format!("{}/web/index.html#/login.html", self.config().public_url.base_path())));
        }
        let now = SystemTime::now();
        let parsed = verify_logout_request(idp, binding, &body, now)?;
        let window = idp.config.clock_skew + MAX_AGE;
        let until = parsed.issue_instant + window + idp.config.clock_skew;
        if !self.state.ephemeral.first_seen(Kind::SamlAssertion, &format!("logout:{name}:{}", parsed.id), until).await? {
            return Err(saml_error(&name, SamlError::Invalid("this LogoutRequest was already used".into())));
        }
        let saml = super::identity::Protocol::Saml.as_str();
        let mints: Vec<MintedSession> = if parsed.session_index.is_empty() {
            self.state.durable.mints_by_subject(saml, &name, &parsed.name_id.value).await?
        } else {
            let mut all = Vec::new();
            for index in &parsed.session_index {
                all.extend(self.state.durable.mints_by_sid(&name, index).await?);
            }
            all.into_iter().filter(|m| m.protocol == saml && m.subject == parsed.name_id.value).collect()
        };
        let n = self.revoke_all(&mints, Why::SamlLogout).await?;
        tracing::info!(provider = %name, sessions = n, "SAML single logout from the IdP");
        if !idp.has_idp_logout() {
            let mut r = Response::new(full("<!doctype html><title>Signed out</title><p>Signed out.</p>"));
            *r.status_mut() = StatusCode::OK;
            return Ok(r);
        }
        let (sp, descriptor) = idp.parts().map_err(|e| saml_error(&name, e))?;
        let d = sp
            .build_logout_response(&descriptor, &parsed, LogoutStatus::Success, parsed.relay_state.as_deref().or(relay.as_deref()), Binding::HttpRedirect)
            .map_err(|e| saml_error(&name, SamlError::from(e)))?;
        match d {
            Dispatch::Redirect(url) => Ok(redirect(url.as_str())),
            Dispatch::Post(_) => Err(saml_error(&name, SamlError::Setup("the library chose the POST binding for a redirect answer".into()))),
        }
    }

    /// `/sso/logout` of a SAML session: the LogoutRequest to the IdP, if it has an SLO URL.
    pub(super) fn saml_logout_request(&self, idp: &SamlIdp, subject: &str, session_index: Option<&str>) -> Option<String> {
        if !idp.has_idp_logout() {
            return None;
        }
        let (sp, descriptor) = idp.parts().ok()?;
        let descriptor = &*descriptor;
        let name_id = NameId::new(subject, NameIdFormat::Unspecified);
        let started = sp.start_logout(descriptor, StartLogout { name_id: &name_id, session_index, relay_state: None, reason: None, binding: Binding::HttpRedirect });
        match started {
            Ok(d) => match d.dispatch {
                Dispatch::Redirect(url) => Some(url.to_string()),
                Dispatch::Post(_) => None,
            },
            Err(e) => {
                tracing::warn!(provider = %idp.config.name, error = %e, "cannot build the SAML LogoutRequest; signing out of Jellyfin only");
                None
            }
        }
    }
}
