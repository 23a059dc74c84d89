//! A Jellyfin test double: an in-process HTTP server that behaves like Jellyfin (10.9–12.0)
//! for every endpoint the proxy touches, derived from Jellyfin's source (github
//! jellyfin/jellyfin, tags v10.9.11, v10.10.7, v10.11.11 and master = 12.0). Each behaviour
//! cites the file it mirrors. It also serves what the proxy's own tests need (a web page, a
//! websocket echo, a large media file with Range, echo endpoints) and records every call.
//!
//! Self-contained on purpose (it never uses the proxy crate), so it is an independent
//! reference; `examples/jellyfin-double.rs` runs it on its own.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};

type Body = BoxBody<Bytes, Infallible>;

/// `Jellyfin.Server.Implementations/Users/DefaultAuthenticationProvider.cs` (full type name).
pub const DEFAULT_AUTH: &str = "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider";
/// `Jellyfin.Server.Implementations/Users/InvalidAuthProvider.cs`: refuses every password.
pub const INVALID_AUTH: &str = "Jellyfin.Server.Implementations.Users.InvalidAuthProvider";
pub const DEFAULT_RESET: &str = "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider";

/// QuickConnectManager.cs (10.10+): `CodeLength = 6`, `Timeout = 10` minutes.
const QC_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct DoubleOptions {
    pub api_key: String,
    pub quick_connect_enabled: bool,
    pub version: String,
    pub server_name: String,
    /// Size of `/media/big.bin`.
    pub media_size: u64,
    /// `EnableLegacyAuthorization` (10.11 default: false): `X-Emby-Token`, `api_key=`,
    /// `X-Emby-Authorization` and the `Emby` scheme are honoured only when true.
    pub legacy_auth: bool,
}

