//! Tokens at rest: the ID and refresh tokens a minted session keeps (for the logout hint and
//! for re-validation) are encrypted with the state key before they reach the durable state.
//!
//! AES-256-GCM (the `aes-gcm` crate) with a random 96-bit nonce per token, stored as
//! `nonce || ciphertext+tag`. The associated data names what the token is and whose login it
//! came from ([`purpose`]: kind, protocol, provider, subject), so a ciphertext moved to another
//! identity's record or to the other field does not open. Nothing here logs or returns a token.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;

use super::identity::Identity;

const NONCE_LEN: usize = 12;

/// Why a sealed token would not open (wrong key, moved, or damaged): treated as absent.
#[derive(Debug, thiserror::Error)]
#[error("a stored token could not be decrypted with the state key")]
pub struct OpenError;

/// Encrypt `plain` under `key`, bound to `purpose`.
pub fn seal(key: &[u8; 32], purpose: &str, plain: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: purpose.as_bytes() })
        .expect("AES-GCM encryption of a short token cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Decrypt what [`seal`] produced for the same `purpose`.
pub fn open(key: &[u8; 32], purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(OpenError);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)).decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: purpose.as_bytes() }).map_err(|_| OpenError)
}

/// Decrypt to a string; `None` (logged at debug) when it does not open.
pub fn open_string(key: &[u8; 32], purpose: &str, sealed: &[u8]) -> Option<String> {
    match open(key, purpose, sealed).map(String::from_utf8) {
        Ok(Ok(s)) => Some(s),
        _ => {
            tracing::debug!(purpose = purpose.split(':').next().unwrap_or(""), "a stored token did not open");
            None
        }
    }
}

/// The associated data of a token of `kind` (`id_token`, `refresh_token`) of a login of
/// this identity: the same at login (from the [`Identity`]) and later (from the mint record).
pub fn purpose(kind: &str, who: &Identity) -> String {
    purpose_of(kind, who.protocol.as_str(), &who.provider, &who.subject)
}

/// [`purpose`] from a minted session's fields.
pub fn purpose_of(kind: &str, protocol: &str, provider: &str, subject: &str) -> String {
    format!("{kind}:{protocol}:{}:{provider}:{subject}", provider.len())
}

/// Sealed bytes in JSON (pending logins, browser sessions) as one base64 string instead of
/// serde's array of numbers: about a third of the size, and one string to parse instead of
/// hundreds of numbers. Entries written as arrays (by an older proxy sharing the store, or
/// before an upgrade) are still read.
pub mod sealed_json {
    use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Numbers(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_some(&B64.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Numbers(n)) => Ok(Some(n)),
            Some(Either::Text(t)) => B64.decode(t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = [7u8; 32];
        let p = purpose_of("id_token", "oid", "corp", "alice");
        let s = seal(&key, &p, b"eyJ.token");
        assert!(!s.windows(9).any(|w| w == b"eyJ.token"), "the token is not in the clear");
        assert_eq!(open(&key, &p, &s).unwrap(), b"eyJ.token");
        assert_eq!(open_string(&key, &p, &s).as_deref(), Some("eyJ.token"));
        assert!(open(&key, &purpose_of("refresh_token", "oid", "corp", "alice"), &s).is_err(), "another field does not open");
        assert!(open(&key, &purpose_of("id_token", "oid", "corp", "bob"), &s).is_err(), "another identity does not open");
        assert!(open(&key, &purpose_of("id_token", "oid", "cor", "palice"), &s).is_err(), "no ambiguity across the separator");
        assert!(open(&[8u8; 32], &p, &s).is_err(), "another key does not open");
        let mut bad = s.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open(&key, &p, &bad).is_err());
        assert!(open(&key, &p, b"short").is_err());
        assert_ne!(seal(&key, &p, b"x"), seal(&key, &p, b"x"), "fresh nonce each time");
    }

    #[test]
    fn sealed_bytes_are_one_base64_string_in_json_and_old_arrays_still_read() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(default, with = "super::sealed_json")]
            t: Option<Vec<u8>>,
        }
        let sealed = super::seal(&[7; 32], "p", b"an id token");
        let json = serde_json::to_string(&T { t: Some(sealed.clone()) }).unwrap();
        assert!(json.starts_with("{\"t\":\"") && !json.contains(','), "{json}");
        assert_eq!(serde_json::from_str::<T>(&json).unwrap().t.as_deref(), Some(&sealed[..]));
        let old = serde_json::to_string(&serde_json::json!({ "t": sealed })).unwrap();
        assert_eq!(serde_json::from_str::<T>(&old).unwrap().t.as_deref(), Some(&sealed[..]), "{old}");
        assert_eq!(serde_json::from_str::<T>("{\"t\":null}").unwrap().t, None);
        assert_eq!(serde_json::from_str::<T>("{}").unwrap().t, None);
        assert!(serde_json::from_str::<T>("{\"t\":\"not base64!\"}").is_err());
    }
}
