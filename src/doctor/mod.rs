//! `jellyfin-sso-proxy doctor`: checks, online, everything that makes sign-ins fail, and says
//! how to fix each. One line per check: ✓ (fine), ✗ (will break logins; the fix follows) or
//! • (worth knowing, not a failure). The exit code is 0 only when nothing is ✗.
//!
//! It reads the same configuration as the proxy and talks to the same peers: Jellyfin (with
//! the proxy's API key), each OpenID provider (discovery, JWKS, client authentication, PAR,
//! clock, logout support), each SAML provider's metadata (read and checked as a login reads it)
//! and signing certificates, the TLS certificate, and
//! the shared state backends when configured (PostgreSQL, Redis).

mod oidc;
mod state;

use std::time::{Duration, SystemTime};

use crate::config::provider::{MetadataSource, SamlConfig, TokenAuthMethod};
use crate::config::Config;
use crate::jellyfin::{version_at_least, Caller, Jellyfin, JellyfinError};
use crate::sso::saml_metadata::MetadataCache;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Info,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub what: String,
    pub fix: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, what: impl Into<String>) {
        self.checks.push(Check { status: Status::Pass, what: what.into(), fix: None });
    }
    fn fail(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.checks.push(Check { status: Status::Fail, what: what.into(), fix: Some(fix.into()) });
    }
    fn info(&mut self, what: impl Into<String>) {
        self.checks.push(Check { status: Status::Info, what: what.into(), fix: None });
    }
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
    /// The report as printed: one line per check, the fix indented under a failure.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.status {
                Status::Pass => "✓",
                Status::Fail => "✗",
                Status::Info => "•",
            };
            out.push_str(&format!("{mark} {}\n", c.what));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    fix: {fix}\n"));
            }
        }
        let failed = self.checks.iter().filter(|c| c.status == Status::Fail).count();
        out.push_str(&if failed == 0 { "all checks passed\n".to_string() } else { format!("{failed} check(s) failed\n") });
        out
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// Run every check for `config`.
pub async fn run(config: &Config) -> Report {
    let mut r = Report::default();
    jellyfin(config, &mut r).await;
    for p in &config.oidc_providers {
        oidc::check(p, &http(), &mut r).await;
    }
    for p in &config.saml_providers {
        saml(p, &http(), &mut r).await;
    }
    oidc::tls(config, &mut r);
    state::check(&config.state, &mut r).await;
    r
}

async fn jellyfin(config: &Config, r: &mut Report) {
    let url = config.jellyfin.url.as_str();
    let limits = &config.limits;
    let jf = Jellyfin::new(&config.jellyfin.url, config.jellyfin.api_key.clone(), limits.upstream_connect_timeout, limits.upstream_header_timeout);
    let info = match jf.server_info().await {
        Ok(i) => i,
        Err(e) => {
            return r.fail(format!("Jellyfin at {url} is not reachable: {e}"), "start Jellyfin, or set jellyfin.url to where it listens (the proxy must reach it directly)");
        }
    };
    if version_at_least(&info.version, 10, 9) {
        r.pass(format!("Jellyfin {} at {url} (server {})", info.version, info.server_name));
    } else {
        r.fail(format!("Jellyfin {} at {url} is too old", info.version), "upgrade Jellyfin to 10.9 or newer");
    }
    let Some(key) = &config.jellyfin.api_key else {
        return r.fail("no Jellyfin API key: nobody can sign in", "create one in Jellyfin (Dashboard → API Keys) and set jellyfin.api_key or jellyfin.api_key_file");
    };
    match jf.identify(key.expose()).await {
        Ok(Some(Caller::ApiKey)) => r.pass("the API key is accepted (administrator rights)"),
        Ok(Some(Caller::User { is_admin: true, name, .. })) => r.pass(format!("the API key is an administrator's access token ({name}); an API key is better: it does not end when that session does")),
        Ok(Some(Caller::User { name, .. })) => r.fail(format!("jellyfin.api_key is the token of {name}, who is not an administrator"), "use an API key from Dashboard → API Keys"),
        Ok(None) | Err(JellyfinError::ApiKeyRejected) => r.fail("Jellyfin rejects jellyfin.api_key", "create a new API key in Dashboard → API Keys and put it in jellyfin.api_key"),
        Err(e) => r.fail(format!("the API key could not be checked: {e}"), "look at Jellyfin's log"),
    }
    match jf.quick_connect_enabled().await {
        Ok(true) => r.pass("Quick Connect is enabled (the proxy mints tokens with it)"),
        Ok(false) => r.fail("Quick Connect is disabled: no sign-in can finish", "enable it in Jellyfin: Dashboard → General → Quick Connect"),
        Err(e) => r.fail(format!("Quick Connect state unknown: {e}"), "look at Jellyfin's log"),
    }
    // Legacy authorization (X-Emby-Token and friends): off by default from Jellyfin 12.
    let probe = http().get(format!("{}/System/Info", url.trim_end_matches('/'))).header("X-Emby-Token", key.expose()).send().await;
    match probe.map(|p| p.status()) {
        Ok(s) if s.is_success() => r.info("Jellyfin accepts legacy credentials (X-Emby-Token, api_key=): old clients work directly"),
        Ok(s) if s == reqwest::StatusCode::UNAUTHORIZED => {
            r.info("Jellyfin refuses legacy credentials (EnableLegacyAuthorization off): clients such as Infuse, old Seerr or scripts using X-Emby-Token or api_key= are refused unless the proxy translates them")
        }
        Ok(s) => r.info(format!("legacy credentials probe answered {s}")),
        Err(e) => r.info(format!("legacy credentials probe failed: {e}")),
    }
}

