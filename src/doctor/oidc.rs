//! The doctor's checks of each OpenID provider (discovery, JWKS, client authentication, PAR,
//! clock skew, logout support) and of the TLS certificate (expiry, `public_url`'s host).
//! See [`super`] for the report they add to.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use x509_cert::der::Decode;

use crate::config::provider::{OidcConfig, Preset};
use crate::config::Config;
use super::{auth_method_name, Report};

/// Clock difference with a provider above which ID tokens start failing `iat`/`exp` checks.
const MAX_SKEW: Duration = Duration::from_secs(60);

pub async fn check(p: &OidcConfig, http: &reqwest::Client, r: &mut Report) {
    let name = &p.name;
    let url = format!("{}/.well-known/openid-configuration", p.issuer.as_str().trim_end_matches('/'));
    let resp = match http.get(&url).send().await {
        Ok(resp) => resp,
        Err(e) => return r.fail(format!("OIDC provider {name}: discovery at {url} unreachable: {e}"), "check oidEndpoint (the issuer URL) and that this machine can reach it"),
    };
    let date = resp.headers().get(reqwest::header::DATE).and_then(|d| d.to_str().ok()).and_then(|d| httpdate::parse_http_date(d).ok());
    if !resp.status().is_success() {
        return r.fail(format!("OIDC provider {name}: discovery at {url} answered {}", resp.status()), "check oidEndpoint: it is the issuer, without /.well-known/...");
    }
    let meta: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return r.fail(format!("OIDC provider {name}: discovery is not JSON: {e}"), "check oidEndpoint"),
    };
    let issuer = meta["issuer"].as_str().unwrap_or("");
    if Preset::discovery_issuer_ok(p.preset, &p.issuer, issuer) || p.do_not_validate_issuer_name {
        r.pass(format!("OIDC provider {name}: discovery found (issuer {issuer})"));
    } else {
        r.fail(format!("OIDC provider {name}: discovery names issuer {issuer}, not {}", p.issuer), "set oidEndpoint to exactly the issuer the provider names");
    }
    // Signing keys.
    match meta["jwks_uri"].as_str() {
        Some(jwks) => match http.get(jwks).send().await.and_then(|r| r.error_for_status()) {
            Ok(resp) => match resp.json::<Value>().await.ok().and_then(|j| j["keys"].as_array().map(|k| k.len())) {
                Some(n) if n > 0 => r.pass(format!("OIDC provider {name}: {n} signing key(s) published")),
                _ => r.fail(format!("OIDC provider {name}: the JWKS at {jwks} has no keys"), "configure signing keys at the provider"),
            },
            Err(e) => r.fail(format!("OIDC provider {name}: JWKS at {jwks} unreachable: {e}"), "check that this machine can reach the provider's keys"),
        },
        None => r.fail(format!("OIDC provider {name}: discovery has no jwks_uri"), "the provider must publish its signing keys"),
    }
    // Client authentication as configured vs offered (absent means client_secret_basic).
    let wanted = auth_method_name(p.token_auth_method);
    let offered: Vec<&str> = meta["token_endpoint_auth_methods_supported"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_else(|| vec!["client_secret_basic"]);
    if offered.contains(&wanted) {
        r.pass(format!("OIDC provider {name}: client authentication {wanted} is offered"));
    } else {
        r.fail(format!("OIDC provider {name}: configured {wanted}, the provider offers {}", offered.join(", ")), format!("set tokenEndpointAuthMethod to one of: {}", offered.join(", ")));
    }
    // Pushed authorization requests.
    let par = meta["pushed_authorization_request_endpoint"].as_str().is_some();
    let required = meta["require_pushed_authorization_requests"].as_bool().unwrap_or(false);
    match (par, required, p.disable_pushed_authorization) {
        (_, true, true) => r.fail(format!("OIDC provider {name}: the provider requires PAR but disablePushedAuthorization is on"), "remove disablePushedAuthorization"),
        (true, _, false) => r.pass(format!("OIDC provider {name}: pushed authorization requests will be used")),
        (true, _, true) => r.info(format!("OIDC provider {name}: PAR is offered but switched off (disablePushedAuthorization)")),
        (false, _, _) => r.info(format!("OIDC provider {name}: no PAR offered; the authorization request goes in the URL")),
    }
    // Clock.
    if let Some(theirs) = date {
        let skew = SystemTime::now().duration_since(theirs).unwrap_or_else(|e| e.duration());
        if skew > MAX_SKEW {
            r.fail(format!("OIDC provider {name}: clocks differ by {} s", skew.as_secs()), "synchronise this machine's clock (NTP) or the provider's");
        } else {
            r.pass(format!("OIDC provider {name}: clocks agree within {} s", skew.as_secs().max(1)));
        }
    }
    // Logout support (worth knowing: sign-out reaches the provider only when it offers these).
    let logout = [("end_session_endpoint", "RP-initiated logout"), ("backchannel_logout_supported", "back-channel logout")];
    for (key, what) in logout {
        let offered = meta[key].as_str().is_some() || meta[key].as_bool() == Some(true);
        r.info(format!("OIDC provider {name}: {what} {}", if offered { "offered" } else { "not offered" }));
    }
}

