//! How long the sessions of a provider live, for both protocols: `signOutOfProvider`,
//! `sessionMaxAge` and (OIDC with refresh tokens) `revalidateInterval`.
//!
//! Kept apart from the grant rules because they govern when a session ends, not what it may
//! do. The raw settings are flattened into both raw providers like the grants; this file
//! validates them (durations like `30d`, `1h`) and writes them back in the plugin's JSON.

use std::time::Duration;

use serde::Deserialize;

use crate::config::field::{join, Field, Problems};

/// The smallest interval accepted for either duration (the background sweep's granularity).
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// When the sessions minted through a provider end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRules {
    /// After the Jellyfin web client signs out, the next page load also signs out of the
    /// provider (RP-initiated logout).
    pub sign_out_of_provider: bool,
    /// A minted Jellyfin session older than this is revoked by the background sweep.
    pub session_max_age: Option<Duration>,
    /// OIDC: refresh the identity this often with the refresh token (asked for only then).
    pub revalidate_interval: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct RawSessionRules {
    sign_out_of_provider: Field<bool>,
    session_max_age: Field<String>,
    revalidate_interval: Field<String>,
}

pub(super) const SESSION_KEYS: &[&str] = &["signOutOfProvider", "sessionMaxAge", "revalidateInterval"];

fn duration(p: &mut Problems, path: &str, f: Field<String>) -> Option<Duration> {
    let text = p.opt(path, f).map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && s != "0")?;
    match humantime::parse_duration(&text) {
        Ok(d) if d >= MIN_INTERVAL => Some(d),
        Ok(_) => {
            p.push(path, "must be at least 1s (or left out)");
            None
        }
        Err(e) => {
            p.push(path, format!("not a duration like `30d` or `1h`: {e}"));
            None
        }
    }
}

impl RawSessionRules {
    /// Validate under `prefix`; `refresh_capable` is false for SAML, which has no refresh.
    pub(super) fn validate(self, prefix: &str, refresh_capable: bool, p: &mut Problems) -> SessionRules {
        let f = |k: &str| join(prefix, k);
        let rules = SessionRules {
            sign_out_of_provider: p.take(&f("signOutOfProvider"), self.sign_out_of_provider, false),
            session_max_age: duration(p, &f("sessionMaxAge"), self.session_max_age),
            revalidate_interval: duration(p, &f("revalidateInterval"), self.revalidate_interval),
        };
        if !refresh_capable && rules.revalidate_interval.is_some() {
            p.push(f("revalidateInterval"), "is for OpenID Connect providers that issue refresh tokens; SAML has no re-validation");
        }
        rules
    }
}

impl SessionRules {
    /// The settings in the plugin's JSON shape (`""` for an unset duration).
    pub(super) fn to_plugin_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let d = |d: Option<Duration>| d.map(|d| humantime::format_duration(d).to_string()).unwrap_or_default();
        let mut m = serde_json::Map::new();
        m.insert("signOutOfProvider".into(), self.sign_out_of_provider.into());
        m.insert("sessionMaxAge".into(), d(self.session_max_age).into());
        m.insert("revalidateInterval".into(), d(self.revalidate_interval).into());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::provider::{oidc_from_json, saml_from_json};
    use serde_json::json;

    #[test]
    fn durations_validate_and_round_trip() {
        let dir = std::path::Path::new(".");
        let base = json!({"oidEndpoint": "https://idp.example", "oidClientId": "c", "oidSecret": "s"});
        let mut j = base.clone();
        j["sessionMaxAge"] = json!("30d");
        j["revalidateInterval"] = json!("1h");
        j["signOutOfProvider"] = json!(true);
        let c = oidc_from_json("p", &j, dir).unwrap();
        assert_eq!(c.session.session_max_age, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(c.session.revalidate_interval, Some(Duration::from_secs(3600)));
        assert!(c.session.sign_out_of_provider);
        let out = c.to_plugin_json();
        assert_eq!(out["sessionMaxAge"], "30days");
        assert_eq!(out["revalidateInterval"], "1h");
        assert_eq!(oidc_from_json("p", &out, dir).unwrap().session, c.session, "what Get returns, Add accepts");
        assert_eq!(oidc_from_json("p", &base, dir).unwrap().session, SessionRules::default());

        let mut bad = base.clone();
        bad["sessionMaxAge"] = json!("soon");
        let problems = oidc_from_json("p", &bad, dir).unwrap_err();
        assert!(problems.iter().any(|p| p.to_string().contains("sessionMaxAge")), "{problems:?}");
        bad["sessionMaxAge"] = json!("10ms");
        assert!(oidc_from_json("p", &bad, dir).is_err());

        let saml = json!({"samlEndpoint": "https://idp.example/sso", "samlClientId": "sp", "samlIdpEntityId": "idp", "samlCertificate": "x", "revalidateInterval": "1h"});
        let problems = saml_from_json("s", &saml, dir).unwrap_err();
        assert!(problems.iter().any(|p| p.to_string().contains("revalidateInterval")), "{problems:?}");
    }
}
