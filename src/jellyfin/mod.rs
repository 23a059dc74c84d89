//! A typed client for the parts of Jellyfin's public REST API the proxy uses: server info,
//! users, policies, avatars, media folders, caller identification, logout, and minting an
//! access token for a user through Quick Connect, with no plugin in Jellyfin.
//!
//! Every admin call authenticates with the proxy's API key in `Authorization: MediaBrowser
//! Token="…"`; the legacy `X-Emby-Token` and `api_key=` are never used (Jellyfin 10.11 can switch
//! them off with `EnableLegacyAuthorization`, and 12.0 does by default). Idempotent reads are retried a bounded number of times on
//! connection errors and 5xx; writes are never retried. Nothing secret is logged.
//!
//! Token minting ([`Jellyfin::mint_token`]): `POST /QuickConnect/Initiate` as the user's
//! device, `POST /QuickConnect/Authorize?code&userId` with the API key, then
//! `POST /Users/AuthenticateWithQuickConnect` as the device. Jellyfin keeps one session per
//! user and device id, so minting again for the same user and device replaces the earlier
//! session's token (see docs/jellyfin-api.md).

pub mod credentials;
pub mod dto;
pub mod error;
pub mod quick_connect;

use std::time::Duration;

use http::StatusCode;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use url::Url;

use crate::config::Secret;
pub use credentials::{mediabrowser_header, parse_mediabrowser_header};
pub use dto::*;
pub use error::JellyfinError;

/// How this proxy identifies itself to Jellyfin on its own (admin) calls.
const PROXY_CLIENT: &str = "jellyfin-sso-proxy";
const READ_ATTEMPTS: u32 = 3;

/// The end user's client, as the Jellyfin web client would name itself. Sessions minted for
/// the user are tied to this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub client: String,
    pub device: String,
    pub device_id: String,
    pub version: String,
}

/// Who presented a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Caller {
    /// An API key: administrator rights, no user.
    ApiKey,
    User { id: String, name: String, is_admin: bool },
}

/// The Jellyfin REST client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Jellyfin {
    http: reqwest::Client,
    base: Url,
    api_key: Option<Secret>,
}

