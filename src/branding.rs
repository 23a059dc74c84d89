//! Jellyfin's login page, as the proxy serves it: the few answers of Jellyfin's that the
//! proxy changes on their way to the client, around the generic [`crate::proxy::Upstream::forward`].
//!
//! - `GET /Branding/Configuration` (JSON) and `GET /Branding/Css`, `/Branding/Css.css`: the
//!   sign-in buttons go into `LoginDisclaimer` and their CSS into `CustomCss` (and the CSS
//!   answers), after the operator's own text ([`crate::sso::login_page`] builds both). Only
//!   these small bodies are buffered, up to [`MAX_BRANDING_BYTES`]; a larger one, an error, or
//!   an answer Jellyfin compressed anyway passes through unchanged. Jellyfin is asked for
//!   `identity` encoding on these paths only, and without the client's validators (the
//!   proxy's part changes when providers do); the changed body gets its own `ETag` (a hash
//!   of it, so `If-None-Match` is answered here with 304) and `Cache-Control: no-cache`.
//! - `GET /Users/Public` answers `[]` with `sso.login_page.hide_public_users`.
//! - `sso.login_page.auto_redirect`: a top-level browser navigation to the web client's root
//!   with no credentials (so no proxy session either) goes to that provider's start;
//!   `?local=1` is the way to the password form.
//!
//! Everything else is forwarded untouched.

use http::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::body::{collect_capped, empty, full, Body};
use crate::context::RequestContext;
use crate::error;
use crate::jellyfin::credentials::has_credentials;
use crate::router::App;
use crate::sso::http::json_response;
use crate::sso::login_page::{join_css, join_disclaimer, Addition};

/// The largest branding answer the proxy rewrites; above it, the answer passes unchanged.
pub const MAX_BRANDING_BYTES: usize = 256 * 1024;

/// A request whose answer the proxy may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intercept {
    BrandingJson,
    BrandingCss,
    PublicUsers,
    WebRoot,
}

impl Intercept {
    /// Which of ours `uri` is (paths without regard to case, as ASP.NET routes), under `base`.
    pub fn of(method: &Method, uri: &Uri, base: &str) -> Option<Intercept> {
        if method != Method::GET {
            return None;
        }
        let path = uri.path();
        let rest = (path.len() >= base.len() && path.is_char_boundary(base.len()) && path[..base.len()].eq_ignore_ascii_case(base)).then(|| &path[base.len()..])?;
        let rest = rest.to_ascii_lowercase();
        Some(match rest.trim_end_matches('/') {
            "/branding/configuration" => Intercept::BrandingJson,
            "/branding/css" | "/branding/css.css" => Intercept::BrandingCss,
            "/users/public" => Intercept::PublicUsers,
            "" | "/web" | "/web/index.html" => Intercept::WebRoot,
            _ => return None,
        })
    }
}

/// A top-level navigation by a browser (not a fetch, not a frame)?
fn is_navigation(h: &HeaderMap) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    match (get("sec-fetch-mode"), get("sec-fetch-dest")) {
        (Some(mode), dest) => mode == "navigate" && dest.is_none_or(|d| d == "document"),
        (None, _) => get(ACCEPT.as_str()).is_some_and(|a| a.contains("text/html")),
    }
}

fn wants_local(uri: &Uri) -> bool {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).any(|(k, v)| k.eq_ignore_ascii_case("local") && v == "1")
}

/// Forward `req` to Jellyfin (credentials already translated and the session injected), with
/// the login page's answers changed as the module doc says.
pub async fn forward(app: &App, mut req: Request<Incoming>, ctx: &RequestContext) -> Response<Body> {
    // The settings in service now (read once; not held while Jellyfin answers).
    let (intercept, hide_public_users, auto_redirect) = {
        let config = app.config();
        let page = &config.sso.login_page;
        (Intercept::of(req.method(), req.uri(), config.public_url.base_path()), page.hide_public_users, page.auto_redirect.is_some())
    };
    let mut rewrite = None;
    match intercept {
        Some(Intercept::PublicUsers) if hide_public_users => return json_response(StatusCode::OK, b"[]".to_vec()),
        Some(Intercept::WebRoot) if auto_redirect && is_navigation(req.headers()) && !wants_local(req.uri()) && !has_credentials(req.headers(), req.uri()) => {
            if let Some(start) = app.sso.auto_redirect_start() {
                return redirect(&start);
            }
        }
        Some(kind @ (Intercept::BrandingJson | Intercept::BrandingCss)) => {
            let addition = app.sso.login_addition();
            if !addition.is_empty() {
                let h = req.headers_mut();
                let client_validator = h.remove(IF_NONE_MATCH);
                h.remove(IF_MODIFIED_SINCE);
                h.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
                rewrite = Some((kind, addition, client_validator));
            }
        }
        _ => {}
    }
    let resp = match app.upstream.forward(req, ctx).await {
        Ok(r) => r,
        Err(e) => return error::respond_as(&e, ctx.wants_json),
    };
    match rewrite {
        Some((kind, addition, validator)) => Box::pin(rewrite_answer(resp, kind, &addition, validator.as_ref())).await,
        None => resp,
    }
}

