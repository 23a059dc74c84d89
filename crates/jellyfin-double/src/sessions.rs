//! Access tokens and what Jellyfin builds on them: sessions (one per token here) as
//! `SessionManager` opens and lists them, devices (`Jellyfin.Api/Controllers/DevicesController.cs`),
//! logout and capabilities (`Jellyfin.Api/Controllers/SessionController.cs`) and API keys
//! (`Jellyfin.Api/Controllers/ApiKeyController.cs`). The proxy signs people in and out through
//! these, so a new sign-in on the same device replaces the old token as Jellyfin does.

use std::time::SystemTime;

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::auth::{authorized, elevated, Caller};
use crate::policy::{enum_value, flag};
use crate::reply::{empty, exception, get_ci, json_body, json_resp, problem, validation, validation1, Body};
use crate::server::{Inner, Req};
use crate::users::user_dto;
use crate::{hex_id, jellyfin_date, JellyfinDouble, EMPTY_GUID};

/// An access token (a row of Jellyfin's Devices table) and the session it stands for.
#[derive(Clone, Debug)]
pub struct DoubleSession {
    pub token: String,
    pub user_id: String,
    pub device_id: String,
    pub client: String,
    pub device_name: String,
    pub app_version: String,
    /// The `SessionInfo.Id` reported for it.
    pub session_id: String,
}

/// An API key (a row of Jellyfin's ApiKeys table).
#[derive(Clone, Debug)]
pub(crate) struct ApiKey {
    pub(crate) token: String,
    pub(crate) name: String,
    pub(crate) created: SystemTime,
}

impl JellyfinDouble {
    /// The live tokens (at most one per user and device).
    pub fn sessions(&self) -> Vec<DoubleSession> {
        self.inner.lock().unwrap().sessions.clone()
    }

    /// Add an API key (as Dashboard → API Keys does); returns the token.
    pub fn add_api_key(&self, app_name: &str) -> String {
        let token = hex_id();
        self.inner.lock().unwrap().api_keys.push(ApiKey { token: token.clone(), name: app_name.into(), created: SystemTime::now() });
        token
    }

    /// Revoke an API key (the one from the options too).
    pub fn revoke_api_key(&self, token: &str) {
        self.inner.lock().unwrap().api_keys.retain(|k| k.token != token);
    }
}

/// `Jellyfin.Data/Enums/MediaType.cs`.
const MEDIA_TYPES: &[&str] = &["Unknown", "Video", "Audio", "Photo", "Book"];

/// Model binding of `MediaBrowser.Model/Dto/ClientCapabilitiesDto.cs` and its
/// `ToClientCapabilities()` (`MediaBrowser.Model/Session/ClientCapabilities.cs`). Media types
/// are checked against the enum; command names (`GeneralCommandType`, 50-odd) are not.
fn bind_capabilities(sent: &Value) -> Result<Value, Response<Body>> {
    let bad = |path: &str, ty: &str| {
        let mut e = Map::new();
        e.insert(path.to_string(), json!([format!("The JSON value could not be converted to {ty}. Path: {path} | LineNumber: 0 | BytePositionInLine: 0.")]));
        e.insert("capabilities".into(), json!(["The capabilities field is required."]));
        validation(e)
    };
    let Value::Object(o) = sent else { return Err(bad("$", "MediaBrowser.Model.Dto.ClientCapabilitiesDto")) };
    let list = |key: &str, ty: &str, names: Option<&[&str]>| -> Result<Value, Response<Body>> {
        match get_ci(o, key) {
            None | Some(Value::Null) => Ok(json!([])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match names {
                    Some(n) => enum_value(x, n),
                    None => x.as_str().map(|s| json!(s)),
                })
                .collect::<Option<Vec<_>>>()
                .map(Value::Array)
                .ok_or_else(|| bad(&format!("$.{key}"), ty)),
            Some(_) => Err(bad(&format!("$.{key}"), ty)),
        }
    };
    let flag = |key: &str| match get_ci(o, key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(&format!("$.{key}"), "System.Boolean")),
    };
    let mut caps = json!({
        "PlayableMediaTypes": list("PlayableMediaTypes", "Jellyfin.Data.Enums.MediaType", Some(MEDIA_TYPES))?,
        "SupportedCommands": list("SupportedCommands", "Jellyfin.Data.Enums.GeneralCommandType", None)?,
        "SupportsMediaControl": flag("SupportsMediaControl")?,
        "SupportsPersistentIdentifier": flag("SupportsPersistentIdentifier")?,
        "SupportsContentUploading": false, "SupportsSync": false,
    });
    for key in ["DeviceProfile", "AppStoreUrl", "IconUrl"] {
        if let Some(v) = get_ci(o, key).filter(|v| !v.is_null()) {
            caps[key] = v.clone();
        }
    }
    Ok(caps)
}

