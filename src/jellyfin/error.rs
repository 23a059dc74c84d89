//! What can go wrong talking to Jellyfin, as one enum with a case per thing a caller (or an
//! operator reading the log) must tell apart.

use http::StatusCode;

use crate::error::HttpError;

#[derive(Debug, thiserror::Error)]
pub enum JellyfinError {
    #[error("Jellyfin at {url} is unreachable")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the API key in proxy.yaml is not accepted by Jellyfin (create one under Dashboard > API Keys and set jellyfin.api_key)")]
    ApiKeyRejected,
    #[error("Quick Connect is disabled in Jellyfin: enable it under Dashboard > General > Quick Connect. The proxy signs users in through Quick Connect, so it cannot sign anyone in without it")]
    QuickConnectDisabled,
    #[error("Jellyfin has no user {0}")]
    UserNotFound(String),
    #[error("Jellyfin refused {action}: {status} {message}")]
    Refused { action: &'static str, status: StatusCode, message: String },
    #[error("Jellyfin {found} is too old: the proxy needs 10.9 or later (Quick Connect authorization for another user arrived in 10.9)")]
    UnsupportedVersion { found: String },
    #[error("Jellyfin sent an answer the proxy does not understand for {action}: {detail}")]
    Protocol { action: &'static str, detail: String },
    #[error("the proxy has no Jellyfin API key (set jellyfin.api_key or jellyfin.api_key_file)")]
    NoApiKey,
}

impl HttpError for JellyfinError {
    fn status(&self) -> StatusCode {
        match self {
            JellyfinError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            JellyfinError::UserNotFound(_) => StatusCode::NOT_FOUND,
            JellyfinError::Refused { status, .. } if status.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
    fn title(&self) -> &'static str {
        match self {
            JellyfinError::Unreachable { .. } => "Jellyfin is not reachable",
            JellyfinError::QuickConnectDisabled => "Quick Connect is disabled",
            JellyfinError::UserNotFound(_) => "User not found",
            JellyfinError::Refused { .. } => "Jellyfin refused the request",
            _ => "Sign-in is misconfigured",
        }
    }
    fn public_message(&self) -> String {
        match self {
            JellyfinError::Unreachable { .. } => "The media server is not answering right now. Try again in a minute.".into(),
            JellyfinError::QuickConnectDisabled => {
                "The server administrator must enable Quick Connect in Jellyfin (Dashboard > General) for single sign-on to work.".into()
            }
            JellyfinError::UserNotFound(u) => format!("There is no user {u}."),
            JellyfinError::Refused { message, .. } => message.clone(),
            _ => "Single sign-on is not set up correctly on this server. The administrator can find the reason in the proxy's log.".into(),
        }
    }
}
