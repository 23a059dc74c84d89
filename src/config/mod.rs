//! Configuration: `proxy.yaml` plus `JSP_*` environment overrides, parsed once into typed,
//! validated structs. Nothing else in the crate sees raw YAML.
//!
//! Loading is two steps. figment merges the file and the environment into raw structs made
//! of lenient [`Field`]s ([`field`]), so a bad value never stops the read. [`validate`] then
//! turns the raw structs into [`Config`], collecting every problem (bad value, unknown key,
//! missing secret file, ...) with its dotted path; [`locate`] adds the line in the file.
//! Relative paths are resolved against the directory of the config file.

pub mod field;
pub mod locate;
pub mod provider;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Yaml};
use figment::Figment;
use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use field::{Field, Problem, Problems, Unknown};
use provider::{OidProvider, RawOidProvider, RawSamlProvider, SamlProvider};
use locate::LineMap;

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
    /// OpenID Connect providers from the file.
    pub oid_providers: Vec<OidProvider>,
    /// SAML providers from the file.
    pub saml_providers: Vec<SamlProvider>,
}

/// Limits of the sign-in machinery.
#[derive(Debug, Clone)]
pub struct SsoConfig {
    /// How long a started login may take before its state expires.
    pub flow_ttl: Duration,
    /// Logins in progress at once; above it, new logins get 503.
    pub max_pending_flows: usize,
    /// Lifetime of the proxy's own session cookie (token injection for the browser).
    pub session_ttl: Duration,
}

impl Default for SsoConfig {
    fn default() -> Self {
        SsoConfig { flow_ttl: Duration::from_secs(600), max_pending_flows: 10_000, session_ttl: Duration::from_secs(30 * 24 * 3600) }
    }
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

#[derive(Debug, Clone)]
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 4096,
            idle_timeout: Duration::from_secs(120),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_header_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
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
}

// ---------------------------------------------------------------------------------------------
// Raw structs: what figment reads. Every leaf is a `Field`, every section keeps unknown keys.

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawConfig {
    listen: Field<String>,
    public_url: Field<String>,
    http_redirect_listen: Field<String>,
    trusted_proxies: Field<Vec<String>>,
    state_dir: Field<PathBuf>,
    tls: Field<RawTls>,
    jellyfin: Field<RawJellyfin>,
    limits: Field<RawLimits>,
    log: Field<RawLog>,
    sso: Field<RawSso>,
    providers: Field<RawProviders>,
    #[serde(flatten)]
    unknown: Unknown,
}
const TOP_KEYS: &[&str] = &[
    "listen", "public_url", "http_redirect_listen", "trusted_proxies", "state_dir", "tls", "jellyfin", "limits", "log", "sso",
    "providers",
];

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSso {
    flow_ttl: Field<String>,
    max_pending_flows: Field<usize>,
    session_ttl: Field<String>,
    #[serde(flatten)]
    unknown: Unknown,
}
const SSO_KEYS: &[&str] = &["flow_ttl", "max_pending_flows", "session_ttl"];

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawProviders {
    oid: Field<std::collections::BTreeMap<String, RawOidProvider>>,
    saml: Field<std::collections::BTreeMap<String, RawSamlProvider>>,
    #[serde(flatten)]
    unknown: Unknown,
}
const PROVIDER_KEYS: &[&str] = &["oid", "saml"];

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTls {
    cert: Field<PathBuf>,
    key: Field<PathBuf>,
    reload_interval: Field<String>,
    #[serde(flatten)]
    unknown: Unknown,
}
const TLS_KEYS: &[&str] = &["cert", "key", "reload_interval"];

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawJellyfin {
    url: Field<String>,
    api_key: Field<String>,
    api_key_file: Field<PathBuf>,
    #[serde(flatten)]
    unknown: Unknown,
}
const JELLYFIN_KEYS: &[&str] = &["url", "api_key", "api_key_file"];

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLimits {
    header_read_timeout: Field<String>,
    tls_handshake_timeout: Field<String>,
    max_header_bytes: Field<usize>,
    max_connections: Field<usize>,
    idle_timeout: Field<String>,
    upstream_connect_timeout: Field<String>,
    upstream_header_timeout: Field<String>,
    shutdown_grace: Field<String>,
    #[serde(flatten)]
    unknown: Unknown,
}
const LIMIT_KEYS: &[&str] = &[
    "header_read_timeout", "tls_handshake_timeout", "max_header_bytes", "max_connections", "idle_timeout",
    "upstream_connect_timeout", "upstream_header_timeout", "shutdown_grace",
];

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLog {
    level: Field<String>,
    format: Field<String>,
    #[serde(flatten)]
    unknown: Unknown,
}
const LOG_KEYS: &[&str] = &["level", "format"];