impl Default for DoubleOptions {
    fn default() -> Self {
        DoubleOptions {
            api_key: "test-api-key".into(),
            quick_connect_enabled: true,
            version: "10.10.7".into(),
            server_name: "Double".into(),
            media_size: 16 * 1024 * 1024,
            legacy_auth: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DoubleSession {
    pub token: String,
    pub user_id: String,
    pub device_id: String,
    pub client: String,
    pub device_name: String,
    pub app_version: String,
}

#[derive(Clone, Debug)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
struct User {
    id: String,
    name: String,
    password: String,
    policy: Map<String, Value>,
    avatar: Option<(Vec<u8>, String)>,
}

#[derive(Clone, Debug)]
struct QcRequest {
    secret: String,
    code: String,
    added: Instant,
    device_id: String,
    device_name: String,
    app_name: String,
    app_version: String,
    authenticated: bool,
}

struct Inner {
    opts: DoubleOptions,
    server_id: String,
    users: Vec<User>,
    sessions: Vec<DoubleSession>,
    qc_requests: HashMap<String, QcRequest>,
    qc_authorized: HashMap<String, (Instant, Value)>,
    folders: Vec<(String, String)>,
    calls: Vec<RecordedCall>,
    latency: Duration,
}

pub struct JellyfinDouble {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: tokio::sync::watch::Sender<bool>,
}

fn hex_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What `GET /test/avatar.png` serves (an image for `avatarUrlFormat` tests).
pub const TEST_AVATAR: &[u8] = b"\x89PNG\r\n\x1a\ntest-avatar-bytes";

/// The `/media/big.bin` content: byte `i` of the file.
pub fn media_byte(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// `MediaBrowser.Model/Users/UserPolicy.cs` constructor defaults (v10.10.7).
pub fn default_policy() -> Map<String, Value> {
    let v: Value = serde_json::from_str(r#"{
        "IsAdministrator": false, "IsHidden": true, "EnableCollectionManagement": false, "EnableSubtitleManagement": false,
        "EnableLyricManagement": false, "IsDisabled": false, "MaxParentalRating": null, "BlockedTags": [], "AllowedTags": [],
        "EnableUserPreferenceAccess": true, "AccessSchedules": [], "BlockUnratedItems": [], "EnableRemoteControlOfOtherUsers": false,
        "EnableSharedDeviceControl": true, "EnableRemoteAccess": true, "EnableLiveTvManagement": true, "EnableLiveTvAccess": true,
        "EnableMediaPlayback": true, "EnableAudioPlaybackTranscoding": true, "EnableVideoPlaybackTranscoding": true,
        "EnablePlaybackRemuxing": true, "ForceRemoteSourceTranscoding": false, "EnableContentDeletion": false,
        "EnableContentDeletionFromFolders": [], "EnableContentDownloading": true, "EnableSyncTranscoding": true,
        "EnableMediaConversion": true, "EnabledDevices": [], "EnableAllDevices": true, "EnabledChannels": [], "EnableAllChannels": true,
        "EnabledFolders": [], "EnableAllFolders": true, "InvalidLoginAttemptCount": 0, "LoginAttemptsBeforeLockout": -1,
        "MaxActiveSessions": 0, "EnablePublicSharing": true, "BlockedMediaFolders": [], "BlockedChannels": [],
        "RemoteClientBitrateLimit": 0, "AuthenticationProviderId": "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider", "PasswordResetProviderId": "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider",
        "SyncPlayAccess": "CreateAndJoinGroups"
    }"#).unwrap();
    v.as_object().unwrap().clone()
}

/// The parameters of a `MediaBrowser` header, as `AuthorizationContext.GetParts` reads them:
/// comma-separated `Key="value"` pairs, quotes trimmed, values URL-decoded (`WebUtility.UrlDecode`,
/// which turns `+` into a space).
pub fn parse_auth_params(value: &str, legacy: bool) -> Option<HashMap<String, String>> {
    let (scheme, rest) = value.split_once(' ')?;
    // AuthorizationContext.GetAuthorization: "MediaBrowser", or "Emby" only with legacy auth (10.11+).
    if !(scheme.eq_ignore_ascii_case("MediaBrowser") || (legacy && scheme.eq_ignore_ascii_case("Emby"))) {
        return None;
    }
    let mut out = HashMap::new();
    let (mut escaped, mut start, mut key) = (false, 0usize, String::new());
    let chars: Vec<char> = rest.chars().collect();
    let decode = |s: &str| {
        let s = s.trim_matches('"').replace('+', " ");
        url::form_urlencoded::parse(format!("x={}", s.replace(' ', "%20")).as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == ',' {
            // GetParts: "a XOR logic to evaluate whether it is opening or closing a value".
            escaped = escaped != (c == '"');
            if c == ',' && !escaped {
                if start < i {
                    out.insert(key.clone(), decode(&chars[start..i].iter().collect::<String>()));
                    key.clear();
                }
                start = i + 1;
            }
        } else if !escaped && c == '=' {
            key = chars[start..i].iter().collect::<String>().trim().to_string();
            start = i + 1;
        }
        i += 1;
    }
    if start < i {
        out.insert(key, decode(&chars[start..i].iter().collect::<String>()));
    }
    Some(out)
}

/// Who made a request (`AuthorizationContext.GetAuthorizationInfoFromDictionary`).
#[derive(Clone, Debug)]
enum Caller {
    Anonymous,
    Invalid,
    ApiKey,
    User { id: String, token: String, admin: bool },
}

impl Caller {
    /// `CustomAuthenticationHandler.cs`: an API key, or an administrator, gets the Administrator role.
    fn admin(&self) -> bool {
        matches!(self, Caller::ApiKey | Caller::User { admin: true, .. })
    }
}

fn respond(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    Response::builder().status(status).header("content-type", content_type).body(Full::new(body.into()).boxed()).unwrap()
}

fn json_resp(status: StatusCode, v: &Value) -> Response<Body> {
    respond(status, v.to_string(), "application/json; charset=utf-8")
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    // ASP.NET answers `StatusCode(403, "message")` / `BadRequest("message")` with the string as JSON.
    json_resp(status, &Value::String(s.to_string()))
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(Full::new(Bytes::new()).boxed()).unwrap()
}

impl JellyfinDouble {
    pub async fn start(opts: DoubleOptions) -> JellyfinDouble {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(l, opts).await
    }

    pub async fn start_on(listener: tokio::net::TcpListener, opts: DoubleOptions) -> JellyfinDouble {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            opts,
            server_id: hex_id(),
            users: Vec::new(),
            sessions: Vec::new(),
            qc_requests: HashMap::new(),
            qc_authorized: HashMap::new(),
            folders: Vec::new(),
            calls: Vec::new(),
            latency: Duration::ZERO,
        }));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = stop_rx.changed() => break,
                    r = listener.accept() => match r { Ok((t, _)) => t, Err(_) => continue },
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).with_upgrades().await;
                });
            }
        });
        JellyfinDouble { addr, inner, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn server_id(&self) -> String {
        self.inner.lock().unwrap().server_id.clone()
    }

    /// Create a user directly (as the setup wizard or dashboard would); returns the id.
    pub fn add_user(&self, name: &str, password: &str, is_admin: bool) -> String {
        let mut policy = default_policy();
        policy.insert("IsAdministrator".into(), json!(is_admin));
        let id = hex_id();
        self.inner.lock().unwrap().users.push(User { id: id.clone(), name: name.into(), password: password.into(), policy, avatar: None });
        id
    }

    pub fn user_by_name(&self, name: &str) -> Option<Value> {
        let g = self.inner.lock().unwrap();
        g.users.iter().find(|u| u.name.eq_ignore_ascii_case(name)).map(|u| user_dto(u, &g.server_id))
    }

    pub fn user_policy(&self, user_id: &str) -> Option<Value> {
        self.inner.lock().unwrap().users.iter().find(|u| u.id == user_id).map(|u| Value::Object(u.policy.clone()))
    }

    pub fn user_count(&self) -> usize {
        self.inner.lock().unwrap().users.len()
    }

    pub fn set_quick_connect_enabled(&self, on: bool) {
        self.inner.lock().unwrap().opts.quick_connect_enabled = on;
    }

    pub fn sessions(&self) -> Vec<DoubleSession> {
        self.inner.lock().unwrap().sessions.clone()
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn avatar(&self, user_id: &str) -> Option<Vec<u8>> {
        self.inner.lock().unwrap().users.iter().find(|u| u.id == user_id).and_then(|u| u.avatar.clone()).map(|(b, _)| b)
    }

    pub fn add_media_folder(&self, name: &str) -> String {
        let id = hex_id();
        self.inner.lock().unwrap().folders.push((id.clone(), name.into()));
        id
    }

    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().unwrap().latency = d;
    }

    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for JellyfinDouble {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// `UserDto` as `UserManager.GetUserDto` builds it (the parts clients read).
fn user_dto(u: &User, server_id: &str) -> Value {
    json!({
        "Name": u.name, "ServerId": server_id, "Id": u.id,
        "HasPassword": !u.password.is_empty(), "HasConfiguredPassword": !u.password.is_empty(), "HasConfiguredEasyPassword": false,
        "EnableAutoLogin": false, "Configuration": {}, "Policy": Value::Object(u.policy.clone()),
        "PrimaryImageTag": u.avatar.as_ref().map(|_| "avatar"),
    })
}

fn caller(g: &Inner, req: &Request<Incoming>) -> (Caller, HashMap<String, String>) {
    let legacy = g.opts.legacy_auth;
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    // GetAuthorizationDictionary: Authorization (10.11+: X-Emby-Authorization only with legacy auth;
    // 10.10 and earlier read X-Emby-Authorization first).
    let header = h("authorization").or_else(|| if legacy { h("x-emby-authorization") } else { None });
    let params = header.and_then(|v| parse_auth_params(&v, legacy)).unwrap_or_default();
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let mut token = params.get("Token").cloned().filter(|t| !t.is_empty());
    if legacy {
        token = token.or_else(|| h("x-emby-token")).or_else(|| h("x-mediabrowser-token"));
    }
    token = token.or_else(|| query.get("ApiKey").cloned());
    if legacy {
        token = token.or_else(|| query.get("api_key").cloned());
    }
    let caller = match token.filter(|t| !t.trim().is_empty()) {
        None => Caller::Anonymous,
        Some(t) if t == g.opts.api_key => Caller::ApiKey,
        Some(t) => match g.sessions.iter().find(|s| s.token == t) {
            Some(s) => {
                let admin = g.users.iter().find(|u| u.id == s.user_id).is_some_and(|u| u.policy["IsAdministrator"] == json!(true));
                Caller::User { id: s.user_id.clone(), token: t, admin }
            }
            None => Caller::Invalid,
        },
    };
    (caller, params)
}

/// `SessionManager.GetAuthorizationToken`: log out any existing session of this user on this
/// device, then create a new device token.
fn new_session(g: &mut Inner, user_id: &str, device_id: &str, client: &str, device_name: &str, version: &str) -> DoubleSession {
    g.sessions.retain(|s| !(s.user_id == user_id && s.device_id == device_id));
    let s = DoubleSession {
        token: hex_id(),
        user_id: user_id.into(),
        device_id: device_id.into(),
        client: client.into(),
        device_name: device_name.into(),
        app_version: version.into(),
    };
    g.sessions.push(s.clone());
    s
}

/// `AuthenticationResult` as `SessionManager.AuthenticateNewSessionInternal` returns it.
fn auth_result(g: &Inner, s: &DoubleSession) -> Value {
    let u = g.users.iter().find(|u| u.id == s.user_id).unwrap();
    json!({
        "User": user_dto(u, &g.server_id),
        "SessionInfo": {"Id": hex_id(), "UserId": s.user_id, "UserName": u.name, "Client": s.client, "DeviceId": s.device_id,
                        "DeviceName": s.device_name, "ApplicationVersion": s.app_version, "IsActive": true},
        "AccessToken": s.token,
        "ServerId": g.server_id,
    })
}

/// `QuickConnectManager.ExpireRequests`: drop requests and authorized secrets older than the timeout.
fn expire_qc(g: &mut Inner) {
    g.qc_requests.retain(|_, r| r.added.elapsed() < QC_TIMEOUT);
    g.qc_authorized.retain(|_, (t, _)| t.elapsed() < QC_TIMEOUT);
}

fn qc_json(r: &QcRequest) -> Value {
    json!({"Authenticated": r.authenticated, "Secret": r.secret, "Code": r.code, "DeviceId": r.device_id,
           "DeviceName": r.device_name, "AppName": r.app_name, "AppVersion": r.app_version, "DateAdded": "2026-01-01T00:00:00Z"})
}

/// The 6-digit code of `QuickConnectManager.GenerateCode` (100000..=999999).
fn qc_code() -> String {
    (100_000 + rand::random::<u32>() % 900_000).to_string()
}

async fn handle(state: Arc<Mutex<Inner>>, req: Request<Incoming>) -> Response<Body> {
    let latency = state.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();

    // Proxy-test endpoints that stream: handled before the body is read.
    match (method.as_str(), path.as_str()) {
        (_, "/echo/body") => {
            record(&state, &req, Vec::new());
            let body = req.into_body().map_err(|_| unreachable_infallible()).boxed();
            return Response::new(body);
        }
        ("GET" | "HEAD", "/media/big.bin") => {
            record(&state, &req, Vec::new());
            let size = state.lock().unwrap().opts.media_size;
            return media(&req, size);
        }
        ("GET", "/socket") => {
            record(&state, &req, Vec::new());
            return websocket(req);
        }
        _ => {}
    }

    let (caller, params) = caller(&state.lock().unwrap(), &req);
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return empty(StatusCode::BAD_REQUEST),
    };
    {
        let mut g = state.lock().unwrap();
        g.calls.push(RecordedCall {
            method: method.to_string(),
            path: path.clone(),
            query: query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"),
            authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
            body: body.iter().take(1 << 20).copied().collect(),
        });
    }
    let mut g = state.lock().unwrap();
    let authed = !matches!(caller, Caller::Anonymous | Caller::Invalid);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();

    // [Authorize] → 401 without a valid token; RequiresElevation → 403 for non-administrators.
    macro_rules! require_auth {
        () => {
            if !authed {
                return empty(StatusCode::UNAUTHORIZED);
            }
        };
    }
    macro_rules! require_admin {
        () => {
            require_auth!();
            if !caller.admin() {
                return empty(StatusCode::FORBIDDEN);
            }
        };
    }

    match (method.as_str(), l.as_slice()) {
        // Jellyfin.Api/Controllers/SystemController.cs: GET /System/Info/Public, anonymous.
        ("GET", ["system", "info", "public"]) => json_resp(
            StatusCode::OK,
            &json!({"LocalAddress": format!("http://127.0.0.1"), "ServerName": g.opts.server_name, "Version": g.opts.version,
                    "ProductName": "Jellyfin Server", "OperatingSystem": "", "Id": g.server_id, "StartupWizardCompleted": true}),
        ),
        // QuickConnectController.cs: GET /QuickConnect/Enabled, anonymous.
        ("GET", ["quickconnect", "enabled"]) => json_resp(StatusCode::OK, &json!(g.opts.quick_connect_enabled)),
        // QuickConnectController.InitiateQuickConnect (POST; GET is the obsolete alias).
        ("POST" | "GET", ["quickconnect", "initiate"]) => {
            // QuickConnectManager.TryConnect: DeviceId, Device, Client, Version are required
            // (ArgumentException → 400 by ExceptionMiddleware), then AssertActive (→ 401 "Quick connect is disabled").
            let get = |k: &str| params.get(k).cloned().filter(|v| !v.is_empty());
            let (Some(device_id), Some(device), Some(client), Some(version)) = (get("DeviceId"), get("Device"), get("Client"), get("Version")) else {
                return text(StatusCode::BAD_REQUEST, "Value cannot be null or empty.");
            };
            if !g.opts.quick_connect_enabled {
                return text(StatusCode::UNAUTHORIZED, "Quick connect is disabled");
            }
            expire_qc(&mut g);
            let mut code = qc_code();
            while g.qc_requests.contains_key(&code) {
                code = qc_code();
            }
            let secret: String = (0..32).map(|_| format!("{:02X}", rand::random::<u8>())).collect();
            let r = QcRequest { secret, code: code.clone(), added: Instant::now(), device_id, device_name: device, app_name: client, app_version: version, authenticated: false };
            let v = qc_json(&r);
            g.qc_requests.insert(code, r);
            json_resp(StatusCode::OK, &v)
        }
        // QuickConnectController.GetQuickConnectState: 401 disabled, 404 "Unknown secret".
        ("GET", ["quickconnect", "connect"]) => {
            if !g.opts.quick_connect_enabled {
                return text(StatusCode::UNAUTHORIZED, "Quick connect is disabled");
            }
            expire_qc(&mut g);
            let secret = query.get("secret").cloned().unwrap_or_default();
            match g.qc_requests.values().find(|r| r.secret == secret) {
                Some(r) => json_resp(StatusCode::OK, &qc_json(r)),
                None => text(StatusCode::NOT_FOUND, "Unknown secret"),
            }
        }
        // QuickConnectController.AuthorizeQuickConnect ([Authorize]); RequestHelpers.GetUserId:
        // another user's id needs the Administrator role (SecurityException → 403).
        ("POST", ["quickconnect", "authorize"]) => {
            require_auth!();
            let Some(code) = query.get("code").cloned() else { return text(StatusCode::BAD_REQUEST, "The code field is required.") };
            let target = match (query.get("userId").filter(|u| !u.is_empty()), &caller) {
                (None, Caller::User { id, .. }) => id.clone(),
                (None, _) => String::new(),
                (Some(u), Caller::User { id, admin, .. }) if !admin && !same_id(u, id) => return empty(StatusCode::FORBIDDEN),
                (Some(u), _) => u.replace('-', "").to_ascii_lowercase(),
            };
            if !g.opts.quick_connect_enabled {
                return text(StatusCode::UNAUTHORIZED, "Quick connect is disabled");
            }
            expire_qc(&mut g);
            let Some(r) = g.qc_requests.get(&code).cloned() else {
                return text(StatusCode::NOT_FOUND, "Unable to find request"); // ResourceNotFoundException → 404
            };
            if r.authenticated {
                // InvalidOperationException("Request is already authorized") → 500 (ExceptionMiddleware default).
                return text(StatusCode::INTERNAL_SERVER_ERROR, "Request is already authorized");
            }
            if !g.users.iter().any(|u| u.id == target) {
                // AuthenticateNewSessionInternal: no user by id → GetUserByName(null) → ArgumentException → 400.
                return respond(StatusCode::BAD_REQUEST, "Error processing request.", "text/plain");
            }
            // AuthorizeRequest → SessionManager.AuthenticateDirect with the Initiate call's device.
            let s = new_session(&mut g, &target, &r.device_id, &r.app_name, &r.device_name, &r.app_version);
            let result = auth_result(&g, &s);
            g.qc_authorized.insert(r.secret.clone(), (Instant::now(), result));
            if let Some(r) = g.qc_requests.get_mut(&code) {
                r.authenticated = true;
                // "Change the time on the request so it expires one minute into the future."
                r.added = Instant::now().checked_sub(QC_TIMEOUT - Duration::from_secs(60)).unwrap_or_else(Instant::now);
            }
            json_resp(StatusCode::OK, &json!(true))
        }
        // UserController.AuthenticateWithQuickConnect → QuickConnectManager.GetAuthorizedRequest.
        ("POST", ["users", "authenticatewithquickconnect"]) => {
            if !g.opts.quick_connect_enabled {
                return text(StatusCode::UNAUTHORIZED, "Quick connect is not active on this server");
            }
            expire_qc(&mut g);
            let secret = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["Secret"].as_str().map(str::to_string)).unwrap_or_default();
            match g.qc_authorized.get(&secret) {
                Some((_, result)) => json_resp(StatusCode::OK, result),
                None => text(StatusCode::NOT_FOUND, "Unable to find request"),
            }
        }
        // UserController.AuthenticateUserByName → SessionManager.AuthenticateNewSession (password enforced).
        ("POST", ["users", "authenticatebyname"]) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (name, pw) = (v["Username"].as_str().unwrap_or(""), v["Pw"].as_str().unwrap_or(""));
            let get = |k: &str| params.get(k).cloned().filter(|v| !v.is_empty());
            let (Some(device_id), Some(device), Some(client), Some(version)) = (get("DeviceId"), get("Device"), get("Client"), get("Version")) else {
                return text(StatusCode::BAD_REQUEST, "Value cannot be null or empty.");
            };
            let Some(u) = g.users.iter().find(|u| u.name.eq_ignore_ascii_case(name)).cloned() else {
                return text(StatusCode::UNAUTHORIZED, "Invalid username or password entered.");
            };
            // UserManager.AuthenticateLocalUser uses the user's provider; InvalidAuthProvider.Authenticate
            // throws AuthenticationException ("User Account cannot login with this provider…") → 401.
            if u.policy["AuthenticationProviderId"] != json!(DEFAULT_AUTH) || u.password != pw {
                return text(StatusCode::UNAUTHORIZED, "Invalid username or password entered.");
            }
            let s = new_session(&mut g, &u.id, &device_id, &client, &device, &version);
            json_resp(StatusCode::OK, &auth_result(&g, &s))
        }
        // UserController.GetUsers ([Authorize]).
        ("GET", ["users"]) => {
            require_auth!();
            let list: Vec<Value> = g.users.iter().map(|u| user_dto(u, &g.server_id)).collect();
            json_resp(StatusCode::OK, &Value::Array(list))
        }
        // UserController.GetCurrentUser: an API key has no user → 400 (BadRequest()).
        ("GET", ["users", "me"]) => {
            require_auth!();
            match &caller {
                Caller::User { id, .. } => json_resp(StatusCode::OK, &user_dto(g.users.iter().find(|u| &u.id == id).unwrap(), &g.server_id)),
                _ => empty(StatusCode::BAD_REQUEST),
            }
        }
        // UserController.CreateUserByName (RequiresElevation). UserManager.CreateUserAsync refuses a
        // name that exists (case-insensitively) with ArgumentException → 400.
        ("POST", ["users", "new"]) => {
            require_admin!();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(name) = v["Name"].as_str().filter(|n| !n.trim().is_empty()) else {
                return text(StatusCode::BAD_REQUEST, "The Name field is required.");
            };
            if g.users.iter().any(|u| u.name.eq_ignore_ascii_case(name)) {
                return text(StatusCode::BAD_REQUEST, &format!("A user with the name '{name}' already exists."));
            }
            let u = User { id: hex_id(), name: name.into(), password: v["Password"].as_str().unwrap_or("").into(), policy: default_policy(), avatar: None };
            let dto = user_dto(&u, &g.server_id);
            g.users.push(u);
            json_resp(StatusCode::OK, &dto)
        }
        // UserController.UpdateUserPolicy (RequiresElevation): model binding builds a whole new
        // UserPolicy (missing fields take the constructor defaults, unknown ones are dropped,
        // [Required] AuthenticationProviderId / PasswordResetProviderId → 400 ProblemDetails);
        // then the last-administrator and disabling checks (403 with a message).
        ("POST", ["users", _, "policy"]) => {
            require_admin!();
            let id = segs[1].replace('-', "").to_ascii_lowercase();
            let Ok(Value::Object(sent)) = serde_json::from_slice::<Value>(&body) else {
                return json_resp(StatusCode::BAD_REQUEST, &json!({"title": "One or more validation errors occurred.", "status": 400}));
            };
            let mut errors = Map::new();
            for f in ["AuthenticationProviderId", "PasswordResetProviderId"] {
                if sent.get(f).and_then(Value::as_str).is_none_or(|s| s.is_empty()) {
                    errors.insert(f.into(), json!([format!("The {f} field is required.")]));
                }
            }
            if !errors.is_empty() {
                return json_resp(
                    StatusCode::BAD_REQUEST,
                    &json!({"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1", "title": "One or more validation errors occurred.", "status": 400, "errors": errors}),
                );
            }
            // Guid[] fields must hold parseable Guids (JsonGuidConverter's FormatException → 400
            // ValidationProblemDetails); they are stored in "N" form.
            for f in ["EnabledFolders", "EnabledChannels", "BlockedMediaFolders", "BlockedChannels"] {
                if let Some(Value::Array(items)) = sent.get(f) {
                    if items.iter().any(|v| v.as_str().is_none_or(|s| parse_guid(s).is_none())) {
                        return json_resp(
                            StatusCode::BAD_REQUEST,
                            &json!({"title": "One or more validation errors occurred.", "status": 400, "errors": {f: ["The JSON value could not be converted to System.Guid[]."]}}),
                        );
                    }
                }
            }
            let mut policy = default_policy();
            for (k, v) in sent {
                if policy.contains_key(&k) {
                    let v = match (k.as_str(), v) {
                        ("EnabledFolders" | "EnabledChannels", Value::Array(items)) => {
                            Value::Array(items.iter().filter_map(|i| i.as_str().and_then(parse_guid)).map(Value::String).collect())
                        }
                        (_, v) => v,
                    };
                    policy.insert(k, v);
                }
            }
            let admins = g.users.iter().filter(|u| u.policy["IsAdministrator"] == json!(true)).count();
            let Some(user) = g.users.iter().find(|u| u.id == id) else { return empty(StatusCode::NOT_FOUND) };
            let was_admin = user.policy["IsAdministrator"] == json!(true);
            if policy["IsAdministrator"] != json!(true) && was_admin && admins == 1 {
                return text(StatusCode::FORBIDDEN, "There must be at least one user in the system with administrative access.");
            }
            if policy["IsDisabled"] == json!(true) && was_admin {
                return text(StatusCode::FORBIDDEN, "Administrators cannot be disabled.");
            }
            let user = g.users.iter_mut().find(|u| u.id == id).unwrap();
            user.policy = policy;
            empty(StatusCode::NO_CONTENT)
        }
        // UserController.GetUserById ([Authorize(Policy = IgnoreParentalControl)]): 404 "User not found".
        ("GET", ["users", _]) => {
            require_auth!();
            let id = segs[1].replace('-', "").to_ascii_lowercase();
            match g.users.iter().find(|u| u.id == id) {
                Some(u) => json_resp(StatusCode::OK, &user_dto(u, &g.server_id)),
                None => text(StatusCode::NOT_FOUND, "User not found"),
            }
        }
        // UserController.DeleteUser (RequiresElevation).
        ("DELETE", ["users", _]) => {
            require_admin!();
            let id = segs[1].to_ascii_lowercase();
            let before = g.users.len();
            g.users.retain(|u| u.id != id);
            g.sessions.retain(|s| s.user_id != id);
            empty(if g.users.len() < before { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND })
        }
        // ImageController.PostUserImage (POST /UserImage?userId=, 10.9–12.0) and its legacy route
        // POST /Users/{userId}/Images/{imageType}: [Authorize], another user needs admin, the
        // Content-Type must be an image type (else 400 "Incorrect ContentType."), and the body is
        // base64 (GetFromBase64Stream).
        ("POST", ["userimage"]) | ("POST", ["users", _, "images", _]) => {
            require_auth!();
            let target = if l[0] == "userimage" { query.get("userId").cloned().unwrap_or_default() } else { segs[1].to_string() };
            let target = target.replace('-', "").to_ascii_lowercase();
            if let Caller::User { id, admin: false, .. } = &caller {
                if *id != target {
                    return empty(StatusCode::FORBIDDEN);
                }
            }
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
            if !matches!(ct.as_str(), "image/png" | "image/jpeg" | "image/jpg" | "image/gif" | "image/webp" | "image/bmp" | "image/svg+xml") {
                return text(StatusCode::BAD_REQUEST, "Incorrect ContentType.");
            }
            let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact) else {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "The input is not a valid Base-64 string");
            };
            match g.users.iter_mut().find(|u| u.id == target) {
                Some(u) => {
                    u.avatar = Some((bytes, ct));
                    empty(StatusCode::NO_CONTENT)
                }
                None => empty(StatusCode::NOT_FOUND),
            }
        }
        // LibraryStructureController.GetVirtualFolders (RequiresElevation).
        ("GET", ["library", "virtualfolders"]) => {
            require_admin!();
            let v: Vec<Value> = g.folders.iter().map(|(id, n)| json!({"Name": n, "ItemId": id, "Locations": [], "CollectionType": "movies"})).collect();
            json_resp(StatusCode::OK, &Value::Array(v))
        }
        // LibraryController.GetMediaFolders (RequiresElevation): QueryResult<BaseItemDto>.
        ("GET", ["library", "mediafolders"]) => {
            require_admin!();
            let v: Vec<Value> = g.folders.iter().map(|(id, n)| json!({"Name": n, "Id": id, "IsFolder": true, "Type": "CollectionFolder"})).collect();
            json_resp(StatusCode::OK, &json!({"Items": v, "TotalRecordCount": v.len(), "StartIndex": 0}))
        }
        // ApiKeyController.GetKeys (RequiresElevation).
        ("GET", ["auth", "keys"]) => {
            require_admin!();
            json_resp(StatusCode::OK, &json!({"Items": [{"AccessToken": "***", "AppName": "proxy"}], "TotalRecordCount": 1, "StartIndex": 0}))
        }
        // SessionController.ReportSessionEnded: POST /Sessions/Logout ([Authorize]) → 204.
        ("POST", ["sessions", "logout"]) => {
            require_auth!();
            if let Caller::User { token, .. } = &caller {
                let t = token.clone();
                g.sessions.retain(|s| s.token != t);
            }
            empty(StatusCode::NO_CONTENT)
        }
        // SessionController.GetSessions ([Authorize]).
        ("GET", ["sessions"]) => {
            require_auth!();
            let v: Vec<Value> = g.sessions.iter().map(|s| json!({"UserId": s.user_id, "DeviceId": s.device_id, "Client": s.client, "DeviceName": s.device_name})).collect();
            json_resp(StatusCode::OK, &Value::Array(v))
        }
        // DevicesController.DeleteDevice (RequiresElevation): DELETE /Devices?id= → 204, 404 unknown.
        ("DELETE", ["devices"]) => {
            require_admin!();
            let id = query.get("id").cloned().unwrap_or_default();
            let before = g.sessions.len();
            g.sessions.retain(|s| s.device_id != id);
            empty(if g.sessions.len() < before { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND })
        }
        // BrandingController: anonymous.
        ("GET", ["branding", "configuration"]) => json_resp(StatusCode::OK, &json!({"LoginDisclaimer": "", "CustomCss": "", "SplashscreenEnabled": false})),
        ("GET", ["branding", "css"] | ["branding", "css.css"]) => respond(StatusCode::OK, "", "text/css"),
        // The web client's entry page (jellyfin-web is served under /web/).
        ("GET", ["web", "index.html"] | ["web"]) => respond(
            StatusCode::OK,
            "<!doctype html><html><head><title>Jellyfin</title></head><body><h1>Jellyfin Web Double</h1></body></html>",
            "text/html; charset=utf-8",
        ),
        ("GET", ["test", "avatar.png"]) => respond(StatusCode::OK, TEST_AVATAR, "image/png"),
        ("GET", ["echo", "headers"]) => {
            let mut h = Map::new();
            for (k, v) in headers.iter() {
                h.insert(k.as_str().to_string(), json!(v.to_str().unwrap_or("")));
            }
            json_resp(StatusCode::OK, &json!({"method": method.as_str(), "path": path, "headers": h}))
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

/// A Guid in any `Guid.Parse` form ("N", "D", braces), returned in "N" form.
fn parse_guid(s: &str) -> Option<String> {
    let hex: String = s.trim_matches(|c| c == '{' || c == '}').chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

fn same_id(a: &str, b: &str) -> bool {
    a.replace('-', "").eq_ignore_ascii_case(&b.replace('-', ""))
}

fn unreachable_infallible() -> Infallible {
    panic!("request body broke while echoing")
}

fn record(state: &Arc<Mutex<Inner>>, req: &Request<Incoming>, body: Vec<u8>) {
    let mut g = state.lock().unwrap();
    g.calls.push(RecordedCall {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        authorization: req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        body,
    });
}

/// `/media/big.bin`: streamed in 64 KiB chunks, with single Range support (206, 416) and
/// `If-Range` against a strong ETag, as a static file server (and Jellyfin's) answers.
fn media(req: &Request<Incoming>, size: u64) -> Response<Body> {
    let etag = format!("\"big-{size}\"");
    let mut range = req.headers().get("range").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(ir) = req.headers().get("if-range").and_then(|v| v.to_str().ok()) {
        if ir != etag {
            range = None;
        }
    }
    let (start, end, status) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        None => (0, size, StatusCode::OK),
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            let parsed = match (a.trim(), b.trim()) {
                ("", n) => n.parse::<u64>().ok().map(|n| (size.saturating_sub(n), size)),
                (a, "") => a.parse::<u64>().ok().map(|a| (a, size)),
                (a, b) => a.parse::<u64>().ok().zip(b.parse::<u64>().ok()).map(|(a, b)| (a, (b + 1).min(size))),
            };
            match parsed {
                Some((s, e)) if s < e && s < size => (s, e, StatusCode::PARTIAL_CONTENT),
                _ => {
                    return Response::builder()
                        .status(StatusCode::RANGE_NOT_SATISFIABLE)
                        .header("content-range", format!("bytes */{size}"))
                        .body(Full::new(Bytes::new()).boxed())
                        .unwrap()
                }
            }
        }
    };
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/octet-stream")
        .header("accept-ranges", "bytes")
        .header("etag", &etag)
        .header("content-length", (end - start).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header("content-range", format!("bytes {start}-{}/{size}", end - 1));
    }
    if req.method() == Method::HEAD {
        return b.body(Full::new(Bytes::new()).boxed()).unwrap();
    }
    const CHUNK: u64 = 64 * 1024;
    let stream = futures_util::stream::unfold(start, move |pos| async move {
        if pos >= end {
            return None;
        }
        let n = CHUNK.min(end - pos);
        let chunk: Vec<u8> = (pos..pos + n).map(media_byte).collect();
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), pos + n))
    });
    b.body(StreamBody::new(stream).boxed()).unwrap()
}

