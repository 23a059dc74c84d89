//! What the proxy accepts from a SAML IdP's cryptography, beyond the `saml` crate's strong
//! defaults, and the one shape check the crate leaves to its caller.
//!
//! - Signatures and digests: the crate's strong defaults (RSA/ECDSA with SHA-256 or more);
//!   SHA-1 stays refused.
//! - Encrypted assertions: the key may be wrapped with RSA-OAEP whose digest is SHA-1
//!   (`rsa-oaep-mgf1p`, what Keycloak, ADFS, Entra and samlify send): OAEP's security does not
//!   rest on the hash's collision resistance. The content must be AES-GCM, unless the
//!   provider allows AES-CBC (`samlAllowCbcEncryption`); then the Response must be signed
//!   (see `saml.rs`), so the ciphertext is authenticated before it is decrypted and CBC's
//!   padding oracle cannot be reached.
//! - `samlRequireEncryptedAssertions`: the crate decrypts when it finds an
//!   `EncryptedAssertion` but does not say whether it did; [`assertion_is_encrypted`] reads the
//!   verified Response's top level with quick-xml (namespace-aware) to find out.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use saml::{DataEncryptionAlgorithm, KeyTransportAlgorithm, OaepDigest, PeerCryptoPolicy};

const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";

/// The policy for one provider's messages.
pub fn policy(allow_cbc: bool) -> PeerCryptoPolicy {
    let mut p = PeerCryptoPolicy::strong_defaults();
    p.allowed_key_transport_algorithms = vec![KeyTransportAlgorithm::RsaOaep, KeyTransportAlgorithm::RsaOaepMgf1Sha1];
    p.allowed_oaep_digest_algorithms = vec![OaepDigest::Sha1, OaepDigest::Sha256, OaepDigest::Sha384, OaepDigest::Sha512];
    if allow_cbc {
        p.allowed_data_encryption_algorithms.extend([DataEncryptionAlgorithm::Aes256Cbc, DataEncryptionAlgorithm::Aes128Cbc]);
    }
    p
}

/// Whether the Response's assertion (a direct child of the root) is an `EncryptedAssertion`
/// and no cleartext `Assertion` sits beside it. Call it on XML the crate has verified.
pub fn assertion_is_encrypted(xml: &[u8]) -> bool {
    let mut reader = quick_xml::NsReader::from_reader(xml);
    let (mut depth, mut encrypted, mut cleartext) = (0usize, false, false);
    loop {
        match reader.read_resolved_event() {
            Ok((ns, Event::Start(e))) => {
                depth += 1;
                if depth == 2 {
                    let ours = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == ASSERTION_NS);
                    encrypted |= ours && e.local_name().as_ref() == b"EncryptedAssertion";
                    cleartext |= ours && e.local_name().as_ref() == b"Assertion";
                }
            }
            Ok((ns, Event::Empty(e))) => {
                if depth == 1 {
                    let ours = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == ASSERTION_NS);
                    cleartext |= ours && e.local_name().as_ref() == b"Assertion";
                }
            }
            Ok((_, Event::End(_))) => depth = depth.saturating_sub(1),
            Ok((_, Event::Eof)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    encrypted && !cleartext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_top_level_encrypted_assertion_counts() {
        let enc = br#"<p:Response xmlns:p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion"><a:Issuer>x</a:Issuer><a:EncryptedAssertion><x/></a:EncryptedAssertion></p:Response>"#;
        assert!(assertion_is_encrypted(enc));
        let clear = br#"<p:Response xmlns:p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion"><a:Assertion ID="i"/></p:Response>"#;
        assert!(!assertion_is_encrypted(clear));
        // Another namespace's element of that name, or one deeper down, is not the assertion.
        let other = br#"<p:Response xmlns:p="urn:oasis:names:tc:SAML:2.0:protocol"><EncryptedAssertion/><p:Status><a:EncryptedAssertion xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion"></a:EncryptedAssertion></p:Status></p:Response>"#;
        assert!(!assertion_is_encrypted(other));
        let both = br#"<p:Response xmlns:p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion"><a:EncryptedAssertion></a:EncryptedAssertion><a:Assertion></a:Assertion></p:Response>"#;
        assert!(!assertion_is_encrypted(both));
    }

    #[test]
    fn cbc_only_when_allowed_and_sha1_signatures_never() {
        assert!(!policy(false).allowed_data_encryption_algorithms.contains(&DataEncryptionAlgorithm::Aes256Cbc));
        assert!(policy(true).allowed_data_encryption_algorithms.contains(&DataEncryptionAlgorithm::Aes256Cbc));
        for p in [policy(false), policy(true)] {
            assert!(!p.allowed_signature_algorithms.contains(&saml::SignatureAlgorithm::RsaSha1));
            assert!(!p.allowed_digest_algorithms.contains(&saml::DigestAlgorithm::Sha1));
        }
    }
}
