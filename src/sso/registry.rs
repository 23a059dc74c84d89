//! The provider registry: every identity provider the proxy serves, of both protocols and
//! from both sources (`proxy.yaml` and the admin API), behind one lookup.
//!
//! A provider is built once from its validated configuration into its run-time form (an
//! OIDC client with cached discovery, or a SAML SP/IdP pair), then installed. Providers
//! from the admin API arrive as the plugin's JSON and go through the one JSON-to-config
//! path, so they are validated exactly as the file is. A file provider always wins over an
//! API provider of the same name and cannot be changed through the API.
//!
//! Proxies sharing one durable state learn of each other's API changes through
//! [`Registry::reload`]: given the stored list, it builds what is new or changed (by its
//! JSON), drops what is gone, and leaves file providers and unchanged ones untouched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::provider::{GrantRules, OidcConfig, ProviderConfig, SamlConfig};
use crate::config::{Config, PublicUrl};

use super::error::SsoError;
use super::identity::Protocol;
use super::oidc::OidcProvider;
use super::saml::SamlIdp;

/// One provider at run time.
#[derive(Clone)]
pub enum Provider {
    Oidc(Arc<OidcProvider>),
    Saml(Arc<SamlIdp>),
}

impl Provider {
    pub fn name(&self) -> &str {
        match self {
            Provider::Oidc(p) => &p.config.name,
            Provider::Saml(p) => &p.config.name,
        }
    }
    /// What people see: `displayName`, else the name.
    pub fn label(&self) -> &str {
        match self {
            Provider::Oidc(p) => p.config.display_name.as_deref().unwrap_or(&p.config.name),
            Provider::Saml(p) => p.config.display_name.as_deref().unwrap_or(&p.config.name),
        }
    }
    pub fn protocol(&self) -> Protocol {
        match self {
            Provider::Oidc(_) => Protocol::Oidc,
            Provider::Saml(_) => Protocol::Saml,
        }
    }
    pub fn enabled(&self) -> bool {
        match self {
            Provider::Oidc(p) => p.config.enabled,
            Provider::Saml(p) => p.config.enabled,
        }
    }
    pub fn grants(&self) -> &GrantRules {
        match self {
            Provider::Oidc(p) => &p.config.grants,
            Provider::Saml(p) => &p.config.grants,
        }
    }
    /// When this provider's sessions end.
    pub fn session_rules(&self) -> &crate::config::provider::SessionRules {
        match self {
            Provider::Oidc(p) => &p.config.session,
            Provider::Saml(p) => &p.config.session,
        }
    }
    /// Was this provider built from exactly `cfg`?
    pub fn has_config(&self, cfg: &ProviderConfig) -> bool {
        match (self, cfg) {
            (Provider::Oidc(p), ProviderConfig::Oidc(c)) => p.config == *c,
            (Provider::Saml(p), ProviderConfig::Saml(c)) => p.config == *c,
            _ => false,
        }
    }
    /// The plugin's JSON shape, secrets redacted.
    pub fn to_plugin_json(&self) -> serde_json::Value {
        match self {
            Provider::Oidc(p) => p.config.to_plugin_json(),
            Provider::Saml(p) => p.config.to_plugin_json(),
        }
    }
}

/// The file providers a reload puts in service ([`Registry::plan_file`]).
pub struct FilePlan {
    /// Unchanged: the running provider stays.
    keep: Vec<Key>,
    /// New or changed, already built.
    build: Vec<Provider>,
}

/// What a reload changed among the file providers, as `protocol/name`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// Where a provider was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Api,
}

type Key = (Protocol, String);

pub struct Registry {
    providers: RwLock<HashMap<Key, (Provider, Source)>>,
    /// The plugin JSON each API provider was built from (also kept for one that failed to
    /// build, so a reload does not retry and log it again until it changes).
    api_json: RwLock<HashMap<Key, serde_json::Value>>,
    /// Held across each write of the stored providers and the registry change that follows
    /// it, and across a re-read of the stored list and its [`Registry::reload`]: without it a
    /// re-read taken just before an `Add` was written, applied just after it was installed,
    /// removed the new provider again (until the next re-read).
    sync: tokio::sync::Mutex<()>,
    public_url: PublicUrl,
    state_dir: PathBuf,
    http: super::idp_http::IdpHttp,
    /// Our SAML SP key pairs (generated in `state_dir` on first use).
    sp_keys: super::saml_keys::SpKeys,
}

