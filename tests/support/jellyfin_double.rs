//! A Jellyfin test double: an in-process HTTP/1.1 server that behaves like Jellyfin (10.9 to
//! 12.0) for every endpoint the proxy touches. Each behaviour was read from Jellyfin's source
//! (github `jellyfin/jellyfin`, tags v10.9.11, v10.10.7, v10.11.11, v12.0-rc5 and master) and
//! cites the file it mirrors; docs/jellyfin-api.md has the same facts as a reference.
//!
//! It also serves what the proxy's own tests need (a web page, a websocket echo at `/socket`, a
//! large media file with Range support at `/media/big.bin`, `/echo/headers`, `/echo/body`) and
//! records every call it gets.
//!
//! Self-contained on purpose (it never uses the proxy crate), so it is an independent reference;
//! `examples/jellyfin-double.rs` runs it on its own.
//!
//! Left out: live sessions separate from tokens (here one token = one session), parental
//! schedules, the LAN/remote distinction (everything is local), the setup wizard (always done),
//! and every endpoint not listed in `route`.
// Handlers return `Result<_, Response>` to answer early; the large Err is fine in a test double.
#![allow(dead_code, clippy::result_large_err)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// `Jellyfin.Server.Implementations/Users/DefaultAuthenticationProvider.cs` (the full type name
/// `UserManager.CreateUserInternalAsync` stores for new users).
pub const DEFAULT_AUTH: &str = "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider";
/// `Jellyfin.Server.Implementations/Users/InvalidAuthProvider.cs`: `IsEnabled => false`,
/// `Authenticate` always throws `AuthenticationException`.
pub const INVALID_AUTH: &str = "Jellyfin.Server.Implementations.Users.InvalidAuthProvider";
/// `Jellyfin.Server.Implementations/Users/DefaultPasswordResetProvider.cs`.
pub const DEFAULT_RESET: &str = "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider";

/// `Emby.Server.Implementations/QuickConnect/QuickConnectManager.cs`: `Timeout = 10` (minutes).
pub const QUICK_CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

/// `Jellyfin.Api/Middleware/ExceptionMiddleware.cs`: outside a Development environment every
/// exception is answered with this text (`text/plain`), whatever its message.
pub const EXCEPTION_TEXT: &str = "Error processing request.";

const EMPTY_GUID: &str = "00000000000000000000000000000000";

/// What `GET /test/avatar.png` serves (not Jellyfin: an image for `avatarUrlFormat` tests).
pub const TEST_AVATAR: &[u8] = b"\x89PNG\r\n\x1a\ntest-avatar-bytes";

#[derive(Clone, Debug)]
pub struct DoubleOptions {
    /// The API key the double knows from the start (more: `add_api_key`, `POST /Auth/Keys`).
    pub api_key: String,
    /// `ServerConfiguration.QuickConnectAvailable` (Jellyfin's default: true).
    pub quick_connect_enabled: bool,
    /// The version to report and behave like ("10.9.11", "10.10.7", "10.11.11", "12.0.0").
    pub version: String,
    pub server_name: String,
    /// Size of `/media/big.bin` in bytes.
    pub media_size: u64,
    /// `ServerConfiguration.EnableLegacyAuthorization` (added in 10.11 with default `true`;
    /// `false` from 12.0): `X-Emby-Authorization`, the `Emby` scheme, `X-Emby-Token`,
    /// `X-MediaBrowser-Token` and `?api_key=` count only when true. A real 10.9/10.10 always
    /// honours them; the double defaults to false so that tests catch any legacy use.
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

#[derive(Clone, Debug)]
struct User {
    /// A Guid in "N" form (`JsonGuidConverter` writes `ToString("N")`).
    id: String,
    name: String,
    /// None = no password (`DefaultAuthenticationProvider.ChangePassword("")` stores null).
    password: Option<String>,
    /// The policy as `UserManager.GetUserDto` reports it (null fields left out).
    policy: Map<String, Value>,
    avatar: Option<(Vec<u8>, String)>,
    last_login: Option<String>,
    last_activity: Option<String>,
}

#[derive(Clone, Debug)]
struct QcRequest {
    secret: String,
    code: String,
    /// `DateAdded`; lies in the future after `Authorize`.
    added: Instant,
    added_wall: SystemTime,
    device_id: String,
    device_name: String,
    app_name: String,
    app_version: String,
    authenticated: bool,
}

#[derive(Clone, Debug)]
struct ApiKey {
    token: String,
    name: String,
    created: SystemTime,
}

struct Inner {
    opts: DoubleOptions,
    addr: SocketAddr,
    server_id: String,
    users: Vec<User>,
    sessions: Vec<DoubleSession>,
    api_keys: Vec<ApiKey>,
    qc_requests: HashMap<String, QcRequest>,
    qc_authorized: HashMap<String, (Instant, Value)>,
    folders: Vec<(String, String)>,
    branding: (Option<String>, Option<String>),
    calls: Vec<RecordedCall>,
    latency: Duration,
    /// Added to the clock, to test expiry without waiting.
    skew: Duration,
}

impl Inner {
    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }
    fn wall_now(&self) -> SystemTime {
        SystemTime::now() + self.skew
    }
    fn version(&self) -> Version {
        Version::parse(&self.opts.version)
    }
    fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
    fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.id == id)
    }
    /// `UserManager.GetUserByName`: `NormalizedUsername == name.ToUpperInvariant()`.
    fn user_by_name(&self, name: &str) -> Option<&User> {
        let n = name.to_uppercase();
        self.users.iter().find(|u| u.name.to_uppercase() == n)
    }
}

pub struct JellyfinDouble {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// major.minor.patch, for the behaviours that changed between releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    pub fn parse(s: &str) -> Version {
        let mut it = s.split(['.', '-']).map(|p| p.parse::<u64>().unwrap_or(0));
        Version(it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0))
    }
    pub fn at_least(self, major: u64, minor: u64) -> bool {
        (self.0, self.1) >= (major, minor)
    }
}

fn hex_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The content of `/media/big.bin`: byte `i` is `(i * 31 + i / 7) mod 256`. It depends on the
/// position and has no small power-of-two period, so an off-by-one range or a swapped chunk shows.
pub fn media_byte(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i / 7)) as u8
}

/// A `DateTime` as `src/Jellyfin.Extensions/Json/Converters/JsonDateTimeConverter.cs` writes it:
/// `yyyy-MM-ddTHH:mm:ss.fffffffZ`.
pub fn jellyfin_date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:07}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_nanos() / 100)
}

/// `Guid.Parse`, as route/query binding and `JsonGuidConverter` use it: 32 hex digits, or
/// 8-4-4-4-12 with dashes, optionally in braces or parentheses. Returns the "N" form.
pub fn parse_guid(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .or_else(|| t.strip_prefix('(').and_then(|x| x.strip_suffix(')')))
        .unwrap_or(t);
    let hex: String = if t.len() == 36 {
        let b = t.as_bytes();
        if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return None;
        }
        t.chars().filter(|c| *c != '-').collect()
    } else {
        t.to_string()
    };
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------------------------
// Policies (MediaBrowser.Model/Users/UserPolicy.cs, Jellyfin.Server.Implementations/Users/UserManager.cs)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Bool,
    Int,
    OptInt,
    Str,
    StrArr,
    GuidArr,
    Unrated,
    Schedules,
    SyncPlay,
}

/// `MediaBrowser.Model/Users/UserPolicy.cs`: every property in declaration order, its type and
/// its constructor default as JSON. `MaxParentalSubRating` exists from 10.11.
const POLICY_FIELDS: &[(&str, Kind, &str)] = &[
    ("IsAdministrator", Kind::Bool, "false"),
    ("IsHidden", Kind::Bool, "true"),
    ("EnableCollectionManagement", Kind::Bool, "false"),
    ("EnableSubtitleManagement", Kind::Bool, "false"),
    ("EnableLyricManagement", Kind::Bool, "false"),
    ("IsDisabled", Kind::Bool, "false"),
    ("MaxParentalRating", Kind::OptInt, "null"),
    ("MaxParentalSubRating", Kind::OptInt, "null"),
    ("BlockedTags", Kind::StrArr, "[]"),
    ("AllowedTags", Kind::StrArr, "[]"),
    ("EnableUserPreferenceAccess", Kind::Bool, "true"),
    ("AccessSchedules", Kind::Schedules, "[]"),
    ("BlockUnratedItems", Kind::Unrated, "[]"),
    ("EnableRemoteControlOfOtherUsers", Kind::Bool, "false"),
    ("EnableSharedDeviceControl", Kind::Bool, "true"),
    ("EnableRemoteAccess", Kind::Bool, "true"),
    ("EnableLiveTvManagement", Kind::Bool, "true"),
    ("EnableLiveTvAccess", Kind::Bool, "true"),
    ("EnableMediaPlayback", Kind::Bool, "true"),
    ("EnableAudioPlaybackTranscoding", Kind::Bool, "true"),
    ("EnableVideoPlaybackTranscoding", Kind::Bool, "true"),
    ("EnablePlaybackRemuxing", Kind::Bool, "true"),
    ("ForceRemoteSourceTranscoding", Kind::Bool, "false"),
    ("EnableContentDeletion", Kind::Bool, "false"),
    ("EnableContentDeletionFromFolders", Kind::StrArr, "[]"),
    ("EnableContentDownloading", Kind::Bool, "true"),
    ("EnableSyncTranscoding", Kind::Bool, "true"),
    ("EnableMediaConversion", Kind::Bool, "true"),
    ("EnabledDevices", Kind::StrArr, "[]"),
    ("EnableAllDevices", Kind::Bool, "true"),
    ("EnabledChannels", Kind::GuidArr, "[]"),
    ("EnableAllChannels", Kind::Bool, "true"),
    ("EnabledFolders", Kind::GuidArr, "[]"),
    ("EnableAllFolders", Kind::Bool, "true"),
    ("InvalidLoginAttemptCount", Kind::Int, "0"),
    ("LoginAttemptsBeforeLockout", Kind::Int, "-1"),
    ("MaxActiveSessions", Kind::Int, "0"),
    ("EnablePublicSharing", Kind::Bool, "true"),
    ("BlockedMediaFolders", Kind::GuidArr, "null"),
    ("BlockedChannels", Kind::GuidArr, "null"),
    ("RemoteClientBitrateLimit", Kind::Int, "0"),
    ("AuthenticationProviderId", Kind::Str, "null"),
    ("PasswordResetProviderId", Kind::Str, "null"),
    ("SyncPlayAccess", Kind::SyncPlay, "\"CreateAndJoinGroups\""),
];

