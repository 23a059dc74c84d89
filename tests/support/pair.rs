//! Two proxies, A and B, behind one (imagined) balancer: their listeners, and both started on
//! one shared Redis + PostgreSQL state with one key file (tests/scaleout*.rs).

use super::{state_yaml, TestProxy};

/// Two proxies, A and B, with `public_url` on A's port, sharing one state and one key file.
pub struct Pair {
    pub a: TestProxy,
    pub b: TestProxy,
    _keys: tempfile::TempDir,
}

/// A's and B's listeners, reserved before anything that needs the public port (the OP).
pub struct Ports {
    a: tokio::net::TcpListener,
    b: tokio::net::TcpListener,
    pub public: u16,
    /// B's port (A's is `public`).
    pub b_port: u16,
}

pub fn ports() -> Ports {
    let (a, b) = (TestProxy::reserve(), TestProxy::reserve());
    let (public, b_port) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
    Ports { a, b, public, b_port }
}

/// Start A and B on `ports` with `yaml` (Jellyfin, providers) and the shared state.
pub async fn pair(ports: Ports, (db, redis, prefix): &(String, String, String), yaml: &str) -> Pair {
    let keys = tempfile::tempdir().unwrap();
    let config = format!("{yaml}{}", state_yaml(db, redis, prefix, Some(&keys.path().join("state.key"))));
    let a = TestProxy::start_behind(ports.a, tempfile::tempdir().unwrap(), ports.public, &config).await;
    let b = TestProxy::start_behind(ports.b, tempfile::tempdir().unwrap(), ports.public, &config).await;
    Pair { a, b, _keys: keys }
}
