//! The `/sso/` endpoints: the SSO plugin's HTTP API, served by the proxy.
//!
//! Routing is by path segments, matched without regard to case as ASP.NET did for the
//! plugin. Each handler returns `Result<Response, SsoError>`; errors are rendered in one
//! place ([`crate::error::respond`]). The login flow:
//!
//! - `GET /sso/OID/start/{p}`: new flow (state, nonce, PKCE) in [`flows`], bound to the
//!   browser by the `__Host-jsp-flow` cookie → redirect to the provider ([`oidc`]).
//! - `GET /sso/OID/redirect/{p}`: take the flow once, check the cookie, verify the login,
//!   build the [`identity::Identity`], apply the role gate → [`complete`] page with a one-time
//!   handle (itself a flow entry bound to the same cookie).
//! - `POST /sso/OID/Auth/{p}`: take the handle, [`login`] signs the identity in to Jellyfin
//!   for the posted device → `AuthenticationResult` JSON, plus the proxy session cookie.

pub mod admin;
pub mod complete;
pub mod error;
pub mod flows;
pub mod identity;
pub mod linking_page;
pub mod login;
pub mod oidc;
pub mod saml;
pub mod session;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::body::{empty, full, Body};
use crate::config::Config;
use crate::error::respond;
use crate::jellyfin::{DeviceInfo, Jellyfin};
use crate::proxy::Upstream;
use crate::store::Store;
use error::SsoError;
use flows::{looks_like_token, random_token, FlowStore};
use identity::{Grants, Identity, Protocol};
use login::Login;
use oidc::{AuthRequest, OidcProvider};
use saml::{SamlError, SamlIdp};
use session::{cookie, Sessions};

/// Binds a login to the browser that started it (SameSite=Lax: sent on the OIDC callback,
/// a top-level GET, and on the completion page's same-origin calls).
pub const FLOW_COOKIE: &str = "__Host-jsp-flow";
/// The same value for the SAML ACS, which the IdP reaches with a cross-site POST that never
/// carries Lax cookies. SameSite=None, so it is Secure, HttpOnly, and lives only as long as
/// a flow.
pub const SAML_FLOW_COOKIE: &str = "__Host-jsp-saml";
/// How long the completion page has to call `Auth`.
const COMPLETION_TTL: Duration = Duration::from_secs(120);
/// Largest JSON body accepted by the `/sso/` POST endpoints.
const MAX_JSON_BODY: usize = 16 * 1024;

/// A login between start and callback.
pub struct PendingFlow {
    pub protocol: Protocol,
    pub provider: String,
    pub linking: bool,
    pub oidc: Option<AuthRequest>,
    /// The AuthnRequest's id and what it pinned (IdP, ACS, certificates).
    pub saml: Option<::saml::LoginTracker>,
}

/// A verified identity waiting for the completion page's `Auth` call.
pub struct PendingCompletion {
    pub identity: Identity,
    pub grants: Grants,
    pub linking: bool,
}

pub struct Sso {
    config: Arc<Config>,
    upstream: Upstream,
    pub login: Login,
    oidc: RwLock<HashMap<String, Arc<OidcProvider>>>,
    saml: RwLock<HashMap<String, Arc<SamlIdp>>>,
    /// Assertion ids seen, until their NotOnOrAfter: a captured response cannot be replayed.
    replay: ::saml::InMemoryReplayCache,
    pub flows: FlowStore<PendingFlow>,
    completions: FlowStore<PendingCompletion>,
    pub sessions: Sessions,
    callers: admin::CallerCache,
    idp_http: reqwest::Client,
}

/// An HTTP client for identity providers: no redirects followed, bounded time.
pub fn idp_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("jellyfin-sso-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("reqwest client")
}

