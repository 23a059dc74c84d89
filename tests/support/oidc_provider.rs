//! Launches the real OpenID Provider (npm `oidc-provider`, `tests/idp/oidc-provider.mjs`) on
//! loopback for a test, and talks to its control endpoints.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

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

fn idp_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// Install the npm packages once per test process (tests/run.sh normally did it already);
/// `flock` keeps parallel test binaries from installing at the same time.
pub fn ensure_node_modules() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = idp_dir();
        let wanted = ["oidc-provider", "playwright-core", "samlify", "@jellyfin/sdk"];
        if wanted.iter().all(|m| dir.join("node_modules").join(m).exists()) {
            return;
        }
        let status = std::process::Command::new("flock")
            .arg(dir.join(".npm-install.lock"))
            .args(["sh", "-c", "[ -d node_modules/oidc-provider ] && [ -d node_modules/playwright-core ] && [ -d node_modules/samlify ] && [ -d node_modules/@jellyfin/sdk ] || npm ci --no-audit --no-fund --loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("flock and npm must be installed (tests/run.sh installs them)");
        assert!(status.success(), "npm ci in tests/idp failed");
    });
}

/// Start `tests/idp/{script}` under node with `envs`, and wait (20 s at most) for the line
/// `{ready} {json}` it prints once it listens; returns the child and that JSON. What the script
/// prints afterwards is drained so it never blocks on a full pipe.
pub async fn start_node(script: &str, envs: &[(&str, String)], ready: &str) -> (tokio::process::Child, serde_json::Value) {
    ensure_node_modules();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(idp_dir().join(script)).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("node must be installed (tests/run.sh installs it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prefix = format!("{ready} ");
    let json = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(json) = line.strip_prefix(&prefix) {
                return Some(serde_json::from_str::<serde_json::Value>(json).unwrap());
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("{script} did not start within 60 s"))
    .unwrap_or_else(|| panic!("{script} exited before it was ready"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, json)
}

impl OpenIdProvider {
    pub async fn start(cfg: &OpConfig) -> OpenIdProvider {
        Self::start_with(cfg, serde_json::json!({})).await
    }

    /// Start with extra client metadata, `{client_id: {...}}` (e.g. `backchannel_logout_uri`).
    pub async fn start_with(cfg: &OpConfig, client_extra: serde_json::Value) -> OpenIdProvider {
        let envs = [("OP_CONFIG", serde_json::to_string(cfg).unwrap()), ("OP_CLIENT_EXTRA", client_extra.to_string())];
        let (child, ready) = start_node("oidc-provider.mjs", &envs, "OP_READY").await;
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
