//! Keyed hashes with the state key: anti-CSRF fields bound to a browser session, and the
//! stored form of app passwords. HMAC-SHA256 with a purpose label, so a value made for one
//! use can never stand in for another; comparisons are constant-time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// HMAC-SHA256 of `data` under `key`, for `purpose` (a fixed label such as `"csrf"`).
pub fn mac(key: &[u8; 32], purpose: &str, data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(purpose.as_bytes());
    m.update(&[0]);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// [`mac`] as URL-safe base64 (for a form field).
pub fn mac_b64(key: &[u8; 32], purpose: &str, data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac(key, purpose, data))
}

/// Constant-time equality of two byte strings (lengths may differ: then false).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_and_key_change_the_mac() {
        let k = [7u8; 32];
        assert_eq!(mac(&k, "csrf", b"s"), mac(&k, "csrf", b"s"));
        assert_ne!(mac(&k, "csrf", b"s"), mac(&k, "app-password", b"s"));
        assert_ne!(mac(&k, "csrf", b"s"), mac(&[8u8; 32], "csrf", b"s"));
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab"));
    }
}
