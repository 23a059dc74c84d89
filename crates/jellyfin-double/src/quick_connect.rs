//! Quick Connect (`Jellyfin.Api/Controllers/QuickConnectController.cs`,
//! `Emby.Server.Implementations/QuickConnect/QuickConnectManager.cs`): a device asks for a code,
//! someone signed in authorizes it for a user, the device trades its secret for a token. This
//! is how the proxy hands a Jellyfin session to a browser after an SSO sign-in, so the codes,
//! the expiry (with the minute `Authorize` adds) and the errors are Jellyfin's.

use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::authorized;
use crate::reply::{empty, exception, json_body, json_resp, message, opt_guid, str_field, validation1, Body};
use crate::server::{Inner, Req};
use crate::sessions::{auth_result, open_session};
use crate::{jellyfin_date, JellyfinDouble, EMPTY_GUID};

/// `Emby.Server.Implementations/QuickConnect/QuickConnectManager.cs`: `Timeout = 10` (minutes).
pub const QUICK_CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

/// A pending or authorized request (`QuickConnectResult` plus its clock).
#[derive(Clone, Debug)]
pub(crate) struct QcRequest {
    pub(crate) secret: String,
    pub(crate) code: String,
    /// `DateAdded`; lies in the future after `Authorize`.
    pub(crate) added: Instant,
    pub(crate) added_wall: SystemTime,
    pub(crate) device_id: String,
    pub(crate) device_name: String,
    pub(crate) app_name: String,
    pub(crate) app_version: String,
    pub(crate) authenticated: bool,
}

impl JellyfinDouble {
    /// `ServerConfiguration.QuickConnectAvailable`.
    pub fn set_quick_connect_enabled(&self, on: bool) {
        self.inner.lock().unwrap().opts.quick_connect_enabled = on;
    }

    /// The Quick Connect requests still known, as `QuickConnectResult`s.
    pub fn quick_connect_requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().qc_requests.values().map(qc_json).collect()
    }
}

/// `QuickConnectManager.ExpireRequests` (run first by every operation): requests whose
/// `DateAdded` is more than 10 minutes ago, and secrets authorized more than 10 minutes ago.
fn expire_qc(g: &mut Inner) {
    let now = g.now();
    let old = |t: Instant| now.checked_duration_since(t).is_some_and(|d| d > QUICK_CONNECT_TIMEOUT);
    g.qc_requests.retain(|_, r| !old(r.added));
    g.qc_authorized.retain(|_, (t, _)| !old(*t));
}

/// `MediaBrowser.Model/QuickConnect/QuickConnectResult.cs`.
fn qc_json(r: &QcRequest) -> Value {
    json!({"Authenticated": r.authenticated, "Secret": r.secret, "Code": r.code, "DeviceId": r.device_id,
           "DeviceName": r.device_name, "AppName": r.app_name, "AppVersion": r.app_version, "DateAdded": jellyfin_date(r.added_wall)})
}

/// `QuickConnectManager.GenerateCode`: `min + (max - min) * (u32 / u32::MAX)` with min 100000,
/// max 1000000 and u32::MAX redrawn: 6 digits, 100000..=999999.
pub fn qc_code() -> String {
    let scale = loop {
        let x: u32 = rand::random();
        if x != u32::MAX {
            break x;
        }
    };
    let (min, max) = (100_000f64, 1_000_000f64);
    ((min + (max - min) * (f64::from(scale) / f64::from(u32::MAX))) as u32).to_string()
}

