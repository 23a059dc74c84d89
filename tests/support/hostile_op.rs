//! A hostile OpenID Provider: it publishes one signing key and then answers the code
//! exchange with an ID token that is forged in a chosen way (signed by a key it never
//! published, or `alg: none`), with every other claim correct. The proxy must refuse.
//! A real provider cannot be made to do this, hence this small server. Its ID tokens carry
//! `sid` = [`HOSTILE_SID`]; [`HostileOp::sign`] makes logout tokens (or any JWT) signed in a
//! chosen way, for the back-channel logout tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with a key that is not in the JWKS (but claiming the published key's `kid`).
    UnpublishedKey,
    /// `alg: none`, no signature.
    NoneAlg,
    /// Correctly signed (control case: the proxy must accept it).
    Honest,
}

pub struct HostileOp {
    pub issuer: String,
    nonces: Arc<Mutex<HashMap<String, String>>>,
    published_pem: String,
    other_pem: String,
}

/// The `sid` of every ID token the hostile OP issues.
pub const HOSTILE_SID: &str = "hostile-sid";

/// How [`HostileOp::sign`] signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignWith {
    /// The published key (ES256, kid `k1`): a valid signature.
    Published,
    /// A key that is not published, claiming kid `k1`.
    Unpublished,
    /// `alg: none`, empty signature.
    NoneAlg,
    /// HS256 with this shared secret (e.g. the client secret).
    Hs256(&'static str),
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl HostileOp {
    pub async fn start(forgery: Forgery, client_id: &str, subject: &str) -> HostileOp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let published = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let (published_pem, other_pem) = (published.serialize_pem(), other.serialize_pem());
        let raw = published.public_key_raw();
        let (x, y) = (&raw[1..33], &raw[33..65]);
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": "k1", "use": "sig", "alg": "ES256"}]});
        let signing = match forgery {
            Forgery::UnpublishedKey => other.serialize_pem(),
            _ => published.serialize_pem(),
        };
        let nonces: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let ctx = Arc::new((issuer.clone(), jwks, signing, client_id.to_string(), subject.to_string(), forgery, nonces.clone()));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let ctx = ctx.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req, &ctx).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        HostileOp { issuer, nonces, published_pem, other_pem }
    }

    /// A compact JWS of `claims`, signed as `how` says.
    pub fn sign(&self, claims: &serde_json::Value, how: SignWith) -> String {
        match how {
            SignWith::NoneAlg => format!("{}.{}.", b64(br#"{"alg":"none","typ":"logout+jwt"}"#), b64(claims.to_string().as_bytes())),
            SignWith::Hs256(secret) => {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some("k1".into());
                encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
            }
            SignWith::Published | SignWith::Unpublished => {
                let pem = if how == SignWith::Published { &self.published_pem } else { &self.other_pem };
                let mut h = Header::new(Algorithm::ES256);
                h.kid = Some("k1".into());
                h.typ = Some("logout+jwt".into());
                encode(&h, claims, &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()).unwrap()
            }
        }
    }

    pub fn saw_nonce(&self) -> bool {
        !self.nonces.lock().unwrap().is_empty()
    }
}

type Ctx = (String, serde_json::Value, String, String, String, Forgery, Arc<Mutex<HashMap<String, String>>>);

async fn answer(req: Request<hyper::body::Incoming>, ctx: &Ctx) -> Response<Full<bytes::Bytes>> {
    let (issuer, jwks, signing, client_id, subject, forgery, nonces) = ctx;
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let json = |v: serde_json::Value| {
        Response::builder().header("content-type", "application/json").body(Full::new(bytes::Bytes::from(v.to_string()))).unwrap()
    };
    match path.as_str() {
        "/.well-known/openid-configuration" => json(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "end_session_endpoint": format!("{issuer}/logout"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })),
        "/jwks" => json(jwks.clone()),
        "/auth" => {
            // Log the user in at once: remember the nonce for the code, redirect back.
            let code = format!("code-{}", nonces.lock().unwrap().len());
            nonces.lock().unwrap().insert(code.clone(), query.get("nonce").cloned().unwrap_or_default());
            let mut back = url::Url::parse(&query["redirect_uri"]).unwrap();
            back.query_pairs_mut().append_pair("code", &code).append_pair("state", &query["state"]);
            Response::builder().status(302).header("location", back.as_str()).body(Full::default()).unwrap()
        }
        "/token" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
            let nonce = nonces.lock().unwrap().get(form.get("code").map(String::as_str).unwrap_or("")).cloned().unwrap_or_default();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let claims = serde_json::json!({
                "iss": issuer, "sub": subject, "aud": client_id, "exp": now + 300, "iat": now, "nonce": nonce,
                "preferred_username": "forged-admin", "groups": ["jellyfin-admins"], "sid": HOSTILE_SID,
            });
            let id_token = match forgery {
                Forgery::NoneAlg => format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(claims.to_string().as_bytes())),
                _ => {
                    let mut h = Header::new(Algorithm::ES256);
                    h.kid = Some("k1".into());
                    encode(&h, &claims, &EncodingKey::from_ec_pem(signing.as_bytes()).unwrap()).unwrap()
                }
            };
            json(serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        }
        _ => Response::builder().status(404).body(Full::default()).unwrap(),
    }
}