impl Sso {
    pub fn new(config: Arc<Config>, upstream: Upstream, store: Arc<Store>) -> Sso {
        let jellyfin = Jellyfin::new(
            &config.jellyfin.url,
            config.jellyfin.api_key.clone(),
            config.limits.upstream_connect_timeout,
            config.limits.upstream_header_timeout,
        );
        let http = idp_http_client();
        let mut oidc = HashMap::new();
        for p in &config.oid_providers {
            let redirect = config.public_url.join(&format!("/sso/OID/redirect/{}", p.name));
            oidc.insert(p.name.clone(), Arc::new(OidcProvider::new(p.clone(), &redirect, http.clone())));
        }
        let api_defined = store.read().oid_providers.clone();
        let api_saml = store.read().saml_providers.clone();
        let mut saml = HashMap::new();
        for p in &config.saml_providers {
            match SamlIdp::new(p.clone(), |path| config.public_url.join(path)) {
                Ok(idp) => {
                    saml.insert(p.name.clone(), Arc::new(idp));
                }
                Err(e) => tracing::error!(provider = %p.name, "SAML provider stays disabled: {e}"),
            }
        }
        for (name, json) in api_saml {
            if saml.contains_key(&name) || config.saml_providers.iter().any(|p| p.name == name) {
                tracing::warn!(provider = %name, "SAML provider in the state directory is shadowed by proxy.yaml");
                continue;
            }
            match crate::config::provider::saml_from_json(&name, &json, &config.state_dir) {
                Ok(p) => match SamlIdp::new(p, |path| config.public_url.join(path)) {
                    Ok(idp) => {
                        saml.insert(name, Arc::new(idp));
                    }
                    Err(e) => tracing::error!(provider = %name, "stored SAML provider stays disabled: {e}"),
                },
                Err(problems) => {
                    for p in problems {
                        tracing::error!(provider = %name, "stored SAML provider is invalid and stays disabled: {p}");
                    }
                }
            }
        }
        let sso = Sso {
            login: Login::new(jellyfin, store, http.clone()),
            oidc: RwLock::new(oidc),
            saml: RwLock::new(saml),
            replay: ::saml::InMemoryReplayCache::new(config.sso.max_pending_flows.max(1000)),
            flows: FlowStore::new(config.sso.flow_ttl, config.sso.max_pending_flows),
            completions: FlowStore::new(COMPLETION_TTL, config.sso.max_pending_flows),
            sessions: Sessions::new(config.sso.session_ttl),
            callers: admin::CallerCache::default(),
            idp_http: http,
            config,
            upstream,
        };
        // Providers added through the admin API, validated again as they are loaded.
        for (name, json) in api_defined {
            if sso.config.oid_providers.iter().any(|p| p.name == name) {
                tracing::warn!(provider = %name, "provider in the state directory is shadowed by proxy.yaml");
                continue;
            }
            match crate::config::provider::oid_from_json(&name, &json, &sso.config.state_dir) {
                Ok(p) => sso.install_oid(p),
                Err(problems) => {
                    for p in problems {
                        tracing::error!(provider = %name, "stored provider is invalid and stays disabled: {p}");
                    }
                }
            }
        }
        sso
    }

