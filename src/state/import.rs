//! The upgrade path from the single `state.json` of earlier versions into the [`Durable`] store.
//!
//! On open, if `state.json` is in the state directory, every link and provider in it is
//! upserted in one transaction, then the file is renamed `state.json.imported` (and the
//! directory synced), so the next open does not import again. Upserts make a repeat harmless:
//! if the proxy stops between the commit and the rename, the next open imports the same data.
//!
//! A file that does not parse, has keys this build does not know, or a `version` newer than 1
//! is refused with an error naming it: nothing is imported and nothing renamed, since dropping
//! what we do not understand would lose links or providers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::durable::{Durable, Link, StoredProvider};
use super::StateError;

/// The legacy file's name in the state directory.
pub const LEGACY_FILE: &str = "state.json";
/// What it is renamed to once imported.
pub const IMPORTED_FILE: &str = "state.json.imported";
/// The newest `version` of the legacy format.
const LEGACY_VERSION: u64 = 1;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyState {
    #[serde(default)]
    #[allow(dead_code)]
    version: u64,
    #[serde(default)]
    links: Vec<LegacyLink>,
    #[serde(default)]
    oid_providers: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    saml_providers: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyLink {
    mode: LegacyMode,
    provider: String,
    canonical_name: String,
    user_id: String,
    linked_at: u64,
}

#[derive(Deserialize)]
enum LegacyMode {
    Oid,
    Saml,
}

impl LegacyMode {
    fn protocol(&self) -> &'static str {
        match self {
            LegacyMode::Oid => "oid",
            LegacyMode::Saml => "saml",
        }
    }
}

/// What [`import_legacy`] imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub links: usize,
    pub providers: usize,
}

/// Parse a legacy file's bytes into records. `Err` holds why it is refused.
fn parse(bytes: &[u8]) -> Result<(Vec<Link>, Vec<StoredProvider>), String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let version = match value.get("version") {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| format!("version {v} is not a number"))?,
    };
    if version > LEGACY_VERSION {
        return Err(format!("version {version} is newer than this build reads ({LEGACY_VERSION})"));
    }
    let state: LegacyState = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let links = state
        .links
        .into_iter()
        .map(|l| Link {
            protocol: l.mode.protocol().into(),
            provider: l.provider,
            subject: l.canonical_name,
            user_id: l.user_id,
            linked_at: l.linked_at,
        })
        .collect();
    let providers = [("oid", state.oid_providers), ("saml", state.saml_providers)]
        .into_iter()
        .flat_map(|(protocol, by_name)| {
            by_name.into_iter().map(move |(name, json)| StoredProvider { protocol: protocol.into(), name, json })
        })
        .collect();
    Ok((links, providers))
}