impl Registry {
    /// The file's providers, then the stored API providers `(protocol, name, plugin JSON)`
    /// not shadowed by the file. A provider that fails to build is logged and left out: one
    /// broken provider never stops the others.
    pub fn load(config: &Config, stored: impl IntoIterator<Item = (Protocol, String, serde_json::Value)>, http: super::idp_http::IdpHttp) -> Registry {
        let registry = Registry { providers: RwLock::new(HashMap::new()), api_json: RwLock::new(HashMap::new()), sync: tokio::sync::Mutex::new(()), public_url: config.public_url.clone(), state_dir: config.state_dir.clone(), sp_keys: super::saml_keys::SpKeys::new(&config.state_dir), http };
        for cfg in config.providers() {
            let name = cfg.name().to_string();
            match registry.runtime(cfg) {
                Ok(p) => registry.install(p, Source::File),
                Err(e) => tracing::error!(provider = %name, "provider from proxy.yaml stays disabled: {e}"),
            }
        }
        registry.reload(stored);
        registry
    }

    /// Make the API providers those of `stored` (the durable state's list, written by any
    /// proxy): build the new and the changed, remove those gone; file providers stay. Returns
    /// how many API providers were added, changed or removed.
    pub fn reload(&self, stored: impl IntoIterator<Item = (Protocol, String, serde_json::Value)>) -> usize {
        let mut seen = std::collections::HashSet::new();
        let mut changed = 0;
        for (protocol, name, json) in stored {
            let key = (protocol, name.clone());
            seen.insert(key.clone());
            if self.source(protocol, &name) == Some(Source::File) {
                if self.api_json.write().expect("registry lock").insert(key, json).is_none() {
                    tracing::warn!(provider = %name, protocol = protocol.as_str(), "stored provider is shadowed by proxy.yaml");
                }
                continue;
            }
            if self.api_json.read().expect("registry lock").get(&key) == Some(&json) {
                continue;
            }
            changed += 1;
            match self.build(protocol, &name, &json) {
                Ok(p) => self.install_api(p, json),
                Err(e) => {
                    tracing::error!(provider = %name, protocol = protocol.as_str(), "stored provider is invalid and stays disabled: {e}");
                    self.remove(protocol, &name);
                    self.api_json.write().expect("registry lock").insert(key, json);
                }
            }
        }
        let gone: Vec<Key> = self.api_json.read().expect("registry lock").keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for (protocol, name) in gone {
            self.api_json.write().expect("registry lock").remove(&(protocol, name.clone()));
            if self.source(protocol, &name) == Some(Source::Api) {
                self.remove(protocol, &name);
                tracing::info!(provider = %name, protocol = protocol.as_str(), "provider removed by another proxy");
            }
            changed += 1;
        }
        changed
    }

    /// Build what a reloaded `proxy.yaml` needs, without changing anything yet: each file
    /// provider that is new or whose settings changed is built (one that is unchanged keeps
    /// its running form, and with it its cached discovery). Fails, naming each, when a
    /// provider cannot be built, so a reload is all or nothing.
    pub fn plan_file(&self, configs: impl IntoIterator<Item = ProviderConfig>) -> Result<FilePlan, Vec<String>> {
        let current = self.providers.read().expect("registry lock").clone();
        let (mut keep, mut build, mut problems) = (Vec::new(), Vec::new(), Vec::new());
        for cfg in configs {
            let key = (cfg.protocol(), cfg.name().to_string());
            match current.get(&key) {
                Some((p, Source::File)) if p.has_config(&cfg) => keep.push(key),
                _ => match self.runtime(cfg) {
                    Ok(p) => build.push(p),
                    Err(e) => problems.push(format!("providers.{}.{}: {e}", key.0.as_str(), key.1)),
                },
            }
        }
        if problems.is_empty() {
            Ok(FilePlan { keep, build })
        } else {
            Err(problems)
        }
    }

