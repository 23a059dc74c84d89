//! The server itself: start on a port, answer HTTP/1.1 (with upgrades) until shut down, record
//! every call, and route each request to the module of the Jellyfin controller it belongs to.
//! The state sits behind one mutex, held for the whole (synchronous) answer, so a test sees a
//! consistent server; the clock can be moved forward to test expiry without waiting.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::auth::{authorize, AuthInfo, Caller};
use crate::branding::Branding;
use crate::quick_connect::QcRequest;
use crate::reply::{empty, Body};
use crate::sessions::{ApiKey, DoubleSession};
use crate::users::User;
use crate::{branding, fixtures, hex_id, images, library, quick_connect, sessions, system, users, web_client, DoubleOptions, Version};

/// A request as the double received it.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub authorization: Option<String>,
    /// Every request header (lowercase names), in arrival order.
    pub headers: Vec<(String, String)>,
    /// The request body, at most its first MiB (empty for the streaming endpoints).
    pub body: Vec<u8>,
}

impl RecordedCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Everything the server knows.
pub(crate) struct Inner {
    pub(crate) opts: DoubleOptions,
    pub(crate) addr: SocketAddr,
    pub(crate) server_id: String,
    pub(crate) users: Vec<User>,
    pub(crate) sessions: Vec<DoubleSession>,
    pub(crate) api_keys: Vec<ApiKey>,
    pub(crate) qc_requests: HashMap<String, QcRequest>,
    pub(crate) qc_authorized: HashMap<String, (Instant, serde_json::Value)>,
    /// Libraries: (id, name).
    pub(crate) folders: Vec<(String, String)>,
    pub(crate) branding: Branding,
    /// `ClientCapabilities` reported per session id (`POST /Sessions/Capabilities/Full`).
    pub(crate) capabilities: HashMap<String, serde_json::Value>,
    pub(crate) calls: Vec<RecordedCall>,
    pub(crate) latency: Duration,
    /// Added to the clock, to test expiry without waiting.
    pub(crate) skew: Duration,
    /// `/socket` authenticates its caller as Jellyfin's `WebSocketManager` does (off: the
    /// plain echo the forwarding tests use).
    pub(crate) socket_auth: bool,
}

impl Inner {
    pub(crate) fn new(opts: DoubleOptions, addr: SocketAddr, first_key: ApiKey) -> Inner {
        Inner {
            opts,
            addr,
            server_id: hex_id(),
            users: Vec::new(),
            sessions: Vec::new(),
            api_keys: vec![first_key],
            qc_requests: HashMap::new(),
            qc_authorized: HashMap::new(),
            folders: Vec::new(),
            branding: Branding::default(),
            capabilities: HashMap::new(),
            calls: Vec::new(),
            latency: Duration::ZERO,
            skew: Duration::ZERO,
            socket_auth: false,
        }
    }
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.skew
    }
    pub(crate) fn wall_now(&self) -> SystemTime {
        SystemTime::now() + self.skew
    }
    pub(crate) fn version(&self) -> Version {
        Version::parse(&self.opts.version)
    }
    pub(crate) fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
    pub(crate) fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }
    /// `UserManager.GetUserByName`: `NormalizedUsername == name.ToUpperInvariant()`.
    pub(crate) fn user_by_name(&self, name: &str) -> Option<&User> {
        let n = name.to_uppercase();
        self.users.iter().find(|u| u.name.to_uppercase() == n)
    }
}

/// A running double; dropping it stops it. The methods per concern (users, sessions, Quick
/// Connect, ...) are in their modules.
pub struct JellyfinDouble {
    pub addr: SocketAddr,
    pub(crate) inner: Arc<Mutex<Inner>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl JellyfinDouble {
    /// Listen on 127.0.0.1, on a free port.
    pub async fn start(opts: DoubleOptions) -> JellyfinDouble {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(l, opts).await
    }

    pub async fn start_on(listener: tokio::net::TcpListener, opts: DoubleOptions) -> JellyfinDouble {
        let addr = listener.local_addr().unwrap();
        let first_key = ApiKey { token: opts.api_key.clone(), name: "jellyfin-sso-proxy".into(), created: SystemTime::now() };
        let inner = Arc::new(Mutex::new(Inner::new(opts, addr, first_key)));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = stop_rx.changed() => break,
                    r = listener.accept() => match r { Ok((t, _)) => t, Err(_) => continue },
                };
                let state = state.clone();
                let mut conn_stop = stop_rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).with_upgrades();
                    // On shutdown the connection is dropped, which closes the socket.
                    tokio::select! {
                        _ = conn => {}
                        _ = conn_stop.changed() => {}
                    }
                });
            }
        });
        JellyfinDouble { addr, inner, stop }
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The SystemId (`PublicSystemInfo.Id`, `AuthenticationResult.ServerId`): 32 hex digits.
    pub fn server_id(&self) -> String {
        self.inner.lock().unwrap().server_id.clone()
    }

    /// `EnableLegacyAuthorization`.
    pub fn set_legacy_auth(&self, on: bool) {
        self.inner.lock().unwrap().opts.legacy_auth = on;
    }

    /// `/socket` refuses (401) a caller that does not authenticate, as Jellyfin's does.
    pub fn set_socket_auth(&self, on: bool) {
        self.inner.lock().unwrap().socket_auth = on;
    }

    /// Report, and behave like, another version from now on.
    pub fn set_version(&self, version: &str) {
        self.inner.lock().unwrap().opts.version = version.into();
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.inner.lock().unwrap().calls.clear();
    }

    /// Wait `d` before answering each request (for timeout tests).
    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().unwrap().latency = d;
    }

    /// Move the double's clock forward (Quick Connect expiry, dates).
    pub fn advance_clock(&self, d: Duration) {
        self.inner.lock().unwrap().skew += d;
    }

    /// Stop accepting connections and close the open ones.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for JellyfinDouble {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub(crate) fn record(g: &mut Inner, method: &Method, uri: &hyper::Uri, headers: &HeaderMap, body: &[u8]) {
    g.calls.push(RecordedCall {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        headers: headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
        body: body[..body.len().min(1 << 20)].to_vec(),
    });
}

