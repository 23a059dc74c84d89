//! One SAML 2.0 identity provider at run time, on the `saml` crate (pinned exactly in
//! `Cargo.toml`; `tests/saml_fixtures.rs` guards it with responses signed by xmlsec1).
//!
//! We are a service provider that sends an AuthnRequest with the HTTP-Redirect binding
//! (signed over the query, SAML Bindings §3.4.4.1, with `samlSignRequests`) and receives
//! the Response with HTTP-POST at the ACS. The library does the security work: it refuses
//! DTDs and entities, verifies the XML signature against the IdP's certificates (Response or
//! Assertion signed, never neither; RSA-SHA256 or stronger), decrypts an EncryptedAssertion
//! with our key (`saml_keys.rs`, policy in `saml_crypto.rs`), reads only the element the
//! signature covers, and checks Destination, Issuer, InResponseTo (against the tracker of
//! this browser's flow), Audience, Recipient, validity times with the provider's clock skew,
//! and the assertion id against the replay cache. The IdP's description comes from the
//! configuration and its metadata (`saml_metadata.rs`). This module turns all that into the
//! library's types and its verdict into [`SamlError`].

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use saml::{
    Binding, ConsumeResponse, Dispatch, Endpoint, IdpDescriptor, LoginTracker, NameIdFormat, ReplayMode, ServiceProvider,
    ServiceProviderConfig, SpLogoutSigning, SpLogoutWantSigned, SpWantSigned, SsoResponseBinding, SsoResponseEndpoint, StartLogin,
};

use super::saml_metadata::{self, MetadataCache};
use crate::config::provider::{MetadataSource, SamlConfig};

/// Largest `SAMLResponse` form body accepted at the ACS (before base64 decoding). Real
/// responses with a certificate and a few attributes are 5 to 20 KiB.
pub const MAX_ACS_BODY: usize = 256 * 1024;

/// Why a SAML login failed, in the words the error page and the log need.
#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    /// The SP could not be set up from the configuration (a bug or a broken certificate).
    #[error("SAML set-up failed: {0}")]
    Setup(String),
    /// The POST was not a well-formed SAML message (base64, XML, DTD, limits).
    #[error("malformed SAML response: {0}")]
    Malformed(String),
    /// The IdP answered with a non-success status.
    #[error("identity provider status {code}")]
    Status { code: String, message: Option<String> },
    /// Signature, issuer, audience, destination, time or correlation checks failed.
    #[error("{0}")]
    Invalid(String),
    /// The replay cache is full: refuse rather than forget.
    #[error("replay cache full")]
    Full,
    /// The replay cache could not be asked.
    #[error("replay cache unavailable: {0}")]
    Backend(String),
    /// The IdP's metadata could not be read or was refused.
    #[error("the identity provider's metadata {0}")]
    Metadata(String),
}

impl From<saml::Error> for SamlError {
    fn from(e: saml::Error) -> Self {
        use saml::Error as E;
        match e {
            E::XmlParse(_) | E::Inflate | E::SchemaViolation { .. } => SamlError::Malformed(e.to_string()),
            E::StatusNotSuccess { code, message } => SamlError::Status { code, message },
            E::ReplayCacheFull => SamlError::Full,
            E::ReplayCache { reason } => SamlError::Backend(reason.to_string()),
            E::InvalidConfiguration { .. } | E::NoPeerSigningCert | E::UnsupportedByPeer { .. } => SamlError::Setup(e.to_string()),
            other => SamlError::Invalid(other.to_string()),
        }
    }
}

/// What the ACS learned from a verified response.
#[derive(Debug, Clone)]
pub struct Asserted {
    pub name_id: String,
    /// The IdP's `SessionIndex` of this login, for single logout.
    pub session_index: Option<String>,
    pub transient: bool,
    /// `(Name, FriendlyName, values)` of each attribute.
    pub attributes: Vec<(String, Option<String>, Vec<String>)>,
}

impl Asserted {
    /// Values of the attribute called `name` (by `Name` or `FriendlyName`).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.attributes
            .iter()
            .filter(|(n, friendly, _)| n == name || friendly.as_deref() == Some(name))
            .flat_map(|(_, _, v)| v.iter().cloned())
            .collect()
    }
}

/// A configured SAML provider: the library's SP built once, the IdP's description kept
/// current from its metadata.
pub struct SamlIdp {
    pub config: SamlConfig,
    sp: ServiceProvider,
    idp: MetadataCache,
    http: reqwest::Client,
    /// The ACS URL we ask the IdP to post to (`/sso/SAML/post/{p}`), the only one in our
    /// metadata. The plugin's alias path (`/sso/SAML/p/{p}`) is served too, but the response
    /// must still be addressed (Destination, Recipient) to this URL, the one we asked for.
    pub acs_url: String,
    /// Our single logout URL (`/sso/SAML/logout/{p}`), where the IdP sends LogoutRequests.
    pub slo_url: String,
}

