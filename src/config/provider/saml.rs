//! Validation of a SAML provider: raw ([`RawSamlConfig`]) → typed ([`SamlConfig`]).
//!
//! Two ways to describe the identity provider: by hand (`samlEndpoint`, `samlIdpEntityId`,
//! `samlCertificate`, all required) or by its metadata (`samlIdpMetadataUrl` or
//! `samlIdpMetadataFile`), which makes those optional, so the plugin's own JSON plus a
//! metadata URL is accepted as it is. Metadata over plain HTTP is only accepted from a
//! loopback host or when a metadata signing certificate is pinned. Our own key pair and the
//! signing and encryption switches are validated here too.

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::raw::{known_keys, OneOrMany, RawSamlConfig, SAML_KEYS};
use super::validate::{display_name, opt_string, parse_certificates, valid_provider_name};
use super::{MetadataSource, SamlConfig, SamlMetadataConfig, SpKeyFiles};
use crate::config::field::{join, Field, Problems};

/// The shortest and longest `samlIdpMetadataRefresh`.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const MAX_REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);

fn http_url(p: &mut Problems, path: &str, s: Option<String>) -> Option<Url> {
    match Url::parse(&s?) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => Some(u),
        Ok(_) => {
            p.push(path, "must be an http(s) URL");
            None
        }
        Err(e) => {
            p.push(path, format!("not a URL: {e}"));
            None
        }
    }
}

/// Certificates given inline (one or many) or as a file; `None` when neither is set.
fn certificates(p: &mut Problems, base_dir: &Path, (key, inline): (&str, Field<OneOrMany>), (file_key, file): (&str, Field<std::path::PathBuf>)) -> Option<Vec<Vec<u8>>> {
    let texts = match (p.opt(key, inline), p.opt(file_key, file)) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            p.push(key, format!("set either `{}` or `{}`, not both", last(key), last(file_key)));
            return Some(Vec::new());
        }
        (Some(OneOrMany::One(s)), None) => vec![s],
        (Some(OneOrMany::Many(v)), None) => v,
        (None, Some(path)) => match std::fs::read_to_string(base_dir.join(&path)) {
            Ok(text) => vec![text],
            Err(e) => {
                p.push(file_key, format!("cannot read {}: {e}", base_dir.join(&path).display()));
                return Some(Vec::new());
            }
        },
    };
    match parse_certificates(&texts) {
        Ok(d) if !d.is_empty() => Some(d),
        Ok(_) => {
            p.push(key, "holds no certificate");
            Some(Vec::new())
        }
        Err(e) => {
            p.push(key, e);
            Some(Vec::new())
        }
    }
}

