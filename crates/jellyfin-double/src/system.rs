//! Server information (`Jellyfin.Api/Controllers/SystemController.cs`): what a client reads
//! before and after signing in to learn the server's name, version and id. The proxy checks
//! the Jellyfin it fronts with `GET /System/Info/Public`.

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::reply::{empty, json_resp, Body};
use crate::server::{Inner, Req};

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, .. } = r;
    match (method.as_str(), *segs) {
        // Jellyfin.Api/Controllers/SystemController.cs GetPublicSystemInfo (anonymous), built by
        // Emby.Server.Implementations/SystemManager.cs; OperatingSystem is obsolete and empty.
        ("GET", ["system", "info", "public"]) => json_resp(
            StatusCode::OK,
            &json!({"LocalAddress": format!("http://{}", g.addr), "ServerName": g.opts.server_name, "Version": g.opts.version,
                    "ProductName": "Jellyfin Server", "OperatingSystem": "", "Id": g.server_id, "StartupWizardCompleted": true}),
        ),

        _ => empty(StatusCode::NOT_FOUND),
    }
}
