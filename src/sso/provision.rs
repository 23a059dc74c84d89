//! Provisioning: signing a verified identity in to Jellyfin, one path for OIDC and SAML.
//!
//! 1. Find the Jellyfin user: through the account link (protocol, provider, subject);
//!    otherwise a same-named user (never an administrator unless the provider opts in, and
//!    never one already linked, or imported from the plugin as linked, to another identity of
//!    this provider); otherwise create one
//!    with an unusable random password and password login switched off (and hidden from the
//!    login screen's user list with `sso.login_page.hide_public_users`: `IsHidden`).
//! 2. Record the link. 3. Apply the grants by policy read-modify-write, when the provider's
//!    `enableAuthorization` is on. 4. Upload the avatar (a failure is logged, login goes on).
//! 5. Mint a token for the browser's device through Quick Connect, and record it in the
//!    durable state (user, device, provider, subject, the IdP session id, the encrypted ID
//!    and refresh tokens, how, when) so it can be revoked and re-validated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use crate::config::provider::GrantRules;
use crate::config::Secret;
use crate::jellyfin::{providers, AuthenticationResult, DeviceInfo, Jellyfin, JellyfinError, PublicSystemInfo, UserDto};
use crate::sso::error::SsoError;
use crate::sso::identity::{self, Grants, Identity};
use crate::state::{now_secs, random_token, Durable, Link, MintedSession};

/// How a Jellyfin session came to be minted (recorded with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The completion page of a browser login.
    Browser,
    /// A device's Quick Connect code entered at `/sso/link`.
    DeviceLink,
    /// An app password at Jellyfin's password endpoint.
    AppPassword,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Browser => "browser",
            How::DeviceLink => "device-link",
            How::AppPassword => "app-password",
        }
    }
}

/// Largest avatar the proxy downloads.
const MAX_AVATAR_BYTES: usize = 5 * 1024 * 1024;
const SERVER_INFO_TTL: Duration = Duration::from_secs(300);

pub struct Provisioner {
    jellyfin: Jellyfin,
    durable: Arc<dyn Durable>,
    http: reqwest::Client,
    info: RwLock<Option<(PublicSystemInfo, Instant)>>,
    /// Users the proxy creates get `IsHidden` (not on the login screen's user list).
    /// (An atomic: a reload changes it for users created after.)
    hide_new_users: std::sync::atomic::AtomicBool,
    /// Every mint is counted and audited here, the one place that records them.
    obs: super::observe::Observer,
}

impl Provisioner {
    pub fn new(jellyfin: Jellyfin, durable: Arc<dyn Durable>, http: reqwest::Client) -> Provisioner {
        Provisioner { jellyfin, durable, http, info: RwLock::new(None), hide_new_users: Default::default(), obs: Default::default() }
    }

    /// Create users hidden from the login screen (`sso.login_page.hide_public_users`).
    pub fn hide_new_users(self, hide: bool) -> Provisioner {
        self.set_hide_new_users(hide);
        self
    }

    /// [`Provisioner::hide_new_users`] on the running provisioner (a reload).
    pub fn set_hide_new_users(&self, hide: bool) {
        self.hide_new_users.store(hide, std::sync::atomic::Ordering::Relaxed);
    }

    /// Report mints to `obs` (the metrics and the audit log).
    pub fn observed(mut self, obs: super::observe::Observer) -> Provisioner {
        self.obs = obs;
        self
    }

    /// Jellyfin's public info, cached for a few minutes.
    pub async fn server_info(&self) -> Result<PublicSystemInfo, JellyfinError> {
        if let Some((info, at)) = self.info.read().await.as_ref() {
            if at.elapsed() < SERVER_INFO_TTL {
                return Ok(info.clone());
            }
        }
        let info = self.jellyfin.server_info().await?;
        *self.info.write().await = Some((info.clone(), Instant::now()));
        Ok(info)
    }

    /// The whole browser sign-in: [`Provisioner::resolve`] the user, mint a token for the
    /// browser's device, record it. Returns Jellyfin's `AuthenticationResult`.
    pub async fn sign_in(&self, who: &Identity, rules: &GrantRules, grants: &Grants, device: &DeviceInfo) -> Result<AuthenticationResult, SsoError> {
        let user = self.resolve(who, rules, grants).await?;
        let result = self.jellyfin.mint_token(&user.id, device).await?;
        self.record(who, &user.id, device, How::Browser).await?;
        tracing::info!(user = %user.name, provider = %who.provider, protocol = who.protocol.as_str(), device = %device.device_id, "signed in");
        Ok(result)
    }

    /// The Jellyfin user for this identity, exactly as every login finds it: the link, else
    /// adoption or creation; then the grants (when the provider manages them) and the avatar.
    pub async fn resolve(&self, who: &Identity, rules: &GrantRules, grants: &Grants) -> Result<UserDto, SsoError> {
        if !self.jellyfin.has_api_key() {
            return Err(SsoError::NoApiKey);
        }
        let user = self.find_or_create(who, rules).await?;
        if rules.enable_authorization {
            self.jellyfin.update_policy(&user.id, |p| identity::apply(p, grants)).await?;
        }
        if let Some(url) = &who.avatar_url {
            if let Err(e) = self.set_avatar(&user.id, url).await {
                tracing::warn!(user = %user.name, error = %e, "avatar not updated; sign-in continues");
            }
        }
        Ok(user)
    }

