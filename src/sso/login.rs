//! The protocol-neutral login path, shared by OIDC and SAML.
//!
//! - [`Sso::begin`]: a new pending flow (an enum with each protocol's own state), bound to
//!   the browser by the `__Host-jsp-flow` cookie, then the protocol's redirect to the
//!   provider. The flow's id is the OIDC `state` or the SAML RelayState.
//! - [`Sso::take_flow`]: the callback takes the flow once (replay, another browser, expiry
//!   and another provider are all refused).
//! - [`Sso::conclude`]: from a verified [`Identity`] on, everything is the same: the role
//!   gate, a link imported from the plugin re-keyed to the subject ([`super::legacy_links`]),
//!   then the completion page with a one-time handle bound to the same cookie.
//! - [`Sso::auth`]: the completion page posts the handle and its device; the identity is
//!   signed in to Jellyfin ([`super::provision`]) and the proxy's browser session is set.
//!
//! Pending entries live in the ephemeral state as bytes, so another backend can hold them;
//! the SAML library's tracker is sealed (AES-256-GCM) before it is stored, as the library
//! requires of anything that leaves the process.

use std::time::{Duration, SystemTime};

use http::header::SET_COOKIE;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::SsoError;
use super::http::{SsoRequest, json_response, read_json, redirect, AuthBody};
use super::identity::{self, Grants, Identity, Protocol};
use super::oidc::AuthRequest;
use super::registry::Provider;
use super::session::BrowserSession;
use super::{complete, Sso};
use crate::body::Body;
use crate::context::RequestContext;
use crate::cookie::{self, SameSite};
use crate::state::{looks_like_token, random_token, Kind};

/// How long the completion page has to call `Auth`.
const COMPLETION_TTL: Duration = Duration::from_secs(120);

/// Where the completion page goes once signed in: fixed when the flow starts (by the start
/// endpoint used), never taken from the request that finishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Next {
    /// Jellyfin's web client (`/web/index.html`).
    #[default]
    WebClient,
    /// The device-linking page (`/sso/link`).
    DeviceLink,
}

impl Next {
    /// The path (under the base path) the completion page opens.
    pub fn path(self) -> &'static str {
        match self {
            Next::WebClient => "/web/index.html",
            Next::DeviceLink => "/sso/link",
        }
    }
}

/// A login between start and callback: each protocol's own state.
#[derive(Serialize, Deserialize)]
pub enum PendingFlow {
    Oidc {
        provider: String,
        linking: bool,
        auth: AuthRequest,
        #[serde(default)]
        next: Next,
    },
    /// `tracker`: the library's LoginTracker (request id, IdP, ACS, pinned certificates), sealed.
    Saml {
        provider: String,
        linking: bool,
        tracker: String,
        #[serde(default)]
        next: Next,
    },
}

impl PendingFlow {
    pub fn protocol(&self) -> Protocol {
        match self {
            PendingFlow::Oidc { .. } => Protocol::Oidc,
            PendingFlow::Saml { .. } => Protocol::Saml,
        }
    }
    pub fn provider(&self) -> &str {
        match self {
            PendingFlow::Oidc { provider, .. } | PendingFlow::Saml { provider, .. } => provider,
        }
    }
    pub fn linking(&self) -> bool {
        match self {
            PendingFlow::Oidc { linking, .. } | PendingFlow::Saml { linking, .. } => *linking,
        }
    }
    pub fn next(&self) -> Next {
        match self {
            PendingFlow::Oidc { next, .. } | PendingFlow::Saml { next, .. } => *next,
        }
    }
}

/// A verified identity waiting for the completion page's `Auth` (or `Link`) call.
#[derive(Serialize, Deserialize)]
pub struct PendingCompletion {
    pub identity: Identity,
    pub grants: Grants,
    pub linking: bool,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("pending entries serialize")
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, SsoError> {
    serde_json::from_slice(bytes).map_err(|e| SsoError::Storage(format!("a pending entry could not be read back: {e}")))
}

impl Sso {
    /// `GET /sso/{OID,SAML}/start/{p}[?isLinking=true]`.
    pub(super) async fn begin(&self, provider: Provider, linking: bool, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        self.begin_for(provider, linking, Next::WebClient, ctx).await
    }

