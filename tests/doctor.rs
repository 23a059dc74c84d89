//! `jellyfin-sso-proxy doctor` against the Jellyfin double, the real OpenID Provider and a
//! SAML provider: all green on a good set-up (exit 0), and each way a set-up breaks logins
//! named with its fix (exit 1).

mod support;

use std::path::Path;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::oidc_provider::{OpConfig, OpClient, OpenIdProvider};

const KEY: &str = "test-api-key";

fn doctor(dir: &Path, yaml: &str) -> (bool, String) {
    std::fs::write(dir.join("proxy.yaml"), yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy")).arg("--config").arg(dir.join("proxy.yaml")).arg("doctor").output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn cert_pem(valid: bool) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["idp.example.com".to_string()]).unwrap();
    if !valid {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
}

async fn op() -> OpenIdProvider {
    OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient { client_id: "jellyfin".into(), client_secret: Some("s".into()), redirect_uris: vec!["https://127.0.0.1:1/sso/OID/redirect/corp".into()], auth_method: "client_secret_basic".into(), require_par: false }],
        accounts: vec![],
        par: false,
        ..Default::default()
    })
    .await
}

fn yaml(jf: &str, key: &str, issuer: &str, public_url: &str, saml_cert: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\npublic_url: {public_url}\nstate_dir: data\njellyfin:\n  url: {jf}\n  api_key: {key}\nproviders:\n  oid:\n    corp:\n      oidEndpoint: {issuer}\n      oidClientId: jellyfin\n      oidSecret: s\n      disableHttps: true\n  saml:\n    adfs:\n      samlEndpoint: https://idp.example.com/sso\n      samlClientId: jellyfin\n      samlIdpEntityId: https://idp.example.com\n      samlCertificate: {}\n",
        serde_json::to_string(saml_cert).unwrap()
    )
}

#[tokio::test]
async fn a_good_set_up_passes_every_check() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = op().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    jellyfin_sso_proxy::tls::generate_self_signed(&dir.path().join("certs/cert.pem"), &dir.path().join("certs/key.pem")).unwrap();
    let (ok, out) = tokio::task::spawn_blocking({
        let (dir, y) = (dir.path().to_path_buf(), yaml(&jf.url(), KEY, &op.issuer, "https://127.0.0.1:8443", &cert_pem(true)));
        move || doctor(&dir, &y)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    for needle in [
        "✓ Jellyfin 10.10.7",
        "✓ the API key is accepted",
        "✓ Quick Connect is enabled",
        "✓ OIDC provider corp: discovery found",
        "signing key(s) published",
        "✓ OIDC provider corp: client authentication client_secret_basic is offered",
        "✓ OIDC provider corp: clocks agree",
        "✓ SAML provider adfs: certificate 1 valid",
        "✓ the TLS certificate covers 127.0.0.1",
        "all checks passed",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains('✗'), "{out}");
}

#[tokio::test]
async fn each_broken_part_is_named_with_its_fix() {
    let jf = JellyfinDouble::start(DoubleOptions { quick_connect_enabled: false, ..DoubleOptions::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    jellyfin_sso_proxy::tls::generate_self_signed(&dir.path().join("certs/cert.pem"), &dir.path().join("certs/key.pem")).unwrap();
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let (ok, out) = tokio::task::spawn_blocking({
        let (dir, y) = (dir.path().to_path_buf(), yaml(&jf.url(), "wrong-key", &closed, "https://media.example.com", &cert_pem(false)));
        move || doctor(&dir, &y)
    })
    .await
    .unwrap();
    assert!(!ok, "doctor must fail:\n{out}");
    for needle in [
        "✗ Jellyfin rejects jellyfin.api_key",
        "✗ Quick Connect is disabled",
        "fix: enable it in Jellyfin: Dashboard → General → Quick Connect",
        "✗ OIDC provider corp: discovery at",
        "✗ SAML provider adfs: certificate 1 expired",
        "✗ the TLS certificate does not cover media.example.com",
        "check(s) failed",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // And a Jellyfin that is down is the first thing said.
    let (ok, out) = tokio::task::spawn_blocking({
        let (dir, y) = (dir.path().to_path_buf(), yaml(&closed, KEY, &closed, "https://127.0.0.1:8443", &cert_pem(true)));
        move || doctor(&dir, &y)
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(out.lines().next().unwrap().starts_with("✗ Jellyfin at"), "{out}");
}
