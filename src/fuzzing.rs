//! Entry points for the fuzz targets (`fuzz/`) to the few parsers that are not public API:
//! each runs exactly the code a request runs, minus the network. Hidden from the docs; not
//! for any other use.

use serde_json::Value;

use crate::sso::backchannel::{algorithm, check_claims, split, LogoutTarget};
use crate::sso::error::LogoutTokenError;

/// What `POST /sso/OID/backchannel-logout/{p}` does with a `logout_token` before and after
/// the signature check (which needs the provider's keys): the JWS split, the algorithm
/// allow-list, the claims of OIDC Back-Channel Logout §2.6 at time `now` (Unix seconds).
pub fn logout_token(jwt: &str, issuer: Option<&str>, client_id: &str, now: u64) -> Result<LogoutTarget, LogoutTokenError> {
    let (header, claims, _input, _sig): (Value, Value, String, Vec<u8>) = split(jwt)?;
    algorithm(&header)?;
    check_claims(&claims, issuer, client_id, now)
}
