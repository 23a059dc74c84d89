//! Branding (`Jellyfin.Api/Controllers/BrandingController.cs`): the login disclaimer and
//! custom CSS anyone may read, and an administrator sets through
//! `Jellyfin.Api/Controllers/ConfigurationController.cs`. The proxy shows Jellyfin's disclaimer
//! and styles on its own sign-in page, so tests set them and check they come through.
//! The anonymous answers are gzip-compressed when the client accepts it, as Jellyfin's
//! response compression (`Jellyfin.Server/Startup.cs`, `UseResponseCompression`) does.

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::auth::{authorized, elevated};
use crate::reply::{empty, exception, get_ci, json_body, respond, validation, Body};
use crate::server::{Inner, Req};
use crate::JellyfinDouble;

/// `MediaBrowser.Model/Branding/BrandingOptions.cs`, as far as the double keeps it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Branding {
    pub(crate) login_disclaimer: Option<String>,
    pub(crate) custom_css: Option<String>,
    pub(crate) splashscreen_enabled: bool,
}

impl JellyfinDouble {
    /// The Branding configuration: login disclaimer and custom CSS.
    pub fn set_branding(&self, login_disclaimer: Option<&str>, custom_css: Option<&str>) {
        let mut g = self.inner.lock().unwrap();
        g.branding.login_disclaimer = login_disclaimer.map(str::to_string);
        g.branding.custom_css = custom_css.map(str::to_string);
    }
}

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, headers, body, caller, v, .. } = r;
    match (method.as_str(), *segs) {
        // Jellyfin.Api/Controllers/BrandingController.cs (anonymous): LoginDisclaimer, CustomCss,
        // SplashscreenEnabled; null ones are left out (WhenWritingNull).
        ("GET", ["branding", "configuration"]) => gzip_if_accepted(headers, branding_body(g), "application/json; charset=utf-8"),
        ("GET", ["branding", "css" | "css.css"]) => gzip_if_accepted(headers, g.branding.custom_css.clone().unwrap_or_default().into_bytes(), "text/css"),
        // ConfigurationController.GetNamedConfiguration (class-level [Authorize]): the stored
        // `BrandingOptions` (SplashscreenLocation is null here, so left out).
        ("GET", ["system", "configuration", "branding"]) => {
            try_resp!(authorized(caller));
            branding_json(g)
        }
        // ConfigurationController ([Route("System")], RequiresElevation). 10.11+:
        // UpdateBrandingConfiguration binds a `BrandingOptionsDto` and replaces its three fields
        // (absent ones become null / false); a value of the wrong type fails model binding (400).
        // Before 10.11 the route is UpdateNamedConfiguration (`Configuration/{key}`), which
        // deserializes the JsonDocument into `BrandingOptions` in the action: a JsonException
        // there is a 500, a `null` body an ArgumentException (400).
        ("POST", ["system", "configuration", "branding"]) => {
            try_resp!(elevated(caller));
            let b = try_resp!(json_body(headers, body, "configuration"));
            let dto = v.at_least(10, 11);
            let Some(o) = b.as_object() else {
                return if b.is_null() && !dto { exception(StatusCode::BAD_REQUEST) } else { bad_branding(dto, "$", "MediaBrowser.Model.Branding.BrandingOptionsDto") };
            };
            let text = |k: &str| match get_ci(o, k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("$.{k}")),
            };
            let login_disclaimer = match text("LoginDisclaimer") {
                Ok(t) => t,
                Err(path) => return bad_branding(dto, &path, "System.String"),
            };
            let custom_css = match text("CustomCss") {
                Ok(t) => t,
                Err(path) => return bad_branding(dto, &path, "System.String"),
            };
            let splashscreen_enabled = match get_ci(o, "SplashscreenEnabled") {
                None => false,
                Some(Value::Bool(x)) => *x,
                Some(_) => return bad_branding(dto, "$.SplashscreenEnabled", "System.Boolean"),
            };
            g.branding = Branding { login_disclaimer, custom_css, splashscreen_enabled };
            empty(StatusCode::NO_CONTENT)
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

/// A branding body that does not deserialize: 400 from model binding (10.11+), else 500.
fn bad_branding(dto: bool, path: &str, ty: &str) -> Response<Body> {
    if !dto {
        return exception(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let mut e = Map::new();
    e.insert(path.to_string(), json!([format!("The JSON value could not be converted to {ty}. Path: {path} | LineNumber: 0 | BytePositionInLine: 0.")]));
    e.insert("configuration".into(), json!(["The configuration field is required."]));
    validation(e)
}

/// `body` as is, or gzip-compressed (`Content-Encoding: gzip`) when `Accept-Encoding` lists gzip.
fn gzip_if_accepted(headers: &hyper::HeaderMap, body: Vec<u8>, content_type: &str) -> Response<Body> {
    let accepts = headers.get_all("accept-encoding").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim().split(';').next() == Some("gzip"));
    if !accepts {
        return respond(StatusCode::OK, body, content_type);
    }
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&body).expect("gzip into memory");
    let mut r = respond(StatusCode::OK, enc.finish().expect("gzip into memory"), content_type);
    r.headers_mut().insert("content-encoding", hyper::header::HeaderValue::from_static("gzip"));
    r.headers_mut().insert("vary", hyper::header::HeaderValue::from_static("Accept-Encoding"));
    r
}

fn branding_body(g: &Inner) -> Vec<u8> {
    let mut o = Map::new();
    if let Some(d) = &g.branding.login_disclaimer {
        o.insert("LoginDisclaimer".into(), json!(d));
    }
    if let Some(c) = &g.branding.custom_css {
        o.insert("CustomCss".into(), json!(c));
    }
    o.insert("SplashscreenEnabled".into(), json!(g.branding.splashscreen_enabled));
    Value::Object(o).to_string().into_bytes()
}

/// `BrandingOptionsDto` (BrandingOptions before 10.11): null fields left out (WhenWritingNull).
fn branding_json(g: &Inner) -> Response<Body> {
    respond(StatusCode::OK, branding_body(g), "application/json; charset=utf-8")
}