fn policy_fields(v: Version) -> impl Iterator<Item = &'static (&'static str, Kind, &'static str)> {
    POLICY_FIELDS.iter().filter(move |(name, _, _)| *name != "MaxParentalSubRating" || v.at_least(10, 11))
}

/// `new UserPolicy()`, where model binding starts (constructor defaults, nulls kept).
pub fn ctor_policy(version: &str) -> Map<String, Value> {
    policy_fields(Version::parse(version)).map(|(k, _, d)| (k.to_string(), serde_json::from_str(d).unwrap())).collect()
}

/// The policy `GetUserDto` reports for a new user: the permissions of `AddDefaultPermissions`
/// (`Jellyfin.Data/UserEntityExtensions.cs` in 10.11+, `Jellyfin.Data/Entities/User.cs` before:
/// `EnableLiveTvManagement` false from 10.11, true before), empty preferences, and the default
/// providers (`UserManager.CreateUserInternalAsync`). Nulls are left out (`WhenWritingNull`).
pub fn new_user_policy(version: &str) -> Map<String, Value> {
    let v = Version::parse(version);
    let mut p = ctor_policy(version);
    p.insert("EnableLiveTvManagement".into(), json!(!v.at_least(10, 11)));
    p.insert("AuthenticationProviderId".into(), json!(DEFAULT_AUTH));
    p.insert("PasswordResetProviderId".into(), json!(DEFAULT_RESET));
    p.insert("BlockedMediaFolders".into(), json!([]));
    p.insert("BlockedChannels".into(), json!([]));
    p.retain(|_, v| !v.is_null());
    p
}

/// The policy of a new user under the default version (10.10.7).
pub fn default_policy() -> Map<String, Value> {
    new_user_policy("10.10.7")
}

/// A JSON property looked up the way ASP.NET binds (case-insensitive names).
fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// `MediaBrowser.Model/Entities/UnratedItem.cs`.
const UNRATED: &[&str] = &["Movie", "Trailer", "Series", "Music", "Book", "LiveTvChannel", "LiveTvProgram", "ChannelContent", "Other"];
/// `Jellyfin.Data/Enums/SyncPlayUserAccessType.cs`.
const SYNCPLAY: &[&str] = &["CreateAndJoinGroups", "JoinGroups", "None"];

/// `JsonStringEnumConverter`: names case-insensitively, or numbers.
fn enum_value(v: &Value, names: &[&str]) -> Option<Value> {
    match v {
        Value::String(s) => names.iter().find(|n| n.eq_ignore_ascii_case(s)).map(|n| json!(n)),
        Value::Number(n) => n.as_u64().and_then(|i| names.get(i as usize)).map(|n| json!(n)),
        _ => None,
    }
}

/// Model binding of `[FromBody, Required] UserPolicy newPolicy` (System.Text.Json with Jellyfin's
/// options on ASP.NET's web defaults: case-insensitive names, `NumberHandling.AllowReadingFromString`):
/// start from the constructor defaults, overwrite each property present, ignore unknown ones.
/// A value of the wrong type stops with a `JsonException` (Guid arrays: `JsonGuidConverter`'s
/// `Guid.Parse` `FormatException`, null elements are `Guid.Empty`); then `[Required]` is checked.
/// Err = the `errors` of the 400 ValidationProblemDetails.
fn bind_policy(sent: &Value, version: &str) -> Result<Map<String, Value>, Map<String, Value>> {
    let bad = |path: &str, ty: &str| {
        let mut e = Map::new();
        e.insert(path.to_string(), json!([format!("The JSON value could not be converted to {ty}. Path: {path} | LineNumber: 0 | BytePositionInLine: 0.")]));
        e.insert("newPolicy".into(), json!(["The newPolicy field is required."]));
        e
    };
    let Value::Object(sent) = sent else { return Err(bad("$", "MediaBrowser.Model.Users.UserPolicy")) };
    let v = Version::parse(version);
    let mut p = ctor_policy(version);
    let int = |x: &Value| match x {
        Value::Number(n) => n.as_i64().filter(|i| i32::try_from(*i).is_ok()).map(|i| json!(i)),
        Value::String(s) => s.trim().parse::<i32>().ok().map(|i| json!(i)),
        _ => None,
    };
    for (name, kind, _) in policy_fields(v) {
        let Some(val) = get_ci(sent, name) else { continue };
        let out = match kind {
            Kind::Bool => val.as_bool().map(Value::Bool).ok_or("System.Boolean"),
            Kind::Int => int(val).ok_or("System.Int32"),
            Kind::OptInt => if val.is_null() { Some(Value::Null) } else { int(val) }.ok_or("System.Nullable`1[System.Int32]"),
            Kind::Str => (val.is_null() || val.is_string()).then(|| val.clone()).ok_or("System.String"),
            Kind::StrArr => match val {
                Value::Null => Ok(Value::Null),
                Value::Array(a) if a.iter().all(|x| x.is_null() || x.is_string()) => Ok(val.clone()),
                _ => Err("System.String[]"),
            },
            Kind::GuidArr => match val {
                Value::Null => Ok(Value::Null),
                Value::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        Value::Null => Some(json!(EMPTY_GUID)),
                        Value::String(s) => parse_guid(s).map(Value::String),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(Value::Array)
                    .ok_or("System.Guid"),
                _ => Err("System.Guid[]"),
            },
            Kind::Unrated => match val {
                Value::Null => Ok(Value::Null),
                Value::Array(a) => a.iter().map(|x| enum_value(x, UNRATED)).collect::<Option<Vec<_>>>().map(Value::Array).ok_or("MediaBrowser.Model.Entities.UnratedItem"),
                _ => Err("MediaBrowser.Model.Entities.UnratedItem[]"),
            },
            Kind::Schedules => match val {
                Value::Null => Ok(Value::Null),
                Value::Array(a) if a.iter().all(Value::is_object) => Ok(val.clone()),
                _ => Err("Jellyfin.Database.Implementations.Entities.AccessSchedule[]"),
            },
            Kind::SyncPlay => enum_value(val, SYNCPLAY).ok_or("Jellyfin.Data.Enums.SyncPlayUserAccessType"),
        };
        match out {
            Ok(x) => {
                p.insert(name.to_string(), x);
            }
            Err(ty) => return Err(bad(&format!("$.{name}"), ty)),
        }
    }
    // [Required(AllowEmptyStrings = false)]: null, empty or white space fails.
    let mut errors = Map::new();
    for f in ["AuthenticationProviderId", "PasswordResetProviderId"] {
        if p[f].as_str().is_none_or(|s| s.trim().is_empty()) {
            errors.insert(f.into(), json!([format!("The {f} field is required.")]));
        }
    }
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(errors)
    }
}

