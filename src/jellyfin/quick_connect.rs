//! Quick Connect for a code a device shows (device linking), and reading a user's sessions.
//!
//! `POST /QuickConnect/Authorize?code=&userId=` (`Jellyfin.Api/Controllers/QuickConnectController.cs`
//! → `Emby.Server.Implementations/QuickConnect/QuickConnectManager.cs` `AuthorizeRequest`):
//! `true` once authorized; an unknown or expired code is a `ResourceNotFoundException` (404);
//! a code already authorized is an `InvalidOperationException` (500); Quick Connect switched
//! off is 401 "Quick connect is disabled". Authorize answers only `true`: the device id of the
//! request is not in the answer, and `GET /QuickConnect/Connect` needs the device's secret,
//! which only the device has. Authorize opens the session for that device at once
//! (`SessionManager.AuthenticateDirect`), so the session of the user with the latest
//! activity right after it is the device's: [`Jellyfin::newest_session_of`].

use http::StatusCode;
use reqwest::Method;

use super::{Jellyfin, JellyfinError};

/// What Jellyfin said to a Quick Connect code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorize {
    Authorized,
    /// No pending request with this code (never issued, or expired).
    UnknownCode,
    /// The code was authorized already.
    AlreadyUsed,
}

/// A live session, as `GET /Sessions` lists it (`SessionInfoDto`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionSummary {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_name: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub last_activity_date: String,
}

impl Jellyfin {
    /// Authorize the Quick Connect `code` a device shows for `user_id`, with the API key.
    pub async fn authorize_code(&self, code: &str, user_id: &str) -> Result<Authorize, JellyfinError> {
        let auth = self.admin_header()?;
        let mut url = self.url("/QuickConnect/Authorize");
        url.query_pairs_mut().append_pair("code", code).append_pair("userId", user_id);
        let resp = self.send(|| self.http.request(Method::POST, url.clone()).header("Authorization", &auth), false).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(Authorize::UnknownCode),
            StatusCode::INTERNAL_SERVER_ERROR => return Ok(Authorize::AlreadyUsed),
            StatusCode::UNAUTHORIZED => {
                let text = resp.text().await.unwrap_or_default();
                return Err(if text.contains("disabled") { JellyfinError::QuickConnectDisabled } else { JellyfinError::ApiKeyRejected });
            }
            _ => {}
        }
        let resp = self.check(resp, "authorizing a Quick Connect code", true).await?;
        let ok: bool = Self::json(resp, "authorizing a Quick Connect code").await?;
        Ok(if ok { Authorize::Authorized } else { Authorize::UnknownCode })
    }

    /// The live sessions of `user_id` (`GET /Sessions`, API key: every session, filtered here).
    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionSummary>, JellyfinError> {
        let all: Vec<SessionSummary> = self.admin_get("/Sessions", "listing sessions").await?;
        Ok(all.into_iter().filter(|s| crate::state::normalise_user_id(&s.user_id) == crate::state::normalise_user_id(user_id)).collect())
    }

    /// The session of `user_id` with the latest activity (ISO 8601 dates compare as text).
    pub async fn newest_session_of(&self, user_id: &str) -> Result<Option<SessionSummary>, JellyfinError> {
        Ok(self.sessions_of(user_id).await?.into_iter().max_by(|a, b| a.last_activity_date.cmp(&b.last_activity_date)))
    }
}
