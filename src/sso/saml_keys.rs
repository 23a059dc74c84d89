//! Our SAML service provider's key pair: the key that signs AuthnRequests and logout
//! messages and decrypts encrypted assertions, and its self-signed certificate, which the SP
//! metadata publishes for the IdP (`use="signing"` and `use="encryption"`).
//!
//! By default one pair serves every SAML provider: `state_dir/saml-sp.key` (PKCS#8 PEM,
//! owner-only) and `state_dir/saml-sp.crt`, generated on first use (RSA 3072, the key type
//! every IdP accepts for both jobs). A provider may name its own files instead
//! (`samlSpKeyFile`, `samlSpCertificateFile`). A key file that exists is never replaced;
//! one that does not parse, or a certificate that does not match the key, is refused with
//! the file's name. Proxies sharing state must share these files, like the state key.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use crate::config::provider::SpKeyFiles;

use super::saml::SamlError;

pub const KEY_FILE: &str = "saml-sp.key";
pub const CERT_FILE: &str = "saml-sp.crt";
const RSA_BITS: usize = 3072;

/// The key pairs in use, each loaded (or generated) once, by their files.
pub struct SpKeys {
    state_dir: PathBuf,
    loaded: Mutex<HashMap<(PathBuf, PathBuf), saml::KeyPair>>,
}

impl SpKeys {
    pub fn new(state_dir: &Path) -> SpKeys {
        SpKeys { state_dir: state_dir.to_path_buf(), loaded: Mutex::new(HashMap::new()) }
    }

    /// The pair for a provider: its own files, or the shared generated one.
    pub fn get(&self, files: Option<&SpKeyFiles>) -> Result<saml::KeyPair, SamlError> {
        let (key, cert, generate) = match files {
            Some(f) => (f.key.clone(), f.cert.clone(), false),
            None => (self.state_dir.join(KEY_FILE), self.state_dir.join(CERT_FILE), true),
        };
        let mut loaded = self.loaded.lock().expect("SP key lock");
        if let Some(pair) = loaded.get(&(key.clone(), cert.clone())) {
            return Ok(pair.clone());
        }
        let pair = load_or_create(&key, &cert, generate)?;
        loaded.insert((key, cert), pair.clone());
        Ok(pair)
    }
}

fn setup(path: &Path, what: impl std::fmt::Display) -> SamlError {
    SamlError::Setup(format!("{}: {what}", path.display()))
}

/// Read the pair from `key` and `cert`; when `generate`, create what is missing (the key
/// owner-only; a certificate for an existing key is made from that key).
pub fn load_or_create(key: &Path, cert: &Path, generate: bool) -> Result<saml::KeyPair, SamlError> {
    let key_pem = match std::fs::read(key) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let pem = new_key_pem().map_err(|e| setup(key, e))?;
            write_new(key, pem.as_bytes(), 0o600)?;
            tracing::info!(path = %key.display(), "generated the SAML service provider key");
            pem.into_bytes()
        }
        Err(e) => return Err(setup(key, format!("cannot read the SAML SP key: {e}"))),
    };
    let pair = saml::KeyPair::from_pkcs8_pem(&key_pem).map_err(|e| setup(key, format!("not a usable private key (PKCS#8 or PKCS#1 PEM, RSA or EC): {e}")))?;
    let cert_pem = match std::fs::read(cert) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let pem = self_signed(&key_pem).map_err(|e| setup(cert, e))?;
            write_new(cert, pem.as_bytes(), 0o644)?;
            pem.into_bytes()
        }
        Err(e) => return Err(setup(cert, format!("cannot read the SAML SP certificate: {e}"))),
    };
    let x509 = saml::X509Certificate::from_pem(&cert_pem).map_err(|e| setup(cert, format!("not a PEM certificate: {e}")))?;
    pair.with_certificate(x509).map_err(|e| setup(cert, format!("does not belong to {}: {e}", key.display())))
}

fn new_key_pem() -> Result<String, String> {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(|e| format!("cannot generate an RSA key: {e}"))?;
    key.to_pkcs8_pem(LineEnding::LF).map(|p| p.to_string()).map_err(|e| format!("cannot encode the key: {e}"))
}

/// A self-signed certificate for the key, valid for 20 years: IdPs pin it as it is (none of
/// them checks an SP certificate's dates or chain), so it should not expire under them.
fn self_signed(key_pem: &[u8]) -> Result<String, String> {
    let pem = std::str::from_utf8(key_pem).map_err(|_| "the key file is not PEM text".to_string())?;
    let algo = if pem.contains("BEGIN RSA") || rsa_pkcs8(pem) { &rcgen::PKCS_RSA_SHA256 } else { &rcgen::PKCS_ECDSA_P256_SHA256 };
    let key = rcgen::KeyPair::from_pem_and_sign_algo(pem, algo).map_err(|e| format!("cannot sign a certificate with the key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "jellyfin-sso-proxy SAML service provider");
    let year = this_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
    params.self_signed(&key).map(|c| c.pem()).map_err(|e| format!("cannot make the certificate: {e}"))
}

fn rsa_pkcs8(pem: &str) -> bool {
    use rsa::pkcs8::DecodePrivateKey;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).is_ok()
}

/// The current year (UTC), give or take a day at New Year: the validity starts a year earlier.
fn this_year() -> i32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    1970 + (secs / 31_556_952) as i32
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SamlError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| setup(dir, format!("cannot create the directory: {e}")))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| setup(path, format!("cannot create: {e}")))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| setup(path, format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_owner_only_then_read_back_and_a_bad_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let keys = SpKeys::new(d.path());
        let a = keys.get(None).unwrap();
        let cert = a.certificate().expect("the certificate is attached").clone();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(d.path().join(KEY_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A second process reads the same pair.
        let b = SpKeys::new(d.path()).get(None).unwrap();
        assert_eq!(b.certificate().unwrap().to_der(), cert.to_der());

        // Given files: a certificate of another key is refused, naming the file.
        let other = tempfile::tempdir().unwrap();
        let o = SpKeys::new(other.path()).get(None).unwrap();
        assert_ne!(o.certificate().unwrap().to_der(), cert.to_der(), "each state_dir has its own key");
        let files = SpKeyFiles { key: d.path().join(KEY_FILE), cert: other.path().join(CERT_FILE) };
        let e = SpKeys::new(d.path()).get(Some(&files)).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
        // Given files are never generated.
        let missing = SpKeyFiles { key: d.path().join("nope.key"), cert: d.path().join("nope.crt") };
        assert!(SpKeys::new(d.path()).get(Some(&missing)).unwrap_err().to_string().contains("nope.key"));
        // A broken key file is refused and kept.
        std::fs::write(d.path().join(KEY_FILE), b"garbage").unwrap();
        assert!(SpKeys::new(d.path()).get(None).is_err());
        assert_eq!(std::fs::read(d.path().join(KEY_FILE)).unwrap(), b"garbage");
    }
}