/// What `UserManager.UpdatePolicyAsync` stores and `GetUserDto` reads back, from a bound policy
/// and the user's previous one. Err = the status of the exception `UpdatePolicyAsync` throws.
fn store_policy(bound: &Map<String, Value>, previous: &Map<String, Value>) -> Result<Map<String, Value>, StatusCode> {
    let mut p = bound.clone();
    // `foreach (var s in policy.AccessSchedules)` on null: NullReferenceException → 500.
    if p["AccessSchedules"].is_null() {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    // SetPreference → string.Join(delimiter, null): ArgumentNullException → 400.
    for f in ["BlockedTags", "AllowedTags", "EnabledChannels", "EnabledDevices", "EnabledFolders", "EnableContentDeletionFromFolders"] {
        if p[f].is_null() {
            return Err(StatusCode::BAD_REQUEST);
        }
    }
    // `policy.BlockUnratedItems ?? Array.Empty<UnratedItem>()`.
    if p["BlockUnratedItems"].is_null() {
        p.insert("BlockUnratedItems".into(), json!([]));
    }
    // String preferences are joined with '|' and split back with RemoveEmptyEntries.
    for f in ["BlockedTags", "AllowedTags", "EnabledDevices", "EnableContentDeletionFromFolders"] {
        let joined: Vec<String> = p[f].as_array().unwrap().iter().map(|x| x.as_str().unwrap_or("").to_string()).collect();
        let split: Vec<Value> = joined.join("|").split('|').filter(|s| !s.is_empty()).map(|s| json!(s)).collect();
        p.insert(f.into(), Value::Array(split));
    }
    // LoginAttemptsBeforeLockout: -1 → null (read back as -1); 0 → 3 ("for some god forsaken
    // reason it's sent to the server as 0").
    if p["LoginAttemptsBeforeLockout"] == json!(0) {
        p.insert("LoginAttemptsBeforeLockout".into(), json!(3));
    }
    // EnableLyricManagement is saved as a permission, but GetUserDto never reads it back.
    p.insert("EnableLyricManagement".into(), json!(false));
    // BlockedMediaFolders / BlockedChannels are not written by UpdatePolicyAsync at all.
    for f in ["BlockedMediaFolders", "BlockedChannels"] {
        p.insert(f.into(), previous.get(f).cloned().unwrap_or(json!([])));
    }
    p.retain(|_, v| !v.is_null());
    Ok(p)
}

fn flag(p: &Map<String, Value>, k: &str) -> bool {
    p.get(k).and_then(Value::as_bool).unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Who is calling (Jellyfin.Server.Implementations/Security/AuthorizationContext.cs)
// ---------------------------------------------------------------------------------------------

/// `WebUtility.UrlDecode`: `+` → space, `%XX` → that byte (the result read as UTF-8), anything
/// else (including a `%` not followed by two hex digits) kept.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap() as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `AuthorizationContext.GetParts`: one pass over the text after the scheme. `"` and `,` flip an
/// "escaped" flag with `escaped = (!escaped) == (c == '"')`, so commas inside quotes don't
/// split; `=` outside quotes ends a key (trimmed); a value loses every leading and trailing `"`
/// (not spaces) and is URL-decoded. Keys are case-sensitive; a repeated key: the last wins.
pub fn get_parts(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut escaped, mut start, mut key) = (false, 0usize, String::new());
    let value = |from: usize, to: usize| url_decode(chars[from..to].iter().collect::<String>().trim_matches('"'));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == ',' {
            // "Applying a XOR logic to evaluate whether it is opening or closing a value".
            escaped = escaped != (c == '"');
            if c == ',' && !escaped {
                if start < i {
                    out.insert(std::mem::take(&mut key), value(start, i));
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
        out.insert(key, value(start, i));
    }
    out
}

/// `AuthorizationContext.GetAuthorization`: the scheme is the text before the first space,
/// `MediaBrowser` (any case), or `Emby` when legacy authorization is on; then `GetParts`.
pub fn parse_auth_params(value: &str, legacy: bool) -> Option<HashMap<String, String>> {
    let (scheme, rest) = value.split_once(' ')?;
    if !(scheme.eq_ignore_ascii_case("MediaBrowser") || (legacy && scheme.eq_ignore_ascii_case("Emby"))) {
        return None;
    }
    Some(get_parts(rest))
}

/// Who made a request (`AuthorizationContext`, `AuthService`, `CustomAuthenticationHandler`).
#[derive(Clone, Debug, PartialEq)]
enum Caller {
    /// No token: `AuthenticateResult.NoResult()`.
    Anonymous,
    /// An unknown token, or a disabled user's (`AuthService`: SecurityException → `Fail`).
    Invalid,
    ApiKey { token: String },
    User { id: String, token: String, admin: bool },
}

impl Caller {
    /// `CustomAuthenticationHandler`: an API key or an administrator gets the Administrator role.
    fn admin(&self) -> bool {
        matches!(self, Caller::ApiKey { .. } | Caller::User { admin: true, .. })
    }
    fn authenticated(&self) -> bool {
        !matches!(self, Caller::Anonymous | Caller::Invalid)
    }
    /// The UserId claim (`Guid.Empty`, here None, for an API key).
    fn user_id(&self) -> Option<&str> {
        match self {
            Caller::User { id, .. } => Some(id),
            _ => None,
        }
    }
    fn token(&self) -> Option<&str> {
        match self {
            Caller::User { token, .. } | Caller::ApiKey { token } => Some(token),
            _ => None,
        }
    }
}

/// `AuthorizationInfo`: the header's parameters, completed from the token's device row or key.
#[derive(Clone, Debug)]
struct AuthInfo {
    client: Option<String>,
    device: Option<String>,
    device_id: Option<String>,
    version: Option<String>,
    caller: Caller,
}

fn nonempty(s: Option<&String>) -> Option<String> {
    s.filter(|v| !v.is_empty()).cloned()
}

/// `AuthorizationContext.GetAuthorizationDictionary` + `GetAuthorizationInfoFromDictionary` for
/// the double's version and legacy setting (`query` has lowercase keys: IQueryCollection is
/// case-insensitive). Like Jellyfin, a different Device or Version in the header updates the
/// token's device row (except for Chromecast clients).
fn authorize(g: &mut Inner, headers: &HeaderMap, query: &HashMap<String, String>) -> AuthInfo {
    let legacy = g.opts.legacy_auth;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string).filter(|v| !v.is_empty());
    let header = if g.version().at_least(10, 11) {
        // 10.11+: Authorization; X-Emby-Authorization only as a legacy fallback.
        h("authorization").or_else(|| if legacy { h("x-emby-authorization") } else { None })
    } else if legacy {
        // 10.9/10.10: X-Emby-Authorization is read before Authorization.
        h("x-emby-authorization").or_else(|| h("authorization"))
    } else {
        h("authorization")
    };
    let params = header.and_then(|v| parse_auth_params(&v, legacy)).unwrap_or_default();
    let mut info = AuthInfo {
        client: params.get("Client").cloned(),
        device: params.get("Device").cloned(),
        device_id: params.get("DeviceId").cloned(),
        version: params.get("Version").cloned(),
        caller: Caller::Anonymous,
    };
    // The first non-empty of: Token, X-Emby-Token, X-MediaBrowser-Token, ?ApiKey=, ?api_key=
    // (the 2nd, 3rd and 5th only with legacy authorization).
    let mut token = nonempty(params.get("Token"));
    if legacy {
        token = token.or_else(|| h("x-emby-token")).or_else(|| h("x-mediabrowser-token"));
    }
    token = token.or_else(|| nonempty(query.get("apikey")));
    if legacy {
        token = token.or_else(|| nonempty(query.get("api_key")));
    }
    // `HasToken => !string.IsNullOrWhiteSpace(Token)`.
    let Some(token) = token.filter(|t| !t.trim().is_empty()) else { return info };
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|x| x.trim().is_empty());
    if let Some(i) = g.sessions.iter().position(|s| s.token == token) {
        let s = &mut g.sessions[i];
        if blank(&info.client) {
            info.client = Some(s.client.clone());
        }
        if blank(&info.device_id) {
            info.device_id = Some(s.device_id.clone());
        }
        let chromecast = info.client.as_deref().unwrap_or("").to_ascii_lowercase().contains("chromecast");
        match &info.device {
            d if blank(d) => info.device = Some(s.device_name.clone()),
            Some(d) if !d.eq_ignore_ascii_case(&s.device_name) && !chromecast => s.device_name = d.clone(),
            _ => {}
        }
        match &info.version {
            v if blank(v) => info.version = Some(s.app_version.clone()),
            Some(v) if !v.eq_ignore_ascii_case(&s.app_version) && !chromecast => s.app_version = v.clone(),
            _ => {}
        }
        let uid = s.user_id.clone();
        info.caller = match g.user(&uid) {
            // AuthService: "User account has been disabled."
            Some(u) if flag(&u.policy, "IsDisabled") => Caller::Invalid,
            Some(u) => Caller::User { admin: flag(&u.policy, "IsAdministrator"), id: uid, token },
            None => Caller::Invalid,
        };
    } else if let Some(k) = g.api_keys.iter().find(|k| k.token == token) {
        // IsApiKey: Client = the key's name; missing device fields from the server.
        info.client = Some(k.name.clone());
        if blank(&info.device_id) {
            info.device_id = Some(g.server_id.clone());
        }
        if blank(&info.device) {
            info.device = Some(g.opts.server_name.clone());
        }
        if blank(&info.version) {
            info.version = Some(g.opts.version.clone());
        }
        info.caller = Caller::ApiKey { token };
    } else {
        // AuthService: "Invalid token."
        info.caller = Caller::Invalid;
    }
    info
}

// ---------------------------------------------------------------------------------------------
// Response shapes
// ---------------------------------------------------------------------------------------------

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never: Infallible| match never {}).boxed()
}

fn respond(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    Response::builder().status(status).header("content-type", content_type).body(full(body)).unwrap()
}

fn json_resp(status: StatusCode, v: &Value) -> Response<Body> {
    respond(status, v.to_string(), "application/json; charset=utf-8")
}

/// `NotFound("msg")`, `StatusCode(403, "msg")`, `Unauthorized("msg")`, `BadRequest("msg")`: an
/// ObjectResult holding a string, written by the JSON formatter (`BaseJellyfinApiController`'s
/// `[Produces(application/json, …)]`), so the body is a JSON string.
fn message(status: StatusCode, s: &str) -> Response<Body> {
    json_resp(status, &Value::String(s.to_string()))
}

/// An exception turned into a status by `Jellyfin.Api/Middleware/ExceptionMiddleware.cs`.
fn exception(status: StatusCode) -> Response<Body> {
    respond(status, EXCEPTION_TEXT, "text/plain")
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(full(Bytes::new())).unwrap()
}

fn trace_id() -> String {
    format!("00-{}-{}-00", hex_id(), &hex_id()[..16])
}

