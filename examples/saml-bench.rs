//! Benchmark of the SAML ACS against the OIDC callback, in one run: the proxy's CPU per
//! response (and responses per second), phase by phase, for both protocols' logins.
//!
//! ```sh
//! cargo build --release --bin jellyfin-sso-proxy --example saml-bench
//! target/release/examples/saml-bench --logins 400
//! ```
//! The proxy (release build, `PROXY_BIN=path` for another) runs as a separate process with
//! one SAML and one OIDC provider; the Jellyfin double and the OpenID Provider run in this
//! process. Each protocol's logins are run phase by phase, so each phase's proxy CPU
//! (utime+stime from `/proc/PID/stat`) can be read on its own: all starts, then all answers
//! from the identity provider (OIDC: the callback with its code exchange and ID token check;
//! SAML: the ACS POST with its signature check), then all completion `Auth` calls. The SAML
//! responses are signed beforehand by `xmlsec1` (tests/support/saml_signer.rs, the
//! independent signer the tests use), outside the timed phases, each answering its own
//! AuthnRequest; the assertion is signed (RSA-2048, SHA-256) as most IdPs do by default.
//! Results are in docs/benchmarks.md.

#[path = "../tests/support/hostile_op.rs"]
mod hostile_op;
#[path = "../tests/support/saml_signer.rs"]
mod saml_signer;

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use hostile_op::{Forgery, HostileOp};
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use saml_signer::{authn_request_of, encode, xml_attr, KeyPair, ResponseSpec, SignOn, Signer};

const IDP: &str = "https://idp.example/realms/media";
const SP: &str = "jellyfin-proxy";

#[derive(Parser)]
struct Args {
    /// Logins of each protocol to measure
    #[arg(long, default_value_t = 400)]
    logins: usize,
    /// Requests in flight at once
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Record the proxy with `perf record -g` during the SAML ACS phase, into this file
    #[arg(long)]
    perf: Option<std::path::PathBuf>,
}

fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().danger_accept_invalid_certs(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A login between two phases: its flow cookie and what comes next.
#[derive(Clone, Default)]
struct Login {
    cookie: String,
    /// OIDC: the provider's URL, then the callback. SAML: RelayState.
    next: String,
    /// SAML: the signed response, base64.
    response: String,
    /// The completion page's data (`handle`, `authUrl`).
    completion: Option<serde_json::Value>,
}

/// Run `f` over `items`, `concurrency` at a time; returns (wall seconds, proxy CPU seconds).
async fn phase<F, Fut>(pid: u32, items: &mut [Login], concurrency: usize, f: F) -> (f64, f64)
where
    F: Fn(usize, Login) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Login> + Send + 'static,
{
    let f = Arc::new(f);
    let (cpu0, t0) = (cpu(pid), Instant::now());
    let chunk = items.len().div_ceil(concurrency);
    let tasks: Vec<_> = items
        .chunks(chunk)
        .enumerate()
        .map(|(w, part)| {
            let (f, part) = (f.clone(), part.to_vec());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(part.len());
                for (i, l) in part.into_iter().enumerate() {
                    out.push(f(w * chunk + i, l).await);
                }
                out
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.extend(t.await.unwrap());
    }
    let (wall, used) = (t0.elapsed().as_secs_f64(), cpu(pid) - cpu0);
    items.clone_from_slice(&done);
    (wall, used)
}

fn flow_cookie(r: &reqwest::Response) -> String {
    let v = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).find(|v| v.starts_with("__Host-jsp-flow=")).expect("a flow cookie");
    v.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
}

fn completion_of(page: &str) -> serde_json::Value {
    let start = page.find("id=\"jsp-data\">").expect("the completion page") + 14;
    serde_json::from_str(&page[start..start + page[start..].find("</script>").unwrap()]).unwrap()
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn report(name: &str, n: usize, (wall, used): (f64, f64)) -> f64 {
    let ms = used * 1000.0 / n as f64;
    println!("  {name:<42} {:>6.0}/s  proxy CPU {ms:.3} ms each", n as f64 / wall);
    ms
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(Forgery::Honest, "jellyfin", "bench-user").await;
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "idp");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("https://127.0.0.1:{port}");
    let yaml = format!(
        "listen: 127.0.0.1:{port}\npublic_url: {base}\ntrusted_proxies: [127.0.0.1/32]\nlog:\n  level: warn\njellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  oid:\n    bench:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n      doNotLoadProfile: true\n  saml:\n    bench:\n      samlEndpoint: {IDP}/protocol/saml\n      samlClientId: {SP}\n      samlIdpEntityId: {IDP}\n      samlCertificate:\n        - {}\n",
        jf.url(),
        op.issuer,
        key.cert_b64()
    );
    std::fs::write(dir.path().join("proxy.yaml"), yaml).unwrap();
    let bin = std::env::var("PROXY_BIN").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/jellyfin-sso-proxy").to_string());
    let mut child = std::process::Command::new(bin).arg("--config").arg(dir.path().join("proxy.yaml")).stderr(std::process::Stdio::null()).spawn().expect("build the release binary first");
    let pid = child.id();
    let c = client();
    for _ in 0..100 {
        if c.get(format!("{base}/sso/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let n = args.logins;
    let acs = format!("{base}/sso/SAML/post/bench");
    let auth = move |c: reqwest::Client, base: String, protocol: &'static str, dev: String| {
        move |_: usize, l: Login| {
            let (c, base, dev) = (c.clone(), base.clone(), dev.clone());
            async move {
                let data = l.completion.clone().unwrap();
                assert_eq!(data["authUrl"], format!("/sso/{protocol}/Auth/bench"));
                let body = serde_json::json!({"deviceId": format!("{dev}-{}", l.cookie), "deviceName": "Bench", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
                let r = c.post(format!("{base}{}", data["authUrl"].as_str().unwrap())).header("cookie", format!("__Host-jsp-flow={}", l.cookie)).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                l
            }
        }
    };

    // Both protocols twice: the first round warms up (discovery, pools, caches).
    let mut totals = Vec::new();
    for round in 0..2 {
        let m = if round == 0 { 20.max(args.concurrency) } else { n };
        let offset = round * 100_000;
        println!("{}", if round == 0 { "warm-up" } else { "measured" });

        // OIDC.
        let mut logins = vec![Login::default(); m];
        let (cc, b) = (c.clone(), base.clone());
        let start = phase(pid, &mut logins, args.concurrency, move |i, _| {
            let (c, b) = (cc.clone(), b.clone());
            async move {
                let r = c.get(format!("{b}/sso/OID/start/bench")).header("x-forwarded-for", ip(offset + i)).send().await.unwrap();
                assert_eq!(r.status(), 302);
                Login { cookie: flow_cookie(&r), next: r.headers()["location"].to_str().unwrap().into(), ..Default::default() }
            }
        })
        .await;
        let cc = c.clone();
        phase(pid, &mut logins, args.concurrency, move |_, mut l| {
            let c = cc.clone();
            async move {
                let r = c.get(&l.next).send().await.unwrap();
                l.next = r.headers()["location"].to_str().unwrap().into();
                l
            }
        })
        .await;
        let cc = c.clone();
        let callback = phase(pid, &mut logins, args.concurrency, move |_, mut l| {
            let c = cc.clone();
            async move {
                let page = c.get(&l.next).header("cookie", format!("__Host-jsp-flow={}", l.cookie)).send().await.unwrap().text().await.unwrap();
                l.completion = Some(completion_of(&page));
                l
            }
        })
        .await;
        let oidc_auth = phase(pid, &mut logins, args.concurrency, auth(c.clone(), base.clone(), "OID", format!("oidc-{round}"))).await;

        // SAML: starts, then the responses signed outside the timing, then the ACS.
        let mut logins = vec![Login::default(); m];
        let (cc, b) = (c.clone(), base.clone());
        let saml_start = phase(pid, &mut logins, args.concurrency, move |i, _| {
            let (c, b) = (cc.clone(), b.clone());
            async move {
                let r = c.get(format!("{b}/sso/SAML/start/bench")).header("x-forwarded-for", ip(offset + 50_000 + i)).send().await.unwrap();
                assert_eq!(r.status(), 302);
                let location = r.headers()["location"].to_str().unwrap().to_string();
                let request_id = xml_attr(&authn_request_of(&location), "ID").expect("AuthnRequest ID");
                let relay = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "RelayState").unwrap().1.into_owned();
                // `response` holds the request id until it is signed.
                Login { cookie: flow_cookie(&r), next: relay, response: request_id, completion: None }
            }
        })
        .await;
        let signer = Arc::new(Signer::new(dir.path()));
        let key = Arc::new(KeyPair { key: key.key.clone(), cert: key.cert.clone() });
        let signing: Vec<_> = logins
            .chunks(m.div_ceil(2))
            .map(|part| {
                let (part, signer, key, acs) = (part.to_vec(), signer.clone(), key.clone(), acs.clone());
                tokio::task::spawn_blocking(move || {
                    part.into_iter()
                        .map(|mut l| {
                            let spec = ResponseSpec::new(&l.response, &acs, IDP, SP, "bench-user")
                                .attribute("email", &["bench-user@example.com"])
                                .attribute("groups", &["media"]);
                            l.response = encode(&signer.signed_response(&spec, SignOn::Assertion, &key));
                            l
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut signed = Vec::new();
        for s in signing {
            signed.extend(s.await.unwrap());
        }
        logins = signed;
        let perf = (round == 1).then(|| args.perf.as_deref().map(|out| record(pid, out))).flatten();
        let (cc, a) = (c.clone(), acs.clone());
        let post = phase(pid, &mut logins, args.concurrency, move |_, mut l| {
            let (c, a) = (cc.clone(), a.clone());
            async move {
                let form = [("SAMLResponse", l.response.as_str()), ("RelayState", l.next.as_str())];
                let r = c.post(&a).header("cookie", format!("__Host-jsp-flow={0}; __Host-jsp-saml={0}", l.cookie)).form(&form).send().await.unwrap();
                assert_eq!(r.status(), 200);
                l.completion = Some(completion_of(&r.text().await.unwrap()));
                l
            }
        })
        .await;
        drop(perf);
        let saml_auth = phase(pid, &mut logins, args.concurrency, auth(c.clone(), base.clone(), "SAML", format!("saml-{round}"))).await;
        if round == 1 {
            println!("OIDC ({m} logins, {} in flight):", args.concurrency);
            let o = [report("start (302 to the provider)", m, start), report("callback (code exchange, ID token check)", m, callback), report("Auth (link, Quick Connect mint, record)", m, oidc_auth)];
            println!("SAML ({m} logins):");
            let s = [report("start (AuthnRequest, sealed tracker)", m, saml_start), report("ACS POST (signature check, replay id)", m, post), report("Auth (link, Quick Connect mint, record)", m, saml_auth)];
            totals = vec![o.iter().sum::<f64>(), s.iter().sum::<f64>(), o[1], s[1]];
        }
    }
    println!(
        "whole login: OIDC {:.3} ms, SAML {:.3} ms of proxy CPU ({:.2}×); ACS POST {:.3} ms against the OIDC callback {:.3} ms ({:.2}×)",
        totals[0],
        totals[1],
        totals[1] / totals[0],
        totals[3],
        totals[2],
        totals[3] / totals[2]
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `perf record -g` on the proxy until dropped.
struct Recording(std::process::Child);

fn record(pid: u32, out: &std::path::Path) -> Recording {
    let child = std::process::Command::new("perf")
        .args(["record", "-F", "1999", "-g", "-p", &pid.to_string(), "-o"])
        .arg(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("perf");
    std::thread::sleep(std::time::Duration::from_millis(500));
    Recording(child)
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}
