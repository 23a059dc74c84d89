//! The sessions API: a user's SSO-minted Jellyfin sessions, listed and revoked.
//!
//! - `GET /sso/sessions/{jellyfinUserId}`: `[{deviceId, deviceName, client, provider,
//!   protocol, how, mintedAt, lastValidated}]`, oldest first (no token, not even encrypted).
//! - `DELETE /sso/sessions/{jellyfinUserId}/{deviceId}`: revoke that one (404 if unknown).
//! - `DELETE /sso/sessions/{jellyfinUserId}`: revoke them all; answers `{"revoked": n}`.
//!
//! Callers are the user named in the path or an administrator (the router checks with
//! [`super::callers`] before these run).

use http::Response;
use serde::Serialize;

use super::error::SsoError;
use super::http::json_ok;
use super::revocation::Why;
use super::Sso;
use crate::body::Body;
use crate::state::MintedSession;

/// One session as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub device_id: String,
    pub device_name: Option<String>,
    pub client: Option<String>,
    pub provider: String,
    pub protocol: String,
    pub how: String,
    pub minted_at: u64,
    pub last_validated: Option<u64>,
}

impl From<&MintedSession> for SessionView {
    fn from(m: &MintedSession) -> SessionView {
        SessionView {
            device_id: m.device_id.clone(),
            device_name: m.device_name.clone(),
            client: m.client.clone(),
            provider: m.provider.clone(),
            protocol: m.protocol.clone(),
            how: m.how.clone(),
            minted_at: m.minted_at,
            last_validated: m.last_validated,
        }
    }
}

impl Sso {
    pub(super) async fn list_sessions(&self, user: &str) -> Result<Response<Body>, SsoError> {
        let mints = self.state.durable.mints_of_user(user).await?;
        Ok(json_ok(&mints.iter().map(SessionView::from).collect::<Vec<_>>()))
    }

    pub(super) async fn revoke_session(&self, user: &str, device: &str) -> Result<Response<Body>, SsoError> {
        let m = self.state.durable.mint(user, device).await?.ok_or_else(|| SsoError::NotFoundWhat("no such session".into()))?;
        self.revoke(&m, Why::SessionsApi).await?;
        Ok(json_ok(&serde_json::json!({"revoked": 1})))
    }

    pub(super) async fn revoke_sessions(&self, user: &str) -> Result<Response<Body>, SsoError> {
        let mints = self.state.durable.mints_of_user(user).await?;
        let n = self.revoke_all(&mints, Why::SessionsApi).await?;
        Ok(json_ok(&serde_json::json!({"revoked": n})))
    }
}