    /// [`Sso::begin`], with where the completion page goes afterwards.
    pub(super) async fn begin_for(&self, provider: Provider, linking: bool, next: Next, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        // Refuse before anything is sent to the identity provider: first one client's share,
        // then the global cap, so one client cannot lock everyone else out.
        // The settings in service when this login starts, read once.
        let sso = self.config().sso.clone();
        let window = sso.flow_ttl;
        let started = self.state.ephemeral.hit(Kind::Rate("flow-start"), &ctx.client_ip.to_string(), window).await?;
        if started > sso.max_pending_flows_per_client as u64 {
            return Err(SsoError::TooManyStarts { client: ctx.client_ip, retry_after: window });
        }
        let pending = self.state.ephemeral.count(Kind::Flow).await?;
        if pending >= sso.max_pending_flows {
            let _ = self.state.ephemeral.sweep().await;
            if self.state.ephemeral.count(Kind::Flow).await? >= sso.max_pending_flows {
                return Err(SsoError::Busy(pending));
            }
        }
        let (browser, new_cookie) = match ctx.cookies.flow.as_deref().filter(|c| looks_like_token(c)) {
            Some(c) => (c.to_string(), false),
            None => (random_token(), true),
        };
        let id = random_token();
        let name = provider.name().to_string();
        let (url, flow) = match &provider {
            Provider::Oidc(p) => {
                let auth = AuthRequest::new_random();
                let url = p.authorization_url(&id, &auth).await.map_err(|e| SsoError::IdpUnavailable { provider: name.clone(), detail: e.to_string() })?;
                (url.to_string(), PendingFlow::Oidc { provider: name.clone(), linking, auth, next })
            }
            Provider::Saml(idp) => {
                let (url, tracker) = idp.start(&id).await.map_err(|e| super::saml_login::saml_error(&name, e))?;
                let sealed = tracker.to_payload().seal(&self.seal_key).map_err(|e| SsoError::Storage(format!("cannot seal the SAML tracker: {e}")))?;
                (url, PendingFlow::Saml { provider: name.clone(), linking, tracker: sealed, next })
            }
        };
        self.state.ephemeral.put_once(Kind::Flow, &id, &browser, sso.flow_ttl, encode(&flow)).await?;
        let mut r = redirect(&url);
        let ttl = sso.flow_ttl;
        if new_cookie {
            r.headers_mut().append(SET_COOKIE, cookie::set(cookie::FLOW, &browser, SameSite::Lax, ttl));
        }
        if provider.protocol() == Protocol::Saml {
            r.headers_mut().append(SET_COOKIE, cookie::set(cookie::SAML_FLOW, &browser, SameSite::None, ttl));
        }
        Ok(r)
    }

    /// Take the flow `id` once for `browser`; it must belong to `provider`.
    pub(super) async fn take_flow(&self, id: &str, browser: Option<&str>, provider: &Provider) -> Result<PendingFlow, SsoError> {
        let flow: PendingFlow = decode(&self.state.ephemeral.take(Kind::Flow, id, browser).await?)?;
        if flow.protocol() != provider.protocol() || flow.provider() != provider.name() {
            return Err(SsoError::BadRequest("this sign-in was started for another provider".into()));
        }
        Ok(flow)
    }

    /// Open a sealed SAML tracker of a flow no older than the flow TTL.
    pub(super) fn open_tracker(&self, sealed: &str) -> Result<::saml::LoginTracker, SsoError> {
        ::saml::LoginTracker::open(sealed, &self.seal_key, SystemTime::now(), self.config().sso.flow_ttl + Duration::from_secs(60))
            .map_err(|e| SsoError::Storage(format!("the SAML tracker could not be opened: {e}")))
    }

    /// A verified identity: role gate, then the completion page.
    pub(super) async fn conclude(&self, provider: &Provider, identity: Identity, linking: bool, next: Next, browser: &str) -> Result<Response<Body>, SsoError> {
        let grants = identity::decide(&identity.roles, provider.grants());
        if !grants.allowed {
            return Err(SsoError::NotAllowed { provider: provider.name().to_string(), username: identity.username });
        }
        // Links imported from the SSO plugin were keyed by name: re-key this one to the subject.
        self.claim_imported_link(provider, &identity).await?;
        let handle = random_token();
        let pending = PendingCompletion { identity, grants, linking };
        self.state.ephemeral.put_once(Kind::Completion, &handle, browser, COMPLETION_TTL, encode(&pending)).await?;
        let info = self.provision.server_info().await.ok();
        let (server_name, version) = info.map(|i| (i.server_name, i.version)).unwrap_or_else(|| ("Jellyfin".into(), "10.10.0".into()));
        Ok(complete::page(&complete::Completion {
            protocol: provider.protocol().url_segment(),
            provider: provider.name(),
            handle: &handle,
            server_url: &self.config().public_url.join(""),
            base_path: self.config().public_url.base_path(),
            server_name: &server_name,
            app_version: &version,
            linking,
            next: next.path(),
        }))
    }

    /// Take the completion handle posted by the page.
    pub(super) async fn take_completion(&self, handle: &str, ctx: &RequestContext) -> Result<PendingCompletion, SsoError> {
        decode(&self.state.ephemeral.take(Kind::Completion, handle, ctx.cookies.flow.as_deref()).await?)
    }

    /// `POST /sso/{OID,SAML}/Auth/{p}` with `{deviceId, deviceName, appName, appVersion, data}`.
    pub(super) async fn auth(&self, provider: Provider, req: SsoRequest, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let body: AuthBody = read_json(req).await?;
        let pending = self.take_completion(&body.data, ctx).await?;
        if pending.identity.provider != provider.name() || pending.identity.protocol != provider.protocol() || pending.linking {
            return Err(SsoError::BadRequest("this sign-in belongs to another provider or is a linking flow".into()));
        }
        let device = body.device()?;
        let result = self.provision.sign_in(&pending.identity, provider.grants(), &pending.grants, &device).await?;
        let json = serde_json::to_vec(&result).expect("AuthenticationResult serializes");
        let mut r = json_response(StatusCode::OK, json);
        let session = BrowserSession {
            token: result.access_token.clone(),
            user_id: result.user.get("Id").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            device_id: device.device_id.clone(),
            protocol: provider.protocol().as_str().into(),
            provider: provider.name().into(),
            identity: Some(pending.identity.clone()),
            grants: Some(pending.grants.clone()),
            signed_out: None,
        };
        let set = self.sessions.create(&session).await?;
        r.headers_mut().insert(SET_COOKIE, set);
        let name = result.user.get("Name").and_then(|v| v.as_str()).unwrap_or(&pending.identity.username);
        self.obs.login_succeeded(&pending.identity, &session.user_id, name);
        Ok(r)
    }
}
