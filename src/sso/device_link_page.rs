//! The pages of `/sso/link` (see [`super::device_link`]): plain HTML forms that work without
//! JavaScript, every value escaped, a strict CSP (forms may post only to this origin), and
//! the QR code of the page's address as SVG.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};
use http::{Response, StatusCode};

use super::error::SsoError;
use crate::body::{full, Body};
use crate::pages::escape;

/// What happened to the last code entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Linked,
    BadFormat,
    Unknown,
    Used,
}

impl Notice {
    fn text(self) -> &'static str {
        match self {
            Notice::Linked => "Done: your device is signed in. It finishes by itself in a few seconds; you can close this page.",
            Notice::BadFormat => "A Quick Connect code is exactly 6 digits. Check the code on your device's screen and try again.",
            Notice::Unknown => "This code is unknown or has expired. Codes last 10 minutes: ask your device for a new one and try again.",
            Notice::Used => "This code has been used already. Ask your device for a new one if it is still not signed in.",
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#101010;color:#eee;display:flex;min-height:90vh;align-items:center;justify-content:center}main{max-width:32rem;padding:2rem;background:#202020;border-radius:.5rem}a,button{color:#00a4dc}input{font-size:1.5rem;letter-spacing:.3rem;width:9rem}p{line-height:1.5}";

fn html(title: &str, body: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    let mut r = Response::new(full(page));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    r
}

/// Not signed in: one button per enabled provider (`(URL segment, name)`).
pub fn sign_in(base: &str, providers: &[(&str, &str)]) -> Response<Body> {
    let mut body = String::from("<p>Sign in to link a device that shows a Quick Connect code.</p>");
    if providers.is_empty() {
        body.push_str("<p>No sign-in provider is enabled on this server.</p>");
    }
    for (mode, name) in providers {
        let href = format!("{base}/sso/link/start/{mode}/{}", url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>());
        body.push_str(&format!("<p><a class=provider href=\"{}\">Sign in with {}</a></p>", escape(&href), escape(name)));
    }
    html("Link a device", &body)
}

/// Signed in: the code form, with `notice` about the last code.
pub fn form(base: &str, csrf: &str, notice: Option<Notice>) -> Response<Body> {
    let mut body = String::new();
    if let Some(n) = notice {
        body.push_str(&format!("<p id=notice data-outcome=\"{:?}\">{}</p>", n, escape(n.text())));
    }
    body.push_str(&format!(
        "<p>Open Quick Connect on your device and enter the 6-digit code it shows.</p>\
<form method=\"post\" action=\"{action}\"><input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{6}}\" maxlength=\"6\" required autofocus>\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"> <button type=\"submit\">Link device</button></form>",
        action = escape(&format!("{base}/sso/link")),
        csrf = escape(csrf),
    ));
    html("Link a device", &body)
}

/// The QR code of `url`, as SVG.
pub fn qr_svg(url: &str) -> Result<Response<Body>, SsoError> {
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|e| SsoError::BadRequest(format!("the link address cannot be a QR code: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build();
    let mut r = Response::new(full(svg));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(r: Response<Body>) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn pages_escape_and_carry_the_form() {
        let t = text(sign_in("/jf", &[("OID", "a\"<b")])).await;
        assert!(t.contains("/jf/sso/link/start/OID/a%22%3Cb") && !t.contains("a\"<b"), "{t}");
        let t = text(form("", "tok\"en", Some(Notice::Unknown))).await;
        assert!(t.contains("<form method=\"post\" action=\"/sso/link\">") && t.contains("name=\"code\""));
        assert!(t.contains("value=\"tok&quot;en\"") && t.contains("data-outcome=\"Unknown\""));
        let svg = text(qr_svg("https://jf.example/sso/link").unwrap()).await;
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{}", &svg[..80]);
    }
}
