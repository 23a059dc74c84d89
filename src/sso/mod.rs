//! The `/sso/` endpoints: the SSO plugin's HTTP API, served by the proxy.
//!
//! The router parses the request into an [`SsoRoute`] once and hands it here with the
//! request's [`RequestContext`]; [`Sso::handle`] dispatches, and every handler returns
//! `Result<Response, SsoError>`, rendered in one place ([`crate::error::respond_as`]).
//!
//! - Login path, protocol-neutral: [`login`] (begin → callback → conclude → `Auth`), with
//!   each protocol only building its redirect and turning its answer into an identity:
//!   [`oidc`] + [`oidc_login`], [`saml`] + [`saml_login`]; the role gate and grants in
//!   [`identity`]; signing the identity in to Jellyfin in [`provision`]; the page in
//!   [`complete`]; the browser session in [`session`].
//! - Providers of both protocols and both sources: [`registry`].
//! - Jellyfin's own login page (buttons, CSS) and the provider picker at `/sso/`: [`login_page`].
//! - Administration: [`callers`] (who may call), [`admin`] (providers), [`links`].
//! - Apps that cannot do a browser login: [`device_link`] (a Quick Connect code entered at
//!   `/sso/link`), [`app_passwords`], and Jellyfin's password endpoints guarded before they
//!   are forwarded ([`password_login`], [`brute_force`]); guessing limits in [`attempts`],
//!   keyed hashes in [`mac`].
//! - The end of a session: [`logout`] (sign-out, the web client's sign-out),
//!   [`backchannel`] (single logout from an OpenID Provider), [`revocation`] (ending minted
//!   sessions, the max-age sweep), [`revalidate`] (refresh-token re-validation),
//!   [`sessions_api`] (listing and revoking), [`token_crypto`] (tokens encrypted at rest),
//!   [`saml_logout`] (SAML single logout).

pub mod admin;
pub mod app_passwords;
pub mod app_passwords_page;
pub mod attempts;
pub mod backchannel;
pub mod brute_force;
pub mod callers;
pub mod complete;
pub mod device_link;
pub mod device_link_page;
pub mod error;
pub mod http;
pub mod identity;
pub mod legacy_links;
pub mod idp_http;
pub mod linking_page;
pub mod links;
pub mod login;
pub mod login_page;
pub mod logout;
pub mod mac;
pub mod observe;
pub mod oidc;
pub mod oidc_login;
pub mod jwk;
pub mod oidc_types;
pub mod password_login;
pub mod provision;
pub mod reconfigure;
pub mod registry;
pub mod replay;
pub mod revalidate;
pub mod revocation;
pub mod route;
pub mod saml;
pub mod saml_crypto;
pub mod saml_keys;
pub mod saml_login;
pub mod saml_logout;
pub mod saml_metadata;
pub mod session;
pub mod sessions_api;
pub mod token_crypto;

use std::sync::Arc;
use std::time::Duration;

use ::http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::config::{Config, Live};
use crate::context::RequestContext;
use crate::error::respond_as;
use crate::jellyfin::Jellyfin;
use crate::state::State;
use callers::{Callers, Rule};
use error::SsoError;
use identity::Protocol;
use provision::Provisioner;
use registry::Registry;
pub use route::SsoRoute;
use session::Sessions;

pub struct Sso {
    /// The configuration in service; a reload swaps it ([`reconfigure`]).
    config: Live,
    pub registry: Registry,
    jellyfin: Jellyfin,
    provision: Provisioner,
    state: State,
    pub sessions: Sessions,
    callers: Callers,
    replay: replay::AssertionReplay,
    /// Seals the SAML library's login trackers while they wait in the ephemeral state.
    seal_key: [u8; 32],
    /// Wrong Quick Connect codes at `/sso/link` (per session and per client address).
    link_guard: attempts::Attempts,
    /// The brute-force guard of Jellyfin's password endpoints.
    pub password_guard: brute_force::Guard,
    /// The metrics and the audit log ([`observe`]).
    pub obs: observe::Observer,
}