/// The TLS certificate: readable, not expired or close to it, and covering `public_url`'s host.
pub fn tls(config: &Config, r: &mut Report) {
    let path = &config.tls.cert;
    let pem = match std::fs::read(path) {
        Ok(p) => p,
        Err(_) => return r.info(format!("no TLS certificate at {} yet: a self-signed one is generated on first start", path.display())),
    };
    use rustls_pki_types::pem::PemObject;
    let der = match rustls_pki_types::CertificateDer::pem_slice_iter(&pem).next() {
        Some(Ok(d)) => d,
        _ => return r.fail(format!("{} holds no PEM certificate", path.display()), "put the certificate chain (leaf first) in tls.cert"),
    };
    let cert = match x509_cert::Certificate::from_der(&der) {
        Ok(c) => c,
        Err(e) => return r.fail(format!("{} is not a readable certificate: {e}", path.display()), "put the certificate chain (leaf first) in tls.cert"),
    };
    let tbs = &cert.tbs_certificate;
    let not_after = tbs.validity.not_after.to_system_time();
    match not_after.duration_since(SystemTime::now()) {
        Err(_) => r.fail(format!("the TLS certificate {} has expired", path.display()), "renew it (SIGHUP or replacing the files reloads it without a restart)"),
        Ok(left) if left < Duration::from_secs(14 * 86400) => r.fail(format!("the TLS certificate expires in {} days", left.as_secs() / 86400), "renew it now"),
        Ok(left) => r.pass(format!("the TLS certificate is valid for {} more days", left.as_secs() / 86400)),
    }
    let host = config.public_url.host();
    let names = san_names(&cert);
    if names.iter().any(|n| covers(n, &host)) {
        r.pass(format!("the TLS certificate covers {host}"));
    } else {
        r.fail(format!("the TLS certificate does not cover {host} (it names: {})", names.join(", ")), format!("use a certificate for {host}, or set public_url to the name people use"));
    }
}

fn san_names(cert: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let mut out = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id.to_string() != "2.5.29.17" {
            continue;
        }
        if let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
            for n in san.0 {
                match n {
                    GeneralName::DnsName(d) => out.push(d.to_string()),
                    GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                        4 => out.push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(ip.as_bytes()).expect("4 bytes")).to_string()),
                        16 => out.push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(ip.as_bytes()).expect("16 bytes")).to_string()),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
    }
    out
}

/// Does certificate name `name` (possibly `*.example.com`) cover `host`?
fn covers(name: &str, host: &str) -> bool {
    let (name, host) = (name.to_ascii_lowercase(), host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase());
    match name.strip_prefix("*.") {
        Some(rest) => host.split_once('.').is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
        None => name == host,
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("*.example.com", "media.example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("Media.Example.com", "media.example.com"));
        assert!(covers("::1", "[::1]"));
    }
}
