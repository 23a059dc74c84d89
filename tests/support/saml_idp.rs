//! Launches the real SAML identity provider (`tests/idp/saml-idp.mjs`, on npm `samlify`) on
//! loopback for a test. Its signing key is made by `openssl`, like the fixtures'. Also here:
//! IdP metadata documents a test controls ([`idp_metadata`], served by [`MetadataServer`]).

use serde::Serialize;

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

/// How the IdP behaves beyond what it signs.
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    /// AuthnRequests must carry a valid signature by the SP metadata's signing key.
    pub want_signed_requests: bool,
    /// Encrypt assertions to the SP metadata's encryption key: `Some("gcm" | "cbc")`.
    pub encrypt: Option<&'static str>,
}

impl SamlIdp {
    /// Start an IdP for the SP whose metadata is at `sp_metadata_url` (fetched at the first
    /// login, so the proxy may start after the IdP). `sign`: `response`, `assertion` or `both`.
    pub async fn start(sp_metadata_url: &str, sign: &str, accounts: Vec<SamlAccount>) -> SamlIdp {
        SamlIdp::start_with(sp_metadata_url, sign, IdpOptions::default(), accounts).await
    }

    pub async fn start_with(sp_metadata_url: &str, sign: &str, options: IdpOptions, accounts: Vec<SamlAccount>) -> SamlIdp {
        let keys = tempfile::tempdir().unwrap();
        let pair = KeyPair::generate(keys.path(), "saml-idp");
        let entity_id = "http://127.0.0.1/test-saml-idp".to_string();
        let cfg = serde_json::json!({
            "entity_id": entity_id,
            "key": pair.key, "cert": pair.cert,
            "sp_metadata_url": sp_metadata_url,
            "sign": sign,
            "want_signed_requests": options.want_signed_requests,
            "encrypt": options.encrypt,
            "accounts": accounts,
        });
        let envs = [
            ("SAML_IDP_CONFIG", cfg.to_string()),
            // Only to fetch the proxy's metadata over its self-signed loopback certificate.
            ("NODE_TLS_REJECT_UNAUTHORIZED", "0".to_string()),
            ("NODE_NO_WARNINGS", "1".to_string()),
        ];
        let (child, ready) = super::node::start("saml-idp.mjs", &envs, "SAML_IDP_READY").await;
        SamlIdp { entity_id, sso_url: ready["sso_url"].as_str().unwrap().to_string(), cert_b64: pair.cert_b64(), _keys: keys, _child: child }
    }

    /// Where the IdP serves its own metadata (samlify's).
    pub fn metadata_url(&self) -> String {
        self.sso_url.replace("/sso", "/metadata")
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

/// IdP metadata for `entity_id` with an HTTP-Redirect SingleSignOnService at `sso_url` and one
/// signing KeyDescriptor per certificate (bare base64 DER), in that order. With `signed_by`
/// (the signer's certificate), an enveloped signature template over the root for xmlsec1
/// (`Signer::sign_first_of(xml, key, &[METADATA_ROOT])`).
pub fn idp_metadata(entity_id: &str, sso_url: &str, certs: &[&str], signed_by: Option<&str>) -> String {
    use super::saml_signer::{esc, random_id, RSA_SHA256, SHA256};
    let id = random_id();
    let keys: String = certs
        .iter()
        .map(|c| format!("<md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"))
        .collect();
    let sig = signed_by.map(|cert| format!(
        "<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/><ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"/>\
<ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/><ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
<ds:DigestMethod Algorithm=\"{SHA256}\"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"
    )).unwrap_or_default();
    format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" ID=\"{id}\" entityID=\"{}\">{sig}\
<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{keys}\
<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>\
<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{}\"/></md:IDPSSODescriptor></md:EntityDescriptor>",
        esc(entity_id),
        esc(sso_url),
    )
}

/// The element xmlsec1 must find the ID of in [`idp_metadata`]'s documents.
pub const METADATA_ROOT: &str = "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor";

/// An HTTP server on loopback that serves one metadata document the test can change, or a
/// 500 when it is `None`, and counts the requests it answered.
pub struct MetadataServer {
    pub url: String,
    body: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl MetadataServer {
    pub async fn start(body: Option<String>) -> MetadataServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/metadata", listener.local_addr().unwrap());
        let body = std::sync::Arc::new(std::sync::Mutex::new(body));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (b, h) = (b.clone(), h.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let current = b.lock().unwrap().clone();
                    let answer = match current {
                        Some(xml) => format!("HTTP/1.1 200 OK\r\ncontent-type: application/samlmetadata+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}", xml.len()),
                        None => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown".to_string(),
                    };
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        MetadataServer { url, body, hits, task }
    }

    pub fn set(&self, body: Option<String>) {
        *self.body.lock().unwrap() = body;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait until `n` more requests than now were answered (with what is set now).
    pub async fn wait_for_more(&self, n: usize) {
        let target = self.hits() + n;
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while self.hits() < target {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the proxy re-read the metadata");
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
