//! Unit tests of loading: defaults, every problem with its line, secrets, providers in the
//! plugin's shape, public URL paths. The integration tests in `tests/config.rs` run the binary.

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
    let p = &c.oidc_providers[0];
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

#[test]
fn provider_names_are_safe_path_segments() {
    use super::provider::valid_provider_name;
    for ok in ["corp", "pocket-id", "a.b", "x_1"] {
        assert!(valid_provider_name(ok), "{ok}");
    }
    for bad in ["", ".", "..", "...", "a/b", "a b", "ä", &"x".repeat(65)] {
        assert!(!valid_provider_name(bad), "{bad:?}");
    }
    let e = load("providers:\n  oid:\n    \"..\":\n      oidEndpoint: https://idp.example\n      oidClientId: c\n").unwrap_err().to_string();
    assert!(e.contains("providers.oid"), "{e}");
}

#[test]
fn login_page_and_legacy_auth() {
    let c = load("{}").unwrap();
    let lp = &c.sso.login_page;
    assert!(lp.buttons && lp.auto_redirect.is_none() && !lp.hide_public_users && !lp.hide_password_form);
    assert_eq!(c.jellyfin.legacy_auth, LegacyAuth::Pass);
    let c = load("jellyfin:\n  legacy_auth: translate\nsso:\n  login_page:\n    buttons: false\n    auto_redirect: corp\n    hide_public_users: true\n    hide_password_form: true\n").unwrap();
    let lp = &c.sso.login_page;
    assert!(!lp.buttons && lp.hide_public_users && lp.hide_password_form);
    assert_eq!(lp.auto_redirect.as_deref(), Some("corp"));
    assert_eq!(c.jellyfin.legacy_auth, LegacyAuth::Translate);
    let Err(ConfigError::Invalid(ps)) = load("jellyfin:\n  legacy_auth: yes\nsso:\n  login_page:\n    auto_redirect: 'a b'\n    button: true\n") else { panic!() };
    let paths: Vec<_> = ps.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["jellyfin.legacy_auth", "sso.login_page.button", "sso.login_page.auto_redirect"], "{ps:?}");
    assert!(ps[1].message.contains("did you mean `buttons`") || ps[1].message.contains("accepts"), "{}", ps[1].message);
}

#[test]
fn sso_only_passwords_hide_the_password_form() {
    assert!(!load("{}").unwrap().sso.login_page.hide_password_form);
    let c = load("password_login:\n  mode: sso_only\n").unwrap();
    assert!(c.sso.login_page.hide_password_form, "sso_only hides Jellyfin's password form");
    let c = load("password_login:\n  mode: app_passwords_only\n").unwrap();
    assert!(!c.sso.login_page.hide_password_form);
}