    /// Sweep expired flows, handles and sessions, forever.
    pub async fn sweep_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            self.flows.sweep();
            self.completions.sweep();
            self.sessions.sweep();
        }
    }

    pub fn oidc_providers(&self) -> Vec<Arc<OidcProvider>> {
        self.oidc.read().expect("providers lock").values().cloned().collect()
    }

    fn oidc_provider(&self, name: &str) -> Result<Arc<OidcProvider>, SsoError> {
        enabled(&self.oidc, name, |p| p.config.enabled)
    }

    fn saml_idp(&self, name: &str) -> Result<Arc<SamlIdp>, SsoError> {
        enabled(&self.saml, name, |p| p.config.enabled)
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let headers = req.headers().clone();
        match self.route(req).await {
            Ok(r) => r,
            Err(e) => respond(&e, &headers),
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let path = req.uri().path().strip_prefix(self.config.public_url.base_path()).unwrap_or("").to_string();
        let segs: Vec<&str> = path.trim_start_matches("/sso").trim_matches('/').split('/').collect();
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let method = req.method().clone();
        match (&method, l.as_slice()) {
            (&Method::GET | &Method::HEAD, ["health"]) => Ok(self.health().await),
            (&Method::GET, ["oid", "start" | "p", _]) => self.oidc_start(segs[2], &req).await,
            (&Method::GET, ["oid", "redirect" | "r", _]) => self.oidc_redirect(segs[2], &req).await,
            (&Method::POST, ["oid", "auth", _]) => self.auth(Protocol::Oid, segs[2].to_string(), req).await,
            (&Method::GET, ["saml", "start" | "p", _]) => self.saml_start(segs[2], &req),
            (&Method::POST, ["saml", "post" | "p", _]) => self.saml_acs(segs[2].to_string(), req).await,
            (&Method::POST, ["saml", "auth", _]) => self.auth(Protocol::Saml, segs[2].to_string(), req).await,
            (&Method::GET, ["saml", "metadata", _]) => self.saml_metadata(segs[2]),
            _ => match self.admin_route(&segs, req).await {
                Some(r) => r,
                None => Err(SsoError::NotFound),
            },
        }
    }

    /// `GET /sso/OID/start/{p}[?isLinking=true]`.
    async fn oidc_start(&self, name: &str, req: &Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let provider = self.oidc_provider(name)?;
        let linking = query_flag(req, "isLinking");
        let (browser, new_cookie) = browser_token(req.headers());
        let auth = AuthRequest::new_random();
        let pending = PendingFlow { protocol: Protocol::Oid, provider: name.to_string(), linking, oidc: Some(auth.clone()), saml: None };
        let state = self.flows.insert(&browser, pending).map_err(|_| SsoError::Busy(self.flows.len()))?;
        let url = match provider.authorization_url(&state, &auth).await {
            Ok(u) => u,
            Err(e) => {
                let _ = self.flows.take(&state, Some(&browser));
                return Err(SsoError::IdpUnavailable { provider: name.to_string(), detail: e.to_string() });
            }
        };
        let mut r = redirect(url.as_str());
        if new_cookie {
            r.headers_mut().append(SET_COOKIE, self.flow_cookie(FLOW_COOKIE, &browser, "Lax"));
        }
        Ok(r)
    }

    fn flow_cookie(&self, name: &str, browser: &str, same_site: &str) -> HeaderValue {
        let v = format!("{name}={browser}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={}", self.config.sso.flow_ttl.as_secs());
        HeaderValue::from_str(&v).expect("token is header-safe")
    }

    /// `GET /sso/SAML/start/{p}[?isLinking=true]`: an AuthnRequest by HTTP-Redirect; the
    /// flow's id travels as RelayState and the request id stays here, in the flow.
    fn saml_start(&self, name: &str, req: &Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let idp = self.saml_idp(name)?;
        let linking = query_flag(req, "isLinking");
        let (browser, new_cookie) = browser_token(req.headers());
        let id = random_token();
        let (url, tracker) = idp.start(&id).map_err(|e| saml_error(name, e))?;
        let pending = PendingFlow { protocol: Protocol::Saml, provider: name.to_string(), linking, oidc: None, saml: Some(tracker) };
        self.flows.insert_as(id, &browser, pending).map_err(|_| SsoError::Busy(self.flows.len()))?;
        let mut r = redirect(&url);
        if new_cookie {
            r.headers_mut().append(SET_COOKIE, self.flow_cookie(FLOW_COOKIE, &browser, "Lax"));
        }
        r.headers_mut().append(SET_COOKIE, self.flow_cookie(SAML_FLOW_COOKIE, &browser, "None"));
        Ok(r)
    }

    /// `POST /sso/SAML/post/{p}` (and the plugin's alias `/sso/SAML/p/{p}`): the ACS, HTTP-POST
    /// binding.
    async fn saml_acs(&self, name: String, req: Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let idp = self.saml_idp(&name)?;
        let browser = cookie(req.headers(), SAML_FLOW_COOKIE).or_else(|| cookie(req.headers(), FLOW_COOKIE)).map(str::to_string);
        let form = read_form(req, saml::MAX_ACS_BODY).await?;
        let relay = form.get("RelayState").ok_or(SsoError::MissingState)?;
        let response = form.get("SAMLResponse").ok_or_else(|| SsoError::BadRequest("the POST has no SAMLResponse".into()))?;
        let flow = self.flows.take(relay, browser.as_deref())?;
        if flow.protocol != Protocol::Saml || flow.provider != name {
            return Err(SsoError::BadRequest("this sign-in was started for another provider".into()));
        }
        let tracker = flow.saml.as_ref().ok_or(SsoError::MissingState)?;
        let asserted = idp.finish(response, relay, tracker, &self.replay).map_err(|e| saml_error(&name, e))?;
        let identity = saml_identity(&idp, &asserted)?;
        let grants = identity::decide(&identity.roles, &idp.config.grants);
        if !grants.allowed {
            return Err(SsoError::NotAllowed { provider: name, username: identity.username });
        }
        let mut page = self.completion_page("SAML", &name, identity, grants, flow.linking, browser.as_deref().unwrap_or_default()).await?;
        // The cross-site cookie has done its job.
        let gone = format!("{SAML_FLOW_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0");
        page.headers_mut().append(SET_COOKIE, HeaderValue::from_str(&gone).expect("static cookie"));
        Ok(page)
    }

    /// `GET /sso/SAML/metadata/{p}`: our SP metadata, for the IdP administrator.
    fn saml_metadata(&self, name: &str) -> Result<Response<Body>, SsoError> {
        let idp = self.saml_idp(name)?;
        let xml = idp.metadata_xml().map_err(|e| saml_error(name, e))?;
        let mut r = Response::new(full(xml.into_bytes()));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
        Ok(r)
    }

    /// `GET /sso/OID/redirect/{p}?code&state` (or `error`).
    async fn oidc_redirect(&self, name: &str, req: &Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let provider = self.oidc_provider(name)?;
        let q: HashMap<String, String> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
        let state = q.get("state").ok_or(SsoError::MissingState)?;
        let browser = cookie(req.headers(), FLOW_COOKIE);
        let flow = self.flows.take(state, browser)?;
        if flow.protocol != Protocol::Oid || flow.provider != name {
            return Err(SsoError::BadRequest("this sign-in was started for another provider".into()));
        }
        if let Some(error) = q.get("error") {
            return Err(SsoError::IdpRefused { provider: name.into(), error: error.clone(), description: q.get("error_description").cloned() });
        }
        if let Some(iss) = q.get("iss") {
            if !provider.config.do_not_validate_issuer_name && iss.trim_end_matches('/') != provider.issuer().trim_end_matches('/') {
                return Err(SsoError::InvalidToken { provider: name.into(), detail: format!("callback iss {iss} is not the issuer") });
            }
        }
        let code = q.get("code").ok_or_else(|| SsoError::BadRequest("the callback has no code".into()))?;
        let auth = flow.oidc.as_ref().ok_or(SsoError::MissingState)?;
        let claims = provider.finish(code, auth).await.map_err(|e| match e {
            oidc::OidcError::InvalidToken(detail) => SsoError::InvalidToken { provider: name.into(), detail },
            other => SsoError::IdpUnavailable { provider: name.into(), detail: other.to_string() },
        })?;
        let identity = oidc_identity(&provider, &claims)?;
        let grants = identity::decide(&identity.roles, &provider.config.grants);
        if !grants.allowed {
            return Err(SsoError::NotAllowed { provider: name.into(), username: identity.username });
        }
        self.completion_page("OID", name, identity, grants, flow.linking, browser.unwrap_or_default()).await
    }

    async fn completion_page(&self, mode: &str, provider: &str, identity: Identity, grants: Grants, linking: bool, browser: &str) -> Result<Response<Body>, SsoError> {
        let handle = self.completions.insert(browser, PendingCompletion { identity, grants, linking }).map_err(|_| SsoError::Busy(self.completions.len()))?;
        let info = self.login.server_info().await.ok();
        let (server_name, version) = info.map(|i| (i.server_name, i.version)).unwrap_or_else(|| ("Jellyfin".into(), "10.10.0".into()));
        Ok(complete::page(&complete::Completion {
            mode,
            provider,
            handle: &handle,
            server_url: &self.config.public_url.join(""),
            base_path: self.config.public_url.base_path(),
            server_name: &server_name,
            app_version: &version,
            linking,
        }))
    }

    /// `POST /sso/{mode}/Auth/{p}` with `{deviceId, deviceName, appName, appVersion, data}`.
    async fn auth(&self, protocol: Protocol, name: String, req: Request<Incoming>) -> Result<Response<Body>, SsoError> {
        let rules = match protocol {
            Protocol::Oid => self.oidc_provider(&name)?.config.grants.clone(),
            Protocol::Saml => self.saml_idp(&name)?.config.grants.clone(),
        };
        let browser = cookie(req.headers(), FLOW_COOKIE).map(str::to_string);
        let body: AuthBody = read_json(req).await?;
        let pending = self.completions.take(&body.data, browser.as_deref())?;
        if pending.identity.provider != name || pending.identity.protocol != protocol || pending.linking {
            return Err(SsoError::BadRequest("this sign-in belongs to another provider or is a linking flow".into()));
        }
        let device = body.device()?;
        let result = self.login.sign_in(&pending.identity, &rules, &pending.grants, &device).await?;
        let json = serde_json::to_vec(&result).expect("AuthenticationResult serializes");
        let mut r = json_response(StatusCode::OK, json);
        let cookie = self.sessions.create(&result.access_token);
        r.headers_mut().insert(SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is header-safe"));
        Ok(r)
    }

    /// `GET /sso/health`: 200 when the proxy is up and Jellyfin answers, 503 otherwise.
    async fn health(&self) -> Response<Body> {
        let probe = self.upstream.probe(Duration::from_secs(3)).await;
        let (jellyfin_ok, detail) = match &probe {
            Ok(s) if s.is_success() => (true, None),
            Ok(s) => (false, Some(format!("answered {s}"))),
            Err(e) => (false, Some(e.clone())),
        };
        let body = serde_json::json!({
            "proxy": "up",
            "jellyfin": if jellyfin_ok { "up" } else { "down" },
            "jellyfinUrl": self.upstream.display(),
            "detail": detail,
        });
        let status = if jellyfin_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        json_response(status, body.to_string().into_bytes())
    }
}

/// The provider `name` from `map` if it is enabled; otherwise 404, as for an unknown one.
fn enabled<T>(map: &RwLock<HashMap<String, Arc<T>>>, name: &str, is_enabled: impl Fn(&T) -> bool) -> Result<Arc<T>, SsoError> {
    map.read()
        .expect("providers lock")
        .get(name)
        .filter(|p| is_enabled(p))
        .cloned()
        .ok_or_else(|| SsoError::UnknownProvider(name.to_string()))
}

/// Build the identity from verified OIDC claims.
fn oidc_identity(provider: &OidcProvider, claims: &serde_json::Value) -> Result<Identity, SsoError> {
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
        protocol: Protocol::Oid,
        provider: cfg.name.clone(),
        subject,
        username,
        roles: identity::roles_at(claims, &cfg.role_claim),
        avatar_url: cfg.avatar_url_format.as_deref().and_then(|f| identity::avatar_url(f, claims)),
    })
}