/// `MediaBrowser.Model/Dto/SessionInfoDto.cs` (10.10+; 10.9 serialises `SessionInfo`, mostly
/// the same names).
pub(crate) fn session_dto(g: &Inner, s: &DoubleSession) -> Value {
    let name = g.user(&s.user_id).map(|u| u.name.clone()).unwrap_or_default();
    // SessionInfo.PlayableMediaTypes / SupportedCommands read the reported capabilities;
    // SupportsMediaControl also needs a session controller (a websocket), which the double
    // never has.
    let caps = g.capabilities.get(&s.session_id).cloned().unwrap_or_else(
        || json!({"PlayableMediaTypes": [], "SupportedCommands": [], "SupportsMediaControl": false, "SupportsPersistentIdentifier": true}),
    );
    json!({
        "PlayState": {"CanSeek": false, "IsPaused": false, "IsMuted": false, "RepeatMode": "RepeatNone", "PlaybackOrder": "Default"},
        "AdditionalUsers": [],
        "Capabilities": caps, "RemoteEndPoint": "127.0.0.1", "PlayableMediaTypes": caps["PlayableMediaTypes"],
        "Id": s.session_id, "UserId": s.user_id, "UserName": name,
        "Client": s.client, "LastActivityDate": jellyfin_date(g.wall_now()), "LastPlaybackCheckIn": "0001-01-01T00:00:00.0000000Z",
        "DeviceName": s.device_name, "DeviceId": s.device_id, "ApplicationVersion": s.app_version, "IsActive": true,
        "SupportsMediaControl": false, "SupportsRemoteControl": false, "NowPlayingQueue": [], "NowPlayingQueueFullItems": [],
        "HasCustomDeviceName": false, "ServerId": g.server_id, "SupportedCommands": caps["SupportedCommands"]
    })
}

/// `MediaBrowser.Controller/Authentication/AuthenticationResult.cs`.
pub(crate) fn auth_result(g: &Inner, s: &DoubleSession) -> Value {
    let u = g.user(&s.user_id).unwrap();
    json!({"User": user_dto(g, u), "SessionInfo": session_dto(g, s), "AccessToken": s.token, "ServerId": g.server_id})
}

