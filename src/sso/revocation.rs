//! Revoking minted Jellyfin sessions: the one place that ends a session the proxy minted,
//! whoever asks (sign-out, single logout, the sessions API, unlinking, the max-age sweep,
//! re-validation).
//!
//! A minted session is ended in Jellyfin with `DELETE /Devices?id=` (the API key's way to
//! log out the tokens of a device, `Jellyfin.Api/Controllers/DevicesController.cs`); an
//! unknown device is already gone (10.9–10.11 answer 404, 12.0 answers 400), which counts as
//! done. Only then is the durable record removed, so a Jellyfin that cannot be reached keeps
//! the record and a later attempt (the sweep, or the caller again) retries. The browser
//! session that held the token (if any) is ended too, so it is no longer injected.

use std::time::Duration;

use http::StatusCode;

use super::error::SsoError;
use super::Sso;
use crate::jellyfin::JellyfinError;
use crate::state::{now_secs, MintedSession};

/// Why a session is being revoked (for the log line).
#[derive(Debug, Clone, Copy)]
pub enum Why {
    SignOut,
    BackChannel,
    FrontChannel,
    SessionsApi,
    Unlinked,
    MaxAge,
    Revalidation,
    SamlLogout,
    /// The app password that minted it was revoked.
    AppPasswordRevoked,
}

impl Why {
    /// The `why` label of the revocation metric and the audit log.
    pub fn label(self) -> &'static str {
        match self {
            Why::SignOut => "sign_out",
            Why::BackChannel => "backchannel",
            Why::FrontChannel => "frontchannel",
            Why::SessionsApi => "sessions_api",
            Why::Unlinked => "unlinked",
            Why::MaxAge => "max_age",
            Why::Revalidation => "revalidation",
            Why::SamlLogout => "saml_logout",
            Why::AppPasswordRevoked => "app_password_revoked",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Why::SignOut => "signed out",
            Why::BackChannel => "back-channel logout",
            Why::FrontChannel => "front-channel logout",
            Why::SessionsApi => "revoked through the sessions API",
            Why::Unlinked => "link removed",
            Why::MaxAge => "older than sessionMaxAge",
            Why::Revalidation => "failed re-validation",
            Why::SamlLogout => "SAML single logout",
            Why::AppPasswordRevoked => "its app password was revoked",
        }
    }
}

impl Sso {
    /// End one minted session in Jellyfin, then forget it.
    pub(super) async fn revoke(&self, m: &MintedSession, why: Why) -> Result<(), SsoError> {
        match self.jellyfin.delete_device(&m.device_id).await {
            Ok(()) => {}
            Err(JellyfinError::Refused { status, .. }) if status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST => {
                tracing::debug!(device = %m.device_id, "the device was already gone in Jellyfin");
            }
            Err(e) => return Err(e.into()),
        }
        self.state.durable.remove_mint(&m.user_id, &m.device_id).await?;
        // The browser holding this token (on whichever proxy) must not get it injected again.
        if let Err(e) = self.sessions.end_for_device(&m.user_id, &m.device_id).await {
            tracing::warn!(user = %m.user_id, device = %m.device_id, error = %e, "the browser session of a revoked Jellyfin session could not be ended; its token is refused by Jellyfin");
        }
        tracing::info!(user = %m.user_id, device = %m.device_id, provider = %m.provider, why = why.as_str(), "Jellyfin session revoked");
        self.obs.revoked(why, m);
        Ok(())
    }

    /// Revoke each of `mints`; the first failure is returned after trying all of them.
    pub(super) async fn revoke_all(&self, mints: &[MintedSession], why: Why) -> Result<usize, SsoError> {
        let mut first_error = None;
        let mut done = 0;
        for m in mints {
            match self.revoke(m, why).await {
                Ok(()) => done += 1,
                Err(e) => {
                    tracing::warn!(user = %m.user_id, device = %m.device_id, error = %e, "revoking a Jellyfin session failed; it will be retried");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Every session of this identity (protocol, provider, subject), e.g. when its link goes.
    pub(super) async fn revoke_identity(&self, protocol: &str, provider: &str, subject: &str, why: Why) -> Result<usize, SsoError> {
        let mints = self.state.durable.mints_by_subject(protocol, provider, subject).await?;
        self.revoke_all(&mints, why).await
    }

    /// One pass of the max-age sweep: every provider with `sessionMaxAge`.
    pub(super) async fn sweep_max_age(&self) {
        for p in self.registry.all_enabled() {
            let Some(max) = p.session_rules().session_max_age else { continue };
            let before = now_secs().saturating_sub(max.as_secs());
            let old = match self.state.durable.mints_older_than(p.name(), before).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(provider = %p.name(), error = %e, "reading sessions for the max-age sweep failed");
                    continue;
                }
            };
            let old: Vec<_> = old.into_iter().filter(|m| m.protocol == p.protocol().as_str()).collect();
            if !old.is_empty() {
                let _ = self.revoke_all(&old, Why::MaxAge).await;
            }
        }
    }

    /// How often the lifecycle loop runs: a quarter of the shortest configured interval,
    /// between 1 s and 30 s.
    pub(super) fn lifecycle_tick(&self) -> Duration {
        let shortest = self
            .registry
            .all_enabled()
            .iter()
            .flat_map(|p| {
                let r = p.session_rules();
                [r.session_max_age, r.revalidate_interval]
            })
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(120));
        (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}