    /// Record a Jellyfin session minted for `who` on `device`, so it can be listed and revoked.
    pub async fn record(&self, who: &Identity, user_id: &str, device: &DeviceInfo, how: How) -> Result<(), SsoError> {
        self.record_with(who, user_id, device, how, None).await
    }

    /// [`Provisioner::record`], naming the app password that minted the session.
    pub async fn record_with(&self, who: &Identity, user_id: &str, device: &DeviceInfo, how: How, app_password_id: Option<String>) -> Result<(), SsoError> {
        let mint = MintedSession {
            user_id: user_id.to_string(),
            device_id: device.device_id.clone(),
            provider: who.provider.clone(),
            protocol: who.protocol.as_str().into(),
            subject: who.subject.clone(),
            sid: who.sid.clone(),
            // Already encrypted with the state key, bound to this identity (token_crypto).
            id_token: who.tokens.id_token.clone(),
            refresh_token: who.tokens.refresh_token.clone(),
            how: how.as_str().into(),
            client: Some(device.client.clone()),
            device_name: Some(device.device.clone()),
            minted_at: now_secs(),
            last_validated: None,
            app_password_id,
        };
        // The session exists in Jellyfin from here on, recorded or not.
        self.obs.minted(how, who, user_id, &device.device_id);
        self.durable.record_mint(mint).await.map_err(|e| {
            tracing::error!(error = %e, device = %device.device_id, "a minted Jellyfin session could not be recorded");
            SsoError::from(e)
        })
    }

    async fn find_or_create(&self, who: &Identity, rules: &GrantRules) -> Result<UserDto, SsoError> {
        if let Some(link) = self.durable.link(who.protocol.as_str(), &who.provider, &who.subject).await? {
            match self.jellyfin.user(&link.user_id).await {
                Ok(u) => return Ok(u),
                Err(JellyfinError::UserNotFound(_)) => {
                    tracing::warn!(provider = %who.provider, "linked Jellyfin user no longer exists; matching by name again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let user = match self.jellyfin.find_user_by_name(&who.username).await? {
            Some(u) => {
                self.check_adoption(&u, who, rules).await?;
                u
            }
            None => self.create(who, rules).await?,
        };
        let link = Link { protocol: who.protocol.as_str().into(), provider: who.provider.clone(), subject: who.subject.clone(), user_id: user.id.clone(), linked_at: now_secs() };
        self.durable.put_link(link).await?;
        Ok(user)
    }

    /// May this identity take over the existing same-named user `u`?
    async fn check_adoption(&self, u: &UserDto, who: &Identity, rules: &GrantRules) -> Result<(), SsoError> {
        let linked_elsewhere = self
            .durable
            .links_of_user(&u.id)
            .await?
            .iter()
            .any(|l| l.protocol == who.protocol.as_str() && l.provider == who.provider && l.subject != who.subject);
        // A link imported from the plugin under another name belongs to someone else, too.
        let imported_elsewhere = || async {
            let legacy = self.durable.legacy_links_of_user(&u.id).await?;
            Ok::<_, SsoError>(legacy.iter().any(|l| l.protocol == who.protocol.as_str() && l.provider == who.provider && !who.legacy_names.contains(&l.name)))
        };
        if linked_elsewhere || imported_elsewhere().await? {
            return Err(SsoError::LinkedElsewhere(u.name.clone()));
        }
        if u.is_admin() && !rules.adopt_existing_admins {
            return Err(SsoError::AdminNotAdopted(u.name.clone()));
        }
        Ok(())
    }

    async fn create(&self, who: &Identity, rules: &GrantRules) -> Result<UserDto, SsoError> {
        // Nobody ever sees this password; with InvalidAuthProvider it is never checked anyway.
        let password = Secret::new(random_token());
        let user = match self.jellyfin.create_user(&who.username, &password).await {
            Ok(u) => u,
            // Another login for the same new user may have won the race: use that user.
            Err(JellyfinError::Refused { .. }) => match self.jellyfin.find_user_by_name(&who.username).await? {
                Some(u) => {
                    self.check_adoption(&u, who, rules).await?;
                    return Ok(u);
                }
                None => return Err(SsoError::BadRequest(format!("Jellyfin would not create user {}", who.username))),
            },
            Err(e) => return Err(e.into()),
        };
        let auth = rules.default_provider.as_deref().unwrap_or(providers::INVALID_AUTH);
        let hide = self.hide_new_users.load(std::sync::atomic::Ordering::Relaxed);
        self.jellyfin
            .update_policy(&user.id, |p| {
                p.authentication_provider_id = auth.to_string();
                p.password_reset_provider_id = providers::DEFAULT_PASSWORD_RESET.to_string();
                if hide {
                    p.rest.insert("IsHidden".into(), serde_json::Value::Bool(true));
                }
            })
            .await?;
        tracing::info!(user = %user.name, provider = %who.provider, "created Jellyfin user");
        Ok(user)
    }

    async fn set_avatar(&self, user_id: &str, url: &str) -> Result<(), String> {
        let mut resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if !content_type.starts_with("image/") {
            return Err(format!("{url} is not an image ({content_type})"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_AVATAR_BYTES {
                return Err(format!("{url} is larger than {MAX_AVATAR_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        self.jellyfin.upload_avatar(user_id, &body, &content_type).await.map_err(|e| e.to_string())
    }
}