impl Jellyfin {
    pub fn new(base: &Url, api_key: Option<Secret>, connect_timeout: Duration, timeout: Duration) -> Jellyfin {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("jellyfin-sso-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client");
        Jellyfin { http, base: base.clone(), api_key }
    }

    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        let base_path = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base_path}{path}"));
        u
    }

    fn admin_header(&self) -> Result<String, JellyfinError> {
        let key = self.api_key.as_ref().ok_or(JellyfinError::NoApiKey)?;
        Ok(mediabrowser_header(&[
            ("Client", PROXY_CLIENT),
            ("Device", PROXY_CLIENT),
            ("DeviceId", PROXY_CLIENT),
            ("Version", env!("CARGO_PKG_VERSION")),
            ("Token", key.expose()),
        ]))
    }

    fn device_header(device: &DeviceInfo, token: Option<&str>) -> String {
        let mut p = vec![
            ("Client", device.client.as_str()),
            ("Device", device.device.as_str()),
            ("DeviceId", device.device_id.as_str()),
            ("Version", device.version.as_str()),
        ];
        if let Some(t) = token {
            p.push(("Token", t));
        }
        mediabrowser_header(&p)
    }

    fn unreachable(&self, source: reqwest::Error) -> JellyfinError {
        JellyfinError::Unreachable { url: self.base.origin().ascii_serialization(), source }
    }

    /// Send, retrying idempotent GETs on connection errors and 5xx.
    async fn send(&self, build: impl Fn() -> RequestBuilder, idempotent: bool) -> Result<Response, JellyfinError> {
        let attempts = if idempotent { READ_ATTEMPTS } else { 1 };
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            match build().send().await {
                Ok(r) if r.status().is_server_error() && attempt + 1 < attempts => continue,
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(self.unreachable(last.expect("at least one attempt failed")))
    }

    /// Map a non-success status to an error; 401 with the admin key means the key is bad.
    async fn check(&self, resp: Response, action: &'static str, admin: bool) -> Result<Response, JellyfinError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::UNAUTHORIZED && admin {
            return Err(JellyfinError::ApiKeyRejected);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(JellyfinError::Refused { action, status, message: refusal_message(&text, status) })
    }

    async fn json<T: DeserializeOwned>(resp: Response, action: &'static str) -> Result<T, JellyfinError> {
        let bytes = resp.bytes().await.map_err(|e| JellyfinError::Protocol { action, detail: e.to_string() })?;
        serde_json::from_slice(&bytes).map_err(|e| JellyfinError::Protocol { action, detail: e.to_string() })
    }

    async fn admin_get<T: DeserializeOwned>(&self, path: &str, action: &'static str) -> Result<T, JellyfinError> {
        let auth = self.admin_header()?;
        let url = self.url(path);
        let resp = self.send(|| self.http.get(url.clone()).header("Authorization", &auth), true).await?;
        let resp = self.check(resp, action, true).await?;
        Self::json(resp, action).await
    }

    async fn admin_send(&self, method: Method, url: Url, body: Option<serde_json::Value>, action: &'static str) -> Result<Response, JellyfinError> {
        let auth = self.admin_header()?;
        let resp = self
            .send(
                || {
                    let mut b = self.http.request(method.clone(), url.clone()).header("Authorization", &auth);
                    if let Some(body) = &body {
                        b = b.json(body);
                    }
                    b
                },
                false,
            )
            .await?;
        self.check(resp, action, true).await
    }

    // ----- Server --------------------------------------------------------------------------

    /// `GET /System/Info/Public` (anonymous).
    pub async fn server_info(&self) -> Result<PublicSystemInfo, JellyfinError> {
        let url = self.url("/System/Info/Public");
        let resp = self.send(|| self.http.get(url.clone()), true).await?;
        let resp = self.check(resp, "reading server info", false).await?;
        Self::json(resp, "reading server info").await
    }

    /// Start-up check: reachable, 10.9 or later, the API key works, Quick Connect is on.
    pub async fn check_ready(&self) -> Result<PublicSystemInfo, JellyfinError> {
        let info = self.server_info().await?;
        if !version_at_least(&info.version, 10, 9) {
            return Err(JellyfinError::UnsupportedVersion { found: info.version });
        }
        if self.api_key.is_some() {
            // Any admin read proves the key; the folder list is small.
            self.virtual_folders().await?;
            if !self.quick_connect_enabled().await? {
                return Err(JellyfinError::QuickConnectDisabled);
            }
        }
        Ok(info)
    }

    /// `GET /QuickConnect/Enabled` (anonymous): `true` or `false`.
    pub async fn quick_connect_enabled(&self) -> Result<bool, JellyfinError> {
        let url = self.url("/QuickConnect/Enabled");
        let resp = self.send(|| self.http.get(url.clone()), true).await?;
        let resp = self.check(resp, "reading Quick Connect state", false).await?;
        Self::json(resp, "reading Quick Connect state").await
    }

    // ----- Users ---------------------------------------------------------------------------

    /// `GET /Users` (elevated), then match the name case-insensitively, as Jellyfin's
    /// `UserManager.GetUserByName` does.
    pub async fn find_user_by_name(&self, name: &str) -> Result<Option<UserDto>, JellyfinError> {
        let users: Vec<UserDto> = self.admin_get("/Users", "listing users").await?;
        Ok(users.into_iter().find(|u| names_equal(&u.name, name)))
    }

    /// `GET /Users/{id}`.
    pub async fn user(&self, id: &str) -> Result<UserDto, JellyfinError> {
        let path = format!("/Users/{}", path_segment(id));
        match self.admin_get(&path, "reading a user").await {
            Err(JellyfinError::Refused { status, .. }) if status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST => {
                Err(JellyfinError::UserNotFound(id.to_string()))
            }
            r => r,
        }
    }

    /// `POST /Users/New` with `{Name, Password}` (elevated).
    pub async fn create_user(&self, name: &str, password: &Secret) -> Result<UserDto, JellyfinError> {
        let resp = self
            .admin_send(Method::POST, self.url("/Users/New"), Some(json!({ "Name": name, "Password": password.expose() })), "creating a user")
            .await?;
        Self::json(resp, "creating a user").await
    }

    /// Read the user's policy, apply `change`, and write the whole policy back
    /// (`POST /Users/{id}/Policy` replaces it). Returns the policy as written.
    pub async fn update_policy(&self, user_id: &str, change: impl FnOnce(&mut UserPolicy)) -> Result<UserPolicy, JellyfinError> {
        let user = self.user(user_id).await?;
        let mut policy = user.policy.ok_or(JellyfinError::Protocol { action: "reading a user policy", detail: "the user has no Policy".into() })?;
        let before = policy.clone();
        change(&mut policy);
        if policy == before {
            return Ok(policy);
        }
        let body = serde_json::to_value(&policy).map_err(|e| JellyfinError::Protocol { action: "writing a user policy", detail: e.to_string() })?;
        let url = self.url(&format!("/Users/{}/Policy", path_segment(user_id)));
        self.admin_send(Method::POST, url, Some(body), "updating a user policy").await?;
        Ok(policy)
    }

    /// Set which authentication and password-reset providers a user has.
    pub async fn set_auth_provider(&self, user_id: &str, auth: &str, reset: &str) -> Result<UserPolicy, JellyfinError> {
        self.update_policy(user_id, |p| {
            p.authentication_provider_id = auth.to_string();
            p.password_reset_provider_id = reset.to_string();
        })
        .await
    }

    /// Upload the user's avatar: `POST /UserImage?userId=` with the image base64-encoded and
    /// its image type as Content-Type. Jellyfin 10.9, 10.10, 10.11 and 12.0 all read the body
    /// through `GetFromBase64Stream` (`Jellyfin.Api/Controllers/ImageController.cs`).
    pub async fn upload_avatar(&self, user_id: &str, image: &[u8], content_type: &str) -> Result<(), JellyfinError> {
        use base64::Engine;
        let auth = self.admin_header()?;
        let mut url = self.url("/UserImage");
        url.query_pairs_mut().append_pair("userId", user_id);
        let body = base64::engine::general_purpose::STANDARD.encode(image);
        let resp = self
            .send(|| self.http.post(url.clone()).header("Authorization", &auth).header("Content-Type", content_type).body(body.clone()), false)
            .await?;
        self.check(resp, "uploading an avatar", true).await.map(|_| ())
    }

    // ----- Library -------------------------------------------------------------------------

    /// `GET /Library/VirtualFolders` (elevated): the libraries with their ids.
    pub async fn virtual_folders(&self) -> Result<Vec<VirtualFolderInfo>, JellyfinError> {
        self.admin_get("/Library/VirtualFolders", "listing libraries").await
    }

    /// `GET /Library/MediaFolders` (elevated): the ids `UserPolicy.EnabledFolders` refers to.
    pub async fn media_folders(&self) -> Result<Vec<MediaFolder>, JellyfinError> {
        let r: QueryResult<MediaFolder> = self.admin_get("/Library/MediaFolders", "listing media folders").await?;
        Ok(r.items)
    }

    // ----- Tokens --------------------------------------------------------------------------

    /// Who does `token` belong to? `GET /Users/Me` names a user; an API key has no user
    /// there, so a token refused by `/Users/Me` but accepted by an elevated endpoint is an
    /// API key. `Ok(None)`: the token is not valid.
    pub async fn identify(&self, token: &str) -> Result<Option<Caller>, JellyfinError> {
        let auth = mediabrowser_header(&[("Token", token)]);
        let url = self.url("/Users/Me");
        let resp = self.send(|| self.http.get(url.clone()).header("Authorization", &auth), true).await?;
        match resp.status() {
            s if s.is_success() => {
                let u: UserDto = Self::json(resp, "identifying a token").await?;
                let is_admin = u.is_admin();
                return Ok(Some(Caller::User { id: u.id, name: u.name, is_admin }));
            }
            StatusCode::UNAUTHORIZED => return Ok(None),
            _ => {}
        }
        let url = self.url("/Auth/Keys");
        let resp = self.send(|| self.http.get(url.clone()).header("Authorization", &auth), true).await?;
        Ok(resp.status().is_success().then_some(Caller::ApiKey))
    }

    /// `POST /Sessions/Logout` with the user's token: that token stops working.
    pub async fn logout(&self, token: &str) -> Result<(), JellyfinError> {
        let auth = mediabrowser_header(&[("Token", token)]);
        let url = self.url("/Sessions/Logout");
        let resp = self.send(|| self.http.post(url.clone()).header("Authorization", &auth), false).await?;
        self.check(resp, "logging out", false).await.map(|_| ())
    }

    /// `DELETE /Devices?id=` (elevated): ends every session of that device.
    pub async fn delete_device(&self, device_id: &str) -> Result<(), JellyfinError> {
        let mut url = self.url("/Devices");
        url.query_pairs_mut().append_pair("id", device_id);
        self.admin_send(Method::DELETE, url, None, "revoking a device").await.map(|_| ())
    }

    /// Mint an access token for `user_id` on `device`, through Quick Connect.
    pub async fn mint_token(&self, user_id: &str, device: &DeviceInfo) -> Result<AuthenticationResult, JellyfinError> {
        let device_auth = Self::device_header(device, None);

        // 1. Initiate as the user's device (anonymous).
        let url = self.url("/QuickConnect/Initiate");
        let resp = self.send(|| self.http.post(url.clone()).header("Authorization", &device_auth), false).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(JellyfinError::QuickConnectDisabled);
        }
        let resp = self.check(resp, "starting Quick Connect", false).await?;
        let qc: QuickConnectResult = Self::json(resp, "starting Quick Connect").await?;

        // 2. Authorize the code for the user, as administrator.
        let mut url = self.url("/QuickConnect/Authorize");
        url.query_pairs_mut().append_pair("code", &qc.code).append_pair("userId", user_id);
        let resp = self.admin_send(Method::POST, url, None, "authorizing Quick Connect").await?;
        let authorized: bool = Self::json(resp, "authorizing Quick Connect").await?;
        if !authorized {
            return Err(JellyfinError::Refused {
                action: "authorizing Quick Connect",
                status: StatusCode::OK,
                message: "Jellyfin did not authorize the Quick Connect request".into(),
            });
        }

        // 3. Exchange the secret for the session, again as the device.
        let url = self.url("/Users/AuthenticateWithQuickConnect");
        let body = json!({ "Secret": qc.secret });
        let resp = self.send(|| self.http.post(url.clone()).header("Authorization", &device_auth).json(&body), false).await?;
        let resp = self.check(resp, "completing Quick Connect", false).await?;
        Self::json(resp, "completing Quick Connect").await
    }
}

