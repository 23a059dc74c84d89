//! The IdP's SAML metadata (`samlIdpMetadataUrl` / `samlIdpMetadataFile`), read with the
//! `saml` crate and merged with what the provider sets explicitly into the one
//! [`IdpDescriptor`] logins and logouts use.
//!
//! The document is hostile input: at most [`MAX_METADATA`] bytes, fetched with the IdP HTTP
//! client (no redirects, connect 5 s) within [`FETCH_TIMEOUT`], parsed by the crate under its
//! default XML limits (no DTDs, bounded depth and size). With pinned certificates
//! (`samlIdpMetadataCertificate`) it must carry an enveloped signature over its root by one
//! of them (the crate's verify-then-parse), or it is refused. An expired `validUntil` is
//! refused. From it come the entity id, every signing certificate (so a response signed by
//! any of them verifies: key rollover), and the HTTP-Redirect sign-on and logout endpoints;
//! explicit settings win, explicit certificates are trusted alongside.
//!
//! Kept in [`MetadataCache`]: the last good descriptor; a refresh that fails leaves it in
//! place and is logged. A provider without metadata has its descriptor from the start.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use saml::{Binding, Endpoint, EntitiesDescriptor, IdpDescriptor, X509Certificate};

use super::saml::SamlError;
use crate::config::provider::{MetadataSource, SamlConfig, SamlMetadataConfig};

/// The largest metadata document read (single-IdP metadata is a few KiB; federation
/// aggregates are not supported).
pub const MAX_METADATA: usize = 1024 * 1024;
/// The whole fetch, headers and body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// With no good copy yet, a login may trigger a fetch at most this often.
const RETRY_WITHOUT_COPY: Duration = Duration::from_secs(5);

/// Parse a metadata document and pick the IdP: `entity_id` when set, else the only one.
pub fn parse(xml: &[u8], md: &SamlMetadataConfig, entity_id: Option<&str>, now: SystemTime) -> Result<IdpDescriptor, SamlError> {
    if xml.len() > MAX_METADATA {
        return Err(SamlError::Metadata(format!("larger than {} KiB", MAX_METADATA / 1024)));
    }
    let entities = if md.pinned.is_empty() {
        EntitiesDescriptor::from_metadata_xml_with_limits(xml, saml::xml::parse::XmlLimits::default()).map_err(|e| SamlError::Metadata(format!("not usable SAML metadata: {e}")))?
    } else {
        let policy = saml::PeerCryptoPolicy::metadata_compat_defaults();
        let mut refusal = String::new();
        let mut verified = None;
        for der in &md.pinned {
            let cert = X509Certificate::from_der(der).map_err(|e| SamlError::Setup(format!("samlIdpMetadataCertificate: {e}")))?;
            match saml::parse_signed_entities_descriptor_with_policy(xml, &cert, &policy) {
                Ok(e) => {
                    verified = Some(e);
                    break;
                }
                Err(e) => refusal = e.to_string(),
            }
        }
        verified.ok_or_else(|| SamlError::Metadata(format!("not signed by the pinned certificate (samlIdpMetadataCertificate): {refusal}")))?
    };
    if entities.valid_until.is_some_and(|t| t < now) {
        return Err(SamlError::Metadata("expired (its validUntil is in the past)".into()));
    }
    let idp = match entity_id {
        Some(id) => entities.find_idp(id).cloned().ok_or_else(|| SamlError::Metadata(format!("describes no identity provider `{id}` (samlIdpEntityId)")))?,
        None => {
            let mut all = entities.iter_idps();
            match (all.next(), all.next()) {
                (Some(one), None) => one.clone(),
                (None, _) => return Err(SamlError::Metadata("describes no identity provider (IDPSSODescriptor)".into())),
                (Some(_), Some(_)) => return Err(SamlError::Metadata("describes several identity providers: set samlIdpEntityId to choose one".into())),
            }
        }
    };
    if idp.valid_until.is_some_and(|t| t < now) {
        return Err(SamlError::Metadata("expired (its validUntil is in the past)".into()));
    }
    Ok(idp)
}

