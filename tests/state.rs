//! The state layer from outside: the upgrade from the JSON state file of earlier versions,
//! and a broken database refusing to start.

mod support;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::{http1_client, TestProxy};

const KEY: &str = "test-api-key";

async fn get(url: String) -> (u16, Value) {
    let r = http1_client().get(url).header("accept", "application/json").header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A `state.json` exactly as the JSON store of the previous version wrote it.
fn legacy_state(alice: &str, bob: &str) -> Value {
    let cert = rcgen::generate_simple_self_signed(vec!["idp.example.com".to_string()]).unwrap().cert.pem();
    json!({
        "version": 1,
        "links": [
            {"mode": "Oid", "provider": "corp", "canonicalName": "sub-alice", "userId": alice, "linkedAt": 1700000000},
            {"mode": "Oid", "provider": "other", "canonicalName": "sub-alice-2", "userId": alice, "linkedAt": 1700000001},
            {"mode": "Saml", "provider": "adfs", "canonicalName": "bob@corp", "userId": bob, "linkedAt": 1700000002}
        ],
        "oidProviders": {
            "corp": {"oidEndpoint": "https://idp.example.com", "oidClientId": "jellyfin", "oidSecret": "s3cret", "enabled": true, "roles": ["media"]}
        },
        "samlProviders": {
            "adfs": {"samlEndpoint": "https://idp.example.com/sso", "samlClientId": "jellyfin", "samlIdpEntityId": "https://idp.example.com", "samlCertificate": cert, "enabled": true}
        }
    })
}

#[tokio::test]
async fn a_state_file_of_the_previous_version_is_imported_once() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let alice = jf.add_user("alice", "pw", false);
    let bob = jf.add_user("bob", "pw", false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/state.json"), legacy_state(&alice, &bob).to_string()).unwrap();
    let yaml = format!("jellyfin:\n  url: {}\n  api_key: {KEY}\n", jf.url());
    let proxy = TestProxy::start_on(TestProxy::reserve(), dir, &yaml).await;

    let check = |proxy: &TestProxy| {
        let (oid, saml, la, lb) = (
            proxy.url("/sso/OID/Get"),
            proxy.url("/sso/SAML/Get"),
            proxy.url(&format!("/sso/oid/links/{alice}")),
            proxy.url(&format!("/sso/saml/links/{bob}")),
        );
        async move {
            let (s, providers) = get(oid).await;
            assert_eq!(s, 200);
            assert_eq!(providers["corp"]["oidClientId"], "jellyfin", "{providers}");
            assert_ne!(providers["corp"]["oidSecret"], "s3cret", "secrets stay redacted");
            let (_, providers) = get(saml).await;
            assert_eq!(providers["adfs"]["samlClientId"], "jellyfin", "{providers}");
            let (_, links) = get(la).await;
            assert_eq!(links, json!({"corp": ["sub-alice"], "other": ["sub-alice-2"]}));
            let (_, links) = get(lb).await;
            assert_eq!(links, json!({"adfs": ["bob@corp"]}));
        }
    };
    check(&proxy).await;
    let data = proxy.dir.path().join("data");
    assert!(!data.join("state.json").exists(), "the old file is renamed");
    assert!(data.join("state.json.imported").exists());
    assert!(data.join("state.db").exists());

    // A link removed after the import stays removed across a restart (no second import).
    let r = http1_client()
        .delete(proxy.url(&format!("/sso/OID/Link/other/{alice}/sub-alice-2")))
        .header("authorization", format!("MediaBrowser Token=\"{KEY}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dir = proxy.stop_keep_dir().await;
    let proxy = TestProxy::start_on(TestProxy::reserve(), dir, &yaml).await;
    let (_, links) = get(proxy.url(&format!("/sso/oid/links/{alice}"))).await;
    assert_eq!(links, json!({"corp": ["sub-alice"]}));
}

fn run_binary(dir: &std::path::Path, jellyfin: &str) -> std::process::Output {
    let yaml = format!("listen: 127.0.0.1:{}\nstate_dir: data\njellyfin:\n  url: {jellyfin}\n", support::free_port());
    std::fs::write(dir.join("proxy.yaml"), yaml).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy")).arg("--config").arg(dir.join("proxy.yaml")).output().unwrap()
}

#[tokio::test]
async fn a_broken_database_or_state_file_refuses_to_start_naming_the_file() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let junk = vec![0x5au8; 16 * 1024];
    std::fs::write(data.join("state.db"), &junk).unwrap();
    let out = run_binary(dir.path(), &jf.url());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&data.join("state.db").display().to_string()), "names the file: {stderr}");
    assert_eq!(std::fs::read(data.join("state.db")).unwrap(), junk, "never replaced by an empty database");

    std::fs::remove_file(data.join("state.db")).unwrap();
    std::fs::write(data.join("state.json"), r#"{"version": 2, "links": []}"#).unwrap();
    let out = run_binary(dir.path(), &jf.url());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a state file from a newer version is refused: {stderr}");
    assert!(stderr.contains("state.json"), "{stderr}");
    assert!(data.join("state.json").exists(), "and left where it is");
}
