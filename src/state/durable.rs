//! The interface to state that must survive a restart, and its records: account links (and
//! the legacy links imported from the SSO plugin, keyed by a changeable name until their first
//! login re-keys them), providers added through the API, the Jellyfin sessions the proxy
//! minted, and app passwords.
//!
//! Records are plain data (serde, no database types), so a backend is free in how it stores
//! them. Jellyfin user ids are compared the way Jellyfin prints them in different places:
//! case-insensitively and with or without dashes; backends key them by [`normalise_user_id`]
//! and return the id as it was given. Secrets are opaque bytes here: the caller encrypts tokens
//! and hashes app passwords before they reach the state layer.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StateError;

/// The key Jellyfin user ids are compared by: lowercase, without dashes.
pub fn normalise_user_id(user_id: &str) -> String {
    user_id.chars().filter(|c| *c != '-').map(|c| c.to_ascii_lowercase()).collect()
}

/// An identity at a provider → a Jellyfin user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// `"oid"` or `"saml"`, as the caller names it.
    pub protocol: String,
    pub provider: String,
    /// The stable identity key: the OIDC subject or the SAML NameID.
    pub subject: String,
    pub user_id: String,
    pub linked_at: u64,
}

/// A link imported from the SSO plugin, keyed as the plugin keyed it: by a name the identity
/// provider lets people change (the username claim). It is consulted only for a login whose
/// subject has no [`Link`], and [`Durable::claim_legacy_link`] replaces it by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyLink {
    pub protocol: String,
    pub provider: String,
    /// The plugin's canonical name.
    pub name: String,
    pub user_id: String,
    pub linked_at: u64,
}

/// Everything one import writes, in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportBatch {
    pub links: Vec<Link>,
    pub legacy_links: Vec<LegacyLink>,
    pub providers: Vec<StoredProvider>,
}

/// A provider added through the admin API, in the plugin's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredProvider {
    pub protocol: String,
    pub name: String,
    pub json: serde_json::Value,
}

/// A Jellyfin session the proxy minted, keyed by (user, device): Jellyfin replaces a user's
/// earlier session on the same device, and so does [`Durable::record_mint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintedSession {
    pub user_id: String,
    pub device_id: String,
    pub provider: String,
    pub protocol: String,
    pub subject: String,
    /// The provider's session id (OIDC `sid`, SAML `SessionIndex`), for back-channel logout.
    pub sid: Option<String>,
    /// Opaque: encrypted by the caller.
    pub id_token: Option<Vec<u8>>,
    /// Opaque: encrypted by the caller.
    pub refresh_token: Option<Vec<u8>>,
    /// `"browser"`, `"device-link"` or `"app-password"`.
    pub how: String,
    pub client: Option<String>,
    pub device_name: Option<String>,
    pub minted_at: u64,
    pub last_validated: Option<u64>,
    pub app_password_id: Option<String>,
}

/// A password a user made for an app that cannot do single sign-on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPassword {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// A keyed hash computed by the caller; never the password.
    pub hash: Vec<u8>,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
    pub last_device: Option<String>,
}

/// State that must survive a restart. Every acknowledged write is on stable storage.
#[async_trait]
pub trait Durable: Send + Sync {
    // Links.
    async fn link(&self, protocol: &str, provider: &str, subject: &str) -> Result<Option<Link>, StateError>;
    async fn links_of_user(&self, user_id: &str) -> Result<Vec<Link>, StateError>;
    /// Add or replace the link of (protocol, provider, subject).
    async fn put_link(&self, link: Link) -> Result<(), StateError>;
    /// Remove the link of (protocol, provider, subject) if it points at `user_id`, and the
    /// legacy link of that name to that user (the plugin's API names links by canonical name).
    async fn remove_link(&self, protocol: &str, provider: &str, user_id: &str, subject: &str) -> Result<u64, StateError>;
    /// Remove every link and legacy link to `user_id`.
    async fn remove_links_of_user(&self, user_id: &str) -> Result<u64, StateError>;