/// `QuickConnectManager.GenerateSecureRandom`: 32 random bytes, `Convert.ToHexString` (uppercase).
pub fn qc_secret() -> String {
    (0..32).map(|_| format!("{:02X}", rand::random::<u8>())).collect()
}

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let enabled = g.opts.quick_connect_enabled;
    let Req { method, segs, query, headers, body, auth, caller, v, .. } = r;
    match (method.as_str(), *segs) {
        // QuickConnectController.GetQuickConnectEnabled (anonymous).
        ("GET", ["quickconnect", "enabled"]) => json_resp(StatusCode::OK, &json!(enabled)),

        // QuickConnectController.InitiateQuickConnect (POST; the obsolete GET alias is gone in
        // 12.0) → QuickConnectManager.TryConnect: the four device fields first (400), then
        // AssertActive (AuthenticationException, caught: 401 "Quick connect is disabled").
        ("POST", ["quickconnect", "initiate"]) | ("GET", ["quickconnect", "initiate"]) if method == Method::POST || !v.at_least(12, 0) => {
            let Some((client, device, device_id, version)) = auth.device_fields() else { return exception(StatusCode::BAD_REQUEST) };
            if !enabled {
                return message(StatusCode::UNAUTHORIZED, "Quick connect is disabled");
            }
            expire_qc(g);
            let code = qc_code();
            let r = QcRequest {
                secret: qc_secret(),
                code: code.clone(),
                added: g.now(),
                added_wall: g.wall_now(),
                device_id,
                device_name: device,
                app_name: client,
                app_version: version,
                authenticated: false,
            };
            let out = qc_json(&r);
            // `_currentRequests[code] = result`: a colliding code replaces the older request.
            g.qc_requests.insert(code, r);
            json_resp(StatusCode::OK, &out)
        }
        ("GET", ["quickconnect", "initiate"]) => empty(StatusCode::METHOD_NOT_ALLOWED),

        // QuickConnectController.GetQuickConnectState → CheckRequestStatus: 401 disabled,
        // 404 "Unknown secret" (ResourceNotFoundException, caught).
        ("GET", ["quickconnect", "connect"]) => {
            let Some(secret) = query.get("secret").filter(|s| !s.is_empty()).cloned() else {
                return validation1("secret", "The secret field is required.");
            };
            if !enabled {
                return message(StatusCode::UNAUTHORIZED, "Quick connect is disabled");
            }
            expire_qc(g);
            match g.qc_requests.values().find(|r| r.secret == secret) {
                Some(r) => json_resp(StatusCode::OK, &qc_json(r)),
                None => message(StatusCode::NOT_FOUND, "Unknown secret"),
            }
        }

        // QuickConnectController.AuthorizeQuickConnect ([Authorize]) → QuickConnectManager.AuthorizeRequest.
        ("POST", ["quickconnect", "authorize"]) => {
            try_resp!(authorized(caller));
            let Some(code) = query.get("code").filter(|c| !c.is_empty()).cloned() else {
                return validation1("code", "The code field is required.");
            };
            let requested = try_resp!(opt_guid(query, "userid", "userId"));
            // The userId parameter exists since 10.9.0 (commit fd73f346); 10.8 used the caller.
            let requested = if v.at_least(10, 9) { requested } else { None };
            // RequestHelpers.GetUserId: none (or empty) → the caller's id (Guid.Empty for an API
            // key); another user's → Administrator role required (SecurityException → 403).
            let target = match requested.filter(|r| r != EMPTY_GUID) {
                None => caller.user_id().map(str::to_string),
                Some(r) => {
                    if Some(r.as_str()) != caller.user_id() && !caller.admin() {
                        return exception(StatusCode::FORBIDDEN);
                    }
                    Some(r)
                }
            };
            if !enabled {
                return message(StatusCode::UNAUTHORIZED, "Quick connect is disabled");
            }
            expire_qc(g);
            // ResourceNotFoundException("Unable to find request") → 404 via ExceptionMiddleware.
            let Some(r) = g.qc_requests.get(&code).cloned() else { return exception(StatusCode::NOT_FOUND) };
            // InvalidOperationException("Request is already authorized") → 500.
            if r.authenticated {
                return exception(StatusCode::INTERNAL_SERVER_ERROR);
            }
            // "Change the time on the request so it expires one minute into the future":
            // DateAdded = now + 1 minute, so it stays 11 more minutes (Timeout is 10).
            let (later, later_wall) = (g.now() + Duration::from_secs(60), g.wall_now() + Duration::from_secs(60));
            if let Some(x) = g.qc_requests.get_mut(&code) {
                x.added = later;
                x.added_wall = later_wall;
            }
            // SessionManager.AuthenticateDirect with the Initiate call's device: user by id, else
            // GetUserByName(null) → ArgumentException → 400. No password, no IsDisabled check.
            let Some(uid) = target.filter(|t| g.user(t).is_some()) else { return exception(StatusCode::BAD_REQUEST) };
            let s = match open_session(g, &uid, &r.device_id, &r.app_name, &r.device_name, &r.app_version) {
                Ok(s) => s,
                Err(status) => return exception(status),
            };
            let result = auth_result(g, &s);
            let now = g.now();
            g.qc_authorized.insert(r.secret.clone(), (now, result));
            if let Some(x) = g.qc_requests.get_mut(&code) {
                x.authenticated = true;
            }
            json_resp(StatusCode::OK, &json!(true))
        }

        // UserController.AuthenticateWithQuickConnect → QuickConnectManager.GetAuthorizedRequest:
        // AssertActive's AuthenticationException is not caught here (401 text), unknown → 404.
        // The secret is not consumed: the same result until it expires.
        ("POST", ["users", "authenticatewithquickconnect"]) => {
            let b = try_resp!(json_body(headers, body, "request"));
            let Some(secret) = str_field(&b, "Secret").filter(|s| !s.trim().is_empty()) else {
                return validation1("Secret", "The Secret field is required.");
            };
            if !enabled {
                return exception(StatusCode::UNAUTHORIZED);
            }
            expire_qc(g);
            match g.qc_authorized.get(&secret) {
                Some((_, result)) => json_resp(StatusCode::OK, result),
                None => exception(StatusCode::NOT_FOUND),
            }
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::test_util::{add_user, call, inner, DEVICE};

    #[test]
    fn codes_and_secrets() {
        for _ in 0..2000 {
            let c = qc_code();
            assert_eq!(c.len(), 6, "{c}");
            assert!((100_000..=999_999).contains(&c.parse::<u32>().unwrap()));
        }
        let s = qc_secret();
        assert!(s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)), "{s}");
    }

    #[test]
    fn quick_connect_lifecycle_matches_quick_connect_manager() {
        let mut g = inner("10.10.7");
        let admin = "MediaBrowser Token=\"key\"";
        let user = add_user(&mut g, "ann", false);
        // Initiate needs the four device fields (400 even when disabled), then "enabled" (401).
        assert_eq!(call(&mut g, "POST", "/QuickConnect/Initiate", Some("MediaBrowser Client=\"x\""), None).0, 400);
        g.opts.quick_connect_enabled = false;
        assert_eq!(call(&mut g, "POST", "/QuickConnect/Initiate", Some(DEVICE), None), (401, json!("Quick connect is disabled")));
        g.opts.quick_connect_enabled = true;
        let (st, r) = call(&mut g, "POST", "/QuickConnect/Initiate", Some(DEVICE), None);
        assert_eq!(st, 200);
        assert_eq!(r["Authenticated"], false);
        assert_eq!(r["DeviceId"], "dev-1");
        assert_eq!(r["AppName"], "Jellyfin Web");
        let (secret, code) = (r["Secret"].as_str().unwrap().to_string(), r["Code"].as_str().unwrap().to_string());
        // Not authorized yet: the secret is pending, no result.
        assert_eq!(call(&mut g, "GET", &format!("/QuickConnect/Connect?secret={secret}"), None, None).1["Authenticated"], false);
        assert_eq!(call(&mut g, "POST", "/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": secret}))).0, 404);
        // Authorize: anonymous 401, unknown code 404, API key without userId 400.
        assert_eq!(call(&mut g, "POST", &format!("/QuickConnect/Authorize?code={code}&userId={user}"), None, None).0, 401);
        assert_eq!(call(&mut g, "POST", &format!("/QuickConnect/Authorize?code=000000&userId={user}"), Some(admin), None).0, 404);
        assert_eq!(call(&mut g, "POST", &format!("/QuickConnect/Authorize?code={code}"), Some(admin), None).0, 400);
        assert_eq!(call(&mut g, "POST", &format!("/QuickConnect/Authorize?code={code}&userId={user}"), Some(admin), None), (200, json!(true)));
        // Again: "Request is already authorized" (InvalidOperationException → 500).
        assert_eq!(call(&mut g, "POST", &format!("/QuickConnect/Authorize?code={code}&userId={user}"), Some(admin), None).0, 500);
        let (st, res) = call(&mut g, "POST", "/Users/AuthenticateWithQuickConnect", None, Some(json!({"secret": secret})));
        assert_eq!(st, 200);
        assert_eq!(res["User"]["Id"], json!(user));
        assert_eq!(res["SessionInfo"]["DeviceId"], "dev-1", "the session is the Initiate call's device");
        assert_eq!(res["ServerId"], json!(g.server_id));
        // Not consumed: the same token again.
        assert_eq!(call(&mut g, "POST", "/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": secret}))).1["AccessToken"], res["AccessToken"]);
        // DateAdded was moved one minute ahead: the request lives 11 minutes, the secret 10.
        g.skew += Duration::from_secs(601);
        assert_eq!(call(&mut g, "GET", &format!("/QuickConnect/Connect?secret={secret}"), None, None).1["Authenticated"], true);
        assert_eq!(call(&mut g, "POST", "/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": secret}))).0, 404);
        g.skew += Duration::from_secs(60);
        assert_eq!(call(&mut g, "GET", &format!("/QuickConnect/Connect?secret={secret}"), None, None), (404, json!("Unknown secret")));
    }
}
