//! A minimal browser without JavaScript for protocol tests: follows redirects one by one,
//! keeps cookies as a browser would (Secure cookies only over https; all ports of a host
//! share cookies, as in real browsers), and fills in simple login forms.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};

#[derive(Debug, Clone)]
struct Cookie {
    value: String,
    secure: bool,
}

pub struct Browser {
    client: reqwest::Client,
    cookies: BTreeMap<String, Cookie>,
}

/// A response as the tests need it.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { client, cookies: BTreeMap::new() }
    }

    /// A browser that reaches every host but loopback through the HTTP proxy `proxy` (a
    /// product-shaped test OP that stands for `accounts.google.com` and the like).
    pub fn with_proxy(proxy: &str) -> Browser {
        let proxy = url::Url::parse(proxy).unwrap();
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .proxy(reqwest::Proxy::custom(move |u| (u.host_str() != Some("127.0.0.1")).then(|| proxy.clone())))
            .build()
            .unwrap();
        Browser { client, cookies: BTreeMap::new() }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.get(name).map(|c| c.value.clone())
    }

    pub fn set_cookie(&mut self, name: &str, value: &str, secure: bool) {
        self.cookies.insert(name.to_string(), Cookie { value: value.to_string(), secure });
    }

    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let https = url.starts_with("https://");
        let v: Vec<String> = self.cookies.iter().filter(|(_, c)| https || !c.secure).map(|(k, c)| format!("{k}={}", c.value)).collect();
        (!v.is_empty()).then(|| v.join("; "))
    }

    fn store(&mut self, headers: &reqwest::header::HeaderMap) {
        for v in headers.get_all("set-cookie") {
            let s = v.to_str().unwrap_or("");
            let mut parts = s.split(';');
            let Some((name, value)) = parts.next().and_then(|kv| kv.split_once('=')) else { continue };
            let attrs: Vec<String> = parts.map(|a| a.trim().to_ascii_lowercase()).collect();
            let expired = attrs.iter().any(|a| a == "max-age=0" || a.starts_with("expires=thu, 01 jan 1970"));
            if expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_string(), Cookie { value: value.trim().to_string(), secure: attrs.iter().any(|a| a == "secure") });
            }
        }
    }

    /// One request, no redirect following.
    pub async fn request(&mut self, method: Method, url: &str, form: Option<&[(String, String)]>, json: Option<&serde_json::Value>) -> Page {
        let mut b = self.client.request(method, url);
        if let Some(c) = self.cookie_header(url) {
            b = b.header("cookie", c);
        }
        if let Some(f) = form {
            b = b.form(f);
        }
        if let Some(j) = json {
            b = b.json(j).header("accept", "application/json");
        } else {
            // What a browser sends for a navigation.
            b = b.header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        }
        let resp = b.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        self.store(&headers);
        let body = resp.text().await.unwrap_or_default();
        Page { url: url.to_string(), status, headers, body }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.request(Method::GET, url, None, None).await
    }

    pub async fn post_json(&mut self, url: &str, json: &serde_json::Value) -> Page {
        self.request(Method::POST, url, None, Some(json)).await
    }

    /// GET `url` and follow redirects until a non-redirect answer or until `stop(url)` is true
    /// for the next location (which is then returned as a 3xx page, not fetched).
    pub async fn follow(&mut self, url: &str, stop: impl Fn(&str) -> bool) -> Page {
        let page = self.get(url).await;
        self.keep_following(page, stop).await
    }

    /// Follow redirects from `page` on, as [`follow`](Self::follow) does.
    async fn keep_following(&mut self, mut page: Page, stop: impl Fn(&str) -> bool) -> Page {
        for _ in 0..20 {
            if !page.status.is_redirection() {
                return page;
            }
            let next = absolute(&page.url, page.headers["location"].to_str().unwrap());
            if stop(&next) {
                return page;
            }
            page = self.get(&next).await;
        }
        panic!("too many redirects, last at {}", page.url);
    }

    /// Submit the first form on `page` with `fields` filled in (hidden inputs kept), then
    /// follow redirects as [`follow`](Self::follow) does.
    pub async fn submit_form(&mut self, page: &Page, fields: &[(&str, &str)], stop: impl Fn(&str) -> bool) -> Page {
        let form = page.body.split("<form").nth(1).unwrap_or_else(|| panic!("no form on {}:\n{}", page.url, page.body));
        let action = attr(form.split('>').next().unwrap(), "action").unwrap_or_else(|| page.url.clone());
        let mut values: Vec<(String, String)> = Vec::new();
        for input in form.split("<input").skip(1) {
            let tag = input.split('>').next().unwrap();
            if let Some(name) = attr(tag, "name") {
                let v = fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()).or_else(|| attr(tag, "value")).unwrap_or_default();
                values.push((name, v));
            }
        }
        let url = absolute(&page.url, &html_unescape(&action));
        let page = self.request(Method::POST, &url, Some(&values), None).await;
        self.keep_following(page, stop).await
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let pat = format!("{name}={quote}");
        if let Some(i) = tag.find(&pat) {
            let rest = &tag[i + pat.len()..];
            return rest.split(quote).next().map(html_unescape);
        }
    }
    None
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")
}

pub fn absolute(base: &str, loc: &str) -> String {
    url::Url::parse(base).unwrap().join(loc).unwrap().to_string()
}

/// The JSON in the completion page's `<script type="application/json" id="jsp-data">`.
pub fn completion_data(page: &Page) -> serde_json::Value {
    let start = page.body.find("id=\"jsp-data\">").unwrap_or_else(|| panic!("not a completion page ({}):\n{}", page.status, page.body)) + "id=\"jsp-data\">".len();
    let end = page.body[start..].find("</script>").unwrap() + start;
    serde_json::from_str(&page.body[start..end]).unwrap()
}
