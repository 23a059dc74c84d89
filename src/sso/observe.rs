//! What the SSO side reports to the operator: each event is counted in the metrics and
//! written to the audit log in one call, so a handler says "a login was refused" once and
//! both stay in step.
//!
//! Labels and fields are bounded and free of secrets by construction: providers are the
//! registry's configured ones, reasons come from [`SsoError::reason`] (a fixed set derived
//! from the error enum), and user ids and names go to the audit file only, never to a
//! metric label.

use super::error::SsoError;
use super::identity::{Identity, Protocol};
use super::provision::How;
use super::revocation::Why;
use crate::audit::Audit;
use crate::jellyfin::Caller;
use crate::metrics::Metrics;
use crate::state::MintedSession;

/// The metrics and the audit log, as the SSO side uses them. Default: both off.
#[derive(Clone, Default)]
pub struct Observer {
    pub metrics: Metrics,
    pub audit: Audit,
}

impl Observer {
    pub fn new(metrics: Metrics, audit: Audit) -> Observer {
        Observer { metrics, audit }
    }

    /// A login ended with a Jellyfin session for `user_id` (`user`: the Jellyfin name).
    pub fn login_succeeded(&self, who: &Identity, user_id: &str, user: &str) {
        self.metrics.login(&who.provider, who.protocol.as_str(), Ok(()));
        self.audit.event("login").provider(who.protocol.as_str(), &who.provider).user(Some(user_id), Some(user)).field("result", Some("success")).write();
    }

    /// A login at a configured provider was refused with `err`.
    pub fn login_refused(&self, protocol: Protocol, provider: &str, err: &SsoError) {
        let reason = err.reason();
        self.metrics.login(provider, protocol.as_str(), Err(reason));
        let user = match err {
            SsoError::NotAllowed { username, .. } => Some(username.as_str()),
            _ => None,
        };
        self.audit.event("login").provider(protocol.as_str(), provider).user(None, user).field("result", Some("refused")).field("reason", Some(reason)).write();
    }

    /// A Jellyfin session was minted through Quick Connect.
    pub fn minted(&self, how: How, who: &Identity, user_id: &str, device_id: &str) {
        self.metrics.minted(how.as_str());
        self.audit.event("mint").provider(who.protocol.as_str(), &who.provider).user(Some(user_id), Some(&who.username)).field("how", Some(how.as_str())).field("device_id", Some(device_id)).write();
    }

    /// A minted session was ended.
    pub fn revoked(&self, why: Why, m: &MintedSession) {
        self.metrics.revoked(why.label());
        self.audit.event("revocation").provider(&m.protocol, &m.provider).user(Some(&m.user_id), None).field("why", Some(why.label())).field("device_id", Some(&m.device_id)).write();
    }

    /// `app_password.created`, `app_password.used`, `app_password.revoked`: `id` is the
    /// password's public id, never the password.
    pub fn app_password(&self, event: &'static str, user_id: &str, user: Option<&str>, id: &str, device_id: Option<&str>) {
        self.audit.event(event).user(Some(user_id), user).field("app_password", Some(id)).field("device_id", device_id).write();
    }

    /// A password login at Jellyfin's endpoint refused by the proxy (guard or policy).
    pub fn password_refused(&self, user: &str, reason: &'static str) {
        self.audit.event("password_login.refused").user(None, Some(user)).field("reason", Some(reason)).write();
    }

    /// A change through the admin API by `by`: `action` (e.g. `provider.added`) on `target`
    /// (a provider's name, or the user whose links or registration changed).
    pub fn admin_change(&self, by: &Caller, action: &'static str, protocol: Protocol, target: &str) {
        let (id, name) = match by {
            Caller::ApiKey => (None, Some("api key")),
            Caller::User { id, name, .. } => (Some(id.as_str()), Some(name.as_str())),
        };
        self.audit.event("admin").user(id, name).field("action", Some(action)).field("protocol", Some(protocol.as_str())).field("target", Some(target)).write();
    }
}
