//! What the proxy adds to Jellyfin's own login page, and the provider picker at `/sso/`.
//!
//! jellyfin-web 10.11 (`src/controllers/session/login/index.js`) renders the branding's
//! `LoginDisclaimer` with `markdownIt({ html: true })`, sanitizes it with `DOMPurify.sanitize`,
//! then turns every `<a>` into a `target="_blank"` text link (and takes links out of the tab
//! order on TV layouts). So a sign-in entry here is a `<form method="get">` around a
//! `<button>`: DOMPurify keeps both, the link rewrite leaves them alone, and submitting
//! navigates in the same tab on every layout. The block is one HTML block for markdown-it (no
//! blank line inside), every name and label is escaped, and the classes are jellyfin-web's
//! own raised buttons (`raised`, `block`, `emby-button`, `button-submit`, from
//! `src/elements/emby-button/emby-button.scss`). The CSS that goes with it is added to the
//! branding's `CustomCss`; for an SSO-only server it also hides the password form and the
//! public user list (`.manualLoginForm`, `.visualLoginForm`, `.btnManual`,
//! `.btnForgotPassword` in `src/controllers/session/login/index.html`).
//!
//! Everything is built per request from the registry, so a provider added or removed
//! through the admin API shows (or disappears) at once.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::Response;

use crate::body::{full, Body};
use crate::config::LoginPageConfig;
use crate::pages::escape;
use crate::state::random_token;

use super::registry::Provider;

/// One sign-in entry: where it starts and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `/sso/OID/start/corp` under the base path.
    pub start: String,
    pub label: String,
}

impl Entry {
    pub fn of(base_path: &str, p: &Provider) -> Entry {
        let name: String = url::form_urlencoded::byte_serialize(p.name().as_bytes()).collect();
        Entry { start: format!("{base_path}/sso/{}/start/{name}", p.protocol().url_segment()), label: p.label().to_string() }
    }
}

/// What the branding answers get: HTML for `LoginDisclaimer`, CSS for `CustomCss`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addition {
    pub html: Option<String>,
    pub css: Option<String>,
}

impl Addition {
    pub fn is_empty(&self) -> bool {
        self.html.is_none() && self.css.is_none()
    }
}

/// The buttons' own look inside the disclaimer (jellyfin-web styles the disclaimer smaller).
const BUTTON_CSS: &str = ".loginDisclaimer .jsp-sso{margin:1em auto;max-width:30em;font-size:1rem}\
.loginDisclaimer .jsp-sso form{margin:0 0 .5em}\
.loginDisclaimer .jsp-sso button{width:100%;justify-content:center}\
.loginDisclaimer .jsp-sso-qr{display:block;margin:.5em auto;width:10em;height:10em;background:#fff;padding:.4em;border-radius:.3em}";

/// For an SSO-only server: the password form, the "manual login" and "forgot password"
/// buttons and the public user list are hidden (class names from jellyfin-web 10.11's
/// `src/controllers/session/login/index.html`).
pub const HIDE_PASSWORD_CSS: &str = "#loginPage .manualLoginForm,#loginPage .visualLoginForm,#loginPage .btnManual,#loginPage .btnForgotPassword{display:none!important}";

/// The markup and CSS for `entries` under `base_path`, as `config` asks.
pub fn addition(config: &LoginPageConfig, base_path: &str, entries: &[Entry]) -> Addition {
    let buttons = config.buttons && !entries.is_empty();
    let html = buttons.then(|| disclaimer_html(base_path, entries));
    let mut css = Vec::new();
    if buttons {
        css.push(BUTTON_CSS);
    }
    if config.hide_password_form {
        css.push(HIDE_PASSWORD_CSS);
    }
    Addition { html, css: (!css.is_empty()).then(|| css.join("\n")) }
}

fn form(action: &str, class: &str, text: &str) -> String {
    format!(
        r#"<form method="get" action="{}" class="jsp-sso-form"><button type="submit" class="raised block emby-button {class}"><span>{}</span></button></form>"#,
        escape(action),
        escape(text)
    )
}

