//! `check-config` and start-up refusals, through the real binary.

use std::process::Command;

fn check(dir: &std::path::Path, yaml: &str, env: &[(&str, &str)]) -> (bool, String) {
    std::fs::write(dir.join("proxy.yaml"), yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy"))
        .arg("check-config")
        .arg("--config")
        .arg(dir.join("proxy.yaml"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn several_mistakes_are_all_reported_with_lines() {
    let d = tempfile::tempdir().unwrap();
    let yaml = "listen: 0.0.0.0:99999\npublic_url: ftp://x\njellyfin:\n  url: not a url\n  apikey: abc\nlimits:\n  max_connections: lots\n";
    let (ok, out) = check(d.path(), yaml, &[]);
    assert!(!ok);
    assert!(out.contains("5 problem(s)"), "{out}");
    for needle in [
        "listen: not an address",
        "proxy.yaml line 1",
        "public_url: must start with https://",
        "proxy.yaml line 2",
        "jellyfin.url: ",
        "proxy.yaml line 4",
        "jellyfin.apikey: unknown key",
        "proxy.yaml line 5",
        "limits.max_connections",
        "proxy.yaml line 7",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
}

#[test]
fn unknown_key_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let (ok, out) = check(d.path(), "tls:\n  cert: certs/cert.pem\n  keyfile: certs/key.pem\n", &[]);
    assert!(!ok);
    assert!(out.contains("tls.keyfile: unknown key") && out.contains("line 3"), "{out}");
}

#[test]
fn present_cert_with_missing_key_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("certs")).unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(d.path().join("certs/cert.pem"), pair.cert.pem()).unwrap();
    let (ok, out) = check(d.path(), "{}\n", &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("key.pem"), "{out}");
    // And running refuses to start rather than generating over it.
    let out = Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy")).arg("--config").arg(d.path().join("proxy.yaml")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn environment_overrides_the_file_and_is_named_in_problems() {
    let d = tempfile::tempdir().unwrap();
    let (ok, out) = check(d.path(), "jellyfin:\n  url: http://127.0.0.1:8096\n", &[("JSP_JELLYFIN__URL", "nope")]);
    assert!(!ok);
    assert!(out.contains("jellyfin.url") && out.contains("environment variable JSP_JELLYFIN__URL"), "{out}");
    let (ok, out) = check(d.path(), "jellyfin:\n  url: http://127.0.0.1:8096\n", &[("JSP_JELLYFIN__URL", "http://jf.internal:8096")]);
    assert!(ok, "{out}");
}

#[test]
fn the_shipped_proxy_yaml_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy"))
        .args(["check-config", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.yaml")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let d = tempfile::tempdir().unwrap();
    let (ok, out) = check(d.path(), "listen: 0.0.0.0:8443\ntls:\n  cert: [unclosed\n", &[]);
    assert!(!ok);
    assert!(out.contains("line"), "{out}");
}

/// Every `yaml` block of docs/providers/*.md is a valid proxy configuration (secret files are
/// provided as the examples name them, in a temporary directory).
#[test]
fn provider_docs_examples_are_valid() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/providers");
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for block in text.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().unwrap();
            let d = tempfile::tempdir().unwrap();
            // Point /run/secrets/... at files in the temp dir.
            let mut yaml = yaml.to_string();
            for line in yaml.clone().lines() {
                if let Some(p) = line.split("oidSecretFile:").nth(1) {
                    let p = p.split('#').next().unwrap().trim();
                    let name = p.rsplit('/').next().unwrap();
                    std::fs::write(d.path().join(name), "s3cret\n").unwrap();
                    yaml = yaml.replace(p, name);
                }
                if let Some(p) = line.split("samlCertificateFile:").nth(1) {
                    let cert = rcgen::generate_simple_self_signed(vec!["idp.example".into()]).unwrap().cert.pem();
                    std::fs::write(d.path().join(p.trim()), cert).unwrap();
                }
            }
            let (ok, out) = check(d.path(), &yaml, &[]);
            assert!(ok, "{}: {out}\n{yaml}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 4, "found only {checked} examples");
}
