//! The plugin's provider administration: `GetNames`, `Get`, `States`, `Add`, `Del`.
//!
//! Providers in `proxy.yaml` belong to the operator and cannot be changed here (409).
//! Providers added here go through the registry's one JSON-to-config path, so they are
//! validated exactly as the file is; they are stored in the durable state first and take
//! effect at once. A storage failure changes nothing and is a 500.

use std::collections::BTreeMap;

use http::Response;

use super::error::SsoError;
use super::http::{SsoRequest, json_ok, read_json};
use super::identity::Protocol;
use super::login::PendingFlow;
use super::registry::Source;
use super::Sso;
use crate::body::Body;
use crate::config::provider::REDACTED;
use crate::state::{Kind, StoredProvider};

impl Sso {
    /// `GET /sso/{mode}/GetNames`: enabled providers (public).
    pub(super) fn get_names(&self, protocol: Protocol) -> Response<Body> {
        let names: Vec<String> = self.registry.list(protocol).into_iter().filter(|p| p.enabled()).map(|p| p.name().to_string()).collect();
        json_ok(&names)
    }

    /// `GET /sso/{mode}/Get`: every provider in the plugin's shape, secrets redacted.
    pub(super) fn get_providers(&self, protocol: Protocol) -> Response<Body> {
        let all: BTreeMap<String, serde_json::Value> = self.registry.list(protocol).into_iter().map(|p| (p.name().to_string(), p.to_plugin_json())).collect();
        json_ok(&all)
    }

    /// `GET /sso/OID/States`: pending logins, without any secret.
    pub(super) async fn states(&self) -> Result<Response<Body>, SsoError> {
        let list: Vec<serde_json::Value> = self
            .state
            .ephemeral
            .list(Kind::Flow)
            .await?
            .into_iter()
            .filter_map(|(age, bytes)| serde_json::from_slice::<PendingFlow>(&bytes).ok().map(|f| (age, f)))
            .map(|(age, f)| serde_json::json!({ "protocol": f.protocol().as_str(), "provider": f.provider(), "ageSeconds": age.as_secs(), "isLinking": f.linking() }))
            .collect();
        Ok(json_ok(&list))
    }

    /// `POST /sso/{mode}/Add/{p}`: add or replace an API-managed provider.
    pub(super) async fn add_provider(&self, protocol: Protocol, name: &str, req: SsoRequest) -> Result<Response<Body>, SsoError> {
        if self.registry.source(protocol, name) == Some(Source::File) {
            return Err(SsoError::Conflict(format!("provider {name} is defined in proxy.yaml; change it there")));
        }
        let mut body: serde_json::Value = read_json(req).await?;
        // A `Get` → `Add` round trip sends the redaction marker back: keep the stored secret.
        if protocol == Protocol::Oidc && body.get("oidSecret").and_then(|v| v.as_str()) == Some(REDACTED) {
            let stored = self.state.durable.provider(protocol.as_str(), name).await?.and_then(|p| p.json.get("oidSecret").cloned());
            match stored {
                Some(s) => body["oidSecret"] = s,
                None => return Err(SsoError::BadRequest("oidSecret: send the secret itself, not the redaction marker".into())),
            }
        }
        let provider = self.registry.build(protocol, name, &body)?;
        if let super::registry::Provider::Saml(idp) = &provider {
            // Metadata from a URL is read now, so a provider that cannot work is refused here.
            idp.descriptor().await.map_err(|e| SsoError::BadRequest(e.to_string()))?;
        }
        let _sync = self.registry.sync_lock().await;
        self.state.durable.put_provider(StoredProvider { protocol: protocol.as_str().into(), name: name.into(), json: body.clone() }).await?;
        let json = provider.to_plugin_json();
        self.registry.install_api(provider, body);
        tracing::info!(provider = name, protocol = protocol.as_str(), "provider added through the API");
        Ok(json_ok(&json))
    }

    /// `GET /sso/{mode}/Del/{p}`.
    pub(super) async fn del_provider(&self, protocol: Protocol, name: &str) -> Result<Response<Body>, SsoError> {
        if self.registry.source(protocol, name) == Some(Source::File) {
            return Err(SsoError::Conflict(format!("provider {name} is defined in proxy.yaml; remove it there")));
        }
        let _sync = self.registry.sync_lock().await;
        if !self.state.durable.remove_provider(protocol.as_str(), name).await? {
            return Err(SsoError::UnknownProvider(name.to_string()));
        }
        self.registry.remove(protocol, name);
        tracing::info!(provider = name, protocol = protocol.as_str(), "provider deleted through the API");
        Ok(json_ok(&serde_json::json!({})))
    }
}
