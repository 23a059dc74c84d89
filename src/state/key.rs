//! The state key: 32 random bytes in a file (`state.key_file`, default `state_dir/state.key`),
//! generated on first run and readable by the proxy's user only.
//!
//! It seals what the proxy keeps outside its own memory and must be able to trust again:
//! the SAML library's login trackers while a login is pending, and tokens it stores for
//! sign-out and re-validation. Several proxies that share state share this file. A file
//! that exists but is not exactly 32 bytes is refused, never replaced: a new key would make
//! everything sealed with the old one unreadable.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

use super::StateError;

pub const KEY_LEN: usize = 32;

/// Read the key at `path`, or create it (owner-only) when the file does not exist.
pub fn load_or_create(path: &Path) -> Result<[u8; KEY_LEN], StateError> {
    let io = |source| StateError::Io { path: path.to_path_buf(), source };
    match std::fs::read(path) {
        Ok(bytes) => bytes.as_slice().try_into().map_err(|_| StateError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("a state key is exactly {KEY_LEN} bytes, this file has {}", bytes.len()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir { path: dir.to_path_buf(), source })?;
            }
            let mut key = [0u8; KEY_LEN];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(io)?;
            f.write_all(&key).and_then(|_| f.sync_all()).map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new state key");
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_owner_only_then_read_back() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/state.key");
        let k1 = load_or_create(&path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), k1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        let e = load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("state.key") && e.contains("32 bytes"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"short", "a bad key file is never replaced");
    }
}