/// A SAML provider: its metadata when it has some (read, signature, validity, endpoints, as
/// a login would read it), then every certificate its responses are verified with.
async fn saml(p: &SamlConfig, http: &reqwest::Client, r: &mut Report) {
    let name = &p.name;
    let mut certs = Vec::new();
    if let Some(md) = &p.metadata {
        let from = match &md.source {
            MetadataSource::Url(u) => u.to_string(),
            MetadataSource::File(f) => f.display().to_string(),
        };
        let cache = MetadataCache::new(None);
        if let Err(e) = cache.refresh(p, http).await {
            let fix = if md.pinned.is_empty() {
                "check samlIdpMetadataUrl / samlIdpMetadataFile: it must be this IdP's SAML metadata, reachable from here"
            } else {
                "check samlIdpMetadataUrl / samlIdpMetadataFile, and that samlIdpMetadataCertificate is the certificate the IdP signs its metadata with"
            };
            return r.fail(format!("SAML provider {name}: metadata from {from} {e}"), fix);
        }
        let d = cache.current().expect("a good refresh keeps its descriptor");
        let signed = if md.pinned.is_empty() { "not signature-checked (no samlIdpMetadataCertificate pinned)" } else { "signed by the pinned certificate" };
        r.pass(format!("SAML provider {name}: metadata from {from} read, {signed}; entity {}, {} signing certificate(s)", d.entity_id, d.signing_certs.len()));
        if d.slo_endpoints.is_empty() {
            r.info(format!("SAML provider {name}: the IdP offers no HTTP-Redirect single logout: signing out ends the Jellyfin session only"));
        }
        certs = d.signing_certs.clone();
    } else {
        for (i, der) in p.certificates.iter().enumerate() {
            match saml::X509Certificate::from_der(der) {
                Ok(c) => certs.push(c),
                Err(e) => r.fail(format!("SAML provider {name}: certificate {} unreadable: {e}", i + 1), "paste the PEM certificate from the identity provider's metadata"),
            }
        }
    }
    let fix_expiring = if p.metadata.is_some() {
        "the IdP must publish its next signing certificate in its metadata (or add it to samlCertificate) before it rolls over"
    } else {
        "add the identity provider's next signing certificate to samlCertificate (several are allowed) before it rolls over"
    };
    let now = SystemTime::now();
    for (i, cert) in certs.iter().enumerate() {
        let n = i + 1;
        match cert.not_after().duration_since(now) {
            Err(_) => r.fail(format!("SAML provider {name}: certificate {n} expired"), "put the identity provider's current signing certificate in samlCertificate (or fix the IdP's metadata)"),
            Ok(d) if d < Duration::from_secs(30 * 86400) => r.fail(format!("SAML provider {name}: certificate {n} expires in {} days", d.as_secs() / 86400), fix_expiring),
            Ok(d) => r.pass(format!("SAML provider {name}: certificate {n} valid for {} more days", d.as_secs() / 86400)),
        }
        if cert.not_before() > now {
            r.fail(format!("SAML provider {name}: certificate {n} is not valid yet"), "check the certificate and this machine's clock");
        }
    }
}

/// The token endpoint authentication method name as discovery documents list it.
pub fn auth_method_name(m: TokenAuthMethod) -> &'static str {
    m.as_str()
}