/// How often the stored providers are re-read ([`Sso::watch_providers`]): other proxies
/// sharing the state may change them, and their notice may be lost while a connection is down.
pub const PROVIDER_REREAD: Duration = Duration::from_secs(5);

/// The error for a login's callback whose provider is no longer there.
fn gone(e: SsoError) -> SsoError {
    match e {
        SsoError::UnknownProvider(p) => SsoError::ProviderGone(p),
        e => e,
    }
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
    /// Build the SSO side from its parts (made once, in `main`): the state, the Jellyfin
    /// client, and the providers of `proxy.yaml` plus those stored through the admin API.
    pub async fn new(config: Arc<Config>, state: State, jellyfin: Jellyfin) -> Result<Sso, crate::state::StateError> {
        Self::with_observer(config, state, jellyfin, observe::Observer::default()).await
    }

    /// [`Sso::new`], reporting to `obs` (the metrics and the audit log).
    pub async fn with_observer(config: Arc<Config>, state: State, jellyfin: Jellyfin, obs: observe::Observer) -> Result<Sso, crate::state::StateError> {
        let http = idp_http::IdpHttp::new(idp_http_client(), obs.metrics.clone());
        let stored = state.durable.providers().await?;
        let stored = stored.into_iter().filter_map(|p| Protocol::from_name(&p.protocol).map(|proto| (proto, p.name, p.json)));
        let registry = Registry::load(&config, stored, http.clone());
        let config = Live::new(config);
        let seal_key = state.key;
        Ok(Sso {
            registry,
            provision: Provisioner::new(jellyfin.clone(), state.durable.clone(), http.client().clone())
                .hide_new_users(config.get().sso.login_page.hide_public_users)
                .observed(obs.clone()),
            sessions: Sessions::new(state.ephemeral.clone(), config.get().sso.session_ttl, config.get().public_url.origin()),
            callers: Callers::new(jellyfin.clone(), state.ephemeral.clone()),
            replay: replay::AssertionReplay::new(state.ephemeral.clone()),
            link_guard: device_link::guard(state.ephemeral.clone()),
            password_guard: brute_force::Guard::new(state.ephemeral.clone()),
            jellyfin,
            state,
            config,
            seal_key,
            obs,
        })
    }

    /// Sweep expired flows, handles and sessions, forever; and, alongside, the session
    /// lifecycle (max age, re-validation).
    pub async fn sweep_forever(self: Arc<Self>) {
        tokio::spawn(self.clone().lifecycle_forever());
        tokio::spawn(self.clone().saml_metadata_forever());
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Err(e) = self.state.ephemeral.sweep().await {
                tracing::warn!(error = %e, "sweeping expired state failed");
            }
        }
    }

    /// Keep every SAML provider's IdP metadata fresh, forever: each is re-read when its
    /// `samlIdpMetadataRefresh` has passed (at once on start); a failure keeps the last good copy.
    async fn saml_metadata_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for p in self.registry.list(Protocol::Saml) {
                if let registry::Provider::Saml(idp) = p {
                    idp.refresh_if_due().await;
                }
            }
        }
    }

    /// Keep the API providers in line with the durable state, forever: re-read it every
    /// `every`, and at once when another proxy sharing it says it changed them
    /// ([`crate::state::Durable::changes`]). Only changes are rebuilt ([`Registry::reload`]).
    pub async fn watch_providers(self: Arc<Self>, every: Duration) {
        let mut changes = self.state.durable.changes();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            match changes.as_mut() {
                Some(rx) => tokio::select! {
                    _ = tick.tick() => {}
                    r = rx.recv() => match r {
                        Ok(topic) if topic != crate::state::postgres_changes::PROVIDERS => continue,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => changes = None,
                    },
                },
                None => {
                    tick.tick().await;
                }
            }
            self.reload_providers().await;
        }
    }

    /// Re-read the stored providers and apply what changed; a storage failure is logged and
    /// the providers stay as they are until the next try.
    pub async fn reload_providers(&self) {
        let _sync = self.registry.sync_lock().await;
        match self.state.durable.providers().await {
            Ok(stored) => {
                let stored = stored.into_iter().filter_map(|p| Protocol::from_name(&p.protocol).map(|proto| (proto, p.name, p.json)));
                let changed = self.registry.reload(stored);
                if changed > 0 {
                    tracing::info!(changed, "providers reloaded from the shared state");
                }
            }
            Err(e) => tracing::warn!(error = %e, "re-reading the stored providers failed; keeping the current ones"),
        }
    }

    /// Answer `route` (never [`SsoRoute::Health`] or the linking page: the router serves those).
    pub async fn handle(&self, route: SsoRoute, req: Request<Incoming>, ctx: &RequestContext) -> Response<Body> {
        let limit = if matches!(route, SsoRoute::SamlAcs { .. }) { saml::MAX_ACS_BODY } else { http::MAX_JSON_BODY };
        let timeout = self.config().limits.body_read_timeout;
        let req = match http::buffer(req, limit, timeout).await {
            Ok(r) => r,
            Err(e) => return respond_as(&e, ctx.wants_json),
        };
        match self.dispatch(route, req, ctx).await {
            Ok(r) => r,
            Err(e) => respond_as(&e, ctx.wants_json),
        }
    }

    async fn dispatch(&self, route: SsoRoute, req: http::SsoRequest, ctx: &RequestContext) -> Result<Response<Body>, SsoError> {
        let (h, u) = (req.headers(), req.uri());
        let admin = |what| self.callers.authorize(h, u, Rule::Admin, what);
        match route {
            SsoRoute::Start { protocol, provider } => {
                let p = self.registry.enabled(protocol, &provider)?;
                self.begin(p, http::query_flag(&req, "isLinking"), ctx).await
            }
            // A login that comes back for a provider a reload removed says so. A login's refusal is counted where it happens (callback or Auth); its success
            // when Auth has the Jellyfin session (login::auth).
            SsoRoute::OidcCallback { provider } => {
                let p = self.registry.enabled(Protocol::Oidc, &provider).map_err(gone)?;
                let r = self.oidc_callback(p, &req, ctx).await;
                self.refused(Protocol::Oidc, &provider, r)
            }
            SsoRoute::SamlAcs { provider } => {
                let p = self.registry.enabled(Protocol::Saml, &provider).map_err(gone)?;
                let r = self.saml_acs(p, req, ctx).await;
                self.refused(Protocol::Saml, &provider, r)
            }
            SsoRoute::Auth { protocol, provider } => {
                let p = self.registry.enabled(protocol, &provider).map_err(gone)?;
                let r = self.auth(p, req, ctx).await;
                self.refused(protocol, &provider, r)
            }
            SsoRoute::SamlMetadata { provider } => self.saml_metadata(self.registry.enabled(Protocol::Saml, &provider)?),
            SsoRoute::GetNames { protocol } => Ok(self.get_names(protocol)),
            SsoRoute::GetProviders { protocol } => {
                admin("list providers").await?;
                Ok(self.get_providers(protocol))
            }
            SsoRoute::States => {
                admin("list login states").await?;
                self.states().await
            }
            SsoRoute::AddProvider { protocol, provider } => {
                let by = admin("add providers").await?;
                let r = self.add_provider(protocol, &provider, req).await?;
                self.obs.admin_change(&by, "provider.added", protocol, &provider);
                Ok(r)
            }
            SsoRoute::DelProvider { protocol, provider } => {
                let by = admin("delete providers").await?;
                let r = self.del_provider(protocol, &provider).await?;
                self.obs.admin_change(&by, "provider.removed", protocol, &provider);
                Ok(r)
            }
            SsoRoute::Links { protocol, user } => {
                self.callers.authorize(h, u, Rule::UserOrAdmin(&user), "read another user's links").await?;
                self.links(protocol, &user).await
            }
            SsoRoute::Link { protocol, provider, user } => {
                let by = self.callers.authorize(h, u, Rule::UserOrAdmin(&user), "link another user's account").await?;
                let r = self.link(protocol, &provider, &user, req, ctx).await?;
                self.obs.admin_change(&by, "link.added", protocol, &user);
                Ok(r)
            }
            SsoRoute::Unlink { protocol, provider, user, subject } => {
                let by = self.callers.authorize(h, u, Rule::UserOrAdmin(&user), "remove another user's links").await?;
                let r = self.unlink(protocol, &provider, &user, &subject).await?;
                self.obs.admin_change(&by, "link.removed", protocol, &user);
                Ok(r)
            }
            SsoRoute::Unregister { username } => {
                let by = admin("unregister users").await?;
                let r = self.unregister(&username, req).await?;
                self.obs.admin_change(&by, "user.unregistered", Protocol::Oidc, &username);
                Ok(r)
            }
            SsoRoute::Picker => Ok(self.picker_page()),
            SsoRoute::DeviceLinkPage => self.link_page(ctx).await,
            SsoRoute::DeviceLinkSubmit => self.link_submit(req, ctx).await,
            SsoRoute::DeviceLinkStart { protocol, provider } => self.link_start(protocol, &provider, ctx).await,
            SsoRoute::DeviceLinkQr => self.link_qr(),
            SsoRoute::AppPasswords | SsoRoute::AppPasswordDelete { .. } => self.app_passwords(route, req, ctx).await,
            SsoRoute::Logout => self.logout(ctx).await,
            SsoRoute::BackchannelLogout { provider } => {
                let r = match self.registry.enabled(Protocol::Oidc, &provider)? {
                    registry::Provider::Oidc(p) => self.backchannel_logout(&p, req).await,
                    registry::Provider::Saml(_) => Err(SsoError::UnknownProvider(provider)),
                };
                // The provider's server reads JSON, whatever it accepts.
                r.or_else(|e| Ok(respond_as(&e, true)))
            }
            SsoRoute::FrontchannelLogout { provider } => match self.registry.enabled(Protocol::Oidc, &provider)? {
                registry::Provider::Oidc(p) => self.frontchannel_logout(&p, &http::query_map(&req)).await,
                registry::Provider::Saml(_) => Err(SsoError::UnknownProvider(provider)),
            },
            SsoRoute::SamlLogout { provider } => match self.registry.enabled(Protocol::Saml, &provider)? {
                registry::Provider::Saml(p) => self.saml_logout(&p, req).await,
                registry::Provider::Oidc(_) => Err(SsoError::UnknownProvider(provider)),
            },
            SsoRoute::Sessions { user } => {
                self.callers.authorize(h, u, Rule::UserOrAdmin(&user), "read another user's sessions").await?;
                self.list_sessions(&user).await
            }
            SsoRoute::RevokeSession { user, device } => {
                self.callers.authorize(h, u, Rule::UserOrAdmin(&user), "revoke another user's sessions").await?;
                self.revoke_session(&user, &device).await
            }
            SsoRoute::RevokeSessions { user } => {
                self.callers.authorize(h, u, Rule::UserOrAdmin(&user), "revoke another user's sessions").await?;
                self.revoke_sessions(&user).await
            }
            SsoRoute::Health | SsoRoute::LinkingPage | SsoRoute::Unknown => Err(SsoError::NotFound),
        }
    }

    /// Report a refused login step at a provider that is configured (the registry found it).
    fn refused(&self, protocol: Protocol, provider: &str, r: Result<Response<Body>, SsoError>) -> Result<Response<Body>, SsoError> {
        if let Err(e) = &r {
            self.obs.login_refused(protocol, provider, e);
        }
        r
    }

    /// Every enabled provider of both protocols (for the linking page and start-up checks).
    pub fn oidc_providers(&self) -> Vec<Arc<oidc::OidcProvider>> {
        self.registry.oidc_providers()
    }
}

impl Sso {
    /// The self-service linking page, offering every enabled provider of both protocols.
    pub fn linking_page(&self) -> Response<Body> {
        let providers = self.registry.all_enabled();
        let list: Vec<(&str, &str)> = providers.iter().map(|p| (p.protocol().url_segment(), p.name())).collect();
        linking_page::page(self.config().public_url.base_path(), &list)
    }

    /// The configuration in service now (a reload may replace it between two calls).
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.get()
    }

    /// The state the SSO side keeps (tests and start-up checks read it).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The Jellyfin client (start-up checks).
    pub fn jellyfin(&self) -> &Jellyfin {
        &self.jellyfin
    }
}
