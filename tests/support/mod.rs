//! Shared helpers for the integration tests (the Jellyfin test double is the `jellyfin-double`
//! crate in crates/jellyfin-double): IdP launchers, a proxy started in-process on port 0, the
//! proxy binary started as a process (for signals), and TLS clients that accept the test
//! certificates.
#![allow(dead_code)]

pub mod apps;
pub mod browser;
pub mod chromium;
pub mod hostile_op;
pub mod node;
pub mod oidc_provider;
pub mod pair;
pub mod saml_idp;
pub mod saml_signer;
pub mod servers;

pub mod tls_client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use figment::providers::Env;
use jellyfin_sso_proxy::config::Config;
use jellyfin_sso_proxy::jellyfin::Jellyfin;
use jellyfin_sso_proxy::proxy::Upstream;
use jellyfin_sso_proxy::router::App;
use jellyfin_sso_proxy::sso::Sso;
use jellyfin_sso_proxy::state::{Caps, State};
use jellyfin_sso_proxy::server;
use jellyfin_sso_proxy::tls::CertStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

/// A proxy running inside the test process.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestProxy {
    /// Start a proxy in front of `jellyfin_url`, with `extra_yaml` appended to a minimal config
    /// (it may add sections like `limits:`; top-level keys only once).
    pub async fn start(jellyfin_url: &str, extra_yaml: &str) -> TestProxy {
        Self::start_config(&format!("jellyfin:\n  url: {jellyfin_url}\n{extra_yaml}")).await
    }

    /// A proxy with an admin API key for the double, ready to sign people in.
    pub async fn start_sso(jellyfin_url: &str, api_key: &str, extra_yaml: &str) -> TestProxy {
        Self::start_config(&format!("jellyfin:\n  url: {jellyfin_url}\n  api_key: {api_key}\n{extra_yaml}")).await
    }

    /// Start with `extra_yaml` added to `listen`, `public_url`, `log` and `state_dir`.
    pub async fn start_config(extra_yaml: &str) -> TestProxy {
        Self::start_on(Self::reserve(), tempfile::tempdir().unwrap(), extra_yaml).await
    }

    /// A listener on a free port, for tests that must know the proxy's address before it
    /// starts (to register redirect URIs at an identity provider).
    pub fn reserve() -> tokio::net::TcpListener {
        server::bind("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    /// Start on `listener` with state in `dir` (reuse a dir to test restarts).
    ///
    /// With `JSP_TEST_STATE=shared` in the environment (tests/run.sh sets it for one run of the
    /// SSO tests), a proxy whose `extra_yaml` has no `state:` section keeps its state in Redis
    /// and PostgreSQL ([`servers::shared`]): a database of its own, kept with `dir` across
    /// restarts, and a fresh key prefix each start (as memory would be).
    pub async fn start_on(listener: tokio::net::TcpListener, dir: tempfile::TempDir, extra_yaml: &str) -> TestProxy {
        let port = listener.local_addr().unwrap().port();
        Self::start_behind(listener, dir, port, extra_yaml).await
    }

    /// Like [`TestProxy::start_on`], with `public_url` on `public_port` instead of its own: two
    /// proxies with the same `public_port` stand for two behind one balancer.
    pub async fn start_behind(listener: tokio::net::TcpListener, dir: tempfile::TempDir, public_port: u16, extra_yaml: &str) -> TestProxy {
        let addr = listener.local_addr().unwrap();
        let mut yaml = format!("listen: {addr}\npublic_url: https://127.0.0.1:{public_port}\nstate_dir: data\nlog:\n  level: warn\n{extra_yaml}");
        let shared = shared_state_wanted() && !yaml.lines().any(|l| l.starts_with("state:"));
        if shared {
            yaml.push_str(&shared_state_yaml(dir.path()));
        }
        let config = Config::from_parts(Some(&yaml), "test.yaml", dir.path(), Env::prefixed("JSP_TEST_UNUSED_"))
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{yaml}"));
        jellyfin_sso_proxy::logging::init(&config.log);
        let config = Arc::new(config);
        let (certs, _) = CertStore::open(&config.tls).unwrap();
        let acceptor = certs.server_config();
        let caps = Caps { flows: config.sso.max_pending_flows, completions: config.sso.max_pending_flows, ..Caps::default() };
        let state = State::open(&config.state, &config.state_dir, caps).await.unwrap_or_else(|e| panic!("state: {e}"));
        let limits = &config.limits;
        let jellyfin = Jellyfin::new(&config.jellyfin.url, config.jellyfin.api_key.clone(), limits.upstream_connect_timeout, limits.upstream_header_timeout);
        assert!(!shared || state.durable.changes().is_some(), "JSP_TEST_STATE=shared, yet the proxy is not on PostgreSQL");
        let sso = Arc::new(Sso::new(config.clone(), state, jellyfin).await.unwrap());
        tokio::spawn(sso.clone().sweep_forever());
        tokio::spawn(sso.clone().watch_providers(jellyfin_sso_proxy::sso::PROVIDER_REREAD));
        let upstream = Upstream::new(&config.jellyfin.url, limits.upstream_connect_timeout, limits.upstream_header_timeout);
        let app = Arc::new(App::new(upstream, sso));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server::run(listener, app.clone(), acceptor, async {
            let _ = rx.await;
        }));
        TestProxy { addr, app, dir, stop: Some(tx), task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.addr.port(), path)
    }

    /// Stop and hand back the state directory, to start again on it.
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Did the environment ask for the shared backends (`JSP_TEST_STATE=shared`)?
pub fn shared_state_wanted() -> bool {
    std::env::var("JSP_TEST_STATE").is_ok_and(|v| v == "shared")
}

/// A `state:` section on the shared Redis and PostgreSQL: the database named in
/// `dir/shared-state.url` (created the first time), a fresh key prefix.
pub fn shared_state_yaml(dir: &Path) -> String {
    let (fresh_db, redis, prefix) = servers::shared_fresh();
    let marker = dir.join("shared-state.url");
    let db = std::fs::read_to_string(&marker).unwrap_or_else(|_| {
        std::fs::write(&marker, &fresh_db).unwrap();
        fresh_db
    });
    state_yaml(&db, &redis, &prefix, None)
}

/// A `state:` section for PostgreSQL at `db` and Redis at `redis` with `prefix`; proxies
/// sharing it must share `key_file` too.
pub fn state_yaml(db: &str, redis: &str, prefix: &str, key_file: Option<&Path>) -> String {
    let key = key_file.map(|k| format!("  key_file: {}\n", k.display())).unwrap_or_default();
    format!("state:\n{key}  durable: postgres\n  ephemeral: redis\n  postgres:\n    url: {db}\n    pool_size: 4\n  redis:\n    url: {redis}\n    key_prefix: \"{prefix}\"\n")
}

/// An HTTP/1.1-only client that trusts any certificate (the proxy's is self-signed).
pub fn http1_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An HTTP/2 client (ALPN h2) that trusts any certificate.
pub fn http2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The proxy binary, started as a process so tests can send it signals.
pub struct ProxyProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub stderr_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

/// A free loopback port (bound then released; the small race is acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl ProxyProcess {
    /// Write `proxy.yaml` into `dir` and start the binary; returns once it logs that it is
    /// serving. `extra_yaml` follows `jellyfin:\n  url: …`, so indented lines extend the
    /// `jellyfin` section and unindented ones add top-level settings.
    ///
    /// The port is a free one; another test can take it between [`free_port`] and the proxy's
    /// bind, so a start that fails to listen is tried again on another port.
    pub async fn start(dir: &Path, jellyfin_url: &str, extra_yaml: &str) -> ProxyProcess {
        let mut tries_left = 3;
        loop {
            let port = free_port();
            match Self::launch(dir, port, &Self::yaml(port, jellyfin_url, extra_yaml), &[]).await {
                Ok(p) => return p,
                Err(log) if tries_left > 1 && log.contains("cannot listen") => tries_left -= 1,
                Err(log) => panic!("{log}"),
            }
        }
    }

    /// [`ProxyProcess::start`] on `port` (known before, e.g. for an identity provider's
    /// redirect URI).
    pub async fn start_on_port(dir: &Path, port: u16, jellyfin_url: &str, extra_yaml: &str) -> ProxyProcess {
        Self::start_with(dir, port, jellyfin_url, extra_yaml, &[]).await
    }

    /// Like [`ProxyProcess::start`], on `port`, with `envs` added to the environment (e.g.
    /// `HTTP_PROXY`, which the proxy's identity-provider client honours like any other).
    pub async fn start_with(dir: &Path, port: u16, jellyfin_url: &str, extra_yaml: &str, envs: &[(&str, &str)]) -> ProxyProcess {
        Self::start_yaml_with(dir, port, &Self::yaml(port, jellyfin_url, extra_yaml), envs).await
    }

    fn yaml(port: u16, jellyfin_url: &str, extra_yaml: &str) -> String {
        // A `log:` section of the caller's replaces the default one (it must keep `level: info`,
        // which the start-up line needs).
        let log = if extra_yaml.lines().any(|l| l.starts_with("log:")) { "" } else { "log:\n  level: info\n" };
        format!("listen: 127.0.0.1:{port}\npublic_url: https://127.0.0.1:{port}\n{log}jellyfin:\n  url: {jellyfin_url}\n{extra_yaml}")
    }

    /// Start the binary on `dir/proxy.yaml` holding exactly `yaml`, which listens on `port`
    /// and logs the `serving` line (at `info` for the proxy's own target).
    pub async fn start_yaml(dir: &Path, port: u16, yaml: &str) -> ProxyProcess {
        Self::start_yaml_with(dir, port, yaml, &[]).await
    }

    /// [`ProxyProcess::start_yaml`] with `envs` added to the environment.
    pub async fn start_yaml_with(dir: &Path, port: u16, yaml: &str, envs: &[(&str, &str)]) -> ProxyProcess {
        Self::launch(dir, port, yaml, envs).await.unwrap_or_else(|log| panic!("{log}"))
    }

    /// Start the binary; on failure, why, with its log.
    async fn launch(dir: &Path, port: u16, yaml: &str, envs: &[(&str, &str)]) -> Result<ProxyProcess, String> {
        std::fs::write(dir.join("proxy.yaml"), yaml).unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy"))
            .arg("--config")
            .arg(dir.join("proxy.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .envs(envs.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = BufReader::new(child.stderr.take().unwrap()).lines();
        let (ready_tx, ready_rx) = oneshot::channel();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = reader.next_line().await {
                if line.contains("serving") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let started = tokio::time::timeout(Duration::from_secs(20), ready_rx).await;
        if !matches!(started, Ok(Ok(()))) {
            // Timed out, or the log ended (the process exited) before `serving`.
            let status = child.try_wait().ok().flatten();
            return Err(format!("proxy did not start (exit: {status:?}); its log:\n{}", lines.lock().unwrap().join("\n")));
        }
        Ok(ProxyProcess { child, addr: format!("127.0.0.1:{port}").parse().unwrap(), dir: dir.to_path_buf(), stderr_lines: lines })
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.addr.port(), path)
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill").args(["-s", sig, &pid]).status().unwrap().success();
        assert!(ok, "kill -s {sig} failed");
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.stderr_lines.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// The log lines so far that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.stderr_lines.lock().unwrap().iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// Wait (20 s at most) until more than `seen` log lines contain `needle`; returns them all.
    pub async fn wait_log(&self, needle: &str, seen: usize) -> Vec<String> {
        for _ in 0..400 {
            let lines = self.log_lines(needle);
            if lines.len() > seen {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no new log line with {needle:?} within 20 s; the log:\n{}", self.stderr_lines.lock().unwrap().join("\n"));
    }

    /// Replace `proxy.yaml` with `yaml` (the running proxy notices by itself, or on SIGHUP).
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(self.dir.join("proxy.yaml"), yaml).unwrap();
    }
}

/// Log in to the double with a password, as a Jellyfin client would; returns the token.
pub async fn jellyfin_password_login(jellyfin_url: &str, user: &str, password: &str) -> Result<String, u16> {
    let r = reqwest::Client::new()
        .post(format!("{jellyfin_url}/Users/AuthenticateByName"))
        .header("Authorization", "MediaBrowser Client=\"test\", Device=\"test\", DeviceId=\"test-device\", Version=\"1.0\"")
        .json(&serde_json::json!({"Username": user, "Pw": password}))
        .send()
        .await
        .unwrap();
    if !r.status().is_success() {
        return Err(r.status().as_u16());
    }
    let v: serde_json::Value = r.json().await.unwrap();
    Ok(v["AccessToken"].as_str().unwrap().to_string())
}

/// SHA-256 of bytes, as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(data);
    format!("{:x}", h.finalize())
}
