//! Real Redis and PostgreSQL servers for the tests, from Debian's packages (tests/run.sh
//! installs them): each on a free loopback port with its data, socket and logs in a throwaway
//! directory, stopped by PID. PostgreSQL will not run as root, so when the tests do, it runs
//! as the user `jsp-test` (created with `useradd` the first time).
//!
//! A server also has a watchdog: a `sh` waiting on a pipe from this process that kills the
//! server by the PID in its pid file and removes the directory when the pipe closes, so a
//! test that panics, or a process-wide server ([`shared`]) that is never dropped, leaves
//! nothing running. This file is shared by the integration tests (`support::servers`) and the
//! state layer's unit tests (`#[path]` in src/state/mod.rs), so it uses only std and tempfile.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The user PostgreSQL runs as when the tests run as root.
const PG_USER: &str = "jsp-test";

/// A free loopback port (bound then released), also one nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (tests/run.sh installs redis-server and postgresql)"));
    assert!(out.status.success(), "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.lines().next()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    Command::new("kill").args(["-0", &pid.to_string()]).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

/// Send `signal` to `pid` and wait until it is gone.
fn kill_and_wait(pid: u32, signal: &str) {
    let _ = Command::new("kill").args(["-s", signal, &pid.to_string()]).stderr(Stdio::null()).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The watchdog: when this process closes the pipe, kill whatever PID `pid_file` names.
fn watchdog(pid_file: &Path, signal: &str, dir: &Path) -> Child {
    let script = format!(
        "read _; p=$(head -n1 '{pid}' 2>/dev/null); [ -n \"$p\" ] && kill -s {signal} \"$p\" 2>/dev/null; while [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; do sleep 0.05; done; rm -rf '{dir}'",
        pid = pid_file.display(),
        dir = dir.display()
    );
    Command::new("sh").args(["-c", &script]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

fn end_watchdog(w: &mut Option<Child>) {
    if let Some(mut w) = w.take() {
        if let Some(mut stdin) = w.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = w.wait();
    }
}

/// A redis-server of its own.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    watchdog: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::Builder::new().prefix("jsp-redis-").tempdir().unwrap().keep();
        let mut r = Redis { port: free_port(), dir: dir.clone(), watchdog: None };
        r.watchdog = Some(watchdog(&r.pid_file(), "KILL", &dir));
        r.resume();
        r
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server at once (SIGKILL), as a crash would.
    pub fn kill(&self) {
        if let Some(pid) = read_pid(&self.pid_file()) {
            kill_and_wait(pid, "KILL");
        }
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Start (again) on the same port, empty.
    pub fn resume(&self) {
        run(Command::new("redis-server").args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--pidfile",
            &self.pid_file().display().to_string(),
            "--logfile",
            &self.dir.join("redis.log").display().to_string(),
            "--dir",
            &self.dir.display().to_string(),
        ]));
        wait_for_port(self.port, "redis-server");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        end_watchdog(&mut self.watchdog);
    }
}

/// A PostgreSQL cluster of its own (initdb), with trust authentication on loopback.
pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    watchdog: Option<Child>,
}

/// A PostgreSQL program: Debian keeps them in /usr/lib/postgresql/<version>/bin.
fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    versions.sort();
    versions.into_iter().rev().map(|v| v.join("bin").join(name)).find(|p| p.exists()).unwrap_or_else(|| PathBuf::from(name))
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Create the PostgreSQL user if missing (tests running as root only).
fn ensure_pg_user() {
    let exists = || Command::new("id").arg(PG_USER).stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    if !exists() {
        // Two test processes may race to create it: a failure is fine if the user exists.
        let _ = Command::new("useradd").args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER]).status();
        assert!(exists(), "cannot create the user {PG_USER} for PostgreSQL");
    }
}

/// `program` as the PostgreSQL user (this user when not root).
fn as_pg_user(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new().prefix("jsp-pg-").tempdir().unwrap().keep();
        let pg = Postgres { port: free_port(), dir: dir.clone(), watchdog: None };
        std::fs::create_dir(dir.join("sock")).unwrap();
        if running_as_root() {
            ensure_pg_user();
            run(Command::new("chown").args(["-R", PG_USER]).arg(&dir));
        }
        run(as_pg_user(&pg_bin("initdb")).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"]).arg(dir.join("data")));
        let mut pg = pg;
        pg.watchdog = Some(watchdog(&dir.join("data/postmaster.pid"), "QUIT", &dir));
        pg.resume();
        pg
    }

    /// Start (again) on the same data and port; waits until it accepts connections.
    pub fn resume(&self) {
        let opts = format!("-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on", self.port, self.dir.join("sock").display());
        run(as_pg_user(&pg_bin("pg_ctl")).arg("-D").arg(self.dir.join("data")).arg("-l").arg(self.dir.join("pg.log")).args(["-o", &opts, "-w", "start"]));
        wait_for_port(self.port, "postgres");
    }

    /// Stop the server by PID: `SIGINT` (fast shutdown) or `SIGQUIT` (immediate, like a crash:
    /// recovery replays the WAL on the next start).
    pub fn stop(&self, signal: &str) {
        if let Some(pid) = read_pid(&self.dir.join("data/postmaster.pid")) {
            kill_and_wait(pid, signal);
        }
    }

    /// A new, empty database; returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        run(Command::new("psql").args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-q", "-c"]).arg(format!("CREATE DATABASE \"{name}\"")));
        self.url(name)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop("QUIT");
        end_watchdog(&mut self.watchdog);
    }
}

/// One Redis and one PostgreSQL for the whole test process, started on first use and
/// stopped by their watchdogs when the process exits.
pub fn shared() -> &'static (Redis, Postgres) {
    static SHARED: OnceLock<(Redis, Postgres)> = OnceLock::new();
    SHARED.get_or_init(|| (Redis::start(), Postgres::start()))
}

/// A fresh database and Redis key prefix on the [`shared`] servers: (postgres URL, redis URL,
/// prefix), so tests running at once never see each other's state.
pub fn shared_fresh() -> (String, String, String) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let (redis, pg) = shared();
    let name = format!("jsp_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    (pg.create_db(&name), redis.url(), format!("{name}:"))
}