impl SamlIdp {
    /// `join` makes a public URL from a path (`PublicUrl::join`); `key` is our SP key pair
    /// (with its certificate); `http` fetches the IdP's metadata.
    pub fn new(config: SamlConfig, join: impl Fn(&str) -> String, key: saml::KeyPair, http: reqwest::Client) -> Result<SamlIdp, SamlError> {
        let acs_url = join(&format!("/sso/SAML/post/{}", config.name));
        let slo_url = join(&format!("/sso/SAML/logout/{}", config.name));
        let sign = config.sign_requests;
        let sp = ServiceProvider::new(ServiceProviderConfig {
            entity_id: config.sp_entity_id.clone(),
            acs: vec![SsoResponseEndpoint::post(acs_url.clone(), 0, true)],
            slo: vec![Endpoint::redirect(slo_url.clone(), 0, true), Endpoint::post(slo_url.clone(), 1, false)],
            name_id_formats: Vec::new(),
            // Published in our metadata (signing and encryption) whether or not requests are
            // signed, so an IdP can be switched to verify or encrypt without a new import.
            signing_key: Some(key.clone()),
            decryption_key: Some(key),
            sign_authn_requests: sign,
            // Both false means: the Response or the Assertion must carry a valid signature.
            // CBC-encrypted assertions are only accepted inside a signed Response.
            want_signed: SpWantSigned { response: config.allow_cbc_encryption, assertions: false },
            allow_unsolicited: false,
            logout_signing: SpLogoutSigning { sign_requests: sign, sign_responses: sign },
            logout_want_signed: SpLogoutWantSigned { requests: true, responses: true },
            default_peer_crypto_policy: super::saml_crypto::policy(config.allow_cbc_encryption),
            outbound_signature_algorithm: saml::SignatureAlgorithm::RsaSha256,
            outbound_digest_algorithm: saml::DigestAlgorithm::Sha256,
        })?;
        // Without metadata the description is complete now; from a file it is read now, so a
        // broken file is reported at once; from a URL it is fetched in the background.
        let initial = match config.metadata.as_ref().map(|m| (&m.source, m)) {
            None => Some(saml_metadata::merge(&config, None)?),
            Some((MetadataSource::File(path), md)) => {
                let xml = std::fs::read(path).map_err(|e| SamlError::Metadata(format!("cannot read {}: {e}", path.display())))?;
                let parsed = saml_metadata::parse(&xml, md, config.idp_entity_id.as_deref(), SystemTime::now())?;
                Some(saml_metadata::merge(&config, Some(&parsed))?)
            }
            Some((MetadataSource::Url(_), _)) => None,
        };
        Ok(SamlIdp { config, sp, idp: MetadataCache::new(initial), http, acs_url, slo_url })
    }

    /// The IdP's description, reading its metadata first if there is no good copy yet.
    pub async fn descriptor(&self) -> Result<Arc<IdpDescriptor>, SamlError> {
        self.idp.get(&self.config, &self.http).await
    }

    /// The IdP's description as it is now (none while its metadata was never read).
    pub fn current(&self) -> Option<Arc<IdpDescriptor>> {
        self.idp.current()
    }

    /// Re-read the metadata when its refresh interval has passed (`saml_metadata.rs`).
    pub async fn refresh_if_due(&self) {
        self.idp.refresh_if_due(&self.config, &self.http).await
    }

    /// Re-read the metadata now; the last good copy stays on failure.
    pub async fn refresh(&self) -> Result<(), SamlError> {
        self.idp.refresh(&self.config, &self.http).await
    }

    /// Whether the IdP has a single logout URL we can send to (explicit or from metadata).
    pub fn has_idp_logout(&self) -> bool {
        self.current().is_some_and(|d| d.slo_endpoint(Binding::HttpRedirect).is_some())
    }

    /// The AuthnRequest as a redirect URL to the IdP, and the tracker to keep in the flow.
    /// `relay_state` is the flow's id, which the IdP posts back with the response.
    pub async fn start(&self, relay_state: &str) -> Result<(String, LoginTracker), SamlError> {
        let idp = self.descriptor().await?;
        let started = self.sp.start_login(
            &idp,
            StartLogin {
                relay_state: Some(relay_state),
                binding: Binding::HttpRedirect,
                force_authn: false,
                is_passive: false,
                requested_name_id_format: None,
                requested_authn_context: None,
                // The URL, not an index: every IdP understands it (Keycloak and ADFS check it
                // against the registered ACS URLs).
                acs_index: None,
                acs_url: Some(&self.acs_url),
                response_binding: None,
            },
        )?;
        match started.dispatch {
            Dispatch::Redirect(url) => Ok((url.to_string(), started.tracker)),
            Dispatch::Post(_) => Err(SamlError::Setup("the library chose the POST binding for a redirect request".into())),
        }
    }