    // Legacy links (imported from the plugin).
    async fn legacy_link(&self, protocol: &str, provider: &str, name: &str) -> Result<Option<LegacyLink>, StateError>;
    async fn legacy_links_of_user(&self, user_id: &str) -> Result<Vec<LegacyLink>, StateError>;
    /// In one transaction: delete the legacy link (protocol, provider, name) and, unless
    /// (protocol, provider, subject) already has a link, link `subject` to its user at `at`.
    /// Returns the legacy link deleted; `None` when there was none (another login took it).
    async fn claim_legacy_link(&self, protocol: &str, provider: &str, name: &str, subject: &str, at: u64) -> Result<Option<LegacyLink>, StateError>;

    // Providers.
    async fn providers(&self) -> Result<Vec<StoredProvider>, StateError>;
    async fn provider(&self, protocol: &str, name: &str) -> Result<Option<StoredProvider>, StateError>;
    /// Add or replace the provider (protocol, name).
    async fn put_provider(&self, provider: StoredProvider) -> Result<(), StateError>;
    async fn remove_provider(&self, protocol: &str, name: &str) -> Result<bool, StateError>;

    /// Upsert all of these in one transaction: all are kept or none (the `state.json` import
    /// and the plugin's configuration import).
    async fn import(&self, batch: ImportBatch) -> Result<(), StateError>;

    // Minted sessions.
    /// Add or replace the session of (user, device).
    async fn record_mint(&self, mint: MintedSession) -> Result<(), StateError>;
    async fn mints_of_user(&self, user_id: &str) -> Result<Vec<MintedSession>, StateError>;
    async fn mint(&self, user_id: &str, device_id: &str) -> Result<Option<MintedSession>, StateError>;
    async fn remove_mint(&self, user_id: &str, device_id: &str) -> Result<bool, StateError>;
    async fn mints_by_sid(&self, provider: &str, sid: &str) -> Result<Vec<MintedSession>, StateError>;
    async fn mints_by_subject(&self, protocol: &str, provider: &str, subject: &str) -> Result<Vec<MintedSession>, StateError>;
    /// Sessions of `provider` minted strictly before `minted_before`.
    async fn mints_older_than(&self, provider: &str, minted_before: u64) -> Result<Vec<MintedSession>, StateError>;
    /// Record that the session was found valid at `at`; `false` if there is no such session.
    async fn set_validated(&self, user_id: &str, device_id: &str, at: u64) -> Result<bool, StateError>;

    // App passwords.
    /// Add a new app password; an id already taken is an error.
    async fn add_app_password(&self, password: AppPassword) -> Result<(), StateError>;
    async fn app_passwords_of_user(&self, user_id: &str) -> Result<Vec<AppPassword>, StateError>;
    async fn app_password(&self, id: &str) -> Result<Option<AppPassword>, StateError>;
    async fn remove_app_password(&self, id: &str) -> Result<bool, StateError>;
    /// Record a use from `device` at `at`; `false` if there is no such password.
    async fn touch_app_password(&self, id: &str, device: &str, at: u64) -> Result<bool, StateError>;
    async fn remove_app_passwords_of_user(&self, user_id: &str) -> Result<u64, StateError>;

    // Changes by other proxies.
    /// Topics changed by any proxy sharing this store (`"providers"`), as they happen; `None`
    /// for a store only this process uses. Best effort: a subscriber also re-reads now and
    /// then, since a notice sent while the connection was down is lost.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_normalise_case_and_dashes() {
        let a = normalise_user_id("0F8FAD5B-D9CB-469F-A165-70867728950E");
        assert_eq!(a, "0f8fad5bd9cb469fa16570867728950e");
        assert_eq!(normalise_user_id("0f8fad5bd9cb469fa16570867728950e"), a);
    }
}
