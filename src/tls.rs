//! TLS material: load the PEM certificate and key, generate a self-signed pair for a first
//! run, and swap in new files on SIGHUP or when they change on disk.
//!
//! The server's rustls config resolves its certificate through [`CertStore`] on every
//! handshake, so a reload affects new connections only; open connections keep the session
//! they negotiated. A reload that fails (half-written file, key that does not match) is
//! logged and the old certificate stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert {cert} exists but tls.key {key} does not: give both files, or remove both to have a self-signed pair generated")]
    KeyMissing { cert: PathBuf, key: PathBuf },
    #[error("tls.key {key} exists but tls.cert {cert} does not: give both files, or remove both to have a self-signed pair generated")]
    CertMissing { cert: PathBuf, key: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{path} is not a valid PEM file: {detail}")]
    Pem { path: PathBuf, detail: String },
    #[error("the key in {key} cannot be used with the certificate in {cert}: {source}")]
    Unusable { cert: PathBuf, key: PathBuf, source: rustls::Error },
    #[error("cannot generate a self-signed certificate into {dir}: {detail}")]
    Generate { dir: PathBuf, detail: String },
}

/// File identity used to notice a change: modification time and length of both files.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let c = std::fs::metadata(cert).ok()?;
    let k = std::fs::metadata(key).ok()?;
    Some((c.modified().ok()?, c.len(), k.modified().ok()?, k.len()))
}

/// The certificate in service, swappable at run time.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Stamp>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("cert lock").clone())
    }
}

impl CertStore {
    /// Load the configured pair; when both files are absent, generate a self-signed pair for
    /// `localhost` and `127.0.0.1` first. Returns the store and whether it generated.
    pub fn open(cfg: &TlsConfig) -> Result<(Arc<CertStore>, bool), TlsError> {
        let (cert, key) = (&cfg.cert, &cfg.key);
        let generated = match (cert.exists(), key.exists()) {
            (true, true) => false,
            (true, false) => return Err(TlsError::KeyMissing { cert: cert.clone(), key: key.clone() }),
            (false, true) => return Err(TlsError::CertMissing { cert: cert.clone(), key: key.clone() }),
            (false, false) => {
                generate_self_signed(cert, key)?;
                true
            }
        };
        let loaded = load_pair(cert, key)?;
        let store = CertStore {
            cert_path: cert.clone(),
            key_path: key.clone(),
            current: RwLock::new(Arc::new(loaded)),
            seen: Mutex::new(stamp(cert, key)),
        };
        Ok((Arc::new(store), generated))
    }

    /// Reload from disk if the files changed since last seen (or always, when `force`).
    /// Returns whether a new certificate was put in service.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let now = stamp(&self.cert_path, &self.key_path);
        {
            let seen = self.seen.lock().expect("stamp lock");
            if !force && *seen == now {
                return Ok(false);
            }
        }
        let loaded = load_pair(&self.cert_path, &self.key_path)?;
        *self.current.write().expect("cert lock") = Arc::new(loaded);
        *self.seen.lock().expect("stamp lock") = now;
        Ok(true)
    }

    /// When the certificate in service (its leaf) expires; `None` if it cannot be read.
    pub fn not_after(&self) -> Option<SystemTime> {
        use x509_cert::der::Decode;
        let current = self.current.read().expect("cert lock").clone();
        let cert = x509_cert::Certificate::from_der(current.cert.first()?.as_ref()).ok()?;
        Some(cert.tbs_certificate.validity.not_after.to_system_time())
    }

    /// rustls server config: TLS 1.2 and 1.3, ALPN h2 then http/1.1, certificate from this store.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

/// Parse and check a certificate chain and its private key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: cert.to_path_buf(), detail: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert.to_path_buf() });
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: key.to_path_buf() },
        e => TlsError::Pem { path: key.to_path_buf(), detail: e.to_string() },
    })?;
    CertifiedKey::from_der(chain, private, &default_provider())
        .map_err(|source| TlsError::Unusable { cert: cert.to_path_buf(), key: key.to_path_buf(), source })
}

/// Write a self-signed certificate for localhost and 127.0.0.1; the key file is private (0600).
pub fn generate_self_signed(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let dir = cert.parent().unwrap_or(Path::new(".")).to_path_buf();
    let err = |detail: String| TlsError::Generate { dir: dir.clone(), detail };
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])
        .map_err(|e| err(e.to_string()))?;
    for d in [cert.parent(), key.parent()].into_iter().flatten() {
        std::fs::create_dir_all(d).map_err(|e| err(e.to_string()))?;
    }
    write_private(key, pair.key_pair.serialize_pem().as_bytes()).map_err(|e| err(e.to_string()))?;
    std::fs::write(cert, pair.cert.pem()).map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> TlsConfig {
        TlsConfig { cert: dir.join("c.pem"), key: dir.join("k.pem"), reload_interval: std::time::Duration::from_secs(1) }
    }

    #[test]
    fn generates_when_both_absent_and_reloads_on_change() {
        let d = tempfile::tempdir().unwrap();
        let (store, generated) = CertStore::open(&cfg(d.path())).unwrap();
        assert!(generated);
        assert!(!store.reload(false).unwrap(), "unchanged files are not reloaded");
        let before = store.current.read().unwrap().cert[0].clone();
        std::fs::remove_file(d.path().join("c.pem")).unwrap();
        std::fs::remove_file(d.path().join("k.pem")).unwrap();
        generate_self_signed(&d.path().join("c.pem"), &d.path().join("k.pem")).unwrap();
        assert!(store.reload(true).unwrap());
        assert_ne!(store.current.read().unwrap().cert[0], before);
    }

    #[test]
    fn one_file_missing_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("c.pem"), "x").unwrap();
        assert!(matches!(CertStore::open(&cfg(d.path())), Err(TlsError::KeyMissing { .. })));
    }

    #[test]
    fn garbage_and_mismatched_keys_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = (d.path().join("c.pem"), d.path().join("k.pem"));
        generate_self_signed(&c, &k).unwrap();
        std::fs::write(&k, "not a key").unwrap();
        assert!(matches!(load_pair(&c, &k), Err(TlsError::NoKey { .. })));
        let other = tempfile::tempdir().unwrap();
        generate_self_signed(&other.path().join("c.pem"), &other.path().join("k.pem")).unwrap();
        std::fs::copy(other.path().join("k.pem"), &k).unwrap();
        assert!(matches!(load_pair(&c, &k), Err(TlsError::Unusable { .. })));
    }
}