/// `NotFound()` / `BadRequest()` without a value: ProblemDetails by `[ApiController]`'s
/// client-error mapping.
fn problem(status: StatusCode) -> Response<Body> {
    let section = match status.as_u16() {
        400 => "15.5.1",
        401 => "15.5.2",
        403 => "15.5.4",
        404 => "15.5.5",
        415 => "15.5.16",
        _ => "15.6.1",
    };
    let v = json!({"type": format!("https://tools.ietf.org/html/rfc9110#section-{section}"), "title": status.canonical_reason().unwrap_or(""),
                   "status": status.as_u16(), "traceId": trace_id()});
    respond(status, v.to_string(), "application/problem+json; charset=utf-8")
}

/// `[ApiController]`'s automatic 400 when model binding or validation fails.
fn validation(errors: Map<String, Value>) -> Response<Body> {
    let v = json!({"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1", "title": "One or more validation errors occurred.",
                   "status": 400, "errors": errors, "traceId": trace_id()});
    respond(StatusCode::BAD_REQUEST, v.to_string(), "application/problem+json; charset=utf-8")
}

fn validation1(key: &str, msg: &str) -> Response<Body> {
    let mut e = Map::new();
    e.insert(key.to_string(), json!([msg]));
    validation(e)
}

/// A `[FromBody, Required]` JSON parameter named `param`: 415 without a JSON content type
/// (ASP.NET's SystemTextJsonInputFormatter takes application/json, text/json and
/// application/*+json), 400 for an empty body or malformed JSON.
fn json_body(headers: &HeaderMap, body: &[u8], param: &str) -> Result<Value, Response<Body>> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mt = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !(mt == "application/json" || mt == "text/json" || (mt.starts_with("application/") && mt.ends_with("+json"))) {
        return Err(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        let mut e = Map::new();
        e.insert("".into(), json!(["A non-empty request body is required."]));
        e.insert(param.into(), json!([format!("The {param} field is required.")]));
        return Err(validation(e));
    }
    serde_json::from_slice::<Value>(body).map_err(|err| {
        let mut e = Map::new();
        e.insert("$".into(), json!([format!("{err}. Path: $")]));
        e.insert(param.into(), json!([format!("The {param} field is required.")]));
        validation(e)
    })
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.as_object().and_then(|m| get_ci(m, key)).and_then(Value::as_str).map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// The double
// ---------------------------------------------------------------------------------------------

impl JellyfinDouble {
    /// Listen on 127.0.0.1, on a free port.
    pub async fn start(opts: DoubleOptions) -> JellyfinDouble {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(l, opts).await
    }

    pub async fn start_on(listener: tokio::net::TcpListener, opts: DoubleOptions) -> JellyfinDouble {
        let addr = listener.local_addr().unwrap();
        let first_key = ApiKey { token: opts.api_key.clone(), name: "jellyfin-sso-proxy".into(), created: SystemTime::now() };
        let inner = Arc::new(Mutex::new(Inner {
            opts,
            addr,
            server_id: hex_id(),
            users: Vec::new(),
            sessions: Vec::new(),
            api_keys: vec![first_key],
            qc_requests: HashMap::new(),
            qc_authorized: HashMap::new(),
            folders: Vec::new(),
            branding: (None, None),
            calls: Vec::new(),
            latency: Duration::ZERO,
            skew: Duration::ZERO,
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

    /// Create a user directly (as the setup wizard or the dashboard would): default provider and
    /// new-user permissions; an empty password means none. Returns the id (32 hex digits).
    pub fn add_user(&self, name: &str, password: &str, is_admin: bool) -> String {
        let mut g = self.inner.lock().unwrap();
        let mut policy = new_user_policy(&g.opts.version);
        policy.insert("IsAdministrator".into(), json!(is_admin));
        let id = hex_id();
        let password = (!password.is_empty()).then(|| password.to_string());
        g.users.push(User { id: id.clone(), name: name.into(), password, policy, avatar: None, last_login: None, last_activity: None });
        id
    }

    /// A user's id by name (case-insensitive, as Jellyfin compares names).
    pub fn user_id(&self, name: &str) -> Option<String> {
        self.inner.lock().unwrap().user_by_name(name).map(|u| u.id.clone())
    }

    /// The `UserDto` Jellyfin would return for this name (case-insensitive).
    pub fn user_by_name(&self, name: &str) -> Option<Value> {
        let g = self.inner.lock().unwrap();
        g.user_by_name(name).map(|u| user_dto(&g, u))
    }

    /// The user's policy as `GET /Users/{id}` reports it.
    pub fn user_policy(&self, user_id: &str) -> Option<Value> {
        let id = parse_guid(user_id)?;
        self.inner.lock().unwrap().user(&id).map(|u| Value::Object(u.policy.clone()))
    }

    /// Change a user's stored policy directly, without any of Jellyfin's checks.
    pub fn update_policy(&self, user_id: &str, f: impl FnOnce(&mut Map<String, Value>)) {
        let id = parse_guid(user_id).expect("a user id");
        let mut g = self.inner.lock().unwrap();
        f(&mut g.user_mut(&id).expect("no such user").policy);
    }

    pub fn user_count(&self) -> usize {
        self.inner.lock().unwrap().users.len()
    }

    pub fn set_quick_connect_enabled(&self, on: bool) {
        self.inner.lock().unwrap().opts.quick_connect_enabled = on;
    }

    /// `EnableLegacyAuthorization`.
    pub fn set_legacy_auth(&self, on: bool) {
        self.inner.lock().unwrap().opts.legacy_auth = on;
    }

    /// Report, and behave like, another version from now on.
    pub fn set_version(&self, version: &str) {
        self.inner.lock().unwrap().opts.version = version.into();
    }

    /// The live tokens (at most one per user and device).
    pub fn sessions(&self) -> Vec<DoubleSession> {
        self.inner.lock().unwrap().sessions.clone()
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.inner.lock().unwrap().calls.clear();
    }

    /// The user's uploaded image, decoded.
    pub fn avatar(&self, user_id: &str) -> Option<Vec<u8>> {
        let id = parse_guid(user_id)?;
        self.inner.lock().unwrap().user(&id).and_then(|u| u.avatar.clone()).map(|(b, _)| b)
    }

    /// Add a library; returns its id (`VirtualFolderInfo.ItemId` = `MediaFolders` `Items[].Id`).
    pub fn add_media_folder(&self, name: &str) -> String {
        let id = hex_id();
        self.inner.lock().unwrap().folders.push((id.clone(), name.into()));
        id
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

    /// The Branding configuration: login disclaimer and custom CSS.
    pub fn set_branding(&self, login_disclaimer: Option<&str>, custom_css: Option<&str>) {
        self.inner.lock().unwrap().branding = (login_disclaimer.map(str::to_string), custom_css.map(str::to_string));
    }

    /// Wait `d` before answering each request (for timeout tests).
    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().unwrap().latency = d;
    }

    /// Move the double's clock forward (Quick Connect expiry, dates).
    pub fn advance_clock(&self, d: Duration) {
        self.inner.lock().unwrap().skew += d;
    }

    /// The Quick Connect requests still known, as `QuickConnectResult`s.
    pub fn quick_connect_requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().qc_requests.values().map(qc_json).collect()
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

/// `UserDto` as `UserManager.GetUserDto` builds it (`MediaBrowser.Model/Dto/UserDto.cs`).
fn user_dto(g: &Inner, u: &User) -> Value {
    // HasPassword is the provider's answer: InvalidAuthProvider (and so any unknown provider)
    // says true; 12.0 stopped computing it (always true).
    let default_provider = u.policy.get("AuthenticationProviderId").and_then(Value::as_str).is_some_and(|p| p.eq_ignore_ascii_case(DEFAULT_AUTH));
    let has_password = g.version().at_least(12, 0) || !default_provider || u.password.is_some();
    let mut v = json!({
        "Name": u.name, "ServerId": g.server_id, "Id": u.id,
        "HasPassword": has_password, "HasConfiguredPassword": has_password, "HasConfiguredEasyPassword": false,
        "EnableAutoLogin": false,
        "Configuration": {
            "PlayDefaultAudioTrack": true, "SubtitleLanguagePreference": "", "DisplayMissingEpisodes": false,
            "GroupedFolders": [], "SubtitleMode": "Default", "DisplayCollectionsView": false, "EnableLocalPassword": false,
            "OrderedViews": [], "LatestItemsExcludes": [], "MyMediaExcludes": [], "HidePlayedInLatest": true,
            "RememberAudioSelections": true, "RememberSubtitleSelections": true, "EnableNextEpisodeAutoPlay": true
        },
        "Policy": Value::Object(u.policy.clone()),
    });
    let m = v.as_object_mut().unwrap();
    if let Some((bytes, _)) = &u.avatar {
        use sha2::Digest;
        let tag: String = sha2::Sha256::digest(bytes).iter().take(16).map(|b| format!("{b:02x}")).collect();
        m.insert("PrimaryImageTag".into(), json!(tag));
    }
    if let Some(d) = &u.last_login {
        m.insert("LastLoginDate".into(), json!(d));
    }
    if let Some(d) = &u.last_activity {
        m.insert("LastActivityDate".into(), json!(d));
    }
    v
}

/// `MediaBrowser.Model/Dto/SessionInfoDto.cs` (10.10+; 10.9 serialises `SessionInfo`, mostly
/// the same names).
fn session_dto(g: &Inner, s: &DoubleSession) -> Value {
    let name = g.user(&s.user_id).map(|u| u.name.clone()).unwrap_or_default();
    json!({
        "PlayState": {"CanSeek": false, "IsPaused": false, "IsMuted": false, "RepeatMode": "RepeatNone", "PlaybackOrder": "Default"},
        "AdditionalUsers": [],
        "Capabilities": {"PlayableMediaTypes": [], "SupportedCommands": [], "SupportsMediaControl": false, "SupportsPersistentIdentifier": true},
        "RemoteEndPoint": "127.0.0.1", "PlayableMediaTypes": [], "Id": s.session_id, "UserId": s.user_id, "UserName": name,
        "Client": s.client, "LastActivityDate": jellyfin_date(g.wall_now()), "LastPlaybackCheckIn": "0001-01-01T00:00:00.0000000Z",
        "DeviceName": s.device_name, "DeviceId": s.device_id, "ApplicationVersion": s.app_version, "IsActive": true,
        "SupportsMediaControl": false, "SupportsRemoteControl": false, "NowPlayingQueue": [], "NowPlayingQueueFullItems": [],
        "HasCustomDeviceName": false, "ServerId": g.server_id, "SupportedCommands": []
    })
}

/// `MediaBrowser.Controller/Authentication/AuthenticationResult.cs`.
fn auth_result(g: &Inner, s: &DoubleSession) -> Value {
    let u = g.user(&s.user_id).unwrap();
    json!({"User": user_dto(g, u), "SessionInfo": session_dto(g, s), "AccessToken": s.token, "ServerId": g.server_id})
}

/// `SessionManager.AuthenticateNewSessionInternal` once the user is known
/// (`Emby.Server.Implementations/Session/SessionManager.cs`): `DeviceManager.CanAccessDevice`,
/// the `MaxActiveSessions` limit (counted before the old session goes), then
/// `GetAuthorizationToken`, which logs out every token of this user on this DeviceId before
/// creating the new one. Err = the status of the exception thrown.
fn open_session(g: &mut Inner, user_id: &str, device_id: &str, client: &str, device_name: &str, version: &str) -> Result<DoubleSession, StatusCode> {
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

/// `UserManager.ThrowIfInvalidUsername`: `^(?!\s)[\w\ \-'._@+]+(?<!\s)$` (`\w` approximated by
/// Unicode alphanumerics and `_`); 12.0 also refuses "." and "..".
fn valid_username(name: &str, v: Version) -> bool {
    !name.is_empty()
        && !name.starts_with(char::is_whitespace)
        && !name.ends_with(char::is_whitespace)
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || " -'.@+".contains(c))
        && !(v.at_least(12, 0) && (name == "." || name == ".."))
}

fn record(g: &mut Inner, method: &Method, uri: &hyper::Uri, headers: &HeaderMap, body: &[u8]) {
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
    let path = req.uri().path().to_string();
    // Proxy-test endpoints that stream: answered before the body is read.
    match (req.method().as_str(), path.to_ascii_lowercase().as_str()) {
        (_, "/echo/body") => {
            record(&mut state.lock().unwrap(), req.method(), req.uri(), req.headers(), &[]);
            let ct = req.headers().get("content-type").cloned();
            let mut resp = Response::new(req.into_body().map_err(BoxError::from).boxed());
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            return resp;
        }
        ("GET" | "HEAD", "/media/big.bin") => {
            let size = {
                let mut g = state.lock().unwrap();
                record(&mut g, req.method(), req.uri(), req.headers(), &[]);
                g.opts.media_size
            };
            return media(&req, size);
        }
        ("GET", "/socket") => {
            record(&mut state.lock().unwrap(), req.method(), req.uri(), req.headers(), &[]);
            return websocket(req);
        }
        _ => {}
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return empty(StatusCode::BAD_REQUEST),
    };
    let mut g = state.lock().unwrap();
    record(&mut g, &parts.method, &parts.uri, &parts.headers, &body);
    route(&mut g, &parts.method, &path, parts.uri.query().unwrap_or(""), &parts.headers, &body)
}

/// Image types accepted by the legacy image routes (`MediaBrowser.Model/Entities/ImageType.cs`).
const IMAGE_TYPES: &[&str] = &["Primary", "Art", "Backdrop", "Banner", "Logo", "Thumb", "Disc", "Box", "Screenshot", "Menu", "Chapter", "BoxRear", "Profile"];

/// Image media types with a known extension (`MediaBrowser.Model/Net/MimeTypes.cs` `ToExtension`
/// and the MimeTypes package it falls back to); `ImageController.TryGetImageExtensionFromContentType`.
const IMAGE_MIME: &[&str] = &[
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/svg+xml", "image/tiff", "image/x-png", "image/x-icon",
    "image/vnd.microsoft.icon", "image/avif", "image/heic", "image/heif", "image/apng", "image/jxl",
];

fn opt_bool(query: &HashMap<String, String>, key: &str, name: &str) -> Result<Option<bool>, Response<Body>> {
    match query.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(s) => Err(validation1(name, &format!("The value '{s}' is not valid."))),
    }
}

/// A `Guid?` query parameter: absent or empty → None, unparseable → 400.
fn opt_guid(query: &HashMap<String, String>, key: &str, name: &str) -> Result<Option<String>, Response<Body>> {
    match query.get(key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_guid(s).map(Some).ok_or_else(|| validation1(name, &format!("The value '{s}' is not valid."))),
    }
}

/// The REST endpoints; `g` stays locked for the whole (synchronous) answer.
fn route(g: &mut Inner, method: &Method, path: &str, raw_query: &str, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
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
    let enabled = g.opts.quick_connect_enabled;

    // [Authorize] → 401 (empty) without a valid token; RequiresElevation → 403 (empty) for
    // non-administrators. Authorization runs before model binding, so these come first.
    macro_rules! authorized {
        () => {
            if !caller.authenticated() {
                return empty(StatusCode::UNAUTHORIZED);
            }
        };
    }
    macro_rules! elevated {
        () => {
            authorized!();
            if !caller.admin() {
                return empty(StatusCode::FORBIDDEN);
            }
        };
    }
    macro_rules! body_json {
        ($param:expr) => {
            match json_body(headers, body, $param) {
                Ok(v) => v,
                Err(r) => return r,
            }
        };
    }
    macro_rules! route_guid {
        ($raw:expr) => {
            match parse_guid($raw) {
                Some(id) => id,
                None => return validation1("userId", &format!("The value '{}' is not valid.", $raw)),
            }
        };
    }
    macro_rules! try_resp {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(r) => return r,
            }
        };
    }
    // The four device fields AuthenticateNewSessionInternal / TryConnect require
    // (ArgumentException.ThrowIfNullOrEmpty → 400).
    let device_fields = || -> Option<(String, String, String, String)> {
        let need = |x: &Option<String>| x.clone().filter(|s| !s.is_empty());
        Some((need(&auth.client)?, need(&auth.device)?, need(&auth.device_id)?, need(&auth.version)?))
    };

    match (method.as_str(), segs.as_slice()) {
        // Jellyfin.Api/Controllers/SystemController.cs GetPublicSystemInfo (anonymous), built by
        // Emby.Server.Implementations/SystemManager.cs; OperatingSystem is obsolete and empty.
        ("GET", ["system", "info", "public"]) => json_resp(
            StatusCode::OK,
            &json!({"LocalAddress": format!("http://{}", g.addr), "ServerName": g.opts.server_name, "Version": g.opts.version,
                    "ProductName": "Jellyfin Server", "OperatingSystem": "", "Id": g.server_id, "StartupWizardCompleted": true}),
        ),

        // Jellyfin.Api/Controllers/BrandingController.cs (anonymous): LoginDisclaimer, CustomCss,
        // SplashscreenEnabled; null ones are left out (WhenWritingNull).
        ("GET", ["branding", "configuration"]) => {
            let mut o = Map::new();
            if let Some(d) = &g.branding.0 {
                o.insert("LoginDisclaimer".into(), json!(d));
            }
            if let Some(c) = &g.branding.1 {
                o.insert("CustomCss".into(), json!(c));
            }
            o.insert("SplashscreenEnabled".into(), json!(false));
            json_resp(StatusCode::OK, &Value::Object(o))
        }
        ("GET", ["branding", "css" | "css.css"]) => respond(StatusCode::OK, g.branding.1.clone().unwrap_or_default(), "text/css"),

        // QuickConnectController.GetQuickConnectEnabled (anonymous).
        ("GET", ["quickconnect", "enabled"]) => json_resp(StatusCode::OK, &json!(enabled)),

        // QuickConnectController.InitiateQuickConnect (POST; the obsolete GET alias is gone in
        // 12.0) → QuickConnectManager.TryConnect: the four device fields first (400), then
        // AssertActive (AuthenticationException, caught: 401 "Quick connect is disabled").
        ("POST", ["quickconnect", "initiate"]) | ("GET", ["quickconnect", "initiate"]) if method == Method::POST || !v.at_least(12, 0) => {
            let Some((client, device, device_id, version)) = device_fields() else { return exception(StatusCode::BAD_REQUEST) };
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
            authorized!();
            let Some(code) = query.get("code").filter(|c| !c.is_empty()).cloned() else {
                return validation1("code", "The code field is required.");
            };
            let requested = try_resp!(opt_guid(&query, "userid", "userId"));
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
            let b = body_json!("request");
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

        // UserController.AuthenticateUserByName → SessionManager.AuthenticateNewSession →
        // UserManager.AuthenticateUser (Jellyfin.Server.Implementations/Users/UserManager.cs).
        ("POST", ["users", "authenticatebyname"]) => {
            let b = body_json!("request");
            let Some((client, device, device_id, version)) = device_fields() else { return exception(StatusCode::BAD_REQUEST) };
            let name = str_field(&b, "Username").unwrap_or_default();
            let pw = str_field(&b, "Pw").unwrap_or_default();
            if name.trim().is_empty() {
                return exception(StatusCode::BAD_REQUEST); // GetUserByName: "Invalid username"
            }
            let Some(u) = g.user_by_name(&name).cloned() else {
                return exception(StatusCode::UNAUTHORIZED); // "Invalid username or password entered."
            };
            // GetAuthenticationProviders: the user's provider among the enabled ones (only the
            // default one here); none → InvalidAuthProvider, whose Authenticate always throws.
            let default_provider = u.policy.get("AuthenticationProviderId").and_then(Value::as_str).is_some_and(|p| p.eq_ignore_ascii_case(DEFAULT_AUTH));
            // DefaultAuthenticationProvider: no stored password accepts only an empty one.
            let ok = default_provider && u.password.as_deref().map_or(pw.is_empty(), |p| p == pw);
            // Checked before the outcome: "The {user} account is currently disabled." → 403.
            if flag(&u.policy, "IsDisabled") {
                return exception(StatusCode::FORBIDDEN);
            }
            let now = jellyfin_date(g.wall_now());
            let user = g.user_mut(&u.id).unwrap();
            if ok {
                user.policy.insert("InvalidLoginAttemptCount".into(), json!(0));
                user.last_login = Some(now.clone());
                user.last_activity = Some(now);
            } else {
                // InvalidLoginAttemptCount++, and the lockout (LoginAttemptsBeforeLockout stored
                // non-null, i.e. not -1) disables the account.
                let count = user.policy.get("InvalidLoginAttemptCount").and_then(Value::as_i64).unwrap_or(0) + 1;
                user.policy.insert("InvalidLoginAttemptCount".into(), json!(count));
                let lock = user.policy.get("LoginAttemptsBeforeLockout").and_then(Value::as_i64).unwrap_or(-1);
                if lock != -1 && count >= lock {
                    user.policy.insert("IsDisabled".into(), json!(true));
                }
                return exception(StatusCode::UNAUTHORIZED);
            }
            match open_session(g, &u.id, &device_id, &client, &device, &version) {
                Ok(s) => json_resp(StatusCode::OK, &auth_result(g, &s)),
                Err(status) => exception(status),
            }
        }

        // UserController.GetUsers ([Authorize]): filtered by IsHidden / IsDisabled, ordered by name.
        ("GET", ["users"]) => {
            authorized!();
            let hidden = try_resp!(opt_bool(&query, "ishidden", "isHidden"));
            let disabled = try_resp!(opt_bool(&query, "isdisabled", "isDisabled"));
            let mut list: Vec<&User> = g
                .users
                .iter()
                .filter(|u| hidden.is_none_or(|h| flag(&u.policy, "IsHidden") == h))
                .filter(|u| disabled.is_none_or(|d| flag(&u.policy, "IsDisabled") == d))
                .collect();
            list.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.name.cmp(&b.name)));
            json_resp(StatusCode::OK, &Value::Array(list.into_iter().map(|u| user_dto(g, u)).collect()))
        }
        // UserController.GetPublicUsers (anonymous; wizard completed): not hidden, not disabled.
        ("GET", ["users", "public"]) => {
            let mut list: Vec<&User> = g.users.iter().filter(|u| !flag(&u.policy, "IsHidden") && !flag(&u.policy, "IsDisabled")).collect();
            list.sort_by_key(|u| u.name.to_lowercase());
            json_resp(StatusCode::OK, &Value::Array(list.into_iter().map(|u| user_dto(g, u)).collect()))
        }
        // UserController.GetCurrentUser: an API key has no user → BadRequest() → 400 ProblemDetails.
        ("GET", ["users", "me"]) => {
            authorized!();
            match caller.user_id().and_then(|id| g.user(id)) {
                Some(u) => json_resp(StatusCode::OK, &user_dto(g, u)),
                None => problem(StatusCode::BAD_REQUEST),
            }
        }

        // UserController.CreateUserByName (RequiresElevation) → UserManager.CreateUserAsync.
        ("POST", ["users", "new"]) => {
            elevated!();
            let b = body_json!("request");
            let Some(obj) = b.as_object() else { return validation1("$", "The JSON value could not be converted to Jellyfin.Api.Models.UserDtos.CreateUserByName.") };
            // `required string Name` (C# required → JsonException when absent), `[Required]`
            // (empty/white space → "The Name field is required."), `string? Password`.
            let name = match get_ci(obj, "Name") {
                None => {
                    let mut e = Map::new();
                    e.insert("$".into(), json!(["JSON deserialization for type 'Jellyfin.Api.Models.UserDtos.CreateUserByName' was missing required properties including: 'Name'."]));
                    e.insert("request".into(), json!(["The request field is required."]));
                    return validation(e);
                }
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) => String::new(),
                Some(_) => return validation1("$.Name", "The JSON value could not be converted to System.String. Path: $.Name"),
            };
            let password = match get_ci(obj, "Password") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => return validation1("$.Password", "The JSON value could not be converted to System.String. Path: $.Password"),
            };
            if name.trim().is_empty() {
                return validation1("Name", "The Name field is required.");
            }
            // ThrowIfInvalidUsername, then the case-insensitive duplicate check: both
            // ArgumentException → 400 text ("A user with the name '…' already exists.").
            if !valid_username(&name, v) || g.user_by_name(&name).is_some() {
                return exception(StatusCode::BAD_REQUEST);
            }
            // ChangePassword(""): DefaultAuthenticationProvider stores null (no password).
            let u = User {
                id: hex_id(),
                name,
                password: password.filter(|p| !p.is_empty()),
                policy: new_user_policy(&g.opts.version),
                avatar: None,
                last_login: None,
                last_activity: None,
            };
            let dto = user_dto(g, &u);
            g.users.push(u);
            json_resp(StatusCode::OK, &dto)
        }

        // UserController.UpdateUserPolicy (RequiresElevation): model binding of a whole new
        // UserPolicy (bind_policy), then the checks in order, then UpdatePolicyAsync (store_policy).
        ("POST", ["users", _, "policy"]) => {
            elevated!();
            let id = route_guid!(raw[1]);
            let b = body_json!("newPolicy");
            let bound = match bind_policy(&b, &g.opts.version) {
                Ok(p) => p,
                Err(e) => return validation(e),
            };
            if id == EMPTY_GUID {
                return exception(StatusCode::BAD_REQUEST); // GetUserById: "Guid can't be empty"
            }
            let Some(user) = g.user(&id).cloned() else { return problem(StatusCode::NOT_FOUND) };
            let was_admin = flag(&user.policy, "IsAdministrator");
            let admins = g.users.iter().filter(|u| flag(&u.policy, "IsAdministrator")).count();
            if !flag(&bound, "IsAdministrator") && was_admin && admins == 1 {
                return message(StatusCode::FORBIDDEN, "There must be at least one user in the system with administrative access.");
            }
            if flag(&bound, "IsDisabled") && was_admin {
                return message(StatusCode::FORBIDDEN, "Administrators cannot be disabled.");
            }
            if flag(&bound, "IsDisabled") && !flag(&user.policy, "IsDisabled") {
                if g.users.iter().filter(|u| !flag(&u.policy, "IsDisabled")).count() == 1 {
                    return message(StatusCode::FORBIDDEN, "There must be at least one enabled user in the system.");
                }
                // SessionManager.RevokeUserTokens(user, the caller's own token).
                let keep = caller.token().map(str::to_string);
                g.sessions.retain(|s| s.user_id != id || Some(&s.token) == keep.as_ref());
            }
            match store_policy(&bound, &user.policy) {
                Ok(p) => {
                    g.user_mut(&id).unwrap().policy = p;
                    empty(StatusCode::NO_CONTENT)
                }
                Err(status) => exception(status),
            }
        }

        // UserController.GetUserById (IgnoreParentalControl): 404 "User not found".
        ("GET", ["users", _]) => {
            authorized!();
            let id = route_guid!(raw[1]);
            if id == EMPTY_GUID {
                return exception(StatusCode::BAD_REQUEST);
            }
            match g.user(&id) {
                Some(u) => json_resp(StatusCode::OK, &user_dto(g, u)),
                None => message(StatusCode::NOT_FOUND, "User not found"),
            }
        }

        // UserController.DeleteUser (RequiresElevation): tokens revoked first, then
        // UserManager.DeleteUserAsync refuses the last user (InvalidOperationException → 500)
        // and the last administrator (ArgumentException → 400).
        ("DELETE", ["users", _]) => {
            elevated!();
            let id = route_guid!(raw[1]);
            if id == EMPTY_GUID {
                return exception(StatusCode::BAD_REQUEST);
            }
            let Some(user) = g.user(&id).cloned() else { return problem(StatusCode::NOT_FOUND) };
            g.sessions.retain(|s| s.user_id != id);
            if g.users.len() == 1 {
                return exception(StatusCode::INTERNAL_SERVER_ERROR);
            }
            if flag(&user.policy, "IsAdministrator") && g.users.iter().filter(|u| flag(&u.policy, "IsAdministrator")).count() == 1 {
                return exception(StatusCode::BAD_REQUEST);
            }
            g.users.retain(|u| u.id != id);
            empty(StatusCode::NO_CONTENT)
        }

        // ImageController.PostUserImage: POST /UserImage?userId= (10.9+) and the obsolete
        // POST /Users/{userId}/Images/{imageType}[/{index}]. The body is base64 in every version
        // (GetFromBase64Stream: CryptoStream + FromBase64Transform, white space ignored).
        ("POST", ["userimage"]) | ("POST", ["users", _, "images", _]) | ("POST", ["users", _, "images", _, _])
            if segs[0] != "userimage" || v.at_least(10, 9) =>
        {
            authorized!();
            let requested = if segs[0] == "userimage" {
                try_resp!(opt_guid(&query, "userid", "userId"))
            } else {
                let id = route_guid!(raw[1]);
                if !IMAGE_TYPES.iter().any(|t| t.eq_ignore_ascii_case(raw[3])) {
                    return validation1("imageType", &format!("The value '{}' is not valid.", raw[3]));
                }
                if raw.len() == 5 && raw[4].parse::<i32>().is_err() {
                    return validation1("index", &format!("The value '{}' is not valid.", raw[4]));
                }
                Some(id)
            };
            // RequestHelpers.GetUserId: another user's image needs the Administrator role.
            let target = match requested.filter(|r| r != EMPTY_GUID) {
                None => caller.user_id().unwrap_or(EMPTY_GUID).to_string(),
                Some(r) => {
                    if Some(r.as_str()) != caller.user_id() && !caller.admin() {
                        return exception(StatusCode::FORBIDDEN);
                    }
                    r
                }
            };
            if target == EMPTY_GUID {
                return exception(StatusCode::BAD_REQUEST); // an API key without userId
            }
            let Some(u) = g.user(&target) else { return problem(StatusCode::NOT_FOUND) };
            // RequestHelpers.AssertCanUpdateUser(restrictUserPreferences: true).
            if !caller.admin() && !flag(&u.policy, "EnableUserPreferenceAccess") {
                return message(StatusCode::FORBIDDEN, "User is not allowed to update the image.");
            }
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if !IMAGE_MIME.contains(&mime.as_str()) {
                return message(StatusCode::BAD_REQUEST, "Incorrect ContentType.");
            }
            let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            // Raw image bytes are not base64: FormatException → 500.
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact) else {
                return exception(StatusCode::INTERNAL_SERVER_ERROR);
            };
            g.user_mut(&target).unwrap().avatar = Some((bytes, mime));
            empty(StatusCode::NO_CONTENT)
        }
        // ImageController.GetUserImage (anonymous): GET/HEAD /UserImage?userId= (10.9+) and
        // GET/HEAD /Users/{userId}/Images/{imageType}; 404 ProblemDetails without an image.
        ("GET" | "HEAD", ["userimage"]) | ("GET" | "HEAD", ["users", _, "images", _]) if segs[0] != "userimage" || v.at_least(10, 9) => {
            let target = if segs[0] == "userimage" {
                match try_resp!(opt_guid(&query, "userid", "userId")).or_else(|| caller.user_id().map(str::to_string)) {
                    Some(t) => t,
                    None => return message(StatusCode::BAD_REQUEST, "UserId is required if unauthenticated"),
                }
            } else {
                route_guid!(raw[1])
            };
            if target == EMPTY_GUID {
                return exception(StatusCode::BAD_REQUEST);
            }
            match g.user(&target).and_then(|u| u.avatar.clone()) {
                Some((bytes, mime)) if method == Method::HEAD => {
                    Response::builder().header("content-type", mime).header("content-length", bytes.len()).body(full(Bytes::new())).unwrap()
                }
                Some((bytes, mime)) => respond(StatusCode::OK, bytes, &mime),
                None => problem(StatusCode::NOT_FOUND),
            }
        }

        // LibraryStructureController.GetVirtualFolders (FirstTimeSetupOrElevated: Administrator
        // once the wizard is done) → LibraryManager.GetVirtualFolders.
        ("GET", ["library", "virtualfolders"]) => {
            elevated!();
            let list: Vec<Value> = g
                .folders
                .iter()
                .map(|(id, n)| {
                    json!({"Name": n, "Locations": [format!("/media/{n}")], "CollectionType": "movies",
                           "LibraryOptions": {"Enabled": true, "EnableRealtimeMonitor": true, "PathInfos": [{"Path": format!("/media/{n}")}]},
                           "ItemId": id, "RefreshStatus": "Idle"})
                })
                .collect();
            json_resp(StatusCode::OK, &Value::Array(list))
        }
        // LibraryController.GetMediaFolders (RequiresElevation): QueryResult<BaseItemDto>,
        // ordered by sort name, `isHidden` filter (libraries are not hidden).
        ("GET", ["library", "mediafolders"]) => {
            elevated!();
            let hidden = try_resp!(opt_bool(&query, "ishidden", "isHidden"));
            let mut folders = g.folders.clone();
            folders.sort_by_key(|(_, n)| n.to_lowercase());
            let items: Vec<Value> = folders
                .iter()
                .filter(|_| hidden != Some(true))
                .map(|(id, n)| {
                    json!({"Name": n, "ServerId": g.server_id, "Id": id, "IsFolder": true, "Type": "CollectionFolder",
                           "CollectionType": "movies", "LocationType": "FileSystem", "MediaType": "Unknown", "ImageTags": {}})
                })
                .collect();
            json_resp(StatusCode::OK, &json!({"Items": items, "TotalRecordCount": items.len(), "StartIndex": 0}))
        }

        // ApiKeyController (RequiresElevation) → AuthenticationManager: GetKeys, CreateKey, RevokeKey.
        ("GET", ["auth", "keys"]) => {
            elevated!();
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
            elevated!();
            let Some(app) = query.get("app").filter(|a| !a.is_empty()).cloned() else { return validation1("app", "The app field is required.") };
            let created = g.wall_now();
            g.api_keys.push(ApiKey { token: hex_id(), name: app, created });
            empty(StatusCode::NO_CONTENT)
        }
        ("DELETE", ["auth", "keys", _]) => {
            elevated!();
            let key = raw[2].to_string();
            g.api_keys.retain(|k| k.token != key);
            empty(StatusCode::NO_CONTENT)
        }

        // SessionController.ReportSessionEnded ([Authorize]): SessionManager.Logout(own token);
        // an API key matches no device row, so nothing happens; 204 either way.
        ("POST", ["sessions", "logout"]) => {
            authorized!();
            if let Caller::User { token, .. } = &caller {
                g.sessions.retain(|s| &s.token != token);
            }
            empty(StatusCode::NO_CONTENT)
        }
        // SessionController.GetSessions ([Authorize]) → SessionManager.GetSessions: deviceId
        // filter; administrators and API keys see all, others their own.
        ("GET", ["sessions"]) => {
            authorized!();
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
            elevated!();
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

        // Not Jellyfin: the web client's entry page (jellyfin-web is served under /web/).
        ("GET" | "HEAD", ["web"] | ["web", "index.html"]) => respond(
            StatusCode::OK,
            "<!doctype html><html><head><title>Jellyfin</title></head><body><h1>Jellyfin Web Double</h1></body></html>",
            "text/html; charset=utf-8",
        ),
        // Not Jellyfin: an image to fetch (for `avatarUrlFormat` tests).
        ("GET", ["test", "avatar.png"]) => respond(StatusCode::OK, TEST_AVATAR, "image/png"),
        // Not Jellyfin: what the double received (method, path, uri, headers; repeated headers
        // joined with ", ").
        (_, ["echo", "headers"]) => {
            let mut h = Map::new();
            for (k, val) in headers.iter() {
                let val = String::from_utf8_lossy(val.as_bytes()).into_owned();
                match h.get_mut(k.as_str()) {
                    Some(Value::String(prev)) => {
                        prev.push_str(", ");
                        prev.push_str(&val);
                    }
                    _ => {
                        h.insert(k.as_str().to_string(), json!(val));
                    }
                }
            }
            let uri = if raw_query.is_empty() { path.to_string() } else { format!("{path}?{raw_query}") };
            json_resp(StatusCode::OK, &json!({"method": method.as_str(), "path": path, "uri": uri, "headers": h}))
        }
        // ASP.NET routing: no endpoint → 404 with an empty body.
        _ => empty(StatusCode::NOT_FOUND),
    }
}

