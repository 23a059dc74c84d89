//! What must survive a restart: account links and providers added through the API.
//!
//! The state is one JSON file in `state_dir`. Every change is applied to a copy under a
//! mutex (so concurrent calls never lose each other's updates), written to a temporary
//! file, fsynced, renamed over the old file, and the directory fsynced: after a crash at
//! any moment the file holds either the old state or the new one. A file that cannot be
//! read or parsed at start is an error; the proxy never silently starts empty over it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::sso::identity::Protocol;

const FILE: &str = "state.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid state file ({source}); fix or move it away: the proxy will not start empty over it")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// One account link: an identity at a provider → a Jellyfin user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub mode: Protocol,
    pub provider: String,
    /// The stable identity key: the OIDC subject or the SAML NameID.
    pub canonical_name: String,
    pub user_id: String,
    pub linked_at: u64,
}

/// The whole persisted state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub links: Vec<Link>,
    /// Providers added through the admin API, in the plugin's JSON shape, by name.
    #[serde(default)]
    pub oid_providers: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub saml_providers: BTreeMap<String, serde_json::Value>,
}

impl State {
    pub fn link_for(&self, mode: Protocol, provider: &str, canonical: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.mode == mode && l.provider == provider && l.canonical_name == canonical)
    }
    pub fn links_of_user<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = &'a Link> {
        self.links.iter().filter(move |l| l.user_id.eq_ignore_ascii_case(user_id))
    }
    /// Add or replace the link of (mode, provider, canonical name).
    pub fn put_link(&mut self, link: Link) {
        self.links.retain(|l| !(l.mode == link.mode && l.provider == link.provider && l.canonical_name == link.canonical_name));
        self.links.push(link);
    }
}

pub struct Store {
    dir: PathBuf,
    current: RwLock<Arc<State>>,
    writer: tokio::sync::Mutex<()>,
}

impl Store {
    /// Open (or create) the state in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
        let path = dir.join(FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse { path: path.clone(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State { version: 1, ..Default::default() },
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Store { dir: dir.to_path_buf(), current: RwLock::new(Arc::new(state)), writer: tokio::sync::Mutex::new(()) })
    }

    /// A consistent snapshot of the state.
    pub fn read(&self) -> Arc<State> {
        self.current.read().expect("state lock").clone()
    }

    /// Apply `change` and persist it; returns what `change` returned once the new state is on
    /// disk. If writing fails, the in-memory state is unchanged.
    pub async fn update<R: Send + 'static>(&self, change: impl FnOnce(&mut State) -> R + Send + 'static) -> Result<R, StoreError> {
        let _guard = self.writer.lock().await;
        let mut next = (*self.read()).clone();
        let result = change(&mut next);
        let bytes = serde_json::to_vec_pretty(&next).expect("state serializes");
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, FILE, &bytes)).await.expect("writer task")?;
        *self.current.write().expect("state lock") = Arc::new(next);
        Ok(result)
    }
}

/// temp file → fsync → rename → fsync directory.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| StoreError::Write { path: path.clone(), source };
    // The state holds provider secrets: owner-only.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(err)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(())
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: &str, user: &str) -> Link {
        Link { mode: Protocol::Oid, provider: "p".into(), canonical_name: n.into(), user_id: user.into(), linked_at: 0 }
    }

    #[tokio::test]
    async fn survives_reopen_and_replaces_links() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        s.update(|st| st.put_link(link("sub1", "u1"))).await.unwrap();
        s.update(|st| st.put_link(link("sub1", "u2"))).await.unwrap();
        let s2 = Store::open(d.path()).unwrap();
        let st = s2.read();
        assert_eq!(st.links.len(), 1);
        assert_eq!(st.link_for(Protocol::Oid, "p", "sub1").unwrap().user_id, "u2");
    }

    #[tokio::test]
    async fn concurrent_updates_are_all_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(d.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.update(move |st| st.put_link(link(&format!("sub{i}"), "u"))).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(Store::open(d.path()).unwrap().read().links.len(), 40);
    }

    #[test]
    fn corrupt_file_is_an_error_not_an_empty_start() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE), "{ not json").unwrap();
        assert!(matches!(Store::open(d.path()), Err(StoreError::Parse { .. })));
    }
}
