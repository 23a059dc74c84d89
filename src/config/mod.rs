//! Configuration: `proxy.yaml` plus `JSP_*` environment overrides, parsed once into typed,
//! validated structs. Nothing else in the crate sees raw YAML.
//!
//! This file holds the typed result, [`Config`] and its sections, and [`Config::load`].
//! Loading is two steps. figment merges the file and the environment into the raw structs of
//! `raw.rs`, made of lenient [`Field`](field::Field)s ([`field`]), so a bad value never stops
//! the read. `validate.rs` then turns the raw structs into [`Config`], collecting every
//! problem (bad value, unknown key, missing secret file, ...) with its dotted path; [`locate`]
//! adds the line in the file. Relative paths are resolved against the directory of the config
//! file. SSO providers have the same split of their own in [`provider`].

pub mod field;
mod live;
pub mod locate;
pub mod metrics;
pub mod password_login;
pub mod provider;
mod raw;
pub mod restart;
pub mod state;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Yaml};
use figment::Figment;
use ipnet::IpNet;
use url::Url;

use field::Problem;
use locate::LineMap;
use provider::{OidcConfig, SamlConfig};
use raw::RawConfig;

pub use live::Live;
pub use provider::{Protocol, ProviderConfig};
pub use state::{DurableBackend, EphemeralBackend, PgTls, PostgresConfig, RedisConfig, StateConfig};
pub use validate::secret;

/// Prefix of environment overrides; `__` separates nesting levels (`JSP_JELLYFIN__URL`).
pub const ENV_PREFIX: &str = "JSP_";

/// A secret string: never printed by `Debug`, compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time comparison, for secrets presented by a client.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: PublicUrl,
    pub http_redirect_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` chain we extend instead of replacing.
    pub trusted_proxies: Vec<IpNet>,
    pub state_dir: PathBuf,
    pub tls: TlsConfig,
    pub jellyfin: JellyfinConfig,
    pub limits: Limits,
    pub log: LogConfig,
    pub sso: SsoConfig,
    pub state: StateConfig,
    /// OpenID Connect providers from the file.
    pub oidc_providers: Vec<OidcConfig>,
    /// SAML providers from the file.
    pub saml_providers: Vec<SamlConfig>,
    /// Which password logins reach Jellyfin (`password_login:`).
    pub password_login: password_login::PasswordLogin,
    /// The operator's listener (`metrics:`), off by default.
    pub metrics: metrics::MetricsConfig,
}

impl Config {
    /// The providers from the file, OIDC then SAML, each as a protocol-neutral [`ProviderConfig`].
    pub fn providers(&self) -> impl Iterator<Item = ProviderConfig> + '_ {
        let oid = self.oidc_providers.iter().cloned().map(ProviderConfig::Oidc);
        oid.chain(self.saml_providers.iter().cloned().map(ProviderConfig::Saml))
    }
}

/// Limits of the sign-in machinery.
#[derive(Debug, Clone)]
pub struct SsoConfig {
    /// How long a started login may take before its state expires.
    pub flow_ttl: Duration,
    /// Logins in progress at once; above it, new logins get 503.
    pub max_pending_flows: usize,
    /// Logins one client address (behind trusted proxies: the forwarded one) may start per
    /// `flow_ttl`; above it, 429.
    pub max_pending_flows_per_client: usize,
    /// Lifetime of the proxy's own session cookie (token injection for the browser).
    pub session_ttl: Duration,
    /// What the proxy adds to Jellyfin's own login page (`sso.login_page`).
    pub login_page: LoginPageConfig,
}

impl Default for SsoConfig {
    fn default() -> Self {
        SsoConfig {
            flow_ttl: Duration::from_secs(600),
            max_pending_flows: 10_000,
            max_pending_flows_per_client: 30,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            login_page: LoginPageConfig::default(),
        }
    }
}

/// `sso.login_page`: Jellyfin's login page, as the proxy rewrites it.
#[derive(Debug, Clone)]
pub struct LoginPageConfig {
    /// A "Sign in with …" button per enabled provider in the login disclaimer (default on;
    /// with no enabled provider nothing is added).
    pub buttons: bool,
    /// A browser opening the web client without a session goes straight to this provider.
    pub auto_redirect: Option<String>,
    /// `GET /Users/Public` answers `[]`, and users the proxy creates are hidden.
    pub hide_public_users: bool,
    /// The injected CSS hides the password form and the user list (for SSO-only servers).
    pub hide_password_form: bool,
}

impl Default for LoginPageConfig {
    fn default() -> Self {
        LoginPageConfig { buttons: true, auto_redirect: None, hide_public_users: false, hide_password_form: false }
    }
}

/// `jellyfin.legacy_auth`: what happens to credentials in the forms Jellyfin 12 refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyAuth {
    /// Forward them unchanged (the default).
    #[default]
    Pass,
    /// Rewrite them into `Authorization: MediaBrowser …` / `ApiKey` before forwarding.
    Translate,
}

/// The external address of the proxy, used for every URL it builds.
#[derive(Debug, Clone)]
pub struct PublicUrl {
    url: Url,
}

impl PublicUrl {
    pub fn parse(s: &str) -> Result<PublicUrl, String> {
        let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
        if url.scheme() != "https" {
            return Err("must start with https:// (the proxy always serves TLS)".into());
        }
        if url.host_str().is_none() {
            return Err("has no host".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        Ok(PublicUrl { url })
    }
    /// Base path without trailing slash: `""` or `/jellyfin`.
    pub fn base_path(&self) -> &str {
        self.url.path().trim_end_matches('/')
    }
    /// `https://host[:port]` without path.
    /// The host people use (`media.example.com`, `127.0.0.1`, `[::1]`).
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or("").to_string()
    }
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }
    /// Absolute URL of `path` (which starts with `/`) under the base path.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}{}", self.origin(), self.base_path(), path)
    }
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How often the certificate files are checked for changes (they are also reloaded on SIGHUP).
    pub reload_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct JellyfinConfig {
    pub url: Url,
    /// Admin API key; without it the proxy forwards traffic but cannot sign anyone in.
    pub api_key: Option<Secret>,
    pub legacy_auth: LegacyAuth,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_header_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Longest a request body for the proxy's own endpoints may take to arrive (408 after).
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 16384,
            idle_timeout: Duration::from_secs(120),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_header_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `info,jellyfin_sso_proxy=debug`, ...
    pub level: String,
    pub format: LogFormat,
    /// `log.audit`: the audit log's file (JSON lines), when set.
    pub audit: Option<PathBuf>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    NotFound(PathBuf),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Syntax(String),
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// A reloaded file is valid but changes settings bound at start ([`restart`]).
    #[error("{} setting(s) changed that need a restart:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    NeedsRestart(Vec<Problem>),
}

