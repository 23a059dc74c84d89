//! What operators install: the systemd unit passes `systemd-analyze verify` with the built
//! binary, the unit keeps its hardening, and `--version` names the build's commit.

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/jellyfin-sso-proxy.service")).unwrap();
    for needed in ["DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=jellyfin-sso-proxy", "NoNewPrivileges=yes", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"] {
        assert!(unit.lines().any(|l| l.trim() == needed), "the unit lost `{needed}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jellyfin-sso-proxy.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/jellyfin-sso-proxy", env!("CARGO_BIN_EXE_jellyfin-sso-proxy"))).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze (tests/run.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {stderr}");
    assert!(!stderr.contains(path.to_str().unwrap()), "warnings about the unit: {stderr}");
}

#[test]
fn version_names_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy")).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    let commit = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output().ok().filter(|o| o.status.success());
    match commit {
        Some(c) => assert!(text.contains(String::from_utf8_lossy(&c.stdout).trim()), "{text}"),
        None => assert!(text.contains("commit unknown"), "{text}"),
    }
}

#[test]
fn the_container_image_runs_unprivileged_with_one_volume_and_a_health_check() {
    let d = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(d.lines().any(|l| l.starts_with("USER ") && !l.contains("root")), "non-root user");
    assert_eq!(d.lines().filter(|l| l.starts_with("VOLUME")).count(), 1);
    assert!(d.contains("HEALTHCHECK") && d.contains("/sso/health"));
    assert!(d.matches("FROM ").count() >= 2, "multi-stage");
}
