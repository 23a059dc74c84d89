//! The provider's signing keys (JWK) as the `openidconnect` crate sees them, with the two
//! signature checks of nearly every login done by `ring`: ES256 (P-256) and RS256.
//!
//! [`Jwk`] is `CoreJsonWebKey` plus, when the key is a P-256 or an RSA (2048–8192 bit) public
//! key, its public key in `ring`'s form, prepared once when the key set is read. Verifying an
//! ID token or a logout token with RustCrypto's `p256`, as the crate does, parsed the point
//! again and took about 0.3 ms of a login's proxy CPU (docs/benchmarks.md); `ring`'s assembly
//! takes a fraction of that. Everything else (the other algorithms, the key's metadata,
//! serialization) is the crate's own, and before `ring` is asked, the key must pass the same
//! compatibility rules the crate applies: a signing use (or none), the algorithm's key type,
//! the key's own `alg` when it names one, and for EC the curve.

use std::fmt;

use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeyType, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JsonWebKeyUse, JwsSigningAlgorithm, SignatureVerificationError};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A public key in `ring`'s form.
#[derive(Clone)]
enum Prepared {
    /// SEC1 uncompressed point: 0x04 ‖ x ‖ y.
    P256(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// One key of the provider's key set. See the module documentation.
#[derive(Clone)]
pub struct Jwk {
    core: CoreJsonWebKey,
    prepared: Option<Prepared>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl Serialize for Jwk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.core.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Jwk, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let core: CoreJsonWebKey = serde_json::from_value(value.clone()).map_err(serde::de::Error::custom)?;
        Ok(Jwk { prepared: prepare(&value), core })
    }
}

impl From<CoreJsonWebKey> for Jwk {
    fn from(core: CoreJsonWebKey) -> Jwk {
        let prepared = serde_json::to_value(&core).ok().as_ref().and_then(prepare);
        Jwk { core, prepared }
    }
}

/// The `ring` form of a JWK's public key, when it is one `ring` checks: P-256, or RSA with a
/// modulus of 2048 to 8192 bits (others stay with the crate, which also takes smaller RSA keys).
fn prepare(v: &serde_json::Value) -> Option<Prepared> {
    use base64::Engine;
    let field = |k: &str| v.get(k)?.as_str().and_then(|s| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok());
    match v.get("kty")?.as_str()? {
        "EC" if v.get("crv")?.as_str()? == "P-256" => {
            let (x, y) = (field("x")?, field("y")?);
            (x.len() == 32 && y.len() == 32).then(|| Prepared::P256([&[0x04][..], &x, &y].concat()))
        }
        "RSA" => {
            // ring wants both without leading zero bytes, which some providers send anyway.
            let strip = |v: Vec<u8>| v[v.iter().position(|b| *b != 0).unwrap_or(v.len())..].to_vec();
            let (n, e) = (strip(field("n")?), strip(field("e")?));
            let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
            (2048..=8192).contains(&bits).then_some(Prepared::Rsa { n, e })
        }
        _ => None,
    }
}

/// The rules the crate checks before a signature (`openidconnect::types::jwks`), on our keys.
fn compatible(key: &Jwk, alg: &CoreJwsSigningAlgorithm) -> Result<(), SignatureVerificationError> {
    let refuse = |why: &str| Err(SignatureVerificationError::InvalidKey(why.to_string()));
    if key.key_use().is_some_and(|u| !u.allows_signature()) {
        return refuse("key usage not permitted for digital signatures");
    }
    if alg.key_type().as_ref() != Some(key.key_type()) {
        return refuse("key type does not match signature algorithm");
    }
    match key.signing_alg() {
        JsonWebKeyAlgorithm::Unspecified => Ok(()),
        JsonWebKeyAlgorithm::Algorithm(a) if a == alg => Ok(()),
        JsonWebKeyAlgorithm::Algorithm(_) => refuse("incompatible key algorithm"),
        JsonWebKeyAlgorithm::Unsupported => refuse("key algorithm is not a signing algorithm"),
    }
}

impl JsonWebKey for Jwk {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.core.key_id()
    }
    fn key_type(&self) -> &CoreJsonWebKeyType {
        self.core.key_type()
    }
    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.core.key_use()
    }
    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&CoreJwsSigningAlgorithm> {
        self.core.signing_alg()
    }
    fn new_symmetric(key: Vec<u8>) -> Jwk {
        Jwk { core: CoreJsonWebKey::new_symmetric(key), prepared: None }
    }
    fn verify_signature(&self, alg: &CoreJwsSigningAlgorithm, message: &[u8], sig: &[u8]) -> Result<(), SignatureVerificationError> {
        let bad = |_| SignatureVerificationError::CryptoError("the signature does not verify".to_string());
        match (alg, &self.prepared) {
            (CoreJwsSigningAlgorithm::EcdsaP256Sha256, Some(Prepared::P256(point))) => {
                compatible(self, alg)?;
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig).map_err(bad)
            }
            (CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Some(Prepared::Rsa { n, e })) => {
                compatible(self, alg)?;
                RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig).map_err(bad)
            }
            _ => self.core.verify_signature(alg, message, sig),
        }
    }
    fn hash_bytes(&self, bytes: &[u8], alg: &CoreJwsSigningAlgorithm) -> Result<Vec<u8>, String> {
        self.core.hash_bytes(bytes, alg)
    }
}

#[cfg(test)]
#[path = "jwk_tests.rs"]
mod tests;
