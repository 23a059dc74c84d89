//! Launches the real OpenID Provider (npm `oidc-provider`, `tests/idp/oidc-provider.mjs`) on
//! loopback for a test, and talks to its control endpoints.


use serde::Serialize;

#[derive(Serialize, Clone, Debug, Default)]
pub struct OpConfig {
    pub clients: Vec<OpClient>,
    pub accounts: Vec<OpAccount>,
    /// Pushed authorization requests offered by the provider.
    pub par: bool,
    /// To behave like a given product (tests/idp/oidc-provider.mjs explains each): the
    /// issuer it names (`{origin}` is its loopback origin; another host is reached through
    /// it as the HTTP proxy, see [`OpenIdProvider::http_proxy`]), where its discovery puts
    /// each endpoint, further discovery documents, the claims of each scope, and whether the
    /// callback carries `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_claims: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss_param: Option<bool>,
}

#[derive(Serialize, Clone, Debug)]
pub struct OpClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<String>,
    pub auth_method: String,
    pub require_par: bool,
}

impl OpClient {
    /// The usual test client: `jellyfin` / `s3cret` with client_secret_basic, redirecting to
    /// provider `provider` of a proxy on `port`.
    pub fn basic(port: u16, provider: &str) -> OpClient {
        OpClient {
            client_id: "jellyfin".into(),
            client_secret: Some("s3cret".into()),
            redirect_uris: vec![format!("https://127.0.0.1:{port}/sso/OID/redirect/{provider}")],
            auth_method: "client_secret_basic".into(),
            require_par: false,
        }
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct OpAccount {
    pub login: String,
    pub password: String,
    pub claims: serde_json::Value,
    /// Claims that appear only in the userinfo answer, never in the ID token.
    pub userinfo_only: Vec<String>,
}

pub struct OpenIdProvider {
    pub issuer: String,
    /// Its own loopback origin (`http://127.0.0.1:{port}`): the control endpoints, and the
    /// HTTP proxy through which other hosts of a product-shaped issuer are reached.
    pub origin: String,
    _child: tokio::process::Child,
}

impl OpenIdProvider {
    pub async fn start(cfg: &OpConfig) -> OpenIdProvider {
        Self::start_with(cfg, serde_json::json!({})).await
    }

    /// Start with extra client metadata, `{client_id: {...}}` (e.g. `backchannel_logout_uri`).
    pub async fn start_with(cfg: &OpConfig, client_extra: serde_json::Value) -> OpenIdProvider {
        let envs = [("OP_CONFIG", serde_json::to_string(cfg).unwrap()), ("OP_CLIENT_EXTRA", client_extra.to_string())];
        let (child, ready) = super::node::start("oidc-provider.mjs", &envs, "OP_READY").await;
        let origin = format!("http://127.0.0.1:{}", ready["port"]);
        OpenIdProvider { issuer: ready["issuer"].as_str().unwrap().to_string(), origin, _child: child }
    }

    /// The account no longer exists for the OP: its refresh tokens are refused.
    pub async fn disable(&self, login: &str) {
        self.control(&format!("/__control/disable/{login}"), None).await;
    }

    async fn control(&self, path: &str, body: Option<serde_json::Value>) {
        let mut r = reqwest::Client::new().post(format!("{}{path}", self.origin));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }

    /// The HTTP proxy address for clients that must reach the product's own hosts
    /// (`http://accounts.google.com`, ...): this OP, which serves them all.
    pub fn http_proxy(&self) -> &str {
        &self.origin
    }

    /// Replace an account's claims (its subject stays the same).
    pub async fn set_claims(&self, login: &str, claims: serde_json::Value) {
        self.control(&format!("/__control/account/{login}"), Some(claims)).await;
    }

    /// Sign with a new key from now on; the old key stays published.
    pub async fn rotate_keys(&self) {
        self.control("/__control/rotate-keys", None).await;
    }
}
