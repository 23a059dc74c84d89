//! `jellyfin-sso-proxy doctor` against the Jellyfin double, the real OpenID Provider and a
//! SAML provider: all green on a good set-up (exit 0), and each way a set-up breaks logins
//! named with its fix (exit 1).

mod support;

use std::path::Path;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::oidc_provider::{OpConfig, OpClient, OpenIdProvider};

const KEY: &str = "test-api-key";

/// `jellyfin-sso-proxy doctor` on `dir/proxy.yaml` holding `yaml` (run off the async runtime):
/// whether it passed, and what it printed.
async fn doctor(dir: &Path, yaml: String) -> (bool, String) {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::write(dir.join("proxy.yaml"), yaml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy")).arg("--config").arg(dir.join("proxy.yaml")).arg("doctor").output().unwrap();
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
    .await
    .unwrap()
}

/// A working directory with the TLS certificate the proxy would have generated in `certs/`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    jellyfin_sso_proxy::tls::generate_self_signed(&dir.path().join("certs/cert.pem"), &dir.path().join("certs/key.pem")).unwrap();
    dir
}

fn cert_pem(valid: bool) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["idp.example.com".to_string()]).unwrap();
    if !valid {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
}

async fn op() -> OpenIdProvider {
    OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient { client_id: "jellyfin".into(), client_secret: Some("s".into()), redirect_uris: vec!["https://127.0.0.1:1/sso/OID/redirect/corp".into()], auth_method: "client_secret_basic".into(), require_par: false }],
        accounts: vec![],
        par: false,
        ..Default::default()
    })
    .await
}

fn yaml(jf: &str, key: &str, issuer: &str, public_url: &str, saml_cert: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\npublic_url: {public_url}\nstate_dir: data\njellyfin:\n  url: {jf}\n  api_key: {key}\nproviders:\n  oid:\n    corp:\n      oidEndpoint: {issuer}\n      oidClientId: jellyfin\n      oidSecret: s\n      disableHttps: true\n  saml:\n    adfs:\n      samlEndpoint: https://idp.example.com/sso\n      samlClientId: jellyfin\n      samlIdpEntityId: https://idp.example.com\n      samlCertificate: {}\n",
        serde_json::to_string(saml_cert).unwrap()
    )
}

#[tokio::test]
async fn a_good_set_up_passes_every_check() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = op().await;
    let dir = workdir();
    let (ok, out) = doctor(dir.path(), yaml(&jf.url(), KEY, &op.issuer, "https://127.0.0.1:8443", &cert_pem(true))).await;
    assert!(ok, "{out}");
    for needle in [
        "✓ Jellyfin 10.10.7",
        "✓ the API key is accepted",
        "✓ Quick Connect is enabled",
        "✓ OIDC provider corp: discovery found",
        "signing key(s) published",
        "✓ OIDC provider corp: client authentication client_secret_basic is offered",
        "✓ OIDC provider corp: clocks agree",
        "✓ SAML provider adfs: certificate 1 valid",
        "✓ the TLS certificate covers 127.0.0.1",
        "all checks passed",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains('✗'), "{out}");
}

