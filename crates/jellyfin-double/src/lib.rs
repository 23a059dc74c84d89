//! A Jellyfin test double: an in-process HTTP/1.1 server that behaves like Jellyfin (10.9 to
//! 12.0) for every endpoint the proxy touches. Each behaviour was read from Jellyfin's source
//! (github `jellyfin/jellyfin`, tags v10.9.11, v10.10.7, v10.11.11, v12.0-rc5 and master) and
//! cites the file it mirrors; docs/jellyfin-api.md has the same facts as a reference.
//!
//! It also serves what the proxy's own tests need (`fixtures`: a web page, a websocket echo at
//! `/socket`, a large media file with Range support at `/media/big.bin`, `/echo/headers`,
//! `/echo/body`) and records every call it gets.
//!
//! Self-contained on purpose (it never uses the proxy crate), so it is an independent reference;
//! `examples/jellyfin-double.rs` runs it on its own. One module per concern of Jellyfin's: `auth`
//! (who is calling), `users` and `policy`, `quick_connect`, `sessions` (tokens, devices, API
//! keys), `images`, `library`, `system`, `branding`, `web_client` (what jellyfin-web asks for
//! once signed in); `server` starts it and routes requests, `reply` has the response shapes
//! ASP.NET produces.
//!
//! Left out: live sessions separate from tokens (here one token = one session), parental
//! schedules, the LAN/remote distinction (everything is local), the setup wizard (always done),
//! and every endpoint not listed in `server::route`.
// Handlers return `Result<_, Response>` to answer early; the large Err is fine in a test double.
#![allow(clippy::result_large_err)]

use std::time::{SystemTime, UNIX_EPOCH};

/// `match` on a `Result<T, Response>`: the value, or return the response from the handler.
macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

mod auth;
mod branding;
mod fixtures;
mod images;
mod library;
mod policy;
mod quick_connect;
mod reply;
mod server;
mod sessions;
mod system;
mod users;
mod web_client;

pub use auth::{get_parts, parse_auth_params, url_decode};
pub use fixtures::{media_byte, TEST_AVATAR};
pub use policy::{ctor_policy, default_policy, new_user_policy};
pub use quick_connect::{qc_code, qc_secret, QUICK_CONNECT_TIMEOUT};
pub use reply::EXCEPTION_TEXT;
pub use server::{JellyfinDouble, RecordedCall};
pub use sessions::DoubleSession;
pub use users::{DEFAULT_AUTH, DEFAULT_RESET, INVALID_AUTH};

/// `Guid.Empty` in "N" form.
const EMPTY_GUID: &str = "00000000000000000000000000000000";

#[derive(Clone, Debug)]
pub struct DoubleOptions {
    /// The API key the double knows from the start (more: `add_api_key`, `POST /Auth/Keys`).
    pub api_key: String,
    /// `ServerConfiguration.QuickConnectAvailable` (Jellyfin's default: true).
    pub quick_connect_enabled: bool,
    /// The version to report and behave like ("10.9.11", "10.10.7", "10.11.11", "12.0.0").
    pub version: String,
    pub server_name: String,
    /// Size of `/media/big.bin` in bytes.
    pub media_size: u64,
    /// `ServerConfiguration.EnableLegacyAuthorization` (added in 10.11 with default `true`;
    /// `false` from 12.0): `X-Emby-Authorization`, the `Emby` scheme, `X-Emby-Token`,
    /// `X-MediaBrowser-Token` and `?api_key=` count only when true. A real 10.9/10.10 always
    /// honours them; the double defaults to false so that tests catch any legacy use.
    pub legacy_auth: bool,
}

impl Default for DoubleOptions {
    fn default() -> Self {
        DoubleOptions {
            api_key: "test-api-key".into(),
            quick_connect_enabled: true,
            version: "10.10.7".into(),
            server_name: "Double".into(),
            media_size: 16 * 1024 * 1024,
            legacy_auth: false,
        }
    }
}

/// major.minor.patch, for the behaviours that changed between releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    pub fn parse(s: &str) -> Version {
        let mut it = s.split(['.', '-']).map(|p| p.parse::<u64>().unwrap_or(0));
        Version(it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0))
    }
    pub fn at_least(self, major: u64, minor: u64) -> bool {
        (self.0, self.1) >= (major, minor)
    }
}

/// A new Guid in "N" form (ids, tokens).
fn hex_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A `DateTime` as `src/Jellyfin.Extensions/Json/Converters/JsonDateTimeConverter.cs` writes it:
/// `yyyy-MM-ddTHH:mm:ss.fffffffZ`.
pub fn jellyfin_date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:07}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_nanos() / 100)
}

/// `Guid.Parse`, as route/query binding and `JsonGuidConverter` use it: 32 hex digits, or
/// 8-4-4-4-12 with dashes, optionally in braces or parentheses. Returns the "N" form.
pub fn parse_guid(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .or_else(|| t.strip_prefix('(').and_then(|x| x.strip_suffix(')')))
        .unwrap_or(t);
    let hex: String = if t.len() == 36 {
        let b = t.as_bytes();
        if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return None;
        }
        t.chars().filter(|c| *c != '-').collect()
    } else {
        t.to_string()
    };
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_guids() {
        assert_eq!(jellyfin_date(UNIX_EPOCH + Duration::from_secs(1_767_225_600)), "2026-01-01T00:00:00.0000000Z");
        assert_eq!(parse_guid("{0123456789ABCDEF0123456789ABCDEF}").as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(parse_guid("01234567-89ab-cdef-0123-456789abcdef").as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert!(parse_guid("f1").is_none());
        assert!(Version::parse("12.0.0-rc5").at_least(12, 0) && !Version::parse("10.11.11").at_least(12, 0));
    }
}
