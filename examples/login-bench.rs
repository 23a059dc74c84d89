//! Benchmark of the proxy's own cost of an OIDC login (start → provider → redirect → Auth),
//! with the identity provider and the Jellyfin double on loopback in this process and the
//! proxy (release build) as a separate process, so its CPU time can be read from /proc.
//!
//! ```sh
//! cargo build --release && cargo run --release --example login-bench -- --logins 2000
//! ```
//! Reports logins per second, proxy CPU per login, the proxy's memory with 1,000 pending
//! logins, proxy CPU per durable write, and the median time of a forwarded request with and
//! without a session cookie. `PROXY_BIN=path` measures another build with the same client.
//! `--shared` keeps the proxy's state in Redis + PostgreSQL (real servers started on loopback,
//! tests/support/servers.rs) instead of memory + SQLite. Results are in docs/benchmarks.md.

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

/// Median time of `n` sequential `GET /System/Info/Public`, with `cookie` if given.
async fn median_request(c: &reqwest::Client, base: &str, cookie: Option<&str>, n: usize) -> f64 {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = c.get(format!("{base}/System/Info/Public"));
        if let Some(k) = cookie {
            r = r.header("cookie", k);
        }
        let t = Instant::now();
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[n / 2]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(Forgery::Honest, "jellyfin", "bench-user").await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let yaml = format!(
        "listen: 127.0.0.1:{port}\npublic_url: https://127.0.0.1:{port}\ntrusted_proxies: [127.0.0.1/32]\nlog:\n  level: warn\njellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  oid:\n    bench:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n      doNotLoadProfile: true\n",
        jf.url(),
        op.issuer
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
    let (c1, c2) = (client(), client());
    median_request(&c1, &base, None, 200).await;
    median_request(&c2, &base, Some(&cookie), 200).await;
    let plain = median_request(&c1, &base, None, args.requests).await;
    let with = median_request(&c2, &base, Some(&cookie), args.requests).await;
    println!("forwarded GET median: {plain:.3} ms without a session cookie, {with:.3} ms with one (+{:.3} ms)", with - plain);
    let _ = child.kill();
    let _ = child.wait();
}
