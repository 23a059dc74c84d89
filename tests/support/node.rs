//! Running the tests' node scripts (the real IdPs, the Jellyfin SDK, the Chromium drivers):
//! installing their npm packages once, starting a server script and waiting for its ready
//! line, or running a script to the end and reading its one result line.
//!
//! Node itself, before it runs a line of a script, was seen to hang now and then on these
//! machines (about one start in a few hundred, in bursts: no output, no exit). A server script
//! is therefore started again when it is not ready within [`READY_WITHIN`], with what the
//! hung process was doing written to stderr; a script run to the end is never retried (it
//! may have acted on the proxy), but one that hangs fails the test with the same report
//! instead of hanging the suite.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a server script gets to print its ready line, per attempt.
pub const READY_WITHIN: Duration = Duration::from_secs(20);
const ATTEMPTS: u32 = 3;
/// How long a script run to the end (a browser login, an SDK session) may take.
pub const RUN_WITHIN: Duration = Duration::from_secs(180);

/// `tests/idp`, the scripts that need oidc-provider, samlify, playwright-core, @jellyfin/sdk.
pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// `tests/webclient`, the scripts that render as jellyfin-web does (markdown-it, dompurify).
pub fn webclient_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webclient")
}

/// Install the npm packages of `dir` once per test process when `marker` (a package) is
/// missing (tests/run.sh normally did it already); `flock` keeps parallel test binaries from
/// installing at the same time.
fn ensure_installed(dir: &Path, markers: &[&str]) {
    if markers.iter().all(|m| dir.join("node_modules").join(m).exists()) {
        return;
    }
    let check = markers.iter().map(|m| format!("[ -d node_modules/{m} ]")).collect::<Vec<_>>().join(" && ");
    let status = std::process::Command::new("flock")
        .arg(dir.join(".npm-install.lock"))
        .args(["sh", "-c", &format!("{check} || npm ci --no-audit --no-fund --loglevel=error")])
        .current_dir(dir)
        .status()
        .expect("flock and npm must be installed (tests/run.sh installs them)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

pub fn ensure_node_modules() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| ensure_installed(&idp_dir(), &["oidc-provider", "playwright-core", "samlify", "@jellyfin/sdk"]));
}

pub fn ensure_webclient_modules() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| ensure_installed(&webclient_dir(), &["markdown-it", "dompurify"]));
}

fn command(script: &Path, envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(script).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// What each thread of `pid` is doing (name, state, kernel wait channel, system call), and
/// the machine's load: the report for a script that hung.
pub fn what_it_is_doing(pid: Option<u32>) -> String {
    let Some(pid) = pid else { return "it has exited".into() };
    let mut out = format!("pid {pid}, load {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default());
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out + "no /proc entry" };
    for t in tasks.flatten() {
        let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
        let stat = read("stat");
        let state = stat.rsplit(") ").next().and_then(|s| s.split(' ').next()).unwrap_or("?").to_string();
        out += &format!("  {} {state} wchan={} syscall={}\n", read("comm").trim(), read("wchan").trim(), read("syscall").trim());
    }
    out
}

/// A started script: its process, the JSON of its ready line, and the rest of its stdout.
pub struct Started {
    pub child: Child,
    pub ready: serde_json::Value,
    pub lines: Lines<BufReader<ChildStdout>>,
}

/// Start the server script `tests/idp/{script}` with `envs`, and wait for the line
/// `{ready} {json}` it prints once it listens; returns the child and that JSON. What the
/// script prints afterwards is drained so it never blocks on a full pipe.
pub async fn start(script: &str, envs: &[(&str, String)], ready: &str) -> (Child, serde_json::Value) {
    let Started { child, ready, mut lines } = start_with(script, envs, ready, false).await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, ready)
}

/// [`start`] for a script driven through its stdin (left piped in `child`), whose further
/// stdout lines are the caller's.
pub async fn start_interactive(script: &str, envs: &[(&str, String)], ready: &str) -> Started {
    start_with(script, envs, ready, true).await
}

async fn start_with(script: &str, envs: &[(&str, String)], ready: &str, stdin: bool) -> Started {
    ensure_node_modules();
    let prefix = format!("{ready} ");
    for attempt in 1..=ATTEMPTS {
        let mut cmd = command(&idp_dir().join(script), envs);
        if stdin {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("node must be installed (tests/run.sh installs it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let found = tokio::time::timeout(READY_WITHIN, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(json) = line.strip_prefix(&prefix) {
                    return Some(serde_json::from_str::<serde_json::Value>(json).unwrap());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(ready)) => return Started { child, ready, lines },
            Ok(None) => panic!("{script} exited before it was ready: {:?}", child.wait().await),
            Err(_) => {
                let report = what_it_is_doing(child.id());
                assert!(attempt < ATTEMPTS, "{script} was not ready within {READY_WITHIN:?}, {ATTEMPTS} times; the last: {report}");
                eprintln!("{script} was not ready within {READY_WITHIN:?} (attempt {attempt}), starting it again; it was: {report}");
            }
        }
    }
    unreachable!()
}

/// Run `script` (under [`idp_dir`] or [`webclient_dir`]) to the end with `envs` (and `stdin`, when given), and return the JSON of its
/// line `{result} {json}`; panics with the script's output when there is none, and with
/// [`what_it_is_doing`] when it does not end within [`RUN_WITHIN`].
pub async fn run(script: &Path, envs: &[(&str, String)], stdin: Option<String>, result: &str) -> serde_json::Value {
    if script.starts_with(webclient_dir()) {
        ensure_webclient_modules();
    } else {
        ensure_node_modules();
    }
    let mut cmd = command(script, envs);
    cmd.stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("node must be installed (tests/run.sh installs it)");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stdout = tokio::spawn(async move { let mut b = Vec::new(); let _ = so.read_to_end(&mut b).await; b });
    let stderr = tokio::spawn(async move { let mut b = Vec::new(); let _ = se.read_to_end(&mut b).await; b });
    let status = match tokio::time::timeout(RUN_WITHIN, child.wait()).await {
        Ok(status) => status.expect("node"),
        Err(_) => {
            let report = what_it_is_doing(child.id());
            let _ = child.kill().await;
            panic!("{} did not end within {RUN_WITHIN:?}: {report}", script.display())
        }
    };
    let out = std::process::Output { status, stdout: stdout.await.unwrap(), stderr: stderr.await.unwrap() };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{result} ");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{} failed ({}): {stdout}\n{}", script.display(), out.status, String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(line).unwrap()
}
