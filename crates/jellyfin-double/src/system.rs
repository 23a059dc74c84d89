//! Server information (`Jellyfin.Api/Controllers/SystemController.cs`): what a client reads
//! before and after signing in to learn the server's name, version and id. The proxy checks
//! the Jellyfin it fronts with `GET /System/Info/Public`; jellyfin-web checks a saved token
//! with `GET /System/Info` (and signs out when that is 404, i.e. not a Jellyfin).

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::auth::authorized;
use crate::reply::{empty, json_resp, Body};
use crate::server::{Inner, Req};

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, caller, .. } = r;
    match (method.as_str(), *segs) {
        // Jellyfin.Api/Controllers/SystemController.cs GetPublicSystemInfo (anonymous), built by
        // Emby.Server.Implementations/SystemManager.cs; OperatingSystem is obsolete and empty.
        ("GET", ["system", "info", "public"]) => json_resp(
            StatusCode::OK,
            &json!({"LocalAddress": format!("http://{}", g.addr), "ServerName": g.opts.server_name, "Version": g.opts.version,
                    "ProductName": "Jellyfin Server", "OperatingSystem": "", "Id": g.server_id, "StartupWizardCompleted": true}),
        ),
        // SystemController.GetSystemInfo: `FirstTimeSetupOrIgnoreParentalControl`
        // (Jellyfin.Api/Auth/FirstTimeSetupPolicy/FirstTimeSetupHandler.cs: with the wizard done,
        // an Administrator or a User; so any valid token, and 401 without one). The `SystemInfo`
        // of SystemManager.GetSystemInfo (MediaBrowser.Model/System/SystemInfo.cs): the public
        // fields, then the server's state and its (obsolete) paths, here those of the Linux
        // packages. PackageName is null unless started with --package-name, so left out.
        ("GET", ["system", "info"]) => {
            try_resp!(authorized(caller));
            json_resp(
                StatusCode::OK,
                &json!({"LocalAddress": format!("http://{}", g.addr), "ServerName": g.opts.server_name, "Version": g.opts.version,
                        "ProductName": "Jellyfin Server", "OperatingSystem": "", "Id": g.server_id, "StartupWizardCompleted": true,
                        "OperatingSystemDisplayName": "", "HasPendingRestart": false, "IsShuttingDown": false,
                        "SupportsLibraryMonitor": true, "WebSocketPortNumber": g.addr.port(), "CompletedInstallations": [],
                        "CanSelfRestart": true, "CanLaunchWebBrowser": false, "ProgramDataPath": "/var/lib/jellyfin",
                        "WebPath": "/usr/share/jellyfin/web", "ItemsByNamePath": "/var/lib/jellyfin/metadata",
                        "CachePath": "/var/cache/jellyfin", "LogPath": "/var/log/jellyfin",
                        "InternalMetadataPath": "/var/lib/jellyfin/metadata", "TranscodingTempPath": "/var/lib/jellyfin/transcodes",
                        "CastReceiverApplications": [], "HasUpdateAvailable": false, "EncoderLocation": "System",
                        "SystemArchitecture": "X64"}),
            )
        }
        // SystemController.GetEndpointInfo ([Authorize]): `EndPointInfo` from HttpContext.IsLocal()
        // and NetworkManager.IsInLocalNetwork; the double treats every caller as local.
        ("GET", ["system", "endpoint"]) => {
            try_resp!(authorized(caller));
            json_resp(StatusCode::OK, &json!({"IsLocal": true, "IsInNetwork": true}))
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}