impl ConfigError {
    /// Each problem on its own, for one log line each (a read or syntax error is one).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(ps) | ConfigError::NeedsRestart(ps) => ps.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

impl Config {
    /// Load `path` (which must exist when `explicit`) merged with `JSP_*` environment variables.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        Self::load_against(path, explicit, None)
    }

    /// Load again for a live reload, exactly as [`Config::load`] does (the same file, the same
    /// `JSP_*` environment), and refuse the result when it changes a setting bound at start
    /// ([`restart::bound_at_start`]), naming each with its line: either the whole new
    /// configuration can go into service, or none of it. The file must exist: a deleted file
    /// is a problem, not a configuration made of the environment alone.
    pub fn reload(path: &Path, running: &Config) -> Result<Config, ConfigError> {
        Self::load_against(path, true, Some(running))
    }

    fn load_against(path: &Path, explicit: bool, running: Option<&Config>) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if explicit {
                    return Err(ConfigError::NotFound(path.to_path_buf()));
                }
                None
            }
            Err(e) => return Err(ConfigError::Read { path: path.to_path_buf(), source: e }),
        };
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_parts_against(text.as_deref(), &path.display().to_string(), &base_dir, Env::prefixed(ENV_PREFIX).split("__"), running)
    }

    /// Parse YAML `text` (named `source` in messages) with env overrides; relative paths resolve
    /// against `base_dir`.
    pub fn from_parts(text: Option<&str>, source: &str, base_dir: &Path, env: Env) -> Result<Config, ConfigError> {
        Self::from_parts_against(text, source, base_dir, env, None)
    }

    /// [`Config::from_parts`], then, when `running` is given, the settings bound at start
    /// that the result changes are refused as [`ConfigError::NeedsRestart`].
    pub fn from_parts_against(text: Option<&str>, source: &str, base_dir: &Path, env: Env, running: Option<&Config>) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        if let Some(t) = text {
            fig = fig.merge(Yaml::string(t));
        }
        fig = fig.merge(env);
        let raw: RawConfig = fig.extract().map_err(|e| ConfigError::Syntax(syntax_message(source, e)))?;
        let lines = text.map(LineMap::from_yaml).unwrap_or_default();
        let locate = |problems: Vec<Problem>| -> Vec<Problem> {
            problems
                .into_iter()
                .map(|mut p| {
                    p.location = locate_problem(&fig, &lines, source, &p.path);
                    p
                })
                .collect()
        };
        let config = validate::config(raw, base_dir).map_err(|problems| ConfigError::Invalid(locate(problems)))?;
        match running.map(|r| restart::bound_at_start(r, &config)) {
            Some(bound) if !bound.is_empty() => Err(ConfigError::NeedsRestart(locate(bound))),
            _ => Ok(config),
        }
    }
}

fn syntax_message(source: &str, e: figment::Error) -> String {
    // serde_yaml's message carries "at line L column C".
    format!("{source} is not valid YAML: {}", e.kind)
}

fn locate_problem(fig: &Figment, lines: &LineMap, source: &str, path: &str) -> Option<String> {
    let from_env = fig.find_metadata(path).map(|m| m.name.contains("environment")).unwrap_or(false);
    if from_env {
        return Some(format!("environment variable {ENV_PREFIX}{}", path.to_uppercase().replace('.', "__")));
    }
    lines.line_of(path).map(|l| format!("{source} line {l}"))
}

#[cfg(test)]
mod tests;