/// The descriptor logins use: the explicit settings, completed by the metadata's.
pub fn merge(cfg: &SamlConfig, from_metadata: Option<&IdpDescriptor>) -> Result<IdpDescriptor, SamlError> {
    let missing = |what: &str| SamlError::Setup(format!("no {what}: set it, or use metadata that has it"));
    let entity_id = cfg.idp_entity_id.clone().or_else(|| from_metadata.map(|m| m.entity_id.clone())).ok_or_else(|| missing("samlIdpEntityId"))?;
    let sso_endpoints = match (&cfg.sso_url, from_metadata) {
        (Some(u), _) => vec![Endpoint::redirect(u.as_str(), 0, true)],
        (None, Some(m)) => m.sso_endpoints.iter().filter(|e| e.binding == Binding::HttpRedirect).cloned().collect(),
        (None, None) => Vec::new(),
    };
    if sso_endpoints.is_empty() {
        return Err(SamlError::Metadata("offers no HTTP-Redirect SingleSignOnService (or set samlEndpoint)".into()));
    }
    let slo_endpoints = match (&cfg.slo_url, from_metadata) {
        (Some(u), _) => vec![Endpoint::redirect(u.as_str(), 0, true)],
        (None, Some(m)) => m.slo_endpoints.iter().filter(|e| e.binding == Binding::HttpRedirect).cloned().collect(),
        (None, None) => Vec::new(),
    };
    let mut signing_certs = Vec::new();
    for der in &cfg.certificates {
        signing_certs.push(X509Certificate::from_der(der).map_err(|e| SamlError::Setup(format!("samlCertificate: {e}")))?);
    }
    for c in from_metadata.iter().flat_map(|m| &m.signing_certs) {
        if !signing_certs.iter().any(|s| s.fingerprint_sha256() == c.fingerprint_sha256()) {
            signing_certs.push(c.clone());
        }
    }
    if signing_certs.is_empty() {
        return Err(missing("IdP signing certificate (samlCertificate, or a KeyDescriptor use=\"signing\" in the metadata)"));
    }
    Ok(IdpDescriptor {
        entity_id,
        sso_endpoints,
        slo_endpoints,
        artifact_resolution_endpoints: Vec::new(),
        signing_certs,
        encryption_certs: Vec::new(),
        supported_name_id_formats: Vec::new(),
        want_authn_requests_signed: from_metadata.is_some_and(|m| m.want_authn_requests_signed),
        valid_until: None,
        cache_duration: None,
    })
}