/// Build the identity from a verified SAML assertion: the link key is the NameID (or, for a
/// transient NameID, the username attribute), the username the `usernameAttribute` or the
/// NameID, the roles the values of `roleAttribute`.
fn saml_identity(idp: &SamlIdp, a: &saml::Asserted) -> Result<Identity, SsoError> {
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
    Ok(Identity { protocol: Protocol::Saml, provider: cfg.name.clone(), subject, username, roles: a.values(&cfg.role_attribute), avatar_url: None })
}

/// The words for a failed SAML step.
fn saml_error(provider: &str, e: SamlError) -> SsoError {
    let provider = provider.to_string();
    match e {
        SamlError::Malformed(m) => SsoError::BadRequest(format!("The sign-in response is malformed: {m}")),
        SamlError::Status { code, message } => SsoError::IdpRefused { provider, error: code, description: message },
        SamlError::Invalid(detail) => SsoError::InvalidToken { provider, detail },
        SamlError::Full => SsoError::Busy(0),
        SamlError::Setup(detail) => SsoError::IdpUnavailable { provider, detail },
    }
}

/// The browser's flow token: its existing `__Host-jsp-flow` cookie, or a new one (`true`).
fn browser_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, FLOW_COOKIE).filter(|c| looks_like_token(c)) {
        Some(c) => (c.to_string(), false),
        None => (random_token(), true),
    }
}