    /// Make the file providers those of `plan` ([`Registry::plan_file`]): the built ones are
    /// installed, the file providers not in it are removed (an API provider of the same name
    /// that the file shadowed comes back), API providers are not touched. Returns what
    /// changed, by name.
    pub fn apply_file(&self, plan: FilePlan) -> FileChanges {
        let mut changes = FileChanges::default();
        let wanted: std::collections::HashSet<Key> = plan.keep.iter().cloned().chain(plan.build.iter().map(|p| (p.protocol(), p.name().to_string()))).collect();
        for p in plan.build {
            let label = format!("{}/{}", p.protocol().as_str(), p.name());
            match self.source(p.protocol(), p.name()) {
                Some(Source::File) => changes.changed.push(label),
                _ => changes.added.push(label),
            }
            self.install(p, Source::File);
        }
        let gone: Vec<Key> = self.providers.read().expect("registry lock").iter().filter(|(k, (_, s))| *s == Source::File && !wanted.contains(*k)).map(|(k, _)| k.clone()).collect();
        for (protocol, name) in gone {
            self.providers.write().expect("registry lock").remove(&(protocol, name.clone()));
            changes.removed.push(format!("{}/{name}", protocol.as_str()));
            let shadowed = self.api_json.read().expect("registry lock").get(&(protocol, name.clone())).cloned();
            if let Some(json) = shadowed {
                match self.build(protocol, &name, &json) {
                    Ok(p) => self.install(p, Source::Api),
                    Err(e) => tracing::error!(provider = %name, protocol = protocol.as_str(), "stored provider is invalid and stays disabled: {e}"),
                }
            }
        }
        changes
    }

