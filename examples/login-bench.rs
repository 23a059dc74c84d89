//! Benchmark of the proxy's own cost of an OIDC login (start → provider → redirect → Auth),
//! with the identity provider and the Jellyfin double on loopback in this process and the
//! proxy (release build) as a separate process, so its CPU time can be read from /proc.
//!
//! ```sh
//! cargo build --release && cargo run --release --example login-bench -- --logins 2000
//! ```
//! Reports logins per second, proxy CPU per login, the proxy's memory with 1,000 pending
//! logins, proxy CPU per durable write, and the median time of a forwarded request with and
//! without a session cookie (interleaved, median and p99). `PROXY_BIN=path` measures another
//! build with the same client. `--shared` keeps the proxy's state in Redis + PostgreSQL (real
//! servers started on loopback, tests/support/servers.rs) instead of memory + SQLite.
//! `--perf FILE` records the proxy with `perf record -g` during the login phase.
//! `--app-logins N` adds issue #11's numbers: proxy CPU per app-password login, and the
//! latency a forwarded `POST /Users/AuthenticateByName` (a Jellyfin password) adds over the
//! plain forwarding path. Results are in docs/benchmarks.md.

#[path = "../tests/support/hostile_op.rs"]
mod hostile_op;
#[path = "../tests/support/servers.rs"]
mod servers;

use std::time::Instant;

use clap::Parser;
use hostile_op::{Forgery, HostileOp};
use jellyfin_double::{DoubleOptions, JellyfinDouble};

