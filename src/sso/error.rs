//! Errors of the `/sso/` endpoints: one enum, each case with its status and the sentence a
//! person is shown. Rendering happens in `crate::error::respond`, like every other error.

use http::StatusCode;

use crate::error::HttpError;
use crate::jellyfin::JellyfinError;
use crate::state::{StateError, TakeError};

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("no such /sso/ endpoint")]
    NotFound,
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("caller may not {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFoundWhat(String),
    #[error("no enabled provider named {0}")]
    UnknownProvider(String),
    /// A login came back for a provider that a configuration reload removed or disabled
    /// while the person was at the identity provider.
    #[error("sign-in provider {0} was removed while this login was in progress")]
    ProviderGone(String),
    #[error("too many logins in progress ({0} pending)")]
    Busy(usize),
    /// One client started too many logins; the limit resets after `retry_after`.
    #[error("client {client} started too many sign-ins")]
    TooManyStarts { client: std::net::IpAddr, retry_after: std::time::Duration },
    #[error("login state refused: {0}")]
    State(TakeError),
    /// The state layer failed (a database write, a backend down): our fault, a 500.
    #[error("state storage failed: {0}")]
    Storage(String),
    /// A shared state backend (Redis, PostgreSQL) is unreachable: a 503, try again later.
    #[error("state storage unavailable: {0}")]
    StorageUnavailable(String),
    #[error("the SAML replay cache is full")]
    ReplayCacheFull,
    #[error("the login state is missing from the callback")]
    MissingState,
    #[error("identity provider {provider} is unreachable or broken: {detail}")]
    IdpUnavailable { provider: String, detail: String },
    #[error("identity provider {provider} answered error={error}")]
    IdpRefused { provider: String, error: String, description: Option<String> },
    #[error("identity provider {provider} sent an answer that failed verification: {detail}")]
    InvalidToken { provider: String, detail: String },
    #[error("{username} has no permitted role at provider {provider}")]
    NotAllowed { provider: String, username: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("Jellyfin user {0} is an administrator and was not adopted by name (set adoptExistingAdmins: true on the provider, or link the account)")]
    AdminNotAdopted(String),
    #[error("Jellyfin user {0} is already linked to another identity of this provider")]
    LinkedElsewhere(String),
    #[error("single sign-on needs jellyfin.api_key in proxy.yaml")]
    NoApiKey,
    /// A form without the anti-CSRF field of this browser's session (or without a session).
    #[error("anti-CSRF field missing or not this session's")]
    Csrf,
    /// A guessing limit was reached; the response carries `Retry-After`.
    #[error("too many wrong attempts; retry after {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error("logout from provider {provider} refused: {reason}")]
    LogoutToken { provider: String, reason: LogoutTokenError },
    #[error(transparent)]
    Jellyfin(#[from] JellyfinError),
}

/// Why a back- or front-channel logout request was refused (nothing was revoked).
#[derive(Debug, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("no logout_token in the request")]
    Missing,
    #[error("the logout token is not a signed JWT")]
    Malformed,
    #[error("algorithm `{0}` is not accepted (asymmetric signatures only)")]
    Algorithm(String),
    #[error("the signing key is not among the provider's keys")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("{0}")]
    Claim(&'static str),
    #[error("this logout token was already used (jti seen before)")]
    Replayed,
}

impl SsoError {
    /// Why, as one of a fixed set of short names: the `reason` label of refused logins in the
    /// metrics and the `reason` of the audit log. Every variant maps to a constant, so the set
    /// is bounded by this match and grows only with the enum.
    pub fn reason(&self) -> &'static str {
        match self {
            SsoError::NotFound | SsoError::NotFoundWhat(_) => "not_found",
            SsoError::Unauthorized => "unauthorized",
            SsoError::Forbidden(_) => "forbidden",
            SsoError::Conflict(_) => "conflict",
            SsoError::UnknownProvider(_) => "unknown_provider",
            SsoError::ProviderGone(_) => "provider_gone",
            SsoError::Busy(_) | SsoError::ReplayCacheFull => "busy",
            SsoError::TooManyStarts { .. } | SsoError::TooManyAttempts { .. } => "rate_limited",
            SsoError::State(TakeError::Unknown) => "state_unknown",
            SsoError::State(TakeError::Expired) => "state_expired",
            SsoError::State(TakeError::WrongBrowser) => "state_wrong_browser",
            SsoError::State(TakeError::Backend(_)) | SsoError::Storage(_) => "storage",
            SsoError::StorageUnavailable(_) => "storage_unavailable",
            SsoError::MissingState => "state_missing",
            SsoError::IdpUnavailable { .. } => "idp_unavailable",
            SsoError::IdpRefused { .. } => "idp_refused",
            SsoError::InvalidToken { .. } => "invalid_token",
            SsoError::NotAllowed { .. } => "not_allowed",
            SsoError::BadRequest(_) => "bad_request",
            SsoError::TooLarge(_) => "too_large",
            SsoError::BodyTimeout(_) => "body_timeout",
            SsoError::AdminNotAdopted(_) => "admin_not_adopted",
            SsoError::LinkedElsewhere(_) => "linked_elsewhere",
            SsoError::NoApiKey => "no_api_key",
            SsoError::Csrf => "csrf",
            SsoError::LogoutToken { .. } => "logout_token",
            SsoError::Jellyfin(_) => "jellyfin",
        }
    }
}