/// The descriptor in use, and the metadata's refresh state.
pub struct MetadataCache {
    current: RwLock<Option<Arc<IdpDescriptor>>>,
    /// When the metadata was last read (with or without success), and why that failed.
    last_attempt: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl MetadataCache {
    pub fn new(initial: Option<IdpDescriptor>) -> MetadataCache {
        MetadataCache { current: RwLock::new(initial.map(Arc::new)), last_attempt: Mutex::new(None), last_error: Mutex::new(None), fetching: tokio::sync::Mutex::new(()) }
    }

    pub fn current(&self) -> Option<Arc<IdpDescriptor>> {
        self.current.read().expect("metadata lock").clone()
    }

    /// Read the metadata now and, when it is good, use it. A failure keeps the last good copy.
    pub async fn refresh(&self, cfg: &SamlConfig, http: &reqwest::Client) -> Result<(), SamlError> {
        let _one = self.fetching.lock().await;
        let result = self.refresh_locked(cfg, http).await;
        *self.last_error.lock().expect("metadata lock") = result.as_ref().err().map(ToString::to_string);
        result
    }

    async fn refresh_locked(&self, cfg: &SamlConfig, http: &reqwest::Client) -> Result<(), SamlError> {
        let Some(md) = &cfg.metadata else { return Ok(()) };
        *self.last_attempt.lock().expect("metadata lock") = Some(Instant::now());
        let xml = read(&md.source, http).await?;
        let parsed = parse(&xml, md, cfg.idp_entity_id.as_deref(), SystemTime::now())?;
        let merged = merge(cfg, Some(&parsed))?;
        if merged.want_authn_requests_signed && !cfg.sign_requests {
            tracing::warn!(provider = %cfg.name, "the IdP's metadata asks for signed AuthnRequests (WantAuthnRequestsSigned): set samlSignRequests: true");
        }
        *self.current.write().expect("metadata lock") = Some(Arc::new(merged));
        Ok(())
    }

    /// Refresh when `samlIdpMetadataRefresh` has passed since the last read (sooner while
    /// there is no good copy); log the outcome of a failure.
    pub async fn refresh_if_due(&self, cfg: &SamlConfig, http: &reqwest::Client) {
        let Some(md) = &cfg.metadata else { return };
        let have = self.current().is_some();
        let every = if have { md.refresh } else { md.refresh.min(RETRY_WITHOUT_COPY) };
        let due = self.last_attempt.lock().expect("metadata lock").is_none_or(|t| t.elapsed() >= every);
        if !due {
            return;
        }
        if let Err(e) = self.refresh(cfg, http).await {
            if have {
                tracing::warn!(provider = %cfg.name, error = %e, "SAML metadata refresh failed; keeping the last good copy");
            } else {
                tracing::error!(provider = %cfg.name, error = %e, "SAML metadata unavailable; logins with this provider fail until it can be read");
            }
        }
    }

    /// The descriptor, reading the metadata first if there is no good copy yet.
    /// A fetch under way is waited for; one that failed a moment ago is not repeated.
    pub async fn get(&self, cfg: &SamlConfig, http: &reqwest::Client) -> Result<Arc<IdpDescriptor>, SamlError> {
        if let Some(d) = self.current() {
            return Ok(d);
        }
        let _one = self.fetching.lock().await;
        if let Some(d) = self.current() {
            return Ok(d);
        }
        let recent = self.last_attempt.lock().expect("metadata lock").is_some_and(|t| t.elapsed() < RETRY_WITHOUT_COPY);
        if recent {
            let why = self.last_error.lock().expect("metadata lock").clone().unwrap_or_default();
            return Err(SamlError::Metadata(format!("could not be read a moment ago ({why})")));
        }
        let result = self.refresh_locked(cfg, http).await;
        *self.last_error.lock().expect("metadata lock") = result.as_ref().err().map(ToString::to_string);
        result.inspect_err(|e| tracing::error!(provider = %cfg.name, error = %e, "SAML metadata unavailable"))?;
        self.current().ok_or_else(|| SamlError::Metadata("is not loaded".into()))
    }
}

/// The document's bytes, capped and within the time limit.
async fn read(source: &MetadataSource, http: &reqwest::Client) -> Result<Vec<u8>, SamlError> {
    match source {
        MetadataSource::File(path) => {
            let cannot = |e: std::io::Error| SamlError::Metadata(format!("cannot read {}: {e}", path.display()));
            if tokio::fs::metadata(path).await.map_err(cannot)?.len() > MAX_METADATA as u64 {
                return Err(SamlError::Metadata(format!("{}: larger than {} KiB", path.display(), MAX_METADATA / 1024)));
            }
            tokio::fs::read(path).await.map_err(cannot)
        }
        MetadataSource::Url(url) => {
            let fetch = async {
                let mut r = http.get(url.as_str()).header("accept", "application/samlmetadata+xml, application/xml, text/xml").send().await.map_err(|e| format!("cannot fetch: {e}"))?;
                if !r.status().is_success() {
                    return Err(format!("the server answered {}", r.status()));
                }
                if r.content_length().is_some_and(|n| n > MAX_METADATA as u64) {
                    return Err(format!("larger than {} KiB", MAX_METADATA / 1024));
                }
                let mut body = Vec::new();
                while let Some(chunk) = r.chunk().await.map_err(|e| format!("reading the body: {e}"))? {
                    if body.len() + chunk.len() > MAX_METADATA {
                        return Err(format!("larger than {} KiB", MAX_METADATA / 1024));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            };
            match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
                Ok(r) => r.map_err(|e| SamlError::Metadata(format!("{url}: {e}"))),
                Err(_) => Err(SamlError::Metadata(format!("{url}: no complete answer within {}s", FETCH_TIMEOUT.as_secs()))),
            }
        }
    }
}