#[derive(Parser)]
struct Args {
    /// Completed logins to measure
    #[arg(long, default_value_t = 2000)]
    logins: usize,
    /// Logins in flight at once
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// State in Redis + PostgreSQL instead of memory + SQLite
    #[arg(long)]
    shared: bool,
    /// Forwarded requests timed with and without a session cookie
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Durable writes to measure (admin API `Add`: one stored provider each, the same kind of
    /// write as an account link)
    #[arg(long, default_value_t = 500)]
    writes: usize,
    /// Record the proxy with `perf record -g` during the login phase, into this file
    #[arg(long)]
    perf: Option<std::path::PathBuf>,
    /// App-password logins to measure, then as many interleaved rounds of forwarded password
    /// logins against plain forwarded requests (0: skip; the provider then has no
    /// `appPasswords`, so older builds read the same configuration)
    #[arg(long, default_value_t = 0)]
    app_logins: usize,
}

/// Each login comes from its own address (through a trusted proxy), as real users do, so the
/// per-client limit on starting logins does not apply.
fn client_ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status.lines().find(|l| l.starts_with("VmRSS")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    (ticks / 100.0, rss)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().danger_accept_invalid_certs(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// One full login; the session cookie it ends with.
async fn one_login(c: &reqwest::Client, base: &str, i: usize) -> String {
    let r = c.get(format!("{base}/sso/OID/start/bench")).header("x-forwarded-for", client_ip(i)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let idp = r.headers()["location"].to_str().unwrap().to_string();
    let r = c.get(&idp).send().await.unwrap();
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    let page = c.get(&callback).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    let start = page.find("id=\"jsp-data\">").unwrap() + 14;
    let data: serde_json::Value = serde_json::from_str(&page[start..start + page[start..].find("</script>").unwrap()]).unwrap();
    let body = serde_json::json!({"deviceId": format!("bench-{i}"), "deviceName": "Bench", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let r = c.post(format!("{base}{}", data["authUrl"].as_str().unwrap())).header("cookie", &cookie).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).find(|v| v.starts_with("__Host-jsp-session="));
    session.expect("a session cookie").split(';').next().unwrap().to_string()
}

/// Wall time of one request in ms; the status must be `want`.
async fn time_one(r: reqwest::RequestBuilder, want: u16) -> f64 {
    let t = Instant::now();
    let resp = r.send().await.unwrap();
    assert_eq!(resp.status(), want);
    resp.bytes().await.unwrap();
    t.elapsed().as_secs_f64() * 1000.0
}

/// (median, p99) of `times` in ms.
fn median_p99(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times[times.len() / 2], times[(times.len() * 99 / 100).min(times.len() - 1)])
}

/// Records the proxy with `perf record -g` until dropped.
struct Perf(std::process::Child);

impl Perf {
    fn attach(pid: u32, out: &std::path::Path) -> Perf {
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "1999", "-g", "-p", &pid.to_string(), "-o"])
            .arg(out)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("perf");
        std::thread::sleep(std::time::Duration::from_millis(500));
        Perf(child)
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// Issue #11: proxy CPU per app-password login, then the latency a forwarded (Jellyfin
/// password) `AuthenticateByName` adds over the plain forwarding path: `n` rounds, each the
/// same request body to AuthenticateByName and to `/echo/headers` (read whole, then answered), through the proxy and
/// straight to the double, in rotating order.
async fn app_password_bench(c: &reqwest::Client, base: &str, jf: &JellyfinDouble, pid: u32, session: &str, args: &Args) {
    let r = c.post(format!("{base}/sso/app-passwords")).header("cookie", session).json(&serde_json::json!({"name": "bench"})).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let password = r.json::<serde_json::Value>().await.unwrap()["password"].as_str().unwrap().to_string();
    let device = |i: usize| format!("MediaBrowser Client=\"Bench\", Device=\"Bench\", DeviceId=\"app-{i}\", Version=\"1.0\"");
    let login = |c: &reqwest::Client, i: usize, password: &str| {
        c.post(format!("{base}/Users/AuthenticateByName"))
            .header("authorization", device(i))
            .header("x-forwarded-for", client_ip(500_000 + i))
            .json(&serde_json::json!({"Username": "forged-admin", "Pw": password}))
    };
    for i in 0..20 {
        time_one(login(c, i, &password), 200).await;
    }
    let (cpu0, _) = proc_stat(pid);
    let t0 = Instant::now();
    let per = args.app_logins / args.concurrency;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (c, password) = (c.clone(), password.clone());
            let reqs: Vec<_> = (0..per).map(|i| login(&c, 100 + w * per + i, &password)).collect();
            tokio::spawn(async move {
                for r in reqs {
                    time_one(r, 200).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (wall, (cpu1, _)) = (t0.elapsed().as_secs_f64(), proc_stat(pid));
    let n = (per * args.concurrency) as f64;
    println!("app-password logins: {n} in {wall:.2} s = {:.0}/s, proxy CPU {:.3} ms per login", n / wall, (cpu1 - cpu0) * 1000.0 / n);

    // Forwarded password logins against plain forwarding, the same body and headers.
    jf.add_user("pw-user", "pw-secret", false);
    let body = serde_json::json!({"Username": "pw-user", "Pw": "pw-secret"});
    let clients = [client(), client(), client(), client()];
    let urls = [format!("{base}/Users/AuthenticateByName"), format!("{base}/echo/headers"), format!("{}/Users/AuthenticateByName", jf.url()), format!("{}/echo/headers", jf.url())];
    let mut times: [Vec<f64>; 4] = Default::default();
    for round in 0..(args.app_logins + 100) {
        for k in 0..4 {
            let k = (k + round) % 4;
            let r = clients[k].post(&urls[k]).header("authorization", device(1)).header("x-forwarded-for", "192.0.2.7").json(&body);
            let t = time_one(r, 200).await;
            if round >= 100 {
                times[k].push(t);
            }
        }
    }
    let [auth, plain, auth_direct, plain_direct] = times.map(|mut t| median_p99(&mut t));
    println!(
        "forwarded AuthenticateByName (Jellyfin password): median {:.3} ms, p99 {:.3} ms; plain forwarded POST /echo/headers: median {:.3} ms, p99 {:.3} ms",
        auth.0, auth.1, plain.0, plain.1
    );
    println!(
        "  straight to the double: AuthenticateByName median {:.3} / p99 {:.3} ms, /echo/headers median {:.3} / p99 {:.3} ms",
        auth_direct.0, auth_direct.1, plain_direct.0, plain_direct.1
    );
    println!(
        "  added by the password interception: median {:+.3} ms (through the proxy {:+.3} ms, less the double's own difference {:+.3} ms), p99 {:+.3} ms",
        (auth.0 - plain.0) - (auth_direct.0 - plain_direct.0),
        auth.0 - plain.0,
        auth_direct.0 - plain_direct.0,
        auth.1 - plain.1
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(Forgery::Honest, "jellyfin", "bench-user").await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let yaml = format!(
        "listen: 127.0.0.1:{port}\npublic_url: https://127.0.0.1:{port}\ntrusted_proxies: [127.0.0.1/32]\nlog:\n  level: warn\njellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  oid:\n    bench:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n      doNotLoadProfile: true\n{}",
        jf.url(),
        op.issuer,
        if args.app_logins > 0 { "      appPasswords: true\n" } else { "" }
    );
    let servers = args.shared.then(|| (servers::Redis::start(), servers::Postgres::start()));
    let yaml = match &servers {
        Some((redis, pg)) => format!(
            "{yaml}state:\n  durable: postgres\n  ephemeral: redis\n  postgres:\n    url: {}\n  redis:\n    url: {}\n",
            pg.create_db("bench"),
            redis.url()
        ),
        None => yaml,
    };
    std::fs::write(dir.path().join("proxy.yaml"), yaml).unwrap();
    let bin = std::env::var("PROXY_BIN").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/jellyfin-sso-proxy").to_string());
    let mut child = std::process::Command::new(bin).arg("--config").arg(dir.path().join("proxy.yaml")).stderr(std::process::Stdio::null()).spawn().expect("build the release binary first");
    let base = format!("https://127.0.0.1:{port}");
    let c = client();
    for _ in 0..100 {
        if c.get(format!("{base}/sso/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Warm up (discovery, pools).
    for i in 0..20 {
        one_login(&c, &base, i).await;
    }
    let perf = args.perf.as_deref().map(|out| Perf::attach(child.id(), out));
    let (cpu0, _) = proc_stat(child.id());
    let t0 = Instant::now();
    let per = args.logins / args.concurrency;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (c, base) = (c.clone(), base.clone());
            tokio::spawn(async move {
                let mut cookie = String::new();
                for i in 0..per {
                    cookie = one_login(&c, &base, 100 + w * per + i).await;
                }
                cookie
            })
        })
        .collect();
    let mut cookie = String::new();
    for t in tasks {
        cookie = t.await.unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, rss_idle) = proc_stat(child.id());
    drop(perf);
    let n = per * args.concurrency;
    println!("logins: {n} in {wall:.2} s = {:.0} logins/s (concurrency {})", n as f64 / wall, args.concurrency);
    println!("proxy CPU: {:.3} ms per login ({:.2} s total)", (cpu1 - cpu0) * 1000.0 / n as f64, cpu1 - cpu0);

    // Durable writes: providers added through the admin API, one after another.
    let provider = serde_json::json!({"oidEndpoint": "https://idp.example.com", "oidClientId": "x", "oidSecret": "s", "enabled": true});
    let (cpu0, _) = proc_stat(child.id());
    let t0 = Instant::now();
    for i in 0..args.writes {
        let r = c.post(format!("{base}/sso/OID/Add/w{i}")).header("authorization", "MediaBrowser Token=\"test-api-key\"").json(&provider).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let (wall, (cpu1, _)) = (t0.elapsed().as_secs_f64(), proc_stat(child.id()));
    if args.writes > 0 {
        let n = args.writes as f64;
        println!("durable writes: {} in {wall:.2} s = {:.2} ms each, proxy CPU {:.3} ms per write", args.writes, wall * 1000.0 / n, (cpu1 - cpu0) * 1000.0 / n);
    }

    // Memory with 1,000 pending logins (started, never finished).
    for i in 0..1000 {
        let r = c.get(format!("{base}/sso/OID/start/bench")).header("x-forwarded-for", client_ip(900_000 + i)).send().await.unwrap();
        assert_eq!(r.status(), 302);
    }
    let (_, rss_pending) = proc_stat(child.id());
    println!("proxy RSS: {} KiB after the logins, {} KiB with 1,000 pending logins (+{} KiB)", rss_idle, rss_pending, rss_pending as i64 - rss_idle as i64);
    // Forwarded GETs without and with a session cookie, interleaved, each on its own connection.
    let (c1, c2) = (client(), client());
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    for i in 0..(args.requests + 200) {
        let a = time_one(c1.get(format!("{base}/System/Info/Public")), 200);
        let b = time_one(c2.get(format!("{base}/System/Info/Public")).header("cookie", &cookie), 200);
        let (a, b) = if i % 2 == 0 { (a.await, b.await) } else { let b = b.await; (a.await, b) };
        if i >= 200 {
            plain.push(a);
            with.push(b);
        }
    }
    let ((plain, plain99), (with, with99)) = (median_p99(&mut plain), median_p99(&mut with));
    println!("forwarded GET: median {plain:.3} ms without a session cookie, {with:.3} ms with one (+{:.3} ms); p99 {plain99:.3} → {with99:.3} ms", with - plain);
    if args.app_logins > 0 {
        app_password_bench(&c, &base, &jf, child.id(), &cookie, &args).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