/// A url-encoded form body of at most `limit` bytes (413 above it).
async fn read_form(req: Request<Incoming>, limit: usize) -> Result<HashMap<String, String>, SsoError> {
    let declared = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(SsoError::TooLarge(limit));
    }
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(SsoError::TooLarge(limit)),
        Err(e) => return Err(SsoError::BadRequest(format!("the request body could not be read: {e}"))),
    };
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthBody {
    device_id: String,
    #[serde(default)]
    device_name: String,
    #[serde(default)]
    app_name: String,
    #[serde(default)]
    app_version: String,
    pub(crate) data: String,
}

impl AuthBody {
    fn device(&self) -> Result<DeviceInfo, SsoError> {
        let clean = |s: &str, field: &str, default: &str| -> Result<String, SsoError> {
            let s = s.trim();
            let s = if s.is_empty() { default } else { s };
            if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
                return Err(SsoError::BadRequest(format!("field `{field}` is missing or malformed")));
            }
            Ok(s.to_string())
        };
        Ok(DeviceInfo {
            device_id: clean(&self.device_id, "deviceId", "")?,
            device: clean(&self.device_name, "deviceName", "Web Browser")?,
            client: clean(&self.app_name, "appName", "Jellyfin Web")?,
            version: clean(&self.app_version, "appVersion", "0.0.0")?,
        })
    }
}

pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, SsoError> {
    let bytes: Bytes = Limited::new(req.into_body(), MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|_| SsoError::BadRequest(format!("the request body is larger than {MAX_JSON_BODY} bytes or broken")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| SsoError::BadRequest(format!("malformed JSON body: {e}")))
}

fn query_flag(req: &Request<Incoming>, name: &str) -> bool {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .any(|(k, v)| k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case("true"))
}

fn redirect(location: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut().insert(LOCATION, HeaderValue::from_str(location).expect("URL is header-safe"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Does the client prefer JSON? (Re-exported for handlers that answer both ways.)
pub fn wants_json(headers: &HeaderMap) -> bool {
    crate::pages::wants_json(headers)
}
