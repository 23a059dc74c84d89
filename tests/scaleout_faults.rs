//! Shared state backends failing under the proxy, with real servers stopped by PID: Redis
//! killed during logins gives clear 503s (the log names Redis) while ordinary proxying, with or
//! without a session cookie, goes on and does not wait; logins work again once Redis is back,
//! without a restart. PostgreSQL restarted (immediately, like a crash): what was acknowledged
//! is all there, what was refused while it was down is not, and the proxies recover by
//! themselves.

mod support;

use std::time::{Duration, Instant};

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::json;
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::{http1_client, jellyfin_password_login, servers, state_yaml, ProxyProcess, TestProxy};

const KEY: &str = "test-api-key";

async fn op() -> OpenIdProvider {
    OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient {
            client_id: "jellyfin".into(),
            client_secret: Some("jellyfin-secret".into()),
            redirect_uris: vec!["https://127.0.0.1:1/sso/OID/redirect/op".into()],
            auth_method: "client_secret_basic".into(),
            require_par: false,
        }],
        accounts: vec![OpAccount { login: "u-alice".into(), password: "pw".into(), claims: json!({}), userinfo_only: vec![] }],
        par: false,
        ..Default::default()
    })
    .await
}

async fn status(url: String, cookie: Option<&str>) -> (u16, String) {
    let mut r = http1_client().get(url).header("accept", "text/html");
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn redis_killed_gives_clear_503s_proxying_goes_on_and_logins_come_back() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = op().await;
    let redis = servers::Redis::start();
    let (db, _, _) = servers::shared_fresh();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "  api_key: {KEY}\nproviders:\n  oid:\n    op:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: jellyfin-secret\n      disableHttps: true\n{}",
        op.issuer,
        state_yaml(&db, &redis.url(), "faults:", None)
    );
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), &yaml).await;
    assert_eq!(status(proxy.url("/sso/OID/start/op"), None).await.0, 302);

    redis.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let (code, body) = status(proxy.url("/sso/OID/start/op"), None).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("Try again in a minute"), "a readable page: {body}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        // Ordinary traffic, with a (now unverifiable) session cookie too, is forwarded at once.
        let started = Instant::now();
        let cookie = format!("__Host-jsp-session={}", "a".repeat(43));
        assert_eq!(status(proxy.url("/System/Info/Public"), Some(&cookie)).await.0, 200);
        assert_eq!(status(proxy.url("/System/Info/Public"), None).await.0, 200);
        assert!(started.elapsed() < Duration::from_secs(1), "proxying waited {:?}", started.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(proxy.log_contains("redis state backend is unavailable"), "the log names the backend");

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(proxy.url("/sso/OID/start/op"), None).await.0 != 302 {
        assert!(Instant::now() < deadline, "logins did not come back after Redis did");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn postgres_restarted_loses_nothing_acknowledged_and_the_proxies_recover() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    jf.add_user("root", "rootpw", true);
    let admin = jellyfin_password_login(&jf.url(), "root", "rootpw").await.unwrap();
    let pg = servers::Postgres::start();
    let db = pg.create_db("restart");
    let (_, redis, prefix) = servers::shared_fresh();
    let keys = tempfile::tempdir().unwrap();
    let yaml = format!("jellyfin:\n  url: {}\n  api_key: {KEY}\n{}", jf.url(), state_yaml(&db, &redis, &prefix, Some(&keys.path().join("k"))));
    let (a, b) = (TestProxy::start_config(&yaml).await, TestProxy::start_config(&yaml).await);
    let add = |proxy: &TestProxy, name: &str| {
        let url = proxy.url(&format!("/sso/OID/Add/{name}"));
        let body = json!({"oidEndpoint": "https://idp.example", "oidClientId": "jf", "oidSecret": "s"});
        let auth = format!("MediaBrowser Token=\"{admin}\"");
        async move { http1_client().post(url).header("authorization", auth).header("accept", "application/json").json(&body).send().await.unwrap().status().as_u16() }
    };
    let names = |proxy: &TestProxy| {
        let url = proxy.url("/sso/OID/GetNames");
        async move { http1_client().get(url).send().await.unwrap().json::<Vec<String>>().await.unwrap() }
    };
    for i in 0..5 {
        assert_eq!(add(&a, &format!("p{i}")).await, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while names(&b).await.len() < 5 {
        assert!(Instant::now() < deadline, "B did not hear of A's providers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pg.stop("QUIT");
    assert_eq!(add(&a, "refused").await, 503, "not acknowledged while PostgreSQL is down");
    assert_eq!(names(&b).await.len(), 5, "B keeps serving the providers it has");
    assert_eq!(status(b.url("/System/Info/Public"), None).await.0, 200);

    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match add(&b, "after").await {
            200 => break,
            code => assert!(Instant::now() < deadline, "B did not recover: {code}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expected = ["after", "p0", "p1", "p2", "p3", "p4"];
    let c = TestProxy::start_config(&yaml).await;
    assert_eq!(names(&c).await, expected, "a new proxy finds every acknowledged provider and not the refused one");
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(&a).await != expected {
        assert!(Instant::now() < deadline, "A did not catch up after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn postgres_with_memory_for_logins_in_progress_starts_with_a_warning() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let (db, _, _) = servers::shared_fresh();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("  api_key: {KEY}\nstate:\n  durable: postgres\n  ephemeral: memory\n  postgres:\n    url: {db}\n");
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), &yaml).await;
    assert_eq!(status(proxy.url("/System/Info/Public"), None).await.0, 200, "it starts and serves");
    assert!(proxy.log_contains("WARN") && proxy.log_contains("logins started on one proxy will fail on another"), "the warning is logged at start");
    // The default pair says nothing of the kind.
    let dir = tempfile::tempdir().unwrap();
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), &format!("  api_key: {KEY}\n")).await;
    assert_eq!(status(proxy.url("/System/Info/Public"), None).await.0, 200);
    assert!(!proxy.log_contains("will fail on another"));
}
