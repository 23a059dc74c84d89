//! The raw configuration: what figment reads from `proxy.yaml` and the `JSP_*` environment.
//!
//! Every leaf is a lenient [`Field`] and every section keeps the keys it does not know, so
//! reading never stops at a bad value; `validate.rs` turns these structs into the typed
//! [`Config`](super::Config) and reports each problem. The `*_KEYS` lists are the keys each
//! section accepts, for the "did you mean" hint on an unknown key. The provider sections are
//! read with the raw types of [`provider`](super::provider), shared with the admin API.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::field::{Field, Unknown};
use super::provider::{RawOidcConfig, RawSamlConfig};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawConfig {
    pub(super) listen: Field<String>,
    pub(super) public_url: Field<String>,
    pub(super) http_redirect_listen: Field<String>,
    pub(super) trusted_proxies: Field<Vec<String>>,
    pub(super) state_dir: Field<PathBuf>,
    pub(super) tls: Field<RawTls>,
    pub(super) jellyfin: Field<RawJellyfin>,
    pub(super) limits: Field<RawLimits>,
    pub(super) log: Field<RawLog>,
    pub(super) sso: Field<RawSso>,
    pub(super) state: Field<RawState>,
    pub(super) providers: Field<RawProviders>,
    pub(super) password_login: Field<super::password_login::RawPasswordLogin>,
    pub(super) metrics: Field<super::metrics::RawMetrics>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const TOP_KEYS: &[&str] = &[
    "listen", "public_url", "http_redirect_listen", "trusted_proxies", "state_dir", "tls", "jellyfin", "limits", "log", "sso",
    "state", "providers", "password_login", "metrics",
];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawState {
    pub(super) key_file: Field<PathBuf>,
    pub(super) durable: Field<String>,
    pub(super) ephemeral: Field<String>,
    pub(super) postgres: Field<RawPostgres>,
    pub(super) redis: Field<RawRedis>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const STATE_KEYS: &[&str] = &["key_file", "durable", "ephemeral", "postgres", "redis"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawPostgres {
    pub(super) url: Field<String>,
    pub(super) url_file: Field<PathBuf>,
    pub(super) pool_size: Field<u32>,
    pub(super) tls: Field<String>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const POSTGRES_KEYS: &[&str] = &["url", "url_file", "pool_size", "tls"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawRedis {
    pub(super) url: Field<String>,
    pub(super) url_file: Field<PathBuf>,
    pub(super) key_prefix: Field<String>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const REDIS_KEYS: &[&str] = &["url", "url_file", "key_prefix"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawSso {
    pub(super) flow_ttl: Field<String>,
    pub(super) max_pending_flows: Field<usize>,
    pub(super) max_pending_flows_per_client: Field<usize>,
    pub(super) session_ttl: Field<String>,
    pub(super) login_page: Field<RawLoginPage>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const SSO_KEYS: &[&str] = &["flow_ttl", "max_pending_flows", "max_pending_flows_per_client", "session_ttl", "login_page"];

/// `sso.login_page`: what the proxy adds to Jellyfin's own login page.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawLoginPage {
    pub(super) buttons: Field<bool>,
    pub(super) auto_redirect: Field<String>,
    pub(super) hide_public_users: Field<bool>,
    pub(super) hide_password_form: Field<bool>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const LOGIN_PAGE_KEYS: &[&str] = &["buttons", "auto_redirect", "hide_public_users", "hide_password_form"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawProviders {
    pub(super) oid: Field<BTreeMap<String, RawOidcConfig>>,
    pub(super) saml: Field<BTreeMap<String, RawSamlConfig>>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const PROVIDER_KEYS: &[&str] = &["oid", "saml"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawTls {
    pub(super) cert: Field<PathBuf>,
    pub(super) key: Field<PathBuf>,
    pub(super) reload_interval: Field<String>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const TLS_KEYS: &[&str] = &["cert", "key", "reload_interval"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawJellyfin {
    pub(super) url: Field<String>,
    pub(super) api_key: Field<String>,
    pub(super) api_key_file: Field<PathBuf>,
    pub(super) legacy_auth: Field<String>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const JELLYFIN_KEYS: &[&str] = &["url", "api_key", "api_key_file", "legacy_auth"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawLimits {
    pub(super) header_read_timeout: Field<String>,
    pub(super) tls_handshake_timeout: Field<String>,
    pub(super) max_header_bytes: Field<usize>,
    pub(super) max_connections: Field<usize>,
    pub(super) idle_timeout: Field<String>,
    pub(super) upstream_connect_timeout: Field<String>,
    pub(super) upstream_header_timeout: Field<String>,
    pub(super) shutdown_grace: Field<String>,
    pub(super) body_read_timeout: Field<String>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const LIMIT_KEYS: &[&str] = &[
    "header_read_timeout", "tls_handshake_timeout", "max_header_bytes", "max_connections", "idle_timeout",
    "upstream_connect_timeout", "upstream_header_timeout", "shutdown_grace", "body_read_timeout",
];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RawLog {
    pub(super) level: Field<String>,
    pub(super) format: Field<String>,
    pub(super) audit: Field<PathBuf>,
    #[serde(flatten)]
    pub(super) unknown: Unknown,
}
pub(super) const LOG_KEYS: &[&str] = &["level", "format", "audit"];
