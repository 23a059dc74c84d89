//! One SAML 2.0 identity provider at run time, on the `saml` crate (pinned exactly in
//! `Cargo.toml`; `tests/saml_fixtures.rs` guards it with responses signed by xmlsec1).
//!
//! We are a service provider that sends an unsigned AuthnRequest with the HTTP-Redirect
//! binding and receives the Response with HTTP-POST at the ACS. The library does the
//! security work: it refuses DTDs and entities, verifies the XML signature against the
//! configured certificates (Response or Assertion signed, never neither; RSA-SHA256 or
//! stronger), reads only the element the signature covers, and checks Destination, Issuer,
//! InResponseTo (against the tracker of this browser's flow), Audience, Recipient, validity
//! times with the provider's clock skew, and the assertion id against the replay cache.
//! This module turns configuration into the library's types and its verdict into
//! [`SamlError`], and maps the asserted subject and attributes to an identity.

use std::time::SystemTime;

use base64::Engine;
use saml::{
    Binding, ConsumeResponse, Dispatch, Endpoint, IdpDescriptor, LoginTracker, NameIdFormat, PeerCryptoPolicy,
    ReplayMode, ServiceProvider, ServiceProviderConfig, SpLogoutSigning, SpLogoutWantSigned, SpWantSigned, SsoResponseBinding,
    SsoResponseEndpoint, StartLogin, X509Certificate,
};

use crate::config::provider::SamlConfig;

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

/// A configured SAML provider with the library's SP and IdP descriptions built once.
pub struct SamlIdp {
    pub config: SamlConfig,
    sp: ServiceProvider,
    idp: IdpDescriptor,
    /// The ACS URL we ask the IdP to post to (`/sso/SAML/post/{p}`), the only one in our
    /// metadata. The plugin's alias path (`/sso/SAML/p/{p}`) is served too, but the response
    /// must still be addressed (Destination, Recipient) to this URL, the one we asked for.
    pub acs_url: String,
    /// Our single logout URL (`/sso/SAML/logout/{p}`), where the IdP sends LogoutRequests.
    pub slo_url: String,
}

impl SamlIdp {
    /// `public_base` is the proxy's public URL joined with a path (`PublicUrl::join`).
    pub fn new(config: SamlConfig, join: impl Fn(&str) -> String) -> Result<SamlIdp, SamlError> {
        let acs_url = join(&format!("/sso/SAML/post/{}", config.name));
        let slo_url = join(&format!("/sso/SAML/logout/{}", config.name));
        let sp = ServiceProvider::new(ServiceProviderConfig {
            entity_id: config.sp_entity_id.clone(),
            acs: vec![SsoResponseEndpoint::post(acs_url.clone(), 0, true)],
            slo: vec![Endpoint::redirect(slo_url.clone(), 0, true), Endpoint::post(slo_url.clone(), 1, false)],
            name_id_formats: Vec::new(),
            signing_key: None,
            decryption_key: None,
            sign_authn_requests: false,
            // Both false means: the Response or the Assertion must carry a valid signature.
            want_signed: SpWantSigned { response: false, assertions: false },
            allow_unsolicited: false,
            logout_signing: SpLogoutSigning { sign_requests: false, sign_responses: false },
            logout_want_signed: SpLogoutWantSigned { requests: true, responses: true },
            default_peer_crypto_policy: PeerCryptoPolicy::strong_defaults(),
            outbound_signature_algorithm: saml::SignatureAlgorithm::RsaSha256,
            outbound_digest_algorithm: saml::DigestAlgorithm::Sha256,
        })?;
        let signing_certs = config
            .certificates
            .iter()
            .map(|der| X509Certificate::from_der(der).map_err(|e| SamlError::Setup(format!("samlCertificate: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let idp = IdpDescriptor {
            entity_id: config.idp_entity_id.clone(),
            sso_endpoints: vec![Endpoint::redirect(config.sso_url.as_str(), 0, true)],
            slo_endpoints: config.slo_url.iter().map(|u| Endpoint::redirect(u.as_str(), 0, true)).collect(),
            artifact_resolution_endpoints: Vec::new(),
            signing_certs,
            encryption_certs: Vec::new(),
            supported_name_id_formats: Vec::new(),
            want_authn_requests_signed: false,
            valid_until: None,
            cache_duration: None,
        };
        Ok(SamlIdp { config, sp, idp, acs_url, slo_url })
    }

    /// The AuthnRequest as a redirect URL to the IdP, and the tracker to keep in the flow.
    /// `relay_state` is the flow's id, which the IdP posts back with the response.
    pub fn start(&self, relay_state: &str) -> Result<(String, LoginTracker), SamlError> {
        let started = self.sp.start_login(
            &self.idp,
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
        let identity = self.sp.consume_response(ConsumeResponse {
            idp: &self.idp,
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
        Ok(Asserted {
            name_id: identity.name_id().value.clone(),
            session_index: identity.session_index().map(str::to_string),
            transient: identity.name_id().format == NameIdFormat::Transient,
            attributes: identity.attributes().iter().map(|a| (a.name.clone(), a.friendly_name.clone(), a.values.clone())).collect(),
        })
    }

    /// The library's SP and IdP descriptions (single logout, `saml_logout.rs`).
    pub fn parts(&self) -> (&ServiceProvider, &IdpDescriptor) {
        (&self.sp, &self.idp)
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
            sso_url: url::Url::parse("https://idp.example/sso?tenant=1").unwrap(),
            slo_url: None,
            sp_entity_id: "jellyfin".into(),
            idp_entity_id: "https://idp.example".into(),
            certificates: vec![cert.der().to_vec()],
            role_attribute: "Role".into(),
            username_attribute: None,
            clock_skew: std::time::Duration::from_secs(60),
            grants: Default::default(),
            session: Default::default(),
        }
    }

    fn idp() -> SamlIdp {
        SamlIdp::new(provider(), |p| format!("https://media.example{p}")).unwrap()
    }

    #[test]
    fn start_redirects_to_the_idp_with_relay_state_and_our_acs() {
        let idp = idp();
        let (url, tracker) = idp.start("flow-id").unwrap();
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
        assert_ne!(idp.start("x").unwrap().1.request_id(), tracker.request_id());
    }

    #[test]
    fn metadata_lists_our_entity_id_and_the_one_acs() {
        let xml = idp().metadata_xml().unwrap();
        assert!(xml.contains("entityID=\"jellyfin\""), "{xml}");
        assert!(xml.contains("Location=\"https://media.example/sso/SAML/post/corp\""), "{xml}");
        assert!(!xml.contains("/sso/SAML/p/corp"), "IdPs that pick an ACS from metadata must pick the one we ask for: {xml}");
    }

    #[test]
    fn a_broken_response_is_malformed_not_a_panic() {
        let idp = idp();
        let (_, tracker) = idp.start("r").unwrap();
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
