//! Tests of [`super::Jwk`]: `ring`'s answers agree with the crate's on good and bad signatures,
//! and a key the crate would refuse for this algorithm (wrong use, type, `alg`, curve) is
//! refused before `ring` is asked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm as Alg};
use openidconnect::JsonWebKey;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

use super::Jwk;

/// A 2048-bit RSA key (PKCS#1 `RSAPrivateKey` DER, base64), made once with `openssl genpkey`: test only.
const RSA_DER: &[&str] = &[
    "MIIEpQIBAAKCAQEAkpjPK/OMhHKq2QuiDrif2hQaejBSbcWc3MkNoSlliWd1MahCNQGSR8d+bQkYlsYSR/DfPI8l55nR981e",
    "VVqNL0I28sWHay2eigNZXXARC6i8U4mRDFOrHfO36KKDX3QVyysp7FNOU73+zK4is7VcpbSA/a4KZwJWLZNDQbmnPK/RoLb6",
    "zbc+iqQKyTwGpzuf9u3xpDAPIPHO0Y0VdyIqANQAhTSm0bnSNvRvZLXaiJyUdegJD3MDG8FsKKrxo8/90iRva4E2BknSnDBq",
    "kUOH9Gtrzq9eN8vNhBdnfJgG7qS/dm7vbrmd7XtBmQNn4yX41W48nOXMO37SO+HXA9kQNwIDAQABAoIBACCYcZgoMxpQFMTl",
    "3UbArmpjBfAdRna59cLxwWIQPk9q/Zfo/a+jhc8IAIhl+V2s9OuiF0Dz40232gPrWgpIdBQJ+QXJ/e5K2nF9hSVNgbzB6/33",
    "HJVNFUM3qbDEUcmrmhzuoAe4DjZ4jGseXQDwVoVRuUyuogl9b4P6tn2qthC8AQa3+p7bLlkeO7uFYDIY6gPrlnjdM+BhvT95",
    "3ZeyZXRNc7ZeL9Fpv6rbv3CJ4L3D4DnmmKkIApYVG7HzDDls07FlDhQbP+t0lwf5A3Ir3cnn+we7EjqGAswlolEme2cquhGG",
    "QjgMG6QtON5sfNIyzQz0ndIT+IBLb5GKhdFmkoECgYEAxtTu798o5E5v9cHwN1zvtP2w77sTsd6Y6r/+p+cgkjZJoGlVO/AT",
    "NaRLBmg1HpmTM0ioCRkszhW8K+ygNO7uwW2el6uj0btpiP53lTwpUW/634tbQeiMEEQeRU9KMTsKEkcg2AsRQfSvqu8xwGDK",
    "YJEzaPJRcZCCDfMsWmpqOQcCgYEAvL8dZjw+tqMkL492nDY/5kAvQy9jZWIC6378LHajaJdm4081QE3Fgx+1GujNur7RwnjQ",
    "FQzR2ARo3XLyPo96Dq1PrCkbyul4c9bsJFULUOiLugPWFDNG0EFw+UzXjsS2jXzhGrjJQH2X/Z4hSRZJVlsb7cKUuwF+Na96",
    "0jESk1ECgYEAgLNR2jiT6nwPIn+fcuaYToor3nE0hVy1lLYkKyCDR8EWFVw5DKwQcxdebM5FHAKCcp6kDgeapecRv0jSRpEm",
    "QFQpZLl4N4jc/gzg8NtZT1pxhANbVaUmDF1bTrfNKWKy2TPrQYygZhXxI27iwEimlq1GHrdDGoRUep0d54ScLz8CgYEAladG",
    "7TfZVcB2wYsTtXpCIhNEJhYdzlXvEMAHvE149UYOWy8Dfu/rKjNqymJKNMZ11Kcr/XTDsW6Vovgv4LCsS5TZNh0GH1YMnnSL",
    "macgqM8pcpz2EeAyRo+Mvu5Rf66zO+4HIcPgNlUevQWzSJr2HRVySItemAPwCSsQzDYCj3ECgYEAmdXWGKcTRul73cHbFGJG",
    "/w1XNx8CbvfW4ljVAO0gVHi5/KPgXlbqEJeePLnqkTGdB5M6/jTmrczJ/IMaZh3/Z5RlLDRoAlNnR+DoRyN4XHPMeODHrwWx",
    "qdRVZcXcSnWoL69Fc6t+J3vFs/07jincURr7iPMbkZilrXDj2x3/0lE=",
];

fn both(jwk: &Value) -> (Jwk, CoreJsonWebKey) {
    (serde_json::from_value(jwk.clone()).unwrap(), serde_json::from_value(jwk.clone()).unwrap())
}

fn ec_key() -> (EcdsaKeyPair, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]), "kid": "ec", "use": "sig", "alg": "ES256"});
    (pair, jwk)
}

fn rsa_key() -> (RsaKeyPair, Value) {
    let der = base64::engine::general_purpose::STANDARD.decode(RSA_DER.concat()).unwrap();
    let pair = RsaKeyPair::from_der(&der).unwrap();
    let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwk = json!({"kty": "RSA", "n": B64.encode(&public.n), "e": B64.encode(&public.e), "kid": "rsa", "use": "sig"});
    (pair, jwk)
}

