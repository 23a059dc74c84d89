//! An open-redirect corpus (over 500 payloads: protocol-relative, backslashes, encoded
//! slashes, userinfo, whitespace and control characters, unicode lookalikes, `javascript:`
//! and `data:`) thrown at every place the proxy builds a redirect: login starts and their
//! parameters, the SAML ACS RelayState, the plain-HTTP listener's path and Host, and
//! `X-Forwarded-Host` from untrusted and trusted peers. No answer may send the browser
//! anywhere but the proxy's own origin or the configured identity provider.

mod support;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::hostile_op::{Forgery, HostileOp};
use support::TestProxy;

const KEY: &str = "test-api-key";

fn corpus() -> Vec<String> {
    let hosts = ["evil.example", "evil.example:443", "127.0.0.1.evil.example", "evil。example", "ｅｖｉｌ.example"];
    let forms = [
        "//{h}", "///{h}", "////{h}", "/\\{h}", "\\\\{h}", "\\/{h}", "/\\/{h}", "https://{h}", "http://{h}", "https:{h}", "https:/{h}",
        "//{h}/%2F..", "/%2F%2F{h}", "%2F%2F{h}", "/%5C{h}", "%5C%5C{h}", "//{h}@127.0.0.1", "https://127.0.0.1@{h}", "//127.0.0.1%40{h}",
        "\t//{h}", " //{h}", "%09//{h}", "%0d%0aLocation:%20https://{h}", "\r\nLocation: https://{h}", "//{h}%00", "/.{h}", "//{h}#",
        "javascript:alert(1)//{h}", "JaVaScRiPt:alert(document.domain)//{h}", "java%0ascript:alert(1)//{h}", "data:text/html,<script>location='//{h}'</script>",
        "//%65vil.example/{h}", "https%3A%2F%2F{h}", "%2568ttps://{h}", "/%09/{h}", "/%2f/{h}", "https:\\\\{h}", "//{h}?x=/", "ftp://{h}",
    ];
    let mut out = Vec::new();
    for h in hosts {
        for f in forms {
            let p = f.replace("{h}", h);
            out.push(url_escape_once(&p));
            out.push(p.clone());
            out.push(url_escape_once(&url_escape_once(&p)));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn url_escape_once(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Where a `Location` points, resolved against the request URL; `None` if it is not a URL.
fn target(request_url: &str, location: &str) -> Option<url::Url> {
    url::Url::parse(request_url).ok()?.join(location).ok()
}

fn assert_safe(resp: &reqwest::Response, request_url: &str, allowed: &[String], what: &str) {
    for name in ["location", "refresh", "content-location"] {
        for v in resp.headers().get_all(name) {
            let v = v.to_str().unwrap_or("<not text>");
            let v = if name == "refresh" { v.split_once("url=").map(|x| x.1).unwrap_or(v) } else { v };
            let t = target(request_url, v).unwrap_or_else(|| panic!("{what}: unparsable {name}: {v:?}"));
            let origin = t.origin().ascii_serialization();
            assert!(allowed.contains(&origin), "{what}: {name} sends the browser to {origin} ({v:?})");
        }
    }
}

#[tokio::test]
async fn no_payload_sends_the_browser_off_the_proxy_or_the_identity_provider() {
    let corpus = corpus();
    assert!(corpus.len() >= 500, "the corpus has {} payloads", corpus.len());
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(Forgery::Honest, "jellyfin", "someone").await;
    let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert.pem();
    let yaml = format!(
        "trusted_proxies: [127.0.0.2/32]\njellyfin:\n  url: {}\n  api_key: {KEY}\nsso:\n  max_pending_flows_per_client: 100000\nproviders:\n  oid:\n    corp:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: x\n      disableHttps: true\n  saml:\n    adfs:\n      samlEndpoint: https://idp.example.com/sso\n      samlClientId: jellyfin\n      samlIdpEntityId: https://idp.example.com\n      samlCertificate: {}\n",
        jf.url(),
        op.issuer,
        serde_json::to_string(&cert).unwrap()
    );
    let proxy = TestProxy::start_config(&yaml).await;
    let own = url::Url::parse(&proxy.url("/")).unwrap().origin().ascii_serialization();
    let allowed = vec![own.clone(), url::Url::parse(&op.issuer).unwrap().origin().ascii_serialization(), "https://idp.example.com".to_string()];
    let client = support::http1_client();
    // A client through a trusted proxy (127.0.0.2 is in trusted_proxies), whose X-Forwarded-*
    // headers are believed for client addresses; they must still never steer a redirect.
    let trusted = reqwest::Client::builder().danger_accept_invalid_certs(true).redirect(reqwest::redirect::Policy::none()).local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let params = ["redirect_uri", "returnUrl", "post_logout_redirect_uri", "RelayState", "next"];
    let mut requests = 0;
    for (i, p) in corpus.iter().enumerate() {
        // Login starts, linking and not, with the payload in the parameters people try.
        let param = params[i % params.len()];
        for start in ["/sso/OID/start/corp", "/sso/SAML/start/adfs", "/sso/OID/p/corp"] {
            let url = format!("{}?isLinking=true&{param}={p}&redirect={p}", proxy.url(start));
            let r = client.get(&url).header("accept", "text/html").send().await.unwrap();
            assert_safe(&r, &url, &allowed, &format!("start {start} {param}={p}"));
            requests += 1;
        }
        // The payload as a provider name and as a path under /sso/.
        for path in [format!("/sso/OID/start/{p}"), format!("/sso/{p}"), format!("/sso/OID/redirect/corp?state={p}&code=x&iss={p}")] {
            let url = proxy.url(&path);
            if let Ok(r) = client.get(&url).send().await {
                assert_safe(&r, &url, &allowed, &format!("path {path}"));
                requests += 1;
            }
        }
        // The SAML ACS with the payload as RelayState, and X-Forwarded-Host on a start.
        let url = proxy.url("/sso/SAML/post/adfs");
        let r = client.post(&url).form(&[("RelayState", p.as_str()), ("SAMLResponse", "PHg+")]).send().await.unwrap();
        assert_safe(&r, &url, &allowed, &format!("ACS RelayState={p}"));
        requests += 1;
        if let Ok(host) = reqwest::header::HeaderValue::from_str(p) {
            let url = proxy.url("/sso/OID/start/corp");
            for c in [&client, &trusted] {
                let r = c.get(&url).header("x-forwarded-host", host.clone()).header("x-forwarded-proto", "http").send().await.unwrap();
                assert_safe(&r, &url, &allowed, &format!("X-Forwarded-Host {p}"));
                requests += 1;
            }
        }
    }

    // The plain-HTTP listener: every path and Host goes to the public URL's origin.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(jellyfin_sso_proxy::server::run_redirect(listener, proxy.app.config().public_url.clone(), std::future::pending()));
    for p in &corpus {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let path = if p.starts_with('/') { p.clone() } else { format!("/{p}") };
        let path: String = path.chars().filter(|c| !c.is_control() && *c != ' ').collect();
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", p.replace(['\r', '\n'], ""));
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(raw.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer).await;
        if let Some(loc) = answer.lines().find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: "))) {
            let t = url::Url::parse(loc.trim()).unwrap_or_else(|e| panic!("HTTP listener: {loc:?}: {e}"));
            assert_eq!(t.origin().ascii_serialization(), own, "HTTP listener path {path:?} → {loc}");
        }
        requests += 1;
    }
    assert!(requests > 3000, "{requests} requests");
}
