//! `password_login:` in proxy.yaml: which password logins at Jellyfin's password endpoints
//! the proxy lets through.
//!
//! ```yaml
//! password_login:
//!   mode: allow              # allow | app_passwords_only | sso_only
//!   break_glass: [admin]     # sso_only: these users may still use their Jellyfin password
//!   break_glass_networks: [10.0.0.0/8]   # optional: and only from these networks
//! ```
//!
//! - `allow` (default): Jellyfin passwords work as before; app passwords work too.
//! - `app_passwords_only`: a user with an SSO link may sign in with an app password only.
//! - `sso_only`: only app passwords and the break-glass users.

use ipnet::IpNet;
use serde::Deserialize;

use super::field::{Field, Problems, Unknown};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordMode {
    #[default]
    Allow,
    AppPasswordsOnly,
    SsoOnly,
}

/// The validated policy.
#[derive(Debug, Clone, Default)]
pub struct PasswordLogin {
    pub mode: PasswordMode,
    /// User names (compared without case) that keep their Jellyfin password under `sso_only`.
    pub break_glass: Vec<String>,
    /// When not empty, break-glass logins only from these networks.
    pub break_glass_networks: Vec<IpNet>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawPasswordLogin {
    mode: Field<String>,
    break_glass: Field<Vec<String>>,
    break_glass_networks: Field<Vec<String>>,
    #[serde(flatten)]
    unknown: Unknown,
}
const KEYS: &[&str] = &["mode", "break_glass", "break_glass_networks"];

impl RawPasswordLogin {
    pub(super) fn validate(self, p: &mut Problems) -> PasswordLogin {
        p.unknown("password_login", &self.unknown, KEYS);
        let mode = match p.opt("password_login.mode", self.mode).as_deref() {
            None | Some("allow") => PasswordMode::Allow,
            Some("app_passwords_only") => PasswordMode::AppPasswordsOnly,
            Some("sso_only") => PasswordMode::SsoOnly,
            Some(other) => {
                p.push("password_login.mode", format!("must be allow, app_passwords_only or sso_only (got `{other}`)"));
                PasswordMode::Allow
            }
        };
        let break_glass = p.take("password_login.break_glass", self.break_glass, Vec::new());
        let mut nets = Vec::new();
        for (i, s) in p.take("password_login.break_glass_networks", self.break_glass_networks, Vec::new()).into_iter().enumerate() {
            match s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)) {
                Ok(n) => nets.push(n),
                Err(_) => p.push(format!("password_login.break_glass_networks.{i}"), format!("not an IP address or CIDR range (got `{s}`)")),
            }
        }
        PasswordLogin { mode, break_glass, break_glass_networks: nets }
    }
}