/// Does `version` ("10.10.7", "10.11.0-rc1", "12.0.0") reach `major.minor`?
pub fn version_at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut it = version.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u64>().unwrap_or(0));
    let (ma, mi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

/// Jellyfin compares user names ignoring case (`StringComparison.OrdinalIgnoreCase`).
pub fn names_equal(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// An id inside a path: Jellyfin ids are hex GUIDs; anything else is percent-encoded so it
/// can never change the path.
fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The human part of a refusal: ProblemDetails `title`/`detail`, a JSON string, or the text.
fn refusal_message(text: &str, status: StatusCode) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(s) = v.as_str() {
            return s.to_string();
        }
        for k in ["detail", "title", "Message", "message"] {
            if let Some(s) = v.get(k).and_then(|x| x.as_str()) {
                return s.to_string();
            }
        }
    }
    let t = text.trim();
    if t.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        t.chars().take(300).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(version_at_least("10.9.0", 10, 9));
        assert!(version_at_least("10.10.7", 10, 9));
        assert!(version_at_least("10.11.0-rc2", 10, 11));
        assert!(version_at_least("12.0.0", 10, 11));
        assert!(!version_at_least("10.8.13", 10, 9));
        assert!(!version_at_least("garbage", 10, 9));
    }

    #[test]
    fn refusals_keep_jellyfin_message() {
        assert_eq!(refusal_message("\"There must be at least one user in the system with administrative access.\"", StatusCode::BAD_REQUEST), "There must be at least one user in the system with administrative access.");
        assert_eq!(refusal_message("{\"title\":\"Bad\",\"detail\":\"Missing field\"}", StatusCode::BAD_REQUEST), "Missing field");
        assert_eq!(refusal_message("", StatusCode::FORBIDDEN), "Forbidden");
    }

    #[test]
    fn names_ignore_case() {
        assert!(names_equal("Alice", "aLICE"));
        assert!(!names_equal("Alice", "Alicia"));
    }
}
