//! Links imported from the SSO plugin (`import-plugin-config`), consumed at first login.
//!
//! The plugin keyed its canonical links by the username claim, which the identity provider
//! lets people change; the proxy keys links by the immutable subject. A login whose subject
//! has no link looks for an imported link under each of the identity's `legacy_names` (the
//! protocol module says which names the plugin used; [`super::oidc_login::plugin_link_names`])
//! and, in one state transaction, deletes it and links the subject to its Jellyfin user
//! ([`crate::state::Durable::claim_legacy_link`]). From then on the subject decides: a later
//! account that takes over the old name at the identity provider finds no imported link.
//! A login whose subject already has a link removes any imported link under its names too,
//! since the identity provider now gives that name to this person.
//!
//! This runs in [`super::Sso::conclude`], after the role gate, for OIDC and SAML alike, and
//! before the completion page, so every way in (browser, device linking) sees the re-keyed link.
//! An imported link to a Jellyfin administrator is name-based matching of an administrator, so
//! it is followed only where adopting same-named administrators is allowed (`adoptExistingAdmins`).

use super::error::SsoError;
use super::identity::Identity;
use super::registry::Provider;
use super::Sso;
use crate::jellyfin::JellyfinError;
use crate::state::now_secs;

impl Sso {
    /// Re-key an imported link of this identity to its subject (see the module comment).
    pub(super) async fn claim_imported_link(&self, provider: &Provider, who: &Identity) -> Result<(), SsoError> {
        let durable = &self.state.durable;
        let protocol = who.protocol.as_str();
        for name in &who.legacy_names {
            let Some(legacy) = durable.legacy_link(protocol, &who.provider, name).await? else { continue };
            let linked = durable.link(protocol, &who.provider, &who.subject).await?.is_some();
            if !linked {
                match self.jellyfin.user(&legacy.user_id).await {
                    Ok(u) if u.is_admin() && !provider.grants().adopt_existing_admins => {
                        tracing::warn!(provider = %who.provider, user = %u.name, "an imported link points at an administrator; set adoptExistingAdmins: true on the provider to let it be followed");
                        return Err(SsoError::AdminNotAdopted(u.name));
                    }
                    Ok(_) | Err(JellyfinError::UserNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(taken) = durable.claim_legacy_link(protocol, &who.provider, name, &who.subject, now_secs()).await? {
                if linked {
                    tracing::info!(provider = %who.provider, protocol, "an imported link was dropped: this subject is already linked");
                } else {
                    tracing::info!(provider = %who.provider, protocol, user = %taken.user_id, "an imported link was re-keyed to the subject at its first login");
                }
            }
        }
        Ok(())
    }
}