/// `/socket`: a websocket that echoes text and binary messages and answers a close.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role, Message};
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else { return empty(StatusCode::BAD_REQUEST) };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        // Echo data messages. A close is answered by tungstenite itself on the next read,
        // which then ends the stream: keep reading until it does.
        while let Some(Ok(msg)) = ws.next().await {
            let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
            if echo && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_params_parse_like_authorization_context() {
        let p = parse_auth_params("MediaBrowser Client=\"Jellyfin Web\", Device=\"Bob%27s+Phone\", DeviceId=\"abc\", Version=\"10.10.7\", Token=\"t\"", false).unwrap();
        assert_eq!(p["Client"], "Jellyfin Web");
        assert_eq!(p["Device"], "Bob's Phone");
        assert_eq!(p["Token"], "t");
        // A comma inside quotes does not split (GetParts' XOR escape logic).
        let p = parse_auth_params("MediaBrowser Device=\"a,b\", Token=\"t\"", false).unwrap();
        assert_eq!(p["Device"], "a,b");
        assert!(parse_auth_params("Emby Token=\"t\"", false).is_none(), "10.11: Emby scheme only with legacy auth");
        assert!(parse_auth_params("Emby Token=\"t\"", true).is_some());
    }

    #[test]
    fn codes_have_six_digits() {
        for _ in 0..1000 {
            let c = qc_code();
            assert_eq!(c.len(), 6);
            assert!(c.parse::<u32>().unwrap() >= 100_000);
        }
    }
}