/// One HTML block (markdown-it ends an HTML block at a blank line, so there is none inside).
pub fn disclaimer_html(base_path: &str, entries: &[Entry]) -> String {
    let mut out = String::from(r#"<div class="jsp-sso">"#);
    for e in entries {
        out.push_str(&form(&e.start, "button-submit jsp-sso-provider", &format!("Sign in with {}", e.label)));
    }
    out.push_str(&form(&format!("{base_path}/sso/link"), "jsp-sso-device", "Sign in on a TV or another device"));
    out.push_str(&format!(
        r#"<img class="jsp-sso-qr" src="{}" alt="QR code: open {} on your phone">"#,
        escape(&format!("{base_path}/sso/link/qr.svg")),
        escape(&format!("{base_path}/sso/link"))
    ));
    out.push_str("</div>");
    out
}

/// The operator's disclaimer followed by ours, as a separate markdown block.
pub fn join_disclaimer(operator: Option<&str>, ours: &str) -> String {
    match operator.map(str::trim_end).filter(|s| !s.is_empty()) {
        Some(text) => format!("{text}\n\n{ours}"),
        None => ours.to_string(),
    }
}

/// The operator's CSS followed by ours.
pub fn join_css(operator: Option<&str>, ours: &str) -> String {
    match operator.map(str::trim_end).filter(|s| !s.is_empty()) {
        Some(css) => format!("{css}\n{ours}"),
        None => ours.to_string(),
    }
}

/// `GET /sso/`: one button per enabled provider, in the completion page's look.
pub fn picker(base_path: &str, entries: &[Entry]) -> Response<Body> {
    let nonce = random_token();
    let list: String = if entries.is_empty() {
        "<p>No sign-in provider is set up yet.</p>".into()
    } else {
        entries.iter().map(|e| format!(r#"<form method="get" action="{}"><button type="submit">Sign in with {}</button></form>"#, escape(&e.start), escape(&e.label))).collect()
    };
    let html = format!(
        r#"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width"><title>Sign in</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;background:#101010;color:#eee;display:flex;min-height:90vh;align-items:center;justify-content:center}}main{{max-width:32rem;padding:2rem;background:#202020;border-radius:.5rem}}a{{color:#00a4dc}}form{{margin:.5rem 0}}button{{width:100%;padding:.8rem 1rem;border:0;border-radius:.2rem;background:#00a4dc;color:#fff;font:inherit;font-weight:600;cursor:pointer}}</style></head>
<body><main><h1>Sign in</h1>{list}<p><a href="{base}/web/index.html?local=1">Sign in with a password</a></p></main></body></html>"#,
        base = escape(base_path),
    );
    let mut r = Response::new(full(html));
    // No form-action: browsers apply it to the redirect that follows (to the identity provider).
    let csp = format!("default-src 'none'; style-src 'nonce-{nonce}'; base-uri 'none'; frame-ancestors 'none'");
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).expect("ascii"));
    r
}

impl super::Sso {
    /// A sign-in entry per enabled provider, both protocols, read from the registry now.
    pub fn login_entries(&self) -> Vec<Entry> {
        let config = self.config();
        let base = config.public_url.base_path();
        self.registry.all_enabled().iter().map(|p| Entry::of(base, p)).collect()
    }

    /// What Jellyfin's branding answers get right now.
    pub fn login_addition(&self) -> Addition {
        let config = self.config();
        addition(&config.sso.login_page, config.public_url.base_path(), &self.login_entries())
    }

    /// `GET /sso/`.
    pub fn picker_page(&self) -> Response<Body> {
        picker(self.config().public_url.base_path(), &self.login_entries())
    }

    /// Where `sso.login_page.auto_redirect` sends a browser: the start of that provider (OIDC
    /// first, then SAML, by name), when it is enabled.
    pub fn auto_redirect_start(&self) -> Option<String> {
        use super::identity::Protocol;
        let config = self.config();
        let name = config.sso.login_page.auto_redirect.as_deref()?;
        let p = self.registry.enabled(Protocol::Oidc, name).or_else(|_| self.registry.enabled(Protocol::Saml, name)).ok()?;
        Some(Entry::of(config.public_url.base_path(), &p).start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry { start: "/jf/sso/OID/start/corp".into(), label: "Corp".into() },
            Entry { start: "/jf/sso/SAML/start/x".into(), label: "</span><script>alert(1)</script>".into() },
        ]
    }

    #[test]
    fn markup_is_one_block_with_escaped_labels() {
        let html = disclaimer_html("/jf", &entries());
        assert!(!html.contains("\n\n") && !html.contains('\n'), "one HTML block for markdown-it");
        assert!(html.contains(r#"<form method="get" action="/jf/sso/OID/start/corp""#));
        assert!(html.contains("Sign in with Corp"));
        assert!(html.contains("Sign in with &lt;/span&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"));
        assert!(html.contains(r#"action="/jf/sso/link""#) && html.contains(r#"src="/jf/sso/link/qr.svg""#));
    }

    #[test]
    fn addition_follows_the_switches() {
        let on = LoginPageConfig::default();
        let a = addition(&on, "", &entries());
        assert!(a.html.is_some() && a.css.as_deref().is_some_and(|c| !c.contains("manualLoginForm")));
        assert!(addition(&on, "", &[]).is_empty(), "no enabled provider: nothing added");
        let off = LoginPageConfig { buttons: false, ..LoginPageConfig::default() };
        assert!(addition(&off, "", &entries()).is_empty());
        let sso_only = LoginPageConfig { buttons: false, hide_password_form: true, ..LoginPageConfig::default() };
        let a = addition(&sso_only, "", &entries());
        assert_eq!((a.html, a.css.as_deref()), (None, Some(HIDE_PASSWORD_CSS)));
    }

    #[test]
    fn operator_text_comes_first_in_its_own_block() {
        assert_eq!(join_disclaimer(Some("Be *nice*.\n"), "<div>x</div>"), "Be *nice*.\n\n<div>x</div>");
        assert_eq!(join_disclaimer(Some("  "), "<div>x</div>"), "<div>x</div>");
        assert_eq!(join_css(Some("body{}"), "a{}"), "body{}\na{}");
        assert_eq!(join_css(None, "a{}"), "a{}");
    }
}
