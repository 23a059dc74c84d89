//! Small HTML pages the proxy shows people: errors, and (later) the SSO completion page.
//!
//! Every page is self-contained, escapes every value it shows, and is served with a strict
//! Content-Security-Policy. API clients get JSON instead, chosen by the `Accept` header.

use http::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};

use crate::body::{full, Body};

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#101010;color:#eee;display:flex;min-height:90vh;align-items:center;justify-content:center}main{max-width:32rem;padding:2rem;background:#202020;border-radius:.5rem}h1{font-size:1.3rem;margin-top:0}p{line-height:1.5}a{color:#00a4dc}";

/// A page of the proxy's own whose script and style carry `nonce`: HTML, never cached, and a
/// CSP that allows only those (and same-origin fetches), no forms, no framing.
pub fn script_page(html: String, nonce: &str) -> Response<Body> {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut r = Response::new(full(html));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).expect("a nonce is header-safe"));
    r
}

/// Headers on every response the proxy makes itself (pages, JSON, redirects): never framed,
/// never sniffed, no referrer (pages may carry codes or handles in their URL), and a strict
/// CSP unless the page set its own (with a nonce). Responses carrying a token or a handle
/// already say `no-store`; anything else without a `Cache-Control` gets `no-store` too.
pub fn secure_headers(h: &mut HeaderMap) {
    use http::header::{REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(CONTENT_SECURITY_POLICY) {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"));
    }
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Does the client prefer JSON (an API client) over HTML (a browser)?
pub fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let accept = accept.to_ascii_lowercase();
    !accept.contains("text/html") && (accept.contains("json") || accept.is_empty() || accept.contains("*/*"))
}

/// A short readable error page, or `{"error": title, "message": message}` for API clients.
pub fn error_response(status: StatusCode, title: &str, message: &str, json: bool) -> Response<Body> {
    let mut resp = if json {
        let body = serde_json::json!({ "status": status.as_u16(), "error": title, "message": message });
        let mut r = Response::new(full(body.to_string()));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    } else {
        let html = format!(
            "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1><p>{m}</p></main></body></html>",
            t = escape(title),
            m = escape(message)
        );
        let mut r = Response::new(full(html));
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        r.headers_mut().insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
        );
        r
    };
    *resp.status_mut() = status;
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn accept_decides_format() {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(!wants_json(&h));
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json(&h));
        assert!(wants_json(&HeaderMap::new()));
    }
}