async fn handle(state: Arc<Mutex<Inner>>, req: Request<Incoming>) -> Response<Body> {
    let latency = state.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Proxy-test endpoints that stream: answered before the body is read.
    let req = match fixtures::streaming(&state, req) {
        Ok(resp) => return resp,
        Err(req) => req,
    };
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return empty(StatusCode::BAD_REQUEST),
    };
    let mut g = state.lock().unwrap();
    record(&mut g, &parts.method, &parts.uri, &parts.headers, &body);
    route(&mut g, &parts.method, &path, parts.uri.query().unwrap_or(""), &parts.headers, &body)
}

/// A request once its body is read and its caller known, as the endpoint modules see it.
pub(crate) struct Req<'a> {
    pub(crate) method: Method,
    pub(crate) path: &'a str,
    pub(crate) raw_query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
    /// The path segments as sent (for ids), and lowercased (for matching: ASP.NET routes are
    /// case-insensitive).
    pub(crate) raw: &'a [&'a str],
    pub(crate) segs: &'a [&'a str],
    /// Every query pair, keys lowercased (IQueryCollection is case-insensitive).
    pub(crate) pairs: Vec<(String, String)>,
    /// The same with the first value of each key (what scalar parameters bind).
    pub(crate) query: HashMap<String, String>,
    pub(crate) v: Version,
    pub(crate) auth: AuthInfo,
    pub(crate) caller: Caller,
}

/// The REST endpoints: the caller first (authentication runs before routing's authorization
/// and model binding), then the module of the controller the path belongs to.
pub(crate) fn route(g: &mut Inner, method: &Method, path: &str, raw_query: &str, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    // Query keys bind case-insensitively (IQueryCollection); the first value wins for scalars.
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes()).map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect();
    let mut query: HashMap<String, String> = HashMap::new();
    for (k, val) in &pairs {
        query.entry(k.clone()).or_insert_with(|| val.clone());
    }
    let v = g.version();
    let auth = authorize(g, headers, &query);
    let caller = auth.caller.clone();
    let raw: Vec<&str> = path.trim_matches('/').split('/').collect();
    let lower: Vec<String> = raw.iter().map(|s| s.to_ascii_lowercase()).collect();
    let segs: Vec<&str> = lower.iter().map(String::as_str).collect();
    let r = Req { method: method.clone(), path, raw_query, headers, body, raw: &raw, segs: &segs, pairs, query, v, auth, caller };
    match segs.as_slice() {
        ["system", "configuration", "branding"] => branding::route(g, &r),
        ["system", ..] => system::route(g, &r),
        ["branding", ..] => branding::route(g, &r),
        ["quickconnect", ..] => quick_connect::route(g, &r),
        // Only POST: any other method falls to UserController's `{userId}` routes.
        ["users", "authenticatewithquickconnect"] if method == Method::POST => quick_connect::route(g, &r),
        ["userimage"] | ["users", _, "images", ..] => images::route(g, &r),
        ["displaypreferences", _] | ["userviews"] | ["users", _, "views"] | ["playback", "bitratetest"] => web_client::route(g, &r),
        ["users", ..] => users::route(g, &r),
        ["library", ..] => library::route(g, &r),
        ["sessions", ..] | ["devices", ..] | ["auth", "keys", ..] => sessions::route(g, &r),
        ["web", ..] | ["test", ..] | ["echo", ..] => fixtures::route(&r),
        // ASP.NET routing: no endpoint → 404 with an empty body.
        _ => empty(StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Requests straight into `route`, without a socket, for the modules' unit tests (the HTTP
    //! paths are exercised in tests/selftest/).
    use super::*;
    use serde_json::{json, Value};

    pub(crate) const DEVICE: &str = "MediaBrowser Client=\"Jellyfin Web\", Device=\"Firefox\", DeviceId=\"dev-1\", Version=\"10.10.7\"";

    /// A server state for `version` whose API key is "key".
    pub(crate) fn inner(version: &str) -> Inner {
        let key = ApiKey { token: "key".into(), name: "test".into(), created: SystemTime::now() };
        Inner::new(DoubleOptions { version: version.into(), ..Default::default() }, "127.0.0.1:8096".parse().unwrap(), key)
    }

    /// One request straight into `route`; the status and the body as JSON (or a JSON string).
    pub(crate) fn call(g: &mut Inner, method: &str, uri: &str, auth: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert("authorization", a.parse().unwrap());
        }
        let body = body.map(|b| {
            h.insert("content-type", "application/json".parse().unwrap());
            b.to_string().into_bytes()
        });
        let resp = route(g, &method.parse().unwrap(), path, query, &h, body.as_deref().unwrap_or(&[]));
        let status = resp.status().as_u16();
        use futures_util::FutureExt;
        let bytes = resp.into_body().collect().now_or_never().unwrap().ok().unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
    }

    pub(crate) fn add_user(g: &mut Inner, name: &str, admin: bool) -> String {
        let mut policy = crate::policy::new_user_policy(&g.opts.version);
        policy.insert("IsAdministrator".into(), json!(admin));
        let id = hex_id();
        g.users.push(User { id: id.clone(), name: name.into(), password: None, policy, avatar: None, last_login: None, last_activity: None });
        id
    }
}
