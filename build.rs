//! Build script: records the git commit the binary was built from, for `--version`
//! (`BUILD_GIT_COMMIT`; "unknown" outside a git checkout, e.g. from a source archive).
//!
//! The files watched for a new commit are the ones git names (`git rev-parse --git-path`), so
//! a linked worktree, whose `.git` is a file, does not rebuild on every `cargo` run.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    if commit != "unknown" {
        for path in ["HEAD", "refs/heads", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]).filter(|p| std::path::Path::new(p).exists()) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
}