impl From<TakeError> for SsoError {
    fn from(e: TakeError) -> Self {
        match e {
            TakeError::Backend(e) => e.into(),
            other => SsoError::State(other),
        }
    }
}

impl From<StateError> for SsoError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Full { .. } => SsoError::Busy(0),
            e @ StateError::Unavailable { .. } => SsoError::StorageUnavailable(e.to_string()),
            other => SsoError::Storage(crate::error::error_chain(&other)),
        }
    }
}

impl HttpError for SsoError {
    fn status(&self) -> StatusCode {
        match self {
            SsoError::UnknownProvider(_) | SsoError::NotFound | SsoError::NotFoundWhat(_) => StatusCode::NOT_FOUND,
            SsoError::Unauthorized => StatusCode::UNAUTHORIZED,
            SsoError::Forbidden(_) => StatusCode::FORBIDDEN,
            SsoError::Conflict(_) => StatusCode::CONFLICT,
            SsoError::Busy(_) | SsoError::ReplayCacheFull => StatusCode::SERVICE_UNAVAILABLE,
            SsoError::TooManyStarts { .. } => StatusCode::TOO_MANY_REQUESTS,
            SsoError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SsoError::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            SsoError::State(_) | SsoError::MissingState | SsoError::BadRequest(_) | SsoError::ProviderGone(_) => StatusCode::BAD_REQUEST,
            SsoError::IdpUnavailable { .. } => StatusCode::BAD_GATEWAY,
            SsoError::IdpRefused { .. } | SsoError::InvalidToken { .. } | SsoError::NotAllowed { .. } => StatusCode::UNAUTHORIZED,
            SsoError::AdminNotAdopted(_) | SsoError::LinkedElsewhere(_) => StatusCode::FORBIDDEN,
            SsoError::NoApiKey => StatusCode::SERVICE_UNAVAILABLE,
            SsoError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            SsoError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            SsoError::Csrf => StatusCode::FORBIDDEN,
            SsoError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            SsoError::LogoutToken { .. } => StatusCode::BAD_REQUEST,
            SsoError::Jellyfin(e) => e.status(),
        }
    }
    fn title(&self) -> &'static str {
        match self {
            SsoError::NotFound | SsoError::NotFoundWhat(_) => "Not found",
            SsoError::Unauthorized => "Unauthorized",
            SsoError::Forbidden(_) => "Forbidden",
            SsoError::Conflict(_) => "Conflict",
            SsoError::UnknownProvider(_) => "Unknown sign-in provider",
            SsoError::ProviderGone(_) => "This sign-in provider is no longer offered",
            SsoError::Busy(_) | SsoError::ReplayCacheFull => "Too many sign-ins at once",
            SsoError::TooManyStarts { .. } => "Too many sign-in attempts",
            SsoError::Storage(_) => "The server could not save this",
            SsoError::StorageUnavailable(_) => "Sign-in is unavailable for a moment",
            SsoError::State(_) | SsoError::MissingState => "This sign-in link has expired",
            SsoError::IdpUnavailable { .. } => "The identity provider is not reachable",
            SsoError::IdpRefused { .. } => "Sign-in was not completed",
            SsoError::InvalidToken { .. } => "Sign-in could not be verified",
            SsoError::NotAllowed { .. } => "Not allowed on this server",
            SsoError::BadRequest(_) => "Bad request",
            SsoError::AdminNotAdopted(_) | SsoError::LinkedElsewhere(_) => "Account needs linking",
            SsoError::NoApiKey => "Single sign-on is not set up",
            SsoError::TooLarge(_) => "Too large",
            SsoError::BodyTimeout(_) => "Too slow",
            SsoError::Csrf => "This form has expired",
            SsoError::TooManyAttempts { .. } => "Too many attempts",
            SsoError::LogoutToken { .. } => "invalid_request",
            SsoError::Jellyfin(e) => e.title(),
        }
    }
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            SsoError::TooManyStarts { retry_after, .. } => Some(*retry_after),
            SsoError::TooManyAttempts { retry_after } => Some(std::time::Duration::from_secs(*retry_after)),
            SsoError::Busy(_) | SsoError::ReplayCacheFull => Some(std::time::Duration::from_secs(60)),
            _ => None,
        }
    }
    fn public_message(&self) -> String {
        match self {
            SsoError::NotFound => "There is nothing at this address.".into(),
            SsoError::NotFoundWhat(m) | SsoError::Conflict(m) => m.clone(),
            SsoError::Unauthorized => "Missing or invalid credentials: send a Jellyfin API key or access token in Authorization: MediaBrowser Token=\"...\".".into(),
            SsoError::Forbidden(what) => format!("You may not {what}."),
            SsoError::UnknownProvider(p) => format!("There is no sign-in provider called \u{201c}{p}\u{201d} on this server."),
            SsoError::ProviderGone(p) => format!(
                "This sign-in was started with \u{201c}{p}\u{201d}, which this server stopped offering while you were signing in. Start again from the sign-in page."
            ),
            SsoError::Busy(_) | SsoError::ReplayCacheFull => "The server is handling too many sign-ins right now. Try again in a few minutes.".into(),
            SsoError::TooManyStarts { retry_after, .. } => {
                format!("Too many sign-ins were started from your address. Try again in {} minutes.", retry_after.as_secs().div_ceil(60).max(1))
            }
            SsoError::StorageUnavailable(_) => {
                "The server cannot reach its sign-in storage right now; nothing was changed. Try again in a minute. Signed-in sessions keep working.".into()
            }
            SsoError::Storage(_) => "Something went wrong on the server while saving or reading sign-in data; nothing was changed. Try again, and tell the administrator if it keeps happening.".into(),
            SsoError::State(_) | SsoError::MissingState => {
                "This sign-in was started in another browser tab or window, was already used, or took too long. Start again from the sign-in page.".into()
            }
            SsoError::IdpUnavailable { .. } => "The identity provider did not answer properly. Try again in a minute.".into(),
            SsoError::IdpRefused { error, description, .. } => match (error.as_str(), description) {
                ("access_denied", _) => "Sign-in was cancelled or refused at the identity provider.".into(),
                (e, Some(d)) => format!("The identity provider reported {e}: {d}"),
                (e, None) => format!("The identity provider reported {e}."),
            },
            SsoError::InvalidToken { .. } => "The answer from the identity provider could not be verified, so you were not signed in.".into(),
            SsoError::NotAllowed { .. } => "Your account is not allowed on this server. Ask its administrator for access.".into(),
            SsoError::BadRequest(m) => m.clone(),
            SsoError::AdminNotAdopted(_) => {
                "An administrator account with your name already exists. For safety it is not taken over automatically; ask the administrator to link it.".into()
            }
            SsoError::LinkedElsewhere(_) => {
                "A Jellyfin account with your name is already linked to a different sign-in. Ask the administrator to sort out the link.".into()
            }
            SsoError::NoApiKey => "The administrator has not given the proxy a Jellyfin API key yet.".into(),
            SsoError::TooLarge(n) => format!("The request is larger than the {n} bytes this address accepts."),
            SsoError::BodyTimeout(_) => "The request took too long to arrive. Try again.".into(),
            SsoError::Csrf => "This form does not belong to your current sign-in. Open the page again and retry.".into(),
            SsoError::TooManyAttempts { retry_after } => format!("Too many wrong attempts. Wait {} minute(s) and try again.", retry_after.div_ceil(60)),
            // What failed is no secret to the provider that sent it; the token is never echoed.
            SsoError::LogoutToken { reason, .. } => format!("The logout request was refused: {reason}."),
            SsoError::Jellyfin(e) => e.public_message(),
        }
    }
}