// ---------------------------------------------------------------------------------------------
// Proxy-test endpoints (not Jellyfin)
// ---------------------------------------------------------------------------------------------

/// `/media/big.bin`: `media_size` bytes of `media_byte`, streamed in 64 KiB chunks (never held
/// whole). One range (`bytes=a-b`, `a-`, `-n`) → 206 with Content-Range; unsatisfiable → 416 with
/// `Content-Range: bytes */size`; `If-Range` compared with the strong ETag; several ranges are
/// answered with the whole file (allowed by RFC 9110).
fn media(req: &Request<Incoming>, size: u64) -> Response<Body> {
    let etag = format!("\"big-{size}\"");
    let mut range = req.headers().get("range").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(ir) = req.headers().get("if-range").and_then(|v| v.to_str().ok()) {
        if ir.trim() != etag {
            range = None;
        }
    }
    let (start, end, status) = match range.as_deref().and_then(|r| r.trim().strip_prefix("bytes=")) {
        None => (0, size, StatusCode::OK),
        Some(spec) if spec.contains(',') => (0, size, StatusCode::OK),
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap_or((spec, "x"));
            let parsed = match (a.trim(), b.trim()) {
                ("", n) => n.parse::<u64>().ok().filter(|n| *n > 0).map(|n| (size.saturating_sub(n), size)),
                (a, "") => a.parse::<u64>().ok().map(|a| (a, size)),
                (a, b) => match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(a), Ok(b)) if b >= a => Some((a, (b + 1).min(size))),
                    _ => None,
                },
            };
            match parsed {
                Some((s, e)) if s < e && s < size => (s, e, StatusCode::PARTIAL_CONTENT),
                _ => {
                    return Response::builder()
                        .status(StatusCode::RANGE_NOT_SATISFIABLE)
                        .header("content-range", format!("bytes */{size}"))
                        .header("accept-ranges", "bytes")
                        .body(full(Bytes::new()))
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
        return b.body(full(Bytes::new())).unwrap();
    }
    const CHUNK: u64 = 64 * 1024;
    let stream = futures_util::stream::unfold(start, move |pos| async move {
        if pos >= end {
            return None;
        }
        let n = CHUNK.min(end - pos);
        let chunk: Vec<u8> = (pos..pos + n).map(media_byte).collect();
        Some((Ok::<_, BoxError>(Frame::data(Bytes::from(chunk))), pos + n))
    });
    b.body(BodyExt::boxed(StreamBody::new(stream))).unwrap()
}