// ---------------------------------------------------------------------------------------------

impl Config {
    /// Load `path` (which must exist when `explicit`) merged with `JSP_*` environment variables.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
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
        Self::from_parts(text.as_deref(), &path.display().to_string(), &base_dir, Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Parse YAML `text` (named `source` in messages) with env overrides; relative paths resolve
    /// against `base_dir`.
    pub fn from_parts(text: Option<&str>, source: &str, base_dir: &Path, env: Env) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        if let Some(t) = text {
            fig = fig.merge(Yaml::string(t));
        }
        fig = fig.merge(env);
        let raw: RawConfig = fig.extract().map_err(|e| ConfigError::Syntax(syntax_message(source, e)))?;
        let lines = text.map(LineMap::from_yaml).unwrap_or_default();
        validate(raw, base_dir).map_err(|problems| {
            ConfigError::Invalid(
                problems
                    .into_iter()
                    .map(|mut p| {
                        p.location = locate_problem(&fig, &lines, source, &p.path);
                        p
                    })
                    .collect(),
            )
        })
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

fn duration(p: &mut Problems, path: &str, f: Field<String>, default: Duration) -> Duration {
    p.parse(path, f, default, |s| humantime::parse_duration(s).map_err(|e| format!("not a duration like `30s` or `5m`: {e}")))
}

fn socket_addr(p: &mut Problems, path: &str, f: Field<String>, default: SocketAddr) -> SocketAddr {
    p.parse(path, f, default, |s| s.parse::<SocketAddr>().map_err(|_| "not an address like `0.0.0.0:8443`"))
}

/// Read a secret given inline or as `…_file`. Both set is a mistake; the file's content is trimmed.
pub fn secret(p: &mut Problems, path: &str, inline: Field<String>, file: Field<PathBuf>, base_dir: &Path) -> Option<Secret> {
    let inline = p.opt(path, inline);
    let file_path = format!("{path}_file");
    let file = p.opt(&file_path, file);
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.push(path, format!("set either `{path}` or `{file_path}`, not both"));
            None
        }
        (Some(s), None) if s.trim().is_empty() => {
            p.push(path, "is empty");
            None
        }
        (Some(s), None) => Some(Secret::new(s.trim())),
        (None, Some(f)) => {
            let f = base_dir.join(f);
            match std::fs::read_to_string(&f) {
                Ok(s) if s.trim().is_empty() => {
                    p.push(&file_path, format!("{} is empty", f.display()));
                    None
                }
                Ok(s) => Some(Secret::new(s.trim())),
                Err(e) => {
                    p.push(&file_path, format!("cannot read {}: {e}", f.display()));
                    None
                }
            }
        }
        (None, None) => None,
    }
}

fn section<T: Default>(p: &mut Problems, path: &str, f: Field<T>) -> T {
    match f {
        Field::Present(t) => t,
        Field::Missing => T::default(),
        Field::Invalid(msg) => {
            p.push(path, format!("must be a mapping of settings: {msg}"));
            T::default()
        }
    }
}

fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    p.unknown("", &raw.unknown, TOP_KEYS);

    let listen = socket_addr(&mut p, "listen", raw.listen, "0.0.0.0:8443".parse().unwrap());
    let public_url = p.parse("public_url", raw.public_url, None, |s| PublicUrl::parse(s).map(Some))
        .unwrap_or_else(|| PublicUrl::parse("https://localhost:8443").unwrap());
    let http_redirect_listen = p.parse("http_redirect_listen", raw.http_redirect_listen, None, |s| {
        s.parse::<SocketAddr>().map(Some).map_err(|_| "not an address like `0.0.0.0:8080`")
    });
    let mut trusted_proxies = Vec::new();
    for (i, s) in p.take("trusted_proxies", raw.trusted_proxies, Vec::new()).into_iter().enumerate() {
        let parsed = s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => p.push(format!("trusted_proxies.{i}"), format!("not an IP address or CIDR range (got `{s}`)")),
        }
    }
    let state_dir = base_dir.join(p.take("state_dir", raw.state_dir, PathBuf::from("data")));

    let rt = section(&mut p, "tls", raw.tls);
    p.unknown("tls", &rt.unknown, TLS_KEYS);
    let tls = TlsConfig {
        cert: base_dir.join(p.take("tls.cert", rt.cert, PathBuf::from("certs/cert.pem"))),
        key: base_dir.join(p.take("tls.key", rt.key, PathBuf::from("certs/key.pem"))),
        reload_interval: duration(&mut p, "tls.reload_interval", rt.reload_interval, Duration::from_secs(5)),
    };
    if tls.reload_interval.is_zero() {
        p.push("tls.reload_interval", "must be greater than zero");
    }

    let rj = section(&mut p, "jellyfin", raw.jellyfin);
    p.unknown("jellyfin", &rj.unknown, JELLYFIN_KEYS);
    let url = p.parse("jellyfin.url", rj.url, None, |s| {
        let u = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
        match u.scheme() {
            "http" | "https" if u.host_str().is_some() => Ok(Some(u)),
            _ => Err("must be an http:// or https:// URL with a host".to_string()),
        }
    });
    let jellyfin = JellyfinConfig {
        url: url.unwrap_or_else(|| Url::parse("http://127.0.0.1:8096").unwrap()),
        api_key: secret(&mut p, "jellyfin.api_key", rj.api_key, rj.api_key_file, base_dir),
    };

    let rl = section(&mut p, "limits", raw.limits);
    p.unknown("limits", &rl.unknown, LIMIT_KEYS);
    let d = Limits::default();
    let limits = Limits {
        header_read_timeout: duration(&mut p, "limits.header_read_timeout", rl.header_read_timeout, d.header_read_timeout),
        tls_handshake_timeout: duration(&mut p, "limits.tls_handshake_timeout", rl.tls_handshake_timeout, d.tls_handshake_timeout),
        max_header_bytes: p.take("limits.max_header_bytes", rl.max_header_bytes, d.max_header_bytes),
        max_connections: p.take("limits.max_connections", rl.max_connections, d.max_connections),
        idle_timeout: duration(&mut p, "limits.idle_timeout", rl.idle_timeout, d.idle_timeout),
        upstream_connect_timeout: duration(&mut p, "limits.upstream_connect_timeout", rl.upstream_connect_timeout, d.upstream_connect_timeout),
        upstream_header_timeout: duration(&mut p, "limits.upstream_header_timeout", rl.upstream_header_timeout, d.upstream_header_timeout),
        shutdown_grace: duration(&mut p, "limits.shutdown_grace", rl.shutdown_grace, d.shutdown_grace),
    };
    if limits.max_header_bytes < 1024 {
        p.push("limits.max_header_bytes", "must be at least 1024");
    }
    if limits.max_connections == 0 {
        p.push("limits.max_connections", "must be at least 1");
    }
    for (name, v) in [
        ("header_read_timeout", limits.header_read_timeout),
        ("tls_handshake_timeout", limits.tls_handshake_timeout),
        ("idle_timeout", limits.idle_timeout),
        ("upstream_connect_timeout", limits.upstream_connect_timeout),
        ("upstream_header_timeout", limits.upstream_header_timeout),
    ] {
        if v.is_zero() {
            p.push(format!("limits.{name}"), "must be greater than zero");
        }
    }

    let rlog = section(&mut p, "log", raw.log);
    p.unknown("log", &rlog.unknown, LOG_KEYS);
    let level = p.parse("log.level", rlog.level, "info".to_string(), |s| {
        tracing_subscriber::EnvFilter::try_new(s).map(|_| s.to_string()).map_err(|e| format!("not a log filter like `info` or `debug`: {e}"))
    });
    let format = p.parse("log.format", rlog.format, LogFormat::Human, |s| match s {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err("must be `human` or `json`"),
    });

    let rs = section(&mut p, "sso", raw.sso);
    p.unknown("sso", &rs.unknown, SSO_KEYS);
    let d = SsoConfig::default();
    let sso = SsoConfig {
        flow_ttl: duration(&mut p, "sso.flow_ttl", rs.flow_ttl, d.flow_ttl),
        max_pending_flows: p.take("sso.max_pending_flows", rs.max_pending_flows, d.max_pending_flows),
        session_ttl: duration(&mut p, "sso.session_ttl", rs.session_ttl, d.session_ttl),
    };
    if sso.flow_ttl < Duration::from_secs(1) || sso.flow_ttl > Duration::from_secs(3600) {
        p.push("sso.flow_ttl", "must be between 1s and 1h");
    }
    if sso.max_pending_flows == 0 {
        p.push("sso.max_pending_flows", "must be at least 1");
    }

    let rp = section(&mut p, "providers", raw.providers);
    p.unknown("providers", &rp.unknown, PROVIDER_KEYS);
    let mut oid_providers = Vec::new();
    for (name, raw) in p.take("providers.oid", rp.oid, Default::default()) {
        let prefix = format!("providers.oid.{name}");
        if let Some(provider) = raw.validate(&name, &prefix, base_dir, &mut p) {
            oid_providers.push(provider);
        }
    }

    let mut saml_providers = Vec::new();
    for (name, raw) in p.take("providers.saml", rp.saml, Default::default()) {
        let prefix = format!("providers.saml.{name}");
        if let Some(provider) = raw.validate(&name, &prefix, base_dir, &mut p) {
            saml_providers.push(provider);
        }
    }

    if !p.is_empty() {
        return Err(p.into_vec());
    }
    Ok(Config {
        listen,
        public_url,
        http_redirect_listen,
        trusted_proxies,
        state_dir,
        tls,
        jellyfin,
        limits,
        log: LogConfig { level, format },
        sso,
        oid_providers,
        saml_providers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_parts(Some(text), "proxy.yaml", Path::new("/etc/jsp"), Env::prefixed("JSP_TEST_NEVER_SET_"))
    }

    #[test]
    fn defaults() {
        let c = load("{}").unwrap();
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.public_url.origin(), "https://localhost:8443");
        assert_eq!(c.jellyfin.url.as_str(), "http://127.0.0.1:8096/");
        assert_eq!(c.tls.cert, PathBuf::from("/etc/jsp/certs/cert.pem"));
        assert!(c.jellyfin.api_key.is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "listen: nowhere\npublic_url: http://x\ntls:\n  certt: a.pem\nlimits:\n  idle_timeout: forever\nlog:\n  format: xml\n";
        let Err(ConfigError::Invalid(ps)) = load(text) else { panic!("expected problems") };
        let paths: Vec<_> = ps.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["listen", "public_url", "tls.certt", "limits.idle_timeout", "log.format"], "{ps:?}");
        assert_eq!(ps[0].location.as_deref(), Some("proxy.yaml line 1"));
        assert_eq!(ps[2].location.as_deref(), Some("proxy.yaml line 4"));
        assert!(ps[2].message.contains("did you mean") || ps[2].message.contains("accepts"), "{}", ps[2].message);
        assert_eq!(ps[3].location.as_deref(), Some("proxy.yaml line 6"));
    }

    #[test]
    fn syntax_error_names_the_line() {
        let Err(ConfigError::Syntax(msg)) = load("listen: [\n  bad") else { panic!() };
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn secret_inline_and_file_conflict() {
        let Err(ConfigError::Invalid(ps)) = load("jellyfin:\n  api_key: a\n  api_key_file: /nonexistent\n") else { panic!() };
        assert!(ps.iter().any(|p| p.path == "jellyfin.api_key" && p.message.contains("not both")), "{ps:?}");
    }

    #[test]
    fn secret_from_file_is_trimmed_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "s3cret\n").unwrap();
        let c = Config::from_parts(Some("jellyfin:\n  api_key_file: key\n"), "p.yaml", dir.path(), Env::prefixed("JSP_TEST_NEVER_SET_")).unwrap();
        let k = c.jellyfin.api_key.unwrap();
        assert_eq!(k.expose(), "s3cret");
        assert!(!format!("{k:?}").contains("s3cret"));
        assert!(k.ct_eq(b"s3cret") && !k.ct_eq(b"s3cre"));
    }

    #[test]
    fn oid_provider_in_plugin_shape() {
        let text = "providers:\n  oid:\n    test_resource:\n      oidEndpoint: https://id.example.com\n      oidClientId: jf\n      oidSecret: s\n      roleClaim: groups\n      oidScopes: [groups]\n      roles: [media]\n";
        let c = load(text).unwrap();
        let p = &c.oid_providers[0];
        assert_eq!(p.name, "test_resource");
        assert_eq!(p.role_claim, "groups");
        assert_eq!(p.scopes, ["groups"]);
        assert_eq!(p.grants.roles, ["media"]);
        assert_eq!(p.subject_claim, "sub");
        assert_eq!(p.token_auth_method, provider::TokenAuthMethod::ClientSecretBasic);
        assert!(p.enabled);
    }

    #[test]
    fn oid_provider_problems_are_all_reported() {
        let text = "providers:\n  oid:\n    bad name:\n      oidEndpoint: http://id.example.com\n      roleclaim: groups\n      enableAllFolders: maybe\n      enabledFolders: [Movies]\n";
        let Err(ConfigError::Invalid(ps)) = load(text) else { panic!() };
        let paths: Vec<_> = ps.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "providers.oid.bad name",
            "providers.oid.bad name.roleclaim",
            "providers.oid.bad name.oidEndpoint",
            "providers.oid.bad name.oidClientId",
            "providers.oid.bad name.enableAllFolders",
            "providers.oid.bad name.enabledFolders.0",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        let roleclaim = ps.iter().find(|p| p.path.ends_with("roleclaim")).unwrap();
        assert!(roleclaim.message.contains("did you mean `roleClaim`"), "{}", roleclaim.message);
        assert_eq!(roleclaim.location.as_deref(), Some("proxy.yaml line 5"));
    }

    #[test]
    fn saml_provider_certificates_inline_or_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap().cert;
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap().cert;
        std::fs::write(dir.path().join("idp.pem"), format!("{}{}", a.pem(), b.pem())).unwrap();
        let head = "providers:\n  saml:\n    corp:\n      samlEndpoint: https://idp.example/sso\n      samlClientId: jf\n      samlIdpEntityId: https://idp.example\n";
        let load_in = |t: &str| Config::from_parts(Some(t), "p.yaml", dir.path(), Env::prefixed("JSP_TEST_NEVER_SET_"));
        let c = load_in(&format!("{head}      samlCertificateFile: idp.pem\n")).unwrap();
        let p = &c.saml_providers[0];
        assert_eq!(p.certificates, vec![a.der().to_vec(), b.der().to_vec()], "both PEM blocks, for key rollover");
        assert_eq!(p.role_attribute, "Role");
        assert_eq!(p.clock_skew, Duration::from_secs(60));
        use base64::Engine;
        let inline = base64::engine::general_purpose::STANDARD.encode(a.der());
        let c = load_in(&format!("{head}      samlCertificate: {inline}\n      clockSkew: 2m\n      roleAttribute: groups\n")).unwrap();
        assert_eq!(c.saml_providers[0].certificates, vec![a.der().to_vec()]);
        assert_eq!(c.saml_providers[0].clock_skew, Duration::from_secs(120));
        // Both, neither, a broken certificate, a missing file: each names the field.
        for (extra, field, words) in [
            (format!("      samlCertificate: {inline}\n      samlCertificateFile: idp.pem\n"), "samlCertificate", "not both"),
            (String::new(), "samlCertificate", "is required"),
            ("      samlCertificate: bm90IGEgY2VydGlmaWNhdGU=\n".to_string(), "samlCertificate", "certificate 0"),
            ("      samlCertificateFile: missing.pem\n".to_string(), "samlCertificateFile", "cannot read"),
        ] {
            let Err(ConfigError::Invalid(ps)) = load_in(&format!("{head}{extra}")) else { panic!("{extra} accepted") };
            assert!(ps.iter().any(|p| p.path == format!("providers.saml.corp.{field}") && p.message.contains(words)), "{extra}: {ps:?}");
        }
    }

    #[test]
    fn public_url_base_path() {
        let u = PublicUrl::parse("https://media.example.com/jellyfin/").unwrap();
        assert_eq!(u.base_path(), "/jellyfin");
        assert_eq!(u.join("/sso/OID/redirect/x"), "https://media.example.com/jellyfin/sso/OID/redirect/x");
    }
}