fn last(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl RawSamlConfig {
    /// Validate into a [`SamlConfig`], recording problems under `prefix` (e.g.
    /// `providers.saml.corp`); `base_dir` resolves relative file paths.
    pub fn validate(self, name: &str, prefix: &str, base_dir: &Path, p: &mut Problems) -> Option<SamlConfig> {
        let before = p.len();
        let f = |k: &str| join(prefix, k);
        p.unknown(prefix, &self.unknown, &known_keys(SAML_KEYS));
        if !valid_provider_name(name) {
            p.push(prefix, "provider names may use letters, digits, `_`, `-` and `.` (at most 64)");
        }
        let _ = (p.opt(&f("portOverride"), self.port_override), p.opt(&f("newPath"), self.new_path));

        // The IdP's metadata, if any.
        let pinned = certificates(p, base_dir, (&f("samlIdpMetadataCertificate"), self.saml_idp_metadata_certificate), (&f("samlIdpMetadataCertificateFile"), self.saml_idp_metadata_certificate_file));
        let refresh = p.parse(&f("samlIdpMetadataRefresh"), self.saml_idp_metadata_refresh, SamlMetadataConfig::DEFAULT_REFRESH, |s| {
            humantime::parse_duration(s).map_err(|e| format!("not a duration like `1h`: {e}"))
        });
        if !(MIN_REFRESH..=MAX_REFRESH).contains(&refresh) {
            p.push(f("samlIdpMetadataRefresh"), "must be between 1s and 7d");
        }
        let url = opt_string(p, &f("samlIdpMetadataUrl"), self.saml_idp_metadata_url);
        let url = http_url(p, &f("samlIdpMetadataUrl"), url);
        let file = p.opt(&f("samlIdpMetadataFile"), self.saml_idp_metadata_file);
        let source = match (url, file) {
            (Some(_), Some(_)) => {
                p.push(f("samlIdpMetadataUrl"), "set either `samlIdpMetadataUrl` or `samlIdpMetadataFile`, not both");
                None
            }
            (Some(u), None) => {
                if u.scheme() == "http" && !is_loopback(&u) && pinned.is_none() {
                    p.push(f("samlIdpMetadataUrl"), "plain http metadata could be changed on the way: use https, or pin its signing certificate (samlIdpMetadataCertificate)");
                }
                Some(MetadataSource::Url(u))
            }
            (None, Some(path)) => Some(MetadataSource::File(base_dir.join(path))),
            (None, None) => None,
        };
        if source.is_none() && pinned.is_some() {
            p.push(f("samlIdpMetadataCertificate"), "pins the metadata's signer, but no samlIdpMetadataUrl or samlIdpMetadataFile is set");
        }
        let with_metadata = source.is_some();
        let metadata = source.map(|source| SamlMetadataConfig { source, refresh, pinned: pinned.unwrap_or_default() });

        // What may also come from the metadata.
        let sso_url = opt_string(p, &f("samlEndpoint"), self.saml_endpoint);
        if sso_url.is_none() && !with_metadata {
            p.push(f("samlEndpoint"), "is required (or samlIdpMetadataUrl): the identity provider's SAML sign-on URL");
        }
        let sso_url = http_url(p, &f("samlEndpoint"), sso_url);
        let slo_url = opt_string(p, &f("samlLogoutEndpoint"), self.saml_logout_endpoint);
        let slo_url = http_url(p, &f("samlLogoutEndpoint"), slo_url);
        let sp_entity_id = opt_string(p, &f("samlClientId"), self.saml_client_id);
        if sp_entity_id.as_ref().is_none_or(|s| s.chars().any(char::is_whitespace)) {
            p.push(f("samlClientId"), "is required: this proxy's entity id at the identity provider (no spaces)");
        }
        let idp_entity_id = opt_string(p, &f("samlIdpEntityId"), self.saml_idp_entity_id);
        if idp_entity_id.is_none() && !with_metadata {
            p.push(f("samlIdpEntityId"), "is required (or samlIdpMetadataUrl): the identity provider's entity id (the Issuer of its responses)");
        }
        let certs = certificates(p, base_dir, (&f("samlCertificate"), self.saml_certificate), (&f("samlCertificateFile"), self.saml_certificate_file));
        if certs.is_none() && !with_metadata {
            p.push(f("samlCertificate"), "is required (or samlCertificateFile, or samlIdpMetadataUrl): the identity provider's signing certificate (unsigned responses are never accepted)");
        }

        // Our key pair and what we do with it.
        let sp_key = match (p.opt(&f("samlSpKeyFile"), self.saml_sp_key_file), p.opt(&f("samlSpCertificateFile"), self.saml_sp_certificate_file)) {
            (Some(key), Some(cert)) => Some(SpKeyFiles { key: base_dir.join(key), cert: base_dir.join(cert) }),
            (None, None) => None,
            (Some(_), None) => {
                p.push(f("samlSpCertificateFile"), "is required with samlSpKeyFile (the certificate of that key, PEM)");
                None
            }
            (None, Some(_)) => {
                p.push(f("samlSpKeyFile"), "is required with samlSpCertificateFile (the private key, PKCS#8 PEM)");
                None
            }
        };

        let clock_skew = p.parse(&f("clockSkew"), self.clock_skew, Duration::from_secs(60), |s| {
            humantime::parse_duration(s).map_err(|e| format!("not a duration like `60s`: {e}"))
        });
        if clock_skew > Duration::from_secs(600) {
            p.push(f("clockSkew"), "must be at most 10m");
        }
        let _ = p.opt(&f("schemeOverride"), self.scheme_override);
        let grants = self.grants.validate(prefix, p);
        let session = self.session.validate(prefix, false, p);
        let provider = SamlConfig {
            name: name.to_string(),
            display_name: display_name(p, &f("displayName"), self.display_name),
            enabled: p.take(&f("enabled"), self.enabled, true),
            sso_url,
            slo_url,
            sp_entity_id: sp_entity_id?,
            idp_entity_id,
            certificates: certs.unwrap_or_default(),
            metadata,
            sp_key,
            sign_requests: p.take(&f("samlSignRequests"), self.saml_sign_requests, false),
            require_encrypted_assertions: p.take(&f("samlRequireEncryptedAssertions"), self.saml_require_encrypted_assertions, false),
            allow_cbc_encryption: p.take(&f("samlAllowCbcEncryption"), self.saml_allow_cbc_encryption, false),
            role_attribute: opt_string(p, &f("roleAttribute"), self.role_attribute).unwrap_or_else(|| "Role".to_string()),
            username_attribute: opt_string(p, &f("usernameAttribute"), self.username_attribute),
            clock_skew,
            grants,
            session,
        };
        (p.len() == before).then_some(provider)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::super::{saml_from_json, MetadataSource, SamlMetadataConfig};

    fn problems(json: serde_json::Value) -> Vec<(String, String)> {
        saml_from_json("corp", &json, Path::new("/state")).unwrap_err().into_iter().map(|p| (p.path, p.message)).collect()
    }

    #[test]
    fn with_metadata_the_endpoint_entity_id_and_certificate_are_optional() {
        let p = saml_from_json("corp", &json!({ "samlClientId": "jf", "samlIdpMetadataUrl": "https://idp.example/metadata" }), Path::new("/state")).unwrap();
        let md = p.metadata.as_ref().unwrap();
        assert_eq!(md.source, MetadataSource::Url("https://idp.example/metadata".parse().unwrap()));
        assert_eq!(md.refresh, SamlMetadataConfig::DEFAULT_REFRESH);
        assert!(md.pinned.is_empty());
        assert!(p.sso_url.is_none() && p.idp_entity_id.is_none() && p.certificates.is_empty());
        assert!(!p.sign_requests && !p.require_encrypted_assertions && !p.allow_cbc_encryption && p.sp_key.is_none());
        // Written back out and read again: the same provider.
        let again = saml_from_json("corp", &p.to_plugin_json(), Path::new("/state")).unwrap();
        assert_eq!(again.to_plugin_json(), p.to_plugin_json());
        // A file, relative to the config's directory.
        let p = saml_from_json("corp", &json!({ "samlClientId": "jf", "samlIdpMetadataFile": "idp.xml", "samlSpKeyFile": "k.pem", "samlSpCertificateFile": "c.pem", "samlSignRequests": true }), Path::new("/state")).unwrap();
        assert_eq!(p.metadata.unwrap().source, MetadataSource::File("/state/idp.xml".into()));
        assert_eq!(p.sp_key.unwrap().key, Path::new("/state/k.pem"));
        assert!(p.sign_requests);
        // Without metadata all three are required, as before.
        let ps = problems(json!({ "samlClientId": "jf" }));
        for field in ["samlEndpoint", "samlIdpEntityId", "samlCertificate"] {
            assert!(ps.iter().any(|(p, m)| p == field && m.starts_with("is required")), "{field}: {ps:?}");
        }
    }

    #[test]
    fn metadata_settings_are_checked() {
        let cases = [
            (json!({ "samlIdpMetadataUrl": "http://idp.example/metadata" }), "samlIdpMetadataUrl", "plain http"),
            (json!({ "samlIdpMetadataUrl": "ftp://idp.example/m" }), "samlIdpMetadataUrl", "http(s)"),
            (json!({ "samlIdpMetadataUrl": "https://idp.example/m", "samlIdpMetadataFile": "m.xml" }), "samlIdpMetadataUrl", "not both"),
            (json!({ "samlIdpMetadataUrl": "https://idp.example/m", "samlIdpMetadataRefresh": "0s" }), "samlIdpMetadataRefresh", "between"),
            (json!({ "samlIdpMetadataUrl": "https://idp.example/m", "samlIdpMetadataRefresh": "soon" }), "samlIdpMetadataRefresh", "duration"),
            (json!({ "samlIdpMetadataUrl": "https://idp.example/m", "samlIdpMetadataCertificate": "bm90IGEgY2VydA==" }), "samlIdpMetadataCertificate", "certificate"),
            (json!({ "samlIdpMetadataCertificate": "x", "samlEndpoint": "https://i/sso", "samlIdpEntityId": "i", "samlCertificate": "x" }), "samlIdpMetadataCertificate", "no samlIdpMetadataUrl"),
            (json!({ "samlIdpMetadataUrl": "https://idp.example/m", "samlSpKeyFile": "k.pem" }), "samlSpCertificateFile", "is required"),
            (json!({ "samlIdpMetadataUrl": "https://idp.example/m", "samlSignRequests": [1] }), "samlSignRequests", ""),
        ];
        for (mut json, field, words) in cases {
            json["samlClientId"] = json!("jf");
            let ps = problems(json.clone());
            assert!(ps.iter().any(|(p, m)| p == field && m.contains(words)), "{json}: {ps:?}");
        }
        // Plain http is fine on loopback, and anywhere with a pinned signer.
        let cert = rcgen::generate_simple_self_signed(vec!["md".into()]).unwrap().cert;
        for json in [
            json!({ "samlClientId": "jf", "samlIdpMetadataUrl": "http://127.0.0.1:8080/metadata" }),
            json!({ "samlClientId": "jf", "samlIdpMetadataUrl": "http://idp.example/metadata", "samlIdpMetadataCertificate": cert.pem() }),
        ] {
            saml_from_json("corp", &json, Path::new("/state")).unwrap();
        }
    }

    #[test]
    fn the_plugins_own_fields_are_accepted() {
        let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
        let p = saml_from_json(
            "corp",
            &json!({ "samlEndpoint": "https://idp.example/sso", "samlClientId": "jf", "samlCertificate": cert.pem(), "samlIdpMetadataUrl": "https://idp.example/m", "portOverride": 8443, "newPath": true, "schemeOverride": "https", "enabled": true }),
            Path::new("/state"),
        )
        .unwrap();
        assert_eq!(p.sso_url.unwrap().as_str(), "https://idp.example/sso", "explicit settings are kept beside the metadata");
        assert_eq!(p.certificates, [cert.der().to_vec()]);
    }
}