/// `Ok` from both, or `Err` from both: never one accepting what the other refuses.
fn agree(jwk: &Value, alg: &Alg, msg: &[u8], sig: &[u8]) -> bool {
    let (ours, theirs) = both(jwk);
    let (a, b) = (ours.verify_signature(alg, msg, sig), theirs.verify_signature(alg, msg, sig));
    assert_eq!(a.is_ok(), b.is_ok(), "ring: {a:?}, the crate: {b:?} for {jwk}");
    a.is_ok()
}

#[test]
fn es256_signatures_verify_with_ring_as_with_the_crate() {
    let (pair, jwk) = ec_key();
    let (ours, _) = both(&jwk);
    assert!(ours.prepared.is_some(), "a P-256 key is checked by ring");
    let msg = b"header.payload";
    let sig = pair.sign(&SystemRandom::new(), msg).unwrap();
    assert!(agree(&jwk, &Alg::EcdsaP256Sha256, msg, sig.as_ref()));
    assert!(!agree(&jwk, &Alg::EcdsaP256Sha256, b"header.payloaD", sig.as_ref()), "another message");
    let mut flipped = sig.as_ref().to_vec();
    flipped[10] ^= 1;
    assert!(!agree(&jwk, &Alg::EcdsaP256Sha256, msg, &flipped), "a changed signature");
    assert!(!agree(&jwk, &Alg::EcdsaP256Sha256, msg, &sig.as_ref()[..63]), "a short signature");
    assert!(!agree(&jwk, &Alg::RsaSsaPkcs1V15Sha256, msg, sig.as_ref()), "an RSA algorithm on an EC key");
    // Keys that must not be used for this signature, whatever ring would say.
    for (field, value) in [("use", json!("enc")), ("alg", json!("ES384")), ("alg", json!("RS256")), ("kty", json!("RSA"))] {
        let mut k = jwk.clone();
        k[field] = value;
        let ours: Jwk = serde_json::from_value(k.clone()).unwrap();
        assert!(ours.verify_signature(&Alg::EcdsaP256Sha256, msg, sig.as_ref()).is_err(), "{field}: {k}");
    }
    // Another curve, or a point of the wrong size, is not ring's: the crate decides (and refuses).
    let mut p384 = jwk.clone();
    p384["crv"] = json!("P-384");
    assert!(both(&p384).0.prepared.is_none());
    assert!(!agree(&p384, &Alg::EcdsaP256Sha256, msg, sig.as_ref()));
}

#[test]
fn rs256_signatures_verify_with_ring_as_with_the_crate() {
    let (pair, jwk) = rsa_key();
    let (ours, _) = both(&jwk);
    assert!(ours.prepared.is_some(), "a 2048-bit RSA key is checked by ring");
    let msg = b"header.payload";
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig).unwrap();
    assert!(agree(&jwk, &Alg::RsaSsaPkcs1V15Sha256, msg, &sig));
    assert!(!agree(&jwk, &Alg::RsaSsaPkcs1V15Sha256, b"other", &sig));
    let mut flipped = sig.clone();
    flipped[0] ^= 0x80;
    assert!(!agree(&jwk, &Alg::RsaSsaPkcs1V15Sha256, msg, &flipped));
    assert!(!agree(&jwk, &Alg::RsaSsaPkcs1V15Sha384, msg, &sig), "another hash: the crate's path, refused");
    assert!(!agree(&jwk, &Alg::EcdsaP256Sha256, msg, &sig), "an EC algorithm on an RSA key");
    let mut enc = jwk.clone();
    enc["use"] = json!("enc");
    assert!(both(&enc).0.verify_signature(&Alg::RsaSsaPkcs1V15Sha256, msg, &sig).is_err());
    // A modulus sent with a leading zero byte (as some providers do) verifies all the same.
    let mut padded = jwk.clone();
    let n = B64.decode(jwk["n"].as_str().unwrap()).unwrap();
    padded["n"] = json!(B64.encode([&[0u8][..], &n].concat()));
    assert!(both(&padded).0.prepared.is_some());
    assert!(agree(&padded, &Alg::RsaSsaPkcs1V15Sha256, msg, &sig));
    // PSS with the same key goes to the crate, and verifies there.
    let mut pss = vec![0; pair.public().modulus_len()];
    pair.sign(&signature::RSA_PSS_SHA256, &SystemRandom::new(), msg, &mut pss).unwrap();
    assert!(agree(&jwk, &Alg::RsaSsaPssSha256, msg, &pss));
}

#[test]
fn small_rsa_keys_stay_with_the_crate_and_serialization_is_the_crates() {
    let small = json!({"kty": "RSA", "n": B64.encode([0xc5u8; 128]), "e": "AQAB"});
    assert!(both(&small).0.prepared.is_none(), "1024 bits: ring refuses such keys, the crate decides");
    let (_, jwk) = ec_key();
    let (ours, theirs) = both(&jwk);
    assert_eq!(serde_json::to_value(&ours).unwrap(), serde_json::to_value(&theirs).unwrap());
    let again: Jwk = serde_json::from_value(serde_json::to_value(&ours).unwrap()).unwrap();
    assert!(again.prepared.is_some());
}