/// `/socket`: a websocket (hyper upgrade + tokio-tungstenite) that echoes text and binary
/// messages and answers a close with a close.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role, Message};
    let upgrade = req.headers().get("upgrade").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get("sec-websocket-key").cloned().filter(|_| upgrade) else { return empty(StatusCode::BAD_REQUEST) };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Text(_) | Message::Binary(_)) && ws.send(msg).await.is_err() {
                break;
            }
            // Close and ping: tungstenite queues the reply and flushes it on the next read,
            // which then ends the stream, so keep reading.
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(full(Bytes::new()))
        .unwrap()
}

#[cfg(test)]
mod tests {
    //! Light checks of the parts mirrored from Jellyfin (this file is compiled into several test
    //! binaries); the HTTP paths are exercised in tests/double_selftest.rs.
    use super::*;

    fn inner(version: &str) -> Inner {
        Inner {
            opts: DoubleOptions { version: version.into(), ..Default::default() },
            addr: "127.0.0.1:8096".parse().unwrap(),
            server_id: hex_id(),
            users: Vec::new(),
            sessions: Vec::new(),
            api_keys: vec![ApiKey { token: "key".into(), name: "test".into(), created: SystemTime::now() }],
            qc_requests: HashMap::new(),
            qc_authorized: HashMap::new(),
            folders: Vec::new(),
            branding: (None, None),
            calls: Vec::new(),
            latency: Duration::ZERO,
            skew: Duration::ZERO,
        }
    }

