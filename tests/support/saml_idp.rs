//! Launches the real SAML identity provider (`tests/idp/saml-idp.mjs`, on npm `samlify`) on
//! loopback for a test. Its signing key is made by `openssl`, like the fixtures'.

use serde::Serialize;

use super::oidc_provider::start_node;
use super::saml_signer::KeyPair;

#[derive(Serialize, Clone, Debug)]
pub struct SamlAccount {
    pub login: String,
    pub password: String,
    pub name_id: String,
    pub attributes: serde_json::Value,
}

pub struct SamlIdp {
    pub entity_id: String,
    pub sso_url: String,
    /// The signing certificate as bare base64 DER, for `samlCertificate`.
    pub cert_b64: String,
    _keys: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SamlIdp {
    /// Start an IdP for the SP whose metadata is at `sp_metadata_url` (fetched at the first
    /// login, so the proxy may start after the IdP). `sign`: `response`, `assertion` or `both`.
    pub async fn start(sp_metadata_url: &str, sign: &str, accounts: Vec<SamlAccount>) -> SamlIdp {
        let keys = tempfile::tempdir().unwrap();
        let pair = KeyPair::generate(keys.path(), "saml-idp");
        let entity_id = "http://127.0.0.1/test-saml-idp".to_string();
        let cfg = serde_json::json!({
            "entity_id": entity_id,
            "key": pair.key, "cert": pair.cert,
            "sp_metadata_url": sp_metadata_url,
            "sign": sign,
            "accounts": accounts,
        });
        let envs = [
            ("SAML_IDP_CONFIG", cfg.to_string()),
            // Only to fetch the proxy's metadata over its self-signed loopback certificate.
            ("NODE_TLS_REJECT_UNAUTHORIZED", "0".to_string()),
            ("NODE_NO_WARNINGS", "1".to_string()),
        ];
        let (child, ready) = start_node("saml-idp.mjs", &envs, "SAML_IDP_READY").await;
        SamlIdp { entity_id, sso_url: ready["sso_url"].as_str().unwrap().to_string(), cert_b64: pair.cert_b64(), _keys: keys, _child: child }
    }

    /// The URL of an IdP-initiated, signed LogoutRequest (HTTP-Redirect) for `name_id`.
    pub async fn logout_request_url(&self, name_id: &str, relay: &str) -> String {
        let control = self.sso_url.replace("/sso", "/__control/logout-request");
        let r: serde_json::Value = reqwest::Client::new().get(control).query(&[("name_id", name_id), ("relay", relay)]).send().await.unwrap().json().await.unwrap();
        r["url"].as_str().expect("the IdP built a LogoutRequest").to_string()
    }
}

/// The double, a real SAML IdP and a proxy with provider `name` pointing at it (plus
/// `provider_yaml` lines, indented six spaces).
pub struct SamlSetup {
    pub jf: jellyfin_double::JellyfinDouble,
    pub idp: SamlIdp,
    pub proxy: super::TestProxy,
}

pub async fn saml_setup(name: &str, sign: &str, accounts: Vec<SamlAccount>, provider_yaml: &str) -> SamlSetup {
    let jf = jellyfin_double::JellyfinDouble::start(Default::default()).await;
    saml_setup_with(jf, name, sign, accounts, provider_yaml).await
}

pub async fn saml_setup_with(jf: jellyfin_double::JellyfinDouble, name: &str, sign: &str, accounts: Vec<SamlAccount>, provider_yaml: &str) -> SamlSetup {
    let listener = super::TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let idp = SamlIdp::start(&format!("https://127.0.0.1:{port}/sso/SAML/metadata/{name}"), sign, accounts).await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  saml:\n    {name}:\n      samlEndpoint: {}\n      samlClientId: jellyfin\n      samlIdpEntityId: {}\n      samlCertificate: {}\n{provider_yaml}",
        jf.url(),
        idp.sso_url,
        idp.entity_id,
        idp.cert_b64,
    );
    let proxy = super::TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &yaml).await;
    SamlSetup { jf, idp, proxy }
}