    /// Verify the posted `SAMLResponse` (still base64) for the flow's tracker.
    pub fn finish(&self, saml_response_b64: &str, relay_state: &str, tracker: &LoginTracker, replay: &dyn saml::ReplayCache) -> Result<Asserted, SamlError> {
        let compact: String = saml_response_b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let xml = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| SamlError::Malformed(format!("SAMLResponse is not base64: {e}")))?;
        let idp = self.current().ok_or_else(|| SamlError::Metadata("is not loaded".into()))?;
        let identity = self.sp.consume_response(ConsumeResponse {
            idp: &idp,
            peer_crypto_policy: None,
            saml_response: &xml,
            binding: SsoResponseBinding::HttpPost,
            relay_state: Some(relay_state),
            tracker: Some(tracker),
            expected_destination: &self.acs_url,
            now: SystemTime::now(),
            clock_skew: self.config.clock_skew,
            replay_cache: Some(replay),
            replay_mode: ReplayMode::All,
            holder_of_key_cert: None,
        })?;
        // Verified; now its shape may be read.
        if self.config.require_encrypted_assertions && !super::saml_crypto::assertion_is_encrypted(&xml) {
            return Err(SamlError::Invalid("the assertion is not encrypted, and this provider requires encrypted assertions (samlRequireEncryptedAssertions)".into()));
        }
        Ok(Asserted {
            name_id: identity.name_id().value.clone(),
            session_index: identity.session_index().map(str::to_string),
            transient: identity.name_id().format == NameIdFormat::Transient,
            attributes: identity.attributes().iter().map(|a| (a.name.clone(), a.friendly_name.clone(), a.values.clone())).collect(),
        })
    }

    /// The library's SP and the IdP's current description (single logout, `saml_logout.rs`).
    pub fn parts(&self) -> Result<(&ServiceProvider, Arc<IdpDescriptor>), SamlError> {
        Ok((&self.sp, self.current().ok_or_else(|| SamlError::Metadata("is not loaded".into()))?))
    }

    /// SP metadata for the IdP administrator to import.
    pub fn metadata_xml(&self) -> Result<String, SamlError> {
        Ok(self.sp.metadata_xml(false)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> SamlConfig {
        let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
        SamlConfig {
            name: "corp".into(),
            display_name: None,
            enabled: true,
            sso_url: Some(url::Url::parse("https://idp.example/sso?tenant=1").unwrap()),
            slo_url: None,
            sp_entity_id: "jellyfin".into(),
            idp_entity_id: Some("https://idp.example".into()),
            certificates: vec![cert.der().to_vec()],
            metadata: None,
            sp_key: None,
            sign_requests: false,
            require_encrypted_assertions: false,
            allow_cbc_encryption: false,
            role_attribute: "Role".into(),
            username_attribute: None,
            clock_skew: std::time::Duration::from_secs(60),
            grants: Default::default(),
            session: Default::default(),
        }
    }

    /// One SP key pair for all tests (generating RSA keys is slow).
    pub(crate) fn test_key() -> saml::KeyPair {
        static DIR: std::sync::OnceLock<(tempfile::TempDir, saml::KeyPair)> = std::sync::OnceLock::new();
        DIR.get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let k = crate::sso::saml_keys::SpKeys::new(d.path()).get(None).unwrap();
            (d, k)
        })
        .1
        .clone()
    }

    fn build(cfg: SamlConfig) -> SamlIdp {
        SamlIdp::new(cfg, |p| format!("https://media.example{p}"), test_key(), reqwest::Client::new()).unwrap()
    }

    fn idp() -> SamlIdp {
        build(provider())
    }

    #[tokio::test]
    async fn signed_requests_carry_a_signature_over_the_query_by_our_key() {
        let idp = build(SamlConfig { sign_requests: true, ..provider() });
        let (url, _) = idp.start("flow-id").await.unwrap();
        let query = url::Url::parse(&url).unwrap().query().unwrap().to_string();
        let q: std::collections::HashMap<_, _> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        assert_eq!(q["SigAlg"], "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
        // SAML Bindings §3.4.4.1: the signature covers SAMLRequest, RelayState and SigAlg, as sent.
        let signed = query.split('&').filter(|kv| !kv.starts_with("Signature=") && !kv.starts_with("tenant=")).collect::<Vec<_>>().join("&");
        assert!(signed.starts_with("SAMLRequest=") && signed.contains("&RelayState=") && signed.ends_with(&format!("SigAlg={}", url::form_urlencoded::byte_serialize(q["SigAlg"].as_bytes()).collect::<String>())), "{signed}");
        let sig = base64::engine::general_purpose::STANDARD.decode(&q["Signature"]).unwrap();
        let cert = test_key().certificate().unwrap().clone();
        cert.public_key().verify_signature(saml::SignatureAlgorithm::RsaSha256, signed.as_bytes(), &sig).expect("signed by our key");
        let mut tampered = signed.clone();
        tampered.push('x');
        assert!(cert.public_key().verify_signature(saml::SignatureAlgorithm::RsaSha256, tampered.as_bytes(), &sig).is_err());
        // Our metadata says so and publishes the key for both uses.
        let xml = idp.metadata_xml().unwrap();
        assert!(xml.contains("AuthnRequestsSigned=\"true\""), "{xml}");
        assert!(xml.contains("use=\"signing\"") && xml.contains("use=\"encryption\""), "{xml}");
        assert!(xml.contains(&cert.to_base64_x509()), "{xml}");
    }

    #[tokio::test]
    async fn start_redirects_to_the_idp_with_relay_state_and_our_acs() {
        let idp = idp();
        let (url, tracker) = idp.start("flow-id").await.unwrap();
        let url = url::Url::parse(&url).unwrap();
        assert_eq!(url.host_str(), Some("idp.example"));
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "1", "the endpoint's own query is kept");
        assert_eq!(q["RelayState"], "flow-id");
        assert!(q.contains_key("SAMLRequest"));
        assert!(!q.contains_key("Signature"), "requests are not signed");
        assert_eq!(tracker.acs_endpoint().url, "https://media.example/sso/SAML/post/corp");
        assert_eq!(tracker.idp_entity_id(), "https://idp.example");
        // Each request has its own id.
        assert_ne!(idp.start("x").await.unwrap().1.request_id(), tracker.request_id());
    }

    #[test]
    fn metadata_lists_our_entity_id_and_the_one_acs() {
        let xml = idp().metadata_xml().unwrap();
        assert!(xml.contains("entityID=\"jellyfin\""), "{xml}");
        assert!(xml.contains("Location=\"https://media.example/sso/SAML/post/corp\""), "{xml}");
        assert!(!xml.contains("/sso/SAML/p/corp"), "IdPs that pick an ACS from metadata must pick the one we ask for: {xml}");
    }

    #[tokio::test]
    async fn a_broken_response_is_malformed_not_a_panic() {
        let idp = idp();
        let (_, tracker) = idp.start("r").await.unwrap();
        let replay = saml::InMemoryReplayCache::new(10);
        for input in ["%%%", "PHg+", ""] {
            let e = idp.finish(input, "r", &tracker, &replay).unwrap_err();
            assert!(matches!(e, SamlError::Malformed(_)), "{input}: {e:?}");
        }
    }

    #[test]
    fn attributes_match_by_name_or_friendly_name() {
        let a = Asserted {
            name_id: "n".into(),
            session_index: None,
            transient: false,
            attributes: vec![
                ("urn:oid:1.3.6.1.4.1.5923.1.1.1.7".into(), Some("groups".into()), vec!["a".into(), "b".into()]),
                ("Role".into(), None, vec!["c".into()]),
            ],
        };
        assert_eq!(a.values("groups"), ["a", "b"]);
        assert_eq!(a.values("urn:oid:1.3.6.1.4.1.5923.1.1.1.7"), ["a", "b"]);
        assert_eq!(a.values("Role"), ["c"]);
        assert!(a.values("role").is_empty(), "names are case-sensitive, as in SAML");
    }

    #[test]
    fn library_errors_map_to_the_right_kind() {
        assert!(matches!(SamlError::from(saml::Error::XmlParse("DTDs not allowed".into())), SamlError::Malformed(_)));
        assert!(matches!(SamlError::from(saml::Error::SignatureMissing), SamlError::Invalid(_)));
        assert!(matches!(SamlError::from(saml::Error::ReplayCacheFull), SamlError::Full));
        let SamlError::Status { code, message } = SamlError::from(saml::Error::StatusNotSuccess { code: "urn:x:Responder".into(), message: Some("no".into()) }) else {
            panic!()
        };
        assert_eq!((code.as_str(), message.as_deref()), ("urn:x:Responder", Some("no")));
    }
}