fn redirect(location: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Change Jellyfin's branding answer `resp` by `addition`, or hand it back unchanged.
pub async fn rewrite_answer(resp: Response<Body>, kind: Intercept, addition: &Addition, client_validator: Option<&HeaderValue>) -> Response<Body> {
    let encoded = resp.headers().get(CONTENT_ENCODING).is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let too_long = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()).is_some_and(|n| n > MAX_BRANDING_BYTES);
    if resp.status() != StatusCode::OK || encoded || too_long {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match collect_capped(body, MAX_BRANDING_BYTES).await {
        Ok(b) => b,
        Err(replay) => return Response::from_parts(parts, replay),
    };
    let changed = match kind {
        Intercept::BrandingJson => rewrite_json(&bytes, addition),
        _ => rewrite_css(&bytes, addition),
    };
    let Some(changed) = changed else { return Response::from_parts(parts, full(bytes)) };
    let etag = etag_of(&changed);
    let h = &mut parts.headers;
    h.remove(CONTENT_LENGTH);
    h.remove(LAST_MODIFIED);
    h.insert(ETAG, etag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if client_validator.is_some_and(|v| matches_etag(v, &etag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        h.remove(http::header::CONTENT_TYPE);
        return Response::from_parts(parts, empty());
    }
    Response::from_parts(parts, full(changed))
}

/// The members of a JSON object in their order, each value as its exact text.
struct Members(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// `BrandingOptionsDto` with our markup after `LoginDisclaimer` and our CSS after `CustomCss`;
/// `None` when the body is not a JSON object. Every other member is kept as its exact text,
/// so whatever Jellyfin (or a plugin) puts there reads the same in every client: numbers that
/// a round trip through `f64` would change (`1e400`, `-0`, `1.0`, integers above 2^64), key
/// order, repeated keys. A repeated `LoginDisclaimer`/`CustomCss` is read as JSON parsers read
/// it, the last one wins, and written once, last.
pub fn rewrite_json(body: &[u8], addition: &Addition) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_slice(body).ok()?;
    type Join = fn(Option<&str>, &str) -> String;
    let ours: [(&str, Option<&str>, Join); 2] =
        [("LoginDisclaimer", addition.html.as_deref(), join_disclaimer), ("CustomCss", addition.css.as_deref(), join_css)];
    let mut out = b"{".to_vec();
    let mut push = |key: &str, raw: &str| {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend(serde_json::to_vec(key).ok()?);
        out.push(b':');
        out.extend_from_slice(raw.as_bytes());
        Some(())
    };
    for (key, raw) in &members {
        if !ours.iter().any(|(name, add, _)| add.is_some() && key == name) {
            push(key, raw.get())?;
        }
    }
    for (name, add, join) in ours {
        let Some(add) = add else { continue };
        // The operator's text: the last member of that name, when it is a string.
        let operator = match members.iter().rev().find(|(k, _)| k == name) {
            Some((_, raw)) if raw.get().starts_with('"') => Some(serde_json::from_str::<String>(raw.get()).ok()?),
            _ => None,
        };
        push(name, &serde_json::to_string(&join(operator.as_deref(), add)).ok()?)?;
    }
    out.push(b'}');
    Some(out)
}

/// The custom CSS with ours after it; `None` when there is none to add or the body is not UTF-8.
pub fn rewrite_css(body: &[u8], addition: &Addition) -> Option<Vec<u8>> {
    let css = addition.css.as_deref()?;
    let text = std::str::from_utf8(body).ok()?;
    Some(join_css(Some(text), css).into_bytes())
}

fn etag_of(body: &[u8]) -> HeaderValue {
    let hash = Sha256::digest(body);
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"jsp-{hex}\"")).expect("ascii")
}

/// `If-None-Match`: `*` or a list of (possibly weak) tags, one equal to ours.
fn matches_etag(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or("");
    if_none_match.to_str().unwrap_or("").split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add() -> Addition {
        Addition { html: Some("<div class=\"jsp-sso\">b</div>".into()), css: Some(".x{}".into()) }
    }

    #[test]
    fn paths_ignore_case_and_respect_the_base_path() {
        let of = |m: Method, p: &str, base: &str| Intercept::of(&m, &p.parse().unwrap(), base);
        assert_eq!(of(Method::GET, "/Branding/Configuration", ""), Some(Intercept::BrandingJson));
        assert_eq!(of(Method::GET, "/jf/branding/css.css", "/jf"), Some(Intercept::BrandingCss));
        assert_eq!(of(Method::GET, "/Branding/Css?x=1", ""), Some(Intercept::BrandingCss));
        assert_eq!(of(Method::HEAD, "/Branding/Css", ""), None);
        assert_eq!(of(Method::GET, "/Users/Public", ""), Some(Intercept::PublicUsers));
        assert_eq!(of(Method::GET, "/web/", ""), Some(Intercept::WebRoot));
        assert_eq!(of(Method::GET, "/web/index.html?local=1", ""), Some(Intercept::WebRoot));
        assert_eq!(of(Method::GET, "/web/main.js", ""), None);
        assert_eq!(of(Method::GET, "/Branding/Configuration", "/jf"), None);
    }

    #[test]
    fn navigations_are_told_from_fetches() {
        let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect::<HeaderMap>();
        assert!(is_navigation(&h(&[("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")])));
        assert!(!is_navigation(&h(&[("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")])));
        assert!(!is_navigation(&h(&[("sec-fetch-mode", "cors"), ("accept", "text/html")])));
        assert!(is_navigation(&h(&[("accept", "text/html,*/*")])));
        assert!(!is_navigation(&h(&[("accept", "application/json")])));
        assert!(wants_local(&"/web/?local=1".parse().unwrap()) && !wants_local(&"/web/?local=0".parse().unwrap()));
    }

    #[test]
    fn json_keeps_the_operators_fields_and_text() {
        let body = br#"{"LoginDisclaimer":"Hello **you**","CustomCss":"body{color:red}","SplashscreenEnabled":true}"#;
        let out: serde_json::Value = serde_json::from_slice(&rewrite_json(body, &add()).unwrap()).unwrap();
        assert_eq!(out["LoginDisclaimer"], "Hello **you**\n\n<div class=\"jsp-sso\">b</div>");
        assert_eq!(out["CustomCss"], "body{color:red}\n.x{}");
        assert_eq!(out["SplashscreenEnabled"], true);
        let none: serde_json::Value = serde_json::from_slice(&rewrite_json(br#"{"SplashscreenEnabled":false}"#, &add()).unwrap()).unwrap();
        assert_eq!(none["LoginDisclaimer"], "<div class=\"jsp-sso\">b</div>");
        assert!(rewrite_json(b"[1]", &add()).is_none() && rewrite_json(b"not json", &add()).is_none());
        // Members we do not own keep their exact text: numbers no f64 holds, order, repeats.
        let body = br#"{"Big":1e400,"Z":-0,"One":1.0,"Huge":123456789012345678901234567890,"A":[1,{"b":null}],"Z":2}"#;
        let out = String::from_utf8(rewrite_json(body, &add()).unwrap()).unwrap();
        assert!(out.starts_with(r#"{"Big":1e400,"Z":-0,"One":1.0,"Huge":123456789012345678901234567890,"A":[1,{"b":null}],"Z":2,"LoginDisclaimer":"#), "{out}");
        // A repeated field of ours: the last one is the operator's, written once.
        let out = String::from_utf8(rewrite_json(br#"{"CustomCss":"a{}","CustomCss":"b{}"}"#, &add()).unwrap()).unwrap();
        assert_eq!(out, r#"{"LoginDisclaimer":"<div class=\"jsp-sso\">b</div>","CustomCss":"b{}\n.x{}"}"#);
        assert_eq!(rewrite_css(b"a{}", &add()).unwrap(), b"a{}\n.x{}");
        assert!(rewrite_css(b"a{}", &Addition { html: Some("x".into()), css: None }).is_none());
    }

    #[test]
    fn etags_follow_the_body() {
        let (a, b) = (etag_of(b"one"), etag_of(b"two"));
        assert_ne!(a, b);
        assert!(matches_etag(&a, &a));
        assert!(matches_etag(&HeaderValue::from_str(&format!("\"x\", W/{}", a.to_str().unwrap())).unwrap(), &a));
        assert!(!matches_etag(&b, &a));
    }
}
