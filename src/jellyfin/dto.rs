//! Jellyfin's data transfer objects, as they appear on the wire (PascalCase JSON).
//!
//! Each type cites the Jellyfin source file it mirrors (github jellyfin/jellyfin). Only the
//! fields we use are typed; every object we send back (the user policy) keeps all other
//! fields in `rest`, so a read-modify-write never drops a field a newer Jellyfin added.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `MediaBrowser.Model/System/PublicSystemInfo.cs`, from `GET /System/Info/Public`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicSystemInfo {
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub id: String,
}

/// `MediaBrowser.Model/Dto/UserDto.cs` (the parts we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserDto {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub server_id: Option<String>,
    #[serde(default)]
    pub has_password: bool,
    #[serde(default)]
    pub policy: Option<UserPolicy>,
}

impl UserDto {
    pub fn is_admin(&self) -> bool {
        self.policy.as_ref().is_some_and(|p| p.is_administrator)
    }
}

/// `MediaBrowser.Model/Users/UserPolicy.cs`. `POST /Users/{id}/Policy` replaces the whole
/// policy, and `AuthenticationProviderId` / `PasswordResetProviderId` are `[Required]`, so we
/// always send back everything we read, changing only the fields we own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct UserPolicy {
    #[serde(default)]
    pub is_administrator: bool,
    #[serde(default)]
    pub is_disabled: bool,
    #[serde(default)]
    pub enable_all_folders: bool,
    #[serde(default)]
    pub enabled_folders: Vec<String>,
    #[serde(default)]
    pub enable_live_tv_access: bool,
    #[serde(default)]
    pub enable_live_tv_management: bool,
    #[serde(default)]
    pub authentication_provider_id: String,
    #[serde(default)]
    pub password_reset_provider_id: String,
    /// Every other field, kept exactly as Jellyfin sent it.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `MediaBrowser.Model/QuickConnect/QuickConnectResult.cs`, from `POST /QuickConnect/Initiate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QuickConnectResult {
    pub secret: String,
    pub code: String,
    #[serde(default)]
    pub authenticated: bool,
}

/// `MediaBrowser.Controller/Authentication/AuthenticationResult.cs`, from
/// `POST /Users/AuthenticateWithQuickConnect`. `SessionInfo` is kept as JSON: we pass it on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthenticationResult {
    pub user: Value,
    #[serde(default)]
    pub session_info: Value,
    pub access_token: String,
    pub server_id: String,
}

impl AuthenticationResult {
    pub fn user_id(&self) -> Option<&str> {
        self.user.get("Id").and_then(Value::as_str)
    }
}

/// An entry of `GET /Library/VirtualFolders` (`MediaBrowser.Model/Entities/VirtualFolderInfo.cs`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VirtualFolderInfo {
    pub name: String,
    #[serde(default)]
    pub item_id: String,
}

/// `GET /Library/MediaFolders` answers a `QueryResult<BaseItemDto>` (`MediaBrowser.Model/Querying/QueryResult.cs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryResult<T> {
    pub items: Vec<T>,
}

/// The parts of `BaseItemDto` we read from media folders.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MediaFolder {
    pub id: String,
    pub name: String,
}

/// Authentication provider ids, the full type names Jellyfin stores in
/// `UserPolicy.AuthenticationProviderId` (`Jellyfin.Server.Implementations/Users/*.cs`).
pub mod providers {
    /// Password login against Jellyfin's own hash.
    pub const DEFAULT_AUTH: &str = "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider";
    /// Refuses every password login: what SSO-only users get.
    pub const INVALID_AUTH: &str = "Jellyfin.Server.Implementations.Users.InvalidAuthProvider";
    pub const DEFAULT_PASSWORD_RESET: &str = "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_roundtrip_keeps_unknown_fields() {
        let json = serde_json::json!({
            "IsAdministrator": false, "EnableAllFolders": true, "EnabledFolders": [],
            "AuthenticationProviderId": "A", "PasswordResetProviderId": "B",
            "MaxParentalRating": 12, "BlockedTags": ["x"], "SomeFutureField": {"a": 1}
        });
        let mut p: UserPolicy = serde_json::from_value(json.clone()).unwrap();
        p.is_administrator = true;
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["MaxParentalRating"], 12);
        assert_eq!(back["SomeFutureField"]["a"], 1);
        assert_eq!(back["IsAdministrator"], true);
        assert_eq!(back["AuthenticationProviderId"], "A");
    }
}