/// `SessionManager.AuthenticateNewSessionInternal` once the user is known
/// (`Emby.Server.Implementations/Session/SessionManager.cs`): `DeviceManager.CanAccessDevice`,
/// the `MaxActiveSessions` limit (counted before the old session goes), then
/// `GetAuthorizationToken`, which logs out every token of this user on this DeviceId before
/// creating the new one. Err = the status of the exception thrown.
pub(crate) fn open_session(g: &mut Inner, user_id: &str, device_id: &str, client: &str, device_name: &str, version: &str) -> Result<DoubleSession, StatusCode> {
    let u = g.user(user_id).ok_or(StatusCode::UNAUTHORIZED)?;
    let listed = u
        .policy
        .get("EnabledDevices")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|d| d.as_str().is_some_and(|d| d.eq_ignore_ascii_case(device_id))));
    if !(flag(&u.policy, "EnableAllDevices") || flag(&u.policy, "IsAdministrator") || listed) {
        return Err(StatusCode::FORBIDDEN); // "User is not allowed access from this device."
    }
    let max = u.policy.get("MaxActiveSessions").and_then(Value::as_i64).unwrap_or(0);
    if max >= 1 && g.sessions.iter().filter(|s| s.user_id == user_id).count() as i64 >= max {
        return Err(StatusCode::FORBIDDEN); // "User is at their maximum number of sessions."
    }
    g.sessions.retain(|s| !(s.user_id == user_id && s.device_id == device_id));
    let s = DoubleSession {
        token: hex_id(),
        user_id: user_id.into(),
        device_id: device_id.into(),
        client: client.into(),
        device_name: device_name.into(),
        app_version: version.into(),
        session_id: hex_id(),
    };
    g.sessions.push(s.clone());
    let now = jellyfin_date(g.wall_now());
    if let Some(u) = g.user_mut(user_id) {
        u.last_activity = Some(now);
    }
    Ok(s)
}

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, raw, query, pairs, headers, body, caller, v, .. } = r;
    match (method.as_str(), *segs) {
        // SessionController.PostFullCapabilities ([Authorize]): `[FromBody, Required]
        // ClientCapabilitiesDto` (model binding first), then the session: `?id=` or, without
        // one, the caller's (RequestHelpers.GetSessionId → LogSessionActivity). An unknown id:
        // SessionManager.GetSession's ResourceNotFoundException → 404. An API key has no session
        // here (Jellyfin would start one for it), so nothing is stored; 204 either way.
        ("POST", ["sessions", "capabilities", "full"]) => {
            try_resp!(authorized(caller));
            let b = try_resp!(json_body(headers, body, "capabilities"));
            let caps = try_resp!(bind_capabilities(&b));
            let id = match query.get("id").filter(|i| !i.trim().is_empty()) {
                Some(id) => match g.sessions.iter().find(|s| &s.session_id == id) {
                    Some(s) => Some(s.session_id.clone()),
                    None => return exception(StatusCode::NOT_FOUND),
                },
                None => caller.token().and_then(|t| g.sessions.iter().find(|s| s.token == t)).map(|s| s.session_id.clone()),
            };
            if let Some(id) = id {
                g.capabilities.insert(id, caps);
            }
            empty(StatusCode::NO_CONTENT)
        }
        // ApiKeyController (RequiresElevation) → AuthenticationManager: GetKeys, CreateKey, RevokeKey.
        ("GET", ["auth", "keys"]) => {
            try_resp!(elevated(caller));
            let items: Vec<Value> = g
                .api_keys
                .iter()
                .map(|k| {
                    json!({"Id": 0, "AccessToken": k.token, "DeviceId": "", "AppName": k.name, "AppVersion": "", "DeviceName": "",
                           "UserId": EMPTY_GUID, "IsActive": false, "DateCreated": jellyfin_date(k.created),
                           "DateLastActivity": "0001-01-01T00:00:00.0000000Z"})
                })
                .collect();
            json_resp(StatusCode::OK, &json!({"Items": items, "TotalRecordCount": items.len(), "StartIndex": 0}))
        }
        ("POST", ["auth", "keys"]) => {
            try_resp!(elevated(caller));
            let Some(app) = query.get("app").filter(|a| !a.is_empty()).cloned() else { return validation1("app", "The app field is required.") };
            let created = g.wall_now();
            g.api_keys.push(ApiKey { token: hex_id(), name: app, created });
            empty(StatusCode::NO_CONTENT)
        }
        ("DELETE", ["auth", "keys", _]) => {
            try_resp!(elevated(caller));
            let key = raw[2].to_string();
            g.api_keys.retain(|k| k.token != key);
            empty(StatusCode::NO_CONTENT)
        }

        // SessionController.ReportSessionEnded ([Authorize]): SessionManager.Logout(own token);
        // an API key matches no device row, so nothing happens; 204 either way.
        ("POST", ["sessions", "logout"]) => {
            try_resp!(authorized(caller));
            if let Caller::User { token, .. } = &caller {
                g.sessions.retain(|s| &s.token != token);
            }
            empty(StatusCode::NO_CONTENT)
        }
        // SessionController.GetSessions ([Authorize]) → SessionManager.GetSessions: deviceId
        // filter; administrators and API keys see all, others their own.
        ("GET", ["sessions"]) => {
            try_resp!(authorized(caller));
            let device = query.get("deviceid").filter(|d| !d.is_empty()).cloned();
            let me = caller.user_id().map(str::to_string);
            let list: Vec<Value> = g
                .sessions
                .iter()
                .filter(|s| device.as_ref().is_none_or(|d| s.device_id.eq_ignore_ascii_case(d)))
                .filter(|s| caller.admin() || me.as_deref() == Some(s.user_id.as_str()))
                .map(|s| session_dto(g, s))
                .collect();
            json_resp(StatusCode::OK, &Value::Array(list))
        }
        // DevicesController.DeleteDevice (RequiresElevation): logs out every token of that
        // DeviceId (all users). 10.9–10.11: one required id, unknown → 404. 12.0: `string[] id`,
        // any unknown → 400.
        ("DELETE", ["devices"]) => {
            try_resp!(elevated(caller));
            let ids: Vec<String> = pairs.iter().filter(|(k, _)| k == "id").map(|(_, v)| v.clone()).filter(|v| !v.is_empty()).collect();
            if v.at_least(12, 0) {
                if ids.iter().any(|id| !g.sessions.iter().any(|s| &s.device_id == id)) {
                    return problem(StatusCode::BAD_REQUEST);
                }
            } else {
                let Some(id) = ids.first() else { return validation1("id", "The id field is required.") };
                if !g.sessions.iter().any(|s| &s.device_id == id) {
                    return problem(StatusCode::NOT_FOUND);
                }
            }
            let ids = if v.at_least(12, 0) { ids } else { ids.into_iter().take(1).collect() };
            g.sessions.retain(|s| !ids.contains(&s.device_id));
            empty(StatusCode::NO_CONTENT)
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use crate::server::test_util::{add_user, call, inner, DEVICE};
    use crate::server::Inner;
    use serde_json::json;

    #[test]
    fn a_second_session_on_the_same_device_replaces_the_first() {
        let mut g = inner("10.11.11");
        let user = add_user(&mut g, "ben", false);
        let token = |g: &mut Inner| {
            let (_, r) = call(g, "POST", "/QuickConnect/Initiate", Some(DEVICE), None);
            let code = r["Code"].as_str().unwrap().to_string();
            assert_eq!(call(g, "POST", &format!("/QuickConnect/Authorize?code={code}&userId={user}"), Some("MediaBrowser Token=\"key\""), None).0, 200);
            call(g, "POST", "/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": r["Secret"]}))).1["AccessToken"].as_str().unwrap().to_string()
        };
        let (first, second) = (token(&mut g), token(&mut g));
        assert_ne!(first, second);
        assert_eq!(g.sessions.len(), 1);
        assert_eq!(g.sessions[0].token, second);
        assert_eq!(call(&mut g, "GET", "/Users/Me", Some(&format!("MediaBrowser Token=\"{first}\"")), None).0, 401);
    }
}
