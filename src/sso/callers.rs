//! Who is calling the admin API, and may they?
//!
//! A caller is identified by the Jellyfin token it presents, in any form Jellyfin accepts
//! ([`crate::jellyfin::credentials::presented_token`]); the proxy asks Jellyfin about it
//! ([`Jellyfin::identify`]) and remembers the answer for 30 seconds in the ephemeral state
//! under the token's SHA-256, never the token. "Admin" rules accept an API key or an
//! administrator; "user or admin" accepts the user named in the path or an administrator.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Uri};

use super::error::SsoError;
use crate::jellyfin::credentials::presented_token;
use crate::jellyfin::{Caller, Jellyfin};
use crate::state::{digest, Ephemeral, Kind};

const CALLER_TTL: Duration = Duration::from_secs(30);

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Rule<'a> {
    /// An API key or an administrator user.
    Admin,
    /// The user with this id, or an administrator.
    UserOrAdmin(&'a str),
}

pub struct Callers {
    jellyfin: Jellyfin,
    ephemeral: Arc<dyn Ephemeral>,
}

impl Callers {
    pub fn new(jellyfin: Jellyfin, ephemeral: Arc<dyn Ephemeral>) -> Callers {
        Callers { jellyfin, ephemeral }
    }

    /// Who `token` belongs to (`None`: nobody Jellyfin knows).
    pub async fn identify(&self, token: &str) -> Result<Option<Caller>, SsoError> {
        let key = digest(token);
        // A cache that cannot be read is only slower: ask Jellyfin.
        if let Ok(Some(bytes)) = self.ephemeral.get(Kind::Caller, &key).await {
            if let Ok(caller) = serde_json::from_slice(&bytes) {
                return Ok(caller);
            }
        }
        let caller = self.jellyfin.identify(token).await?;
        let bytes = serde_json::to_vec(&caller).expect("caller serializes");
        if let Err(e) = self.ephemeral.set(Kind::Caller, &key, bytes, CALLER_TTL).await {
            tracing::debug!(error = %e, "caller not cached");
        }
        Ok(caller)
    }

    /// Check that the request's caller satisfies `rule`; returns the caller.
    pub async fn authorize(&self, headers: &HeaderMap, uri: &Uri, rule: Rule<'_>, what: &'static str) -> Result<Caller, SsoError> {
        let token = presented_token(headers, uri).ok_or(SsoError::Unauthorized)?;
        let caller = self.identify(&token).await?.ok_or(SsoError::Unauthorized)?;
        let allowed = match (&caller, rule) {
            (Caller::ApiKey, _) | (Caller::User { is_admin: true, .. }, _) => true,
            (Caller::User { id, .. }, Rule::UserOrAdmin(user)) => same_id(id, user),
            (Caller::User { .. }, Rule::Admin) => false,
        };
        if allowed {
            Ok(caller)
        } else {
            Err(SsoError::Forbidden(what))
        }
    }
}

/// Jellyfin ids compare without dashes and case ("N" and "D" GUID formats).
pub fn same_id(a: &str, b: &str) -> bool {
    crate::state::normalise_user_id(a) == crate::state::normalise_user_id(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_in_both_guid_formats() {
        assert!(same_id("4f8c3a2b1d6e4f0a9b8c7d6e5f4a3b2c", "4F8C3A2B-1D6E-4F0A-9B8C-7D6E5F4A3B2C"));
        assert!(!same_id("4f8c", "4f8d"));
    }
}