    /// One request straight into `route`; the status and the body as JSON (or a JSON string).
    fn call(g: &mut Inner, method: &str, uri: &str, auth: Option<&str>, body: Option<Value>) -> (u16, Value) {
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

    const DEVICE: &str = "MediaBrowser Client=\"Jellyfin Web\", Device=\"Firefox\", DeviceId=\"dev-1\", Version=\"10.10.7\"";

    fn add_user(g: &mut Inner, name: &str, admin: bool) -> String {
        let mut policy = new_user_policy(&g.opts.version);
        policy.insert("IsAdministrator".into(), json!(admin));
        let id = hex_id();
        g.users.push(User { id: id.clone(), name: name.into(), password: None, policy, avatar: None, last_login: None, last_activity: None });
        id
    }

    #[test]
    fn header_parameters_parse_like_get_parts() {
        let p = parse_auth_params("MediaBrowser Client=\"Jellyfin Web\", Device=\"Bob%27s+Phone\", DeviceId=\"a,b\", Version=\"10.10.7\", Token=\"t\"", false).unwrap();
        assert_eq!(p["Client"], "Jellyfin Web");
        assert_eq!(p["Device"], "Bob's Phone", "WebUtility.UrlDecode: %27 and +");
        assert_eq!(p["DeviceId"], "a,b", "a comma inside quotes does not split");
        assert_eq!(p["Token"], "t");
        // Unquoted values, any scheme case, keys trimmed but case-sensitive, last repeat wins.
        let p = parse_auth_params("mediabrowser  token=x, Token=y,Token=z", false).unwrap();
        assert_eq!(p.get("token").map(String::as_str), Some("x"));
        assert_eq!(p["Token"], "z");
        // No backslash escaping; every surrounding quote goes; a bad % stays.
        assert_eq!(get_parts("Device=\"\"x\"\"")["Device"], "x");
        assert_eq!(get_parts("Device=\"100%\"")["Device"], "100%");
        assert_eq!(get_parts("Device=\"%E2%9C%93\"")["Device"], "✓");
        // Scheme: only MediaBrowser, or Emby with legacy authorization; no space → nothing.
        assert!(parse_auth_params("Emby Token=\"t\"", false).is_none());
        assert!(parse_auth_params("Emby Token=\"t\"", true).is_some());
        assert!(parse_auth_params("Bearer t", true).is_none());
        assert!(parse_auth_params("MediaBrowser", false).is_none());
    }

    #[test]
    fn token_sources_follow_the_version_and_legacy_setting() {
        let mut g = inner("10.11.11");
        let q = |s: &str| -> HashMap<String, String> { url::form_urlencoded::parse(s.as_bytes()).map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect() };
        let mut h = HeaderMap::new();
        h.insert("x-emby-token", "key".parse().unwrap());
        assert_eq!(authorize(&mut g, &h, &q("")).caller, Caller::Anonymous, "X-Emby-Token is legacy");
        assert_eq!(authorize(&mut g, &HeaderMap::new(), &q("api_key=key")).caller, Caller::Anonymous, "api_key is legacy");
        assert!(authorize(&mut g, &HeaderMap::new(), &q("ApiKey=key")).caller.admin(), "ApiKey= always counts");
        assert_eq!(authorize(&mut g, &HeaderMap::new(), &q("ApiKey=nope")).caller, Caller::Invalid);
        g.opts.legacy_auth = true;
        assert!(authorize(&mut g, &h, &q("")).caller.admin());
        // 10.10 with legacy: X-Emby-Authorization is read before Authorization.
        let mut g = inner("10.10.7");
        g.opts.legacy_auth = true;
        let mut h = HeaderMap::new();
        h.insert("x-emby-authorization", "MediaBrowser Token=\"key\"".parse().unwrap());
        h.insert("authorization", "MediaBrowser Token=\"other\"".parse().unwrap());
        assert!(authorize(&mut g, &h, &HashMap::new()).caller.admin());
        // An API key fills the device fields from the server.
        let i = authorize(&mut g, &h, &HashMap::new());
        assert_eq!(i.client.as_deref(), Some("test"));
        assert_eq!(i.device_id.as_deref(), Some(g.server_id.as_str()));
    }

    #[test]
    fn codes_secrets_and_dates() {
        for _ in 0..2000 {
            let c = qc_code();
            assert_eq!(c.len(), 6, "{c}");
            assert!((100_000..=999_999).contains(&c.parse::<u32>().unwrap()));
        }
        let s = qc_secret();
        assert!(s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)), "{s}");
        assert_eq!(jellyfin_date(UNIX_EPOCH + Duration::from_secs(1_767_225_600)), "2026-01-01T00:00:00.0000000Z");
        assert_eq!(parse_guid("{0123456789ABCDEF0123456789ABCDEF}").as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(parse_guid("01234567-89ab-cdef-0123-456789abcdef").as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert!(parse_guid("f1").is_none());
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

    #[test]
    fn policy_binding_and_storage() {
        let bound = bind_policy(&json!({"isAdministrator": true, "AuthenticationProviderId": "a", "PasswordResetProviderId": "b", "Unknown": 1}), "10.10.7").unwrap();
        assert_eq!(bound["IsAdministrator"], true, "names bind case-insensitively");
        assert_eq!(bound["EnableLiveTvManagement"], true, "missing fields take the constructor default");
        assert!(!bound.contains_key("Unknown") && !bound.contains_key("MaxParentalSubRating"));
        let e = bind_policy(&json!({"AuthenticationProviderId": " "}), "10.11.11").unwrap_err();
        assert!(e.contains_key("AuthenticationProviderId") && e.contains_key("PasswordResetProviderId"));
        assert!(bind_policy(&json!({"IsHidden": "yes"}), "10.10.7").unwrap_err().contains_key("$.IsHidden"));
        assert!(bind_policy(&json!({"EnabledFolders": ["f1"]}), "10.10.7").unwrap_err().contains_key("$.EnabledFolders"));
        let ok = json!({"AuthenticationProviderId": "a", "PasswordResetProviderId": "b", "LoginAttemptsBeforeLockout": 0,
                        "EnableLyricManagement": true, "BlockedMediaFolders": [], "EnabledDevices": ["x|y", ""]});
        let stored = store_policy(&bind_policy(&ok, "10.10.7").unwrap(), &default_policy()).unwrap();
        assert_eq!(stored["LoginAttemptsBeforeLockout"], 3);
        assert_eq!(stored["EnableLyricManagement"], false);
        assert_eq!(stored["EnabledDevices"], json!(["x", "y"]));
        assert!(!stored.contains_key("MaxParentalRating"));
        let null_folders = json!({"AuthenticationProviderId": "a", "PasswordResetProviderId": "b", "EnabledFolders": null});
        assert_eq!(store_policy(&bind_policy(&null_folders, "10.10.7").unwrap(), &default_policy()), Err(StatusCode::BAD_REQUEST));
    }
}
