//! A configuration reload, on the SSO side: what a new `proxy.yaml` changes here, prepared
//! first and then put in service at once.
//!
//! [`Sso::prepare`] does everything that can fail (building the file providers that are new
//! or changed) without touching what runs; [`Sso::apply`] cannot fail: it swaps the file
//! providers in the one registry (API providers stay as they are), hands the settings kept
//! outside the configuration (session lifetime, hidden new users) their new values, and
//! replaces the configuration in service. A login in progress keeps working when its
//! provider is still there (its state is in the ephemeral store, keyed by name); one whose
//! provider is gone gets [`SsoError::ProviderGone`](super::error::SsoError::ProviderGone).

use std::sync::Arc;

use crate::config::Config;

use super::registry::{FileChanges, FilePlan};
use super::Sso;

/// A new configuration, checked and with its providers built, ready for [`Sso::apply`].
pub struct Prepared {
    config: Arc<Config>,
    plan: FilePlan,
}

impl Sso {
    /// Build what `next` needs; every provider that cannot be built is named, and nothing
    /// changes.
    pub fn prepare(&self, next: Config) -> Result<Prepared, Vec<String>> {
        let plan = self.registry.plan_file(next.providers())?;
        Ok(Prepared { config: Arc::new(next), plan })
    }

    /// Put a prepared configuration in service; returns what changed among the file providers.
    pub fn apply(&self, prepared: Prepared) -> FileChanges {
        let Prepared { config, plan } = prepared;
        let changes = self.registry.apply_file(plan);
        self.sessions.set_ttl(config.sso.session_ttl);
        self.provision.set_hide_new_users(config.sso.login_page.hide_public_users);
        self.config.replace(config);
        changes
    }
}
