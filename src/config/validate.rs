//! Validation: the raw structs figment filled (`raw.rs`) → the typed [`Config`].
//!
//! Every setting is checked in one pass and every problem (bad value, unknown key, value out
//! of range, unreadable secret file, bad provider) is collected with its dotted path, so an
//! operator sees all mistakes at once; `mod.rs` then adds the line of each from `locate.rs`.
//! Defaults are applied here, and relative paths resolved against the config file's directory.
//! The provider sections are validated by [`provider`](super::provider), with the rules the
//! admin API uses too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use super::field::{Field, Problem, Problems};
use super::raw::{RawConfig, JELLYFIN_KEYS, LIMIT_KEYS, LOGIN_PAGE_KEYS, LOG_KEYS, PROVIDER_KEYS, SSO_KEYS, TLS_KEYS, TOP_KEYS};
use super::{Config, JellyfinConfig, LegacyAuth, Limits, LoginPageConfig, LogConfig, LogFormat, PublicUrl, Secret, SsoConfig, TlsConfig};

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

pub(super) fn section<T: Default>(p: &mut Problems, path: &str, f: Field<T>) -> T {
    match f {
        Field::Present(t) => t,
        Field::Missing => T::default(),
        Field::Invalid(msg) => {
            p.push(path, format!("must be a mapping of settings: {msg}"));
            T::default()
        }
    }
}

/// `sso.login_page`; `auto_redirect` names a provider (of either protocol, from the file or
/// the admin API, so it is looked up when used).
fn login_page(p: &mut Problems, f: Field<super::raw::RawLoginPage>) -> LoginPageConfig {
    let r = section(p, "sso.login_page", f);
    p.unknown("sso.login_page", &r.unknown, LOGIN_PAGE_KEYS);
    let d = LoginPageConfig::default();
    let auto_redirect = p.opt("sso.login_page.auto_redirect", r.auto_redirect).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(name) = auto_redirect.as_deref().filter(|n| !super::provider::valid_provider_name(n)) {
        p.push("sso.login_page.auto_redirect", format!("`{name}` is not a provider name (letters, digits, `_`, `-`, `.`)"));
    }
    LoginPageConfig {
        buttons: p.take("sso.login_page.buttons", r.buttons, d.buttons),
        auto_redirect,
        hide_public_users: p.take("sso.login_page.hide_public_users", r.hide_public_users, d.hide_public_users),
        hide_password_form: p.take("sso.login_page.hide_password_form", r.hide_password_form, d.hide_password_form),
    }
}

/// Turn the raw structs into a [`Config`], or every problem found (paths only: the caller adds
/// the lines).
pub(super) fn config(raw: RawConfig, base_dir: &Path) -> Result<Config, Vec<Problem>> {
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
        legacy_auth: p.parse("jellyfin.legacy_auth", rj.legacy_auth, LegacyAuth::Pass, |s| match s {
            "pass" => Ok(LegacyAuth::Pass),
            "translate" => Ok(LegacyAuth::Translate),
            _ => Err("must be `pass` or `translate`"),
        }),
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
        body_read_timeout: duration(&mut p, "limits.body_read_timeout", rl.body_read_timeout, d.body_read_timeout),
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
        ("body_read_timeout", limits.body_read_timeout),
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
    let audit = p.opt("log.audit", rlog.audit).map(|f| base_dir.join(f));

    let rs = section(&mut p, "sso", raw.sso);
    p.unknown("sso", &rs.unknown, SSO_KEYS);
    let d = SsoConfig::default();
    let sso = SsoConfig {
        flow_ttl: duration(&mut p, "sso.flow_ttl", rs.flow_ttl, d.flow_ttl),
        max_pending_flows: p.take("sso.max_pending_flows", rs.max_pending_flows, d.max_pending_flows),
        max_pending_flows_per_client: p.take("sso.max_pending_flows_per_client", rs.max_pending_flows_per_client, d.max_pending_flows_per_client),
        session_ttl: duration(&mut p, "sso.session_ttl", rs.session_ttl, d.session_ttl),
        login_page: login_page(&mut p, rs.login_page),
    };
    if sso.flow_ttl < Duration::from_secs(1) || sso.flow_ttl > Duration::from_secs(3600) {
        p.push("sso.flow_ttl", "must be between 1s and 1h");
    }
    if sso.max_pending_flows == 0 {
        p.push("sso.max_pending_flows", "must be at least 1");
    }
    if sso.max_pending_flows_per_client == 0 {
        p.push("sso.max_pending_flows_per_client", "must be at least 1");
    }

    let rst = section(&mut p, "state", raw.state);
    let state = super::state::validate(&mut p, rst, &state_dir, base_dir);

    let rp = section(&mut p, "providers", raw.providers);
    p.unknown("providers", &rp.unknown, PROVIDER_KEYS);
    let mut oidc_providers = Vec::new();
    for (name, raw) in p.take("providers.oid", rp.oid, Default::default()) {
        let prefix = format!("providers.oid.{name}");
        if let Some(provider) = raw.validate(&name, &prefix, base_dir, &mut p) {
            oidc_providers.push(provider);
        }
    }

    let mut saml_providers = Vec::new();
    for (name, raw) in p.take("providers.saml", rp.saml, Default::default()) {
        let prefix = format!("providers.saml.{name}");
        if let Some(provider) = raw.validate(&name, &prefix, base_dir, &mut p) {
            saml_providers.push(provider);
        }
    }

    let password_login = section(&mut p, "password_login", raw.password_login).validate(&mut p);
    let public: Vec<(&str, SocketAddr)> = std::iter::once(("listen", listen)).chain(http_redirect_listen.map(|a| ("http_redirect_listen", a))).collect();
    let metrics = section(&mut p, "metrics", raw.metrics).validate(&mut p, &public);
    let mut sso = sso;
    // With passwords for SSO users refused, Jellyfin's password form only misleads them: the
    // login page hides it (and the public user list) unless the operator said otherwise.
    if password_login.mode == super::password_login::PasswordMode::SsoOnly {
        sso.login_page.hide_password_form = true;
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
        log: LogConfig { level, format, audit },
        sso,
        state,
        oidc_providers,
        saml_providers,
        password_login,
        metrics,
    })
}
