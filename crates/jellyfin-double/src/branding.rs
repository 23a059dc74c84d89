//! Branding (`Jellyfin.Api/Controllers/BrandingController.cs`): the login disclaimer and
//! custom CSS anyone may read. The proxy shows Jellyfin's disclaimer and styles on its own
//! sign-in page, so tests set them and check they come through.

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::reply::{empty, json_resp, respond, Body};
use crate::server::{Inner, Req};
use crate::JellyfinDouble;

/// `MediaBrowser.Model/Branding/BrandingOptions.cs`, as far as the double keeps it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Branding {
    pub(crate) login_disclaimer: Option<String>,
    pub(crate) custom_css: Option<String>,
}

impl JellyfinDouble {
    /// The Branding configuration: login disclaimer and custom CSS.
    pub fn set_branding(&self, login_disclaimer: Option<&str>, custom_css: Option<&str>) {
        self.inner.lock().unwrap().branding = Branding { login_disclaimer: login_disclaimer.map(str::to_string), custom_css: custom_css.map(str::to_string) };
    }
}

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, .. } = r;
    match (method.as_str(), *segs) {
        // Jellyfin.Api/Controllers/BrandingController.cs (anonymous): LoginDisclaimer, CustomCss,
        // SplashscreenEnabled; null ones are left out (WhenWritingNull).
        ("GET", ["branding", "configuration"]) => {
            let mut o = Map::new();
            if let Some(d) = &g.branding.login_disclaimer {
                o.insert("LoginDisclaimer".into(), json!(d));
            }
            if let Some(c) = &g.branding.custom_css {
                o.insert("CustomCss".into(), json!(c));
            }
            o.insert("SplashscreenEnabled".into(), json!(false));
            json_resp(StatusCode::OK, &Value::Object(o))
        }
        ("GET", ["branding", "css" | "css.css"]) => respond(StatusCode::OK, g.branding.custom_css.clone().unwrap_or_default(), "text/css"),
        _ => empty(StatusCode::NOT_FOUND),
    }
}