/// Import `dir/state.json` into `durable` if it is there; `None` when there is nothing to do.
pub async fn import_legacy(dir: &Path, durable: &dyn Durable) -> Result<Option<Imported>, StateError> {
    let path = dir.join(LEGACY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path, source }),
    };
    let (links, providers) = parse(&bytes).map_err(|detail| StateError::Import { path: path.clone(), detail })?;
    let imported = Imported { links: links.len(), providers: providers.len() };
    durable.import(super::ImportBatch { links, legacy_links: Vec::new(), providers }).await?;
    let to = dir.join(IMPORTED_FILE);
    std::fs::rename(&path, &to).map_err(|source| StateError::Io { path: path.clone(), source })?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|source| StateError::Io { path: dir.to_path_buf(), source })?;
    tracing::info!(links = imported.links, providers = imported.providers, from = %path.display(), to = %to.display(), "imported the legacy state file");
    Ok(Some(imported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sqlite::SqliteDurable;
    use crate::state::{Caps, State};

    /// A file as `src/store.rs` writes it (`to_vec_pretty` of its `State`).
    const TODAY: &str = r#"{
  "version": 1,
  "links": [
    { "mode": "Oid", "provider": "kc", "canonicalName": "sub-1", "userId": "0F8FAD5B-D9CB-469F-A165-70867728950E", "linkedAt": 1700000000 },
    { "mode": "Saml", "provider": "adfs", "canonicalName": "alice@example.com", "userId": "0f8fad5bd9cb469fa16570867728950e", "linkedAt": 1700000001 },
    { "mode": "Oid", "provider": "kc", "canonicalName": "sub-2", "userId": "u2", "linkedAt": 1700000002 }
  ],
  "oidProviders": { "kc": { "OidEndpoint": "https://kc/realms/x", "OidSecret": "s3cret", "Enabled": true } },
  "samlProviders": { "adfs": { "SamlEndpoint": "https://adfs/saml", "Enabled": false } }
}"#;

    #[tokio::test]
    async fn imports_todays_file_once_and_renames_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(LEGACY_FILE), TODAY).unwrap();
        let s = State::open_default(d.path(), &d.path().join("state.key"), Caps::default()).await.unwrap();
        assert!(!d.path().join(LEGACY_FILE).exists());
        assert_eq!(std::fs::read_to_string(d.path().join(IMPORTED_FILE)).unwrap(), TODAY);

        let oid = s.durable.link("oid", "kc", "sub-1").await.unwrap().unwrap();
        assert_eq!((oid.user_id.as_str(), oid.linked_at), ("0F8FAD5B-D9CB-469F-A165-70867728950E", 1700000000));
        let saml = s.durable.link("saml", "adfs", "alice@example.com").await.unwrap().unwrap();
        assert_eq!(saml.user_id, "0f8fad5bd9cb469fa16570867728950e");
        assert!(s.durable.link("saml", "kc", "sub-1").await.unwrap().is_none(), "protocols stay apart");
        assert_eq!(s.durable.links_of_user("0f8fad5b-d9cb-469f-a165-70867728950e").await.unwrap().len(), 2);
        assert_eq!(s.durable.links_of_user("u2").await.unwrap().len(), 1);
        let kc = s.durable.provider("oid", "kc").await.unwrap().unwrap();
        assert_eq!(kc.json["OidSecret"], "s3cret");
        assert_eq!(s.durable.provider("saml", "adfs").await.unwrap().unwrap().json["Enabled"], false);
        assert_eq!(s.durable.providers().await.unwrap().len(), 2);

        // A change after the import is not undone by the next open.
        s.durable.remove_links_of_user("u2").await.unwrap();
        drop(s);
        let s = SqliteDurable::open(d.path()).await.unwrap();
        assert_eq!(import_legacy(d.path(), &s).await.unwrap(), None, "nothing left to import");
        assert!(s.link("oid", "kc", "sub-2").await.unwrap().is_none());
        assert!(s.link("oid", "kc", "sub-1").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_file_beside_an_existing_database_is_merged() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteDurable::open(d.path()).await.unwrap();
        let link = Link { protocol: "oid".into(), provider: "kc".into(), subject: "sub-1".into(), user_id: "old".into(), linked_at: 1 };
        s.put_link(link.clone()).await.unwrap();
        s.put_link(Link { subject: "other".into(), ..link }).await.unwrap();
        std::fs::write(d.path().join(LEGACY_FILE), TODAY).unwrap();
        assert_eq!(import_legacy(d.path(), &s).await.unwrap(), Some(Imported { links: 3, providers: 2 }));
        assert_eq!(s.link("oid", "kc", "sub-1").await.unwrap().unwrap().user_id, "0F8FAD5B-D9CB-469F-A165-70867728950E", "upserted");
        assert!(s.link("oid", "kc", "other").await.unwrap().is_some(), "kept");
    }

    async fn refused(contents: &str, says: &str) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(LEGACY_FILE);
        std::fs::write(&path, contents).unwrap();
        let err = match State::open_default(d.path(), &d.path().join("state.key"), Caps::default()).await {
            Err(e) => e,
            Ok(_) => panic!("{contents} was accepted"),
        };
        assert!(matches!(err, StateError::Import { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()) && msg.contains(says), "{msg}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), contents, "left in place");
        assert!(!d.path().join(IMPORTED_FILE).exists());
        let s = SqliteDurable::open(d.path()).await.unwrap();
        assert!(s.providers().await.unwrap().is_empty() && s.links_of_user("u2").await.unwrap().is_empty(), "nothing imported");
    }

    #[tokio::test]
    async fn newer_unknown_or_broken_files_are_refused() {
        refused(&TODAY.replace(r#""version": 1"#, r#""version": 2"#), "version 2").await;
        refused(&TODAY.replace(r#""version": 1,"#, r#""version": 1, "appPasswords": [],"#), "appPasswords").await;
        refused(&TODAY.replace(r#""mode": "Saml""#, r#""mode": "Ldap""#), "Ldap").await;
        refused("{ not json", "not JSON").await;
    }

    #[test]
    fn an_empty_or_versionless_file_imports_nothing_and_is_accepted() {
        assert_eq!(parse(b"{}").unwrap().0.len(), 0);
        assert_eq!(parse(br#"{"version":1,"links":[]}"#).unwrap().1.len(), 0);
    }
}