    /// Serialise a change of the stored providers with its registry change (see `sync`).
    pub async fn sync_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.sync.lock().await
    }

    /// Install an API provider built from `json` (remembered, so [`Registry::reload`] knows it).
    pub fn install_api(&self, provider: Provider, json: serde_json::Value) {
        let key = (provider.protocol(), provider.name().to_string());
        self.api_json.write().expect("registry lock").insert(key, json);
        self.install(provider, Source::Api);
    }

    /// Validate the plugin's JSON for `protocol` exactly as `proxy.yaml` is, and build it:
    /// the one path from JSON (admin API, stored providers) to a provider.
    pub fn build(&self, protocol: Protocol, name: &str, json: &serde_json::Value) -> Result<Provider, SsoError> {
        let cfg = ProviderConfig::from_plugin_json(protocol, name, json, &self.state_dir)
            .map_err(|ps| SsoError::BadRequest(ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")))?;
        self.runtime(cfg).map_err(|e| SsoError::BadRequest(e.to_string()))
    }

    /// The run-time form of a validated provider.
    fn runtime(&self, cfg: ProviderConfig) -> Result<Provider, super::saml::SamlError> {
        Ok(match cfg {
            ProviderConfig::Oidc(cfg) => Provider::Oidc(Arc::new(self.oidc_runtime(cfg))),
            ProviderConfig::Saml(cfg) => Provider::Saml(Arc::new(self.saml_runtime(cfg)?)),
        })
    }

    fn oidc_runtime(&self, cfg: OidcConfig) -> OidcProvider {
        let redirect = self.public_url.join(&format!("/sso/OID/redirect/{}", cfg.name));
        OidcProvider::new(cfg, &redirect, self.http.clone())
    }

    fn saml_runtime(&self, cfg: SamlConfig) -> Result<SamlIdp, super::saml::SamlError> {
        let key = self.sp_keys.get(cfg.sp_key.as_ref())?;
        SamlIdp::new(cfg, |path| self.public_url.join(path), key, self.http.client().clone())
    }

    pub fn install(&self, provider: Provider, source: Source) {
        let key = (provider.protocol(), provider.name().to_string());
        self.providers.write().expect("registry lock").insert(key, (provider, source));
    }

    pub fn remove(&self, protocol: Protocol, name: &str) -> bool {
        if self.source(protocol, name) == Some(Source::Api) {
            self.api_json.write().expect("registry lock").remove(&(protocol, name.to_string()));
        }
        self.providers.write().expect("registry lock").remove(&(protocol, name.to_string())).is_some()
    }

    pub fn source(&self, protocol: Protocol, name: &str) -> Option<Source> {
        self.providers.read().expect("registry lock").get(&(protocol, name.to_string())).map(|(_, s)| *s)
    }

    /// The enabled provider `name` of `protocol`; otherwise 404, as for an unknown one.
    pub fn enabled(&self, protocol: Protocol, name: &str) -> Result<Provider, SsoError> {
        self.providers
            .read()
            .expect("registry lock")
            .get(&(protocol, name.to_string()))
            .map(|(p, _)| p.clone())
            .filter(Provider::enabled)
            .ok_or_else(|| SsoError::UnknownProvider(name.to_string()))
    }

    /// Every provider of `protocol` (enabled or not), sorted by name.
    pub fn list(&self, protocol: Protocol) -> Vec<Provider> {
        let mut v: Vec<Provider> = self.providers.read().expect("registry lock").values().map(|(p, _)| p.clone()).filter(|p| p.protocol() == protocol).collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// Every enabled provider of either protocol, sorted by protocol then name.
    pub fn all_enabled(&self) -> Vec<Provider> {
        let mut v = self.list(Protocol::Oidc);
        v.extend(self.list(Protocol::Saml));
        v.retain(Provider::enabled);
        v
    }

    pub fn oidc_providers(&self) -> Vec<Arc<OidcProvider>> {
        self.list(Protocol::Oidc).into_iter().filter_map(|p| if let Provider::Oidc(o) = p { Some(o) } else { None }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Env;

    fn config(providers: &str) -> Config {
        let yaml = format!("jellyfin:\n  url: http://127.0.0.1:8096\npublic_url: https://127.0.0.1:8443\nproviders:\n  oid:\n{providers}");
        Config::from_parts(Some(&yaml), "t.yaml", std::path::Path::new("/tmp"), Env::prefixed("JSP_TEST_NONE_")).unwrap()
    }

    fn oid(name: &str, client: &str) -> String {
        format!("    {name}:\n      oidEndpoint: https://idp.example.com\n      oidClientId: {client}\n      oidSecret: s\n")
    }

    fn api_json(client: &str) -> serde_json::Value {
        serde_json::json!({"oidEndpoint": "https://api-idp.example.com", "oidClientId": client, "oidSecret": "s", "enabled": true})
    }

    fn client_of(r: &Registry, name: &str) -> String {
        match r.enabled(Protocol::Oidc, name).unwrap() {
            Provider::Oidc(p) => p.config.client_id.clone(),
            Provider::Saml(_) => unreachable!(),
        }
    }

    #[test]
    fn a_reload_keeps_unchanged_providers_rebuilds_changed_ones_and_leaves_api_providers() {
        let stored = [(Protocol::Oidc, "api".to_string(), api_json("from-api")), (Protocol::Oidc, "shadowed".to_string(), api_json("hidden"))];
        let r = Registry::load(&config(&format!("{}{}{}", oid("same", "a"), oid("edited", "b"), oid("shadowed", "file"))), stored, crate::sso::idp_http::IdpHttp::new(reqwest::Client::new(), Default::default()));
        let (same, api) = (r.enabled(Protocol::Oidc, "same").unwrap(), r.enabled(Protocol::Oidc, "api").unwrap());

        let next = config(&format!("{}{}{}", oid("same", "a"), oid("edited", "b2"), oid("new", "c")));
        let changes = r.apply_file(r.plan_file(next.providers()).unwrap());
        assert_eq!(changes, FileChanges { added: vec!["oid/new".into()], changed: vec!["oid/edited".into()], removed: vec!["oid/shadowed".into()] });
        let (Provider::Oidc(before), Provider::Oidc(after)) = (same, r.enabled(Protocol::Oidc, "same").unwrap()) else { unreachable!() };
        assert!(Arc::ptr_eq(&before, &after), "an unchanged provider keeps its running form (and its discovery)");
        let (Provider::Oidc(before), Provider::Oidc(after)) = (api, r.enabled(Protocol::Oidc, "api").unwrap()) else { unreachable!() };
        assert!(Arc::ptr_eq(&before, &after), "API providers are not touched");
        assert_eq!(client_of(&r, "edited"), "b2");
        assert_eq!(client_of(&r, "shadowed"), "hidden", "the API provider the file hid is back");
        assert_eq!(r.source(Protocol::Oidc, "shadowed"), Some(Source::Api));
    }
}