#[tokio::test]
async fn each_broken_part_is_named_with_its_fix() {
    let jf = JellyfinDouble::start(DoubleOptions { quick_connect_enabled: false, ..DoubleOptions::default() }).await;
    let dir = workdir();
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let (ok, out) = doctor(dir.path(), yaml(&jf.url(), "wrong-key", &closed, "https://media.example.com", &cert_pem(false))).await;
    assert!(!ok, "doctor must fail:\n{out}");
    for needle in [
        "✗ Jellyfin rejects jellyfin.api_key",
        "✗ Quick Connect is disabled",
        "fix: enable it in Jellyfin: Dashboard → General → Quick Connect",
        "✗ OIDC provider corp: discovery at",
        "✗ SAML provider adfs: certificate 1 expired",
        "✗ the TLS certificate does not cover media.example.com",
        "check(s) failed",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // And a Jellyfin that is down is the first thing said.
    let (ok, out) = doctor(dir.path(), yaml(&closed, KEY, &closed, "https://127.0.0.1:8443", &cert_pem(true))).await;
    assert!(!ok);
    assert!(out.lines().next().unwrap().starts_with("✗ Jellyfin at"), "{out}");
}

#[tokio::test]
async fn the_shared_state_backends_are_each_checked_and_a_stopped_one_is_named_with_its_fix() {
    use support::servers::{Postgres, Redis};
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let (redis, pg) = tokio::task::spawn_blocking(|| (Redis::start(), Postgres::start())).await.unwrap();
    let db = pg.create_db("doctor").replace("postgres@", "postgres:db-secret@");
    let dir = workdir();
    let config = |redis_url: &str| {
        format!(
            "listen: 127.0.0.1:0\npublic_url: https://127.0.0.1:8443\nstate_dir: data\njellyfin:\n  url: {}\n  api_key: {KEY}\nstate:\n  durable: postgres\n  ephemeral: redis\n  postgres:\n    url: {db}\n  redis:\n    url: {redis_url}\n    key_prefix: \"doc:\"\n",
            jf.url()
        )
    };
    let run = |y: String| doctor(dir.path(), y);
    let (pg_at, redis_at) = (format!("postgres://127.0.0.1:{}/doctor", pg.port), redis.url());
    let has = |out: &str, needles: &[&str]| {
        for n in needles {
            assert!(out.contains(n), "missing {n:?} in:\n{out}");
        }
        assert!(!out.contains("db-secret"), "the password is never shown:\n{out}");
    };

    // The newest migration this build ships (migrations/postgres/NNNN_*.sql).
    let latest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.split('_').next()?.parse::<u32>().ok())
        .max()
        .unwrap();
    // A database no proxy has migrated yet: reachable, but not at the expected migration.
    let (ok, out) = run(config(&redis.url())).await;
    assert!(!ok, "{out}");
    has(&out, &[
        "✓ PostgreSQL ",
        &format!("at {pg_at} is reachable"),
        &format!("✗ PostgreSQL schema at migration none, this version needs {latest}"),
        "fix: start the proxy once: it applies the migrations itself",
        &format!("✓ Redis at {redis_at} is reachable and writable under the key prefix `doc:`"),
    ]);

    // Migrated (as the first proxy to start does): every state line is ✓.
    jellyfin_sso_proxy::state::PostgresDurable::open(&db, 1, None).await.unwrap().close().await;
    let (ok, out) = run(config(&redis.url())).await;
    assert!(ok, "{out}");
    has(&out, &[&format!("✓ PostgreSQL schema at migration {latest}, the one this version expects"), "all checks passed"]);

    // A Redis user that may not write under the prefix.
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = ::redis::cmd("ACL").arg("SETUSER").arg("other-app").arg("on").arg(">app-pw").arg("~other:*").arg("+@all").query_async(&mut c).await.unwrap();
    let (ok, out) = run(config(&format!("redis://other-app:app-pw@127.0.0.1:{}/", redis.port))).await;
    assert!(!ok, "{out}");
    has(&out, &[&format!("✗ Redis at {redis_at} answers but refuses the proxy's writes under `doc:`"), "(ACL ~doc:*)"]);
    assert!(!out.contains("app-pw"), "{out}");

    // Both servers stopped: each named, with its fix.
    redis.kill();
    pg.stop("INT");
    let (ok, out) = run(config(&redis.url())).await;
    assert!(!ok, "{out}");
    has(&out, &[
        &format!("✗ PostgreSQL at {pg_at} is not reachable"),
        "fix: start PostgreSQL, or correct the host and port in state.postgres.url",
        &format!("✗ Redis at {redis_at} is not reachable"),
        "fix: start Redis (6.2 or later) or Valkey, or correct state.redis.url",
    ]);
}

#[tokio::test]
async fn the_embedded_state_is_one_line() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let y = format!("listen: 127.0.0.1:0\npublic_url: https://127.0.0.1:8443\nstate_dir: data\njellyfin:\n  url: {}\n  api_key: {KEY}\n", jf.url());
    let (_, out) = doctor(dir.path(), y).await;
    assert!(out.contains("• state: SQLite in state_dir and memory (one proxy"), "{out}");
    assert!(!out.contains("PostgreSQL") && !out.contains("Redis at"), "{out}");
}

/// A SAML provider described by metadata: the doctor reads it as a login would, from the real
/// SAML IdP (samlify's own metadata), and names a metadata URL that does not answer and a
/// signing certificate in the metadata that has expired.
#[tokio::test]
async fn a_saml_provider_from_metadata_is_read_as_a_login_reads_it() {
    use support::saml_idp::{idp_metadata, MetadataServer, SamlIdp};
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let idp = SamlIdp::start("https://127.0.0.1:1/sso/SAML/metadata/corp", "both", vec![]).await;
    let dir = workdir();
    let yaml = |metadata_url: &str| {
        format!(
            "listen: 127.0.0.1:0\npublic_url: https://127.0.0.1:8443\nstate_dir: data\njellyfin:\n  url: {}\n  api_key: {KEY}\nproviders:\n  saml:\n    corp:\n      samlClientId: jellyfin\n      samlIdpMetadataUrl: {metadata_url}\n",
            jf.url()
        )
    };
    let run = |y: String| doctor(dir.path(), y);
    let samlify = idp.sso_url.replace("/sso", "/metadata");
    let (ok, out) = run(yaml(&samlify)).await;
    assert!(ok, "{out}");
    for needle in [
        format!("✓ SAML provider corp: metadata from {samlify} read, not signature-checked"),
        format!("entity {}, 1 signing certificate(s)", idp.entity_id),
        "✓ SAML provider corp: certificate 1 valid for".to_string(),
    ] {
        assert!(out.contains(&needle), "missing {needle:?} in:\n{out}");
    }

    let server = MetadataServer::start(None).await;
    let (ok, out) = run(yaml(&server.url)).await;
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("✗ SAML provider corp: metadata from {}", server.url)), "{out}");
    assert!(out.contains("500"), "the server's answer is named: {out}");
    assert!(out.contains("fix: check samlIdpMetadataUrl"), "{out}");

    let expired: String = cert_pem(false).lines().filter(|l| !l.starts_with("-----")).collect();
    server.set(Some(idp_metadata(&idp.entity_id, &idp.sso_url, &[&idp.cert_b64, &expired], None)));
    let (ok, out) = run(yaml(&server.url)).await;
    assert!(!ok, "{out}");
    assert!(out.contains("2 signing certificate(s)"), "{out}");
    assert!(out.contains("✓ SAML provider corp: certificate 1 valid"), "{out}");
    assert!(out.contains("✗ SAML provider corp: certificate 2 expired"), "{out}");
}
