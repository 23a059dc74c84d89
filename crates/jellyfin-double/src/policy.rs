//! User policies as Jellyfin models, binds and stores them (`MediaBrowser.Model/Users/UserPolicy.cs`,
//! `Jellyfin.Server.Implementations/Users/UserManager.cs`): the constructor defaults, the
//! permissions of a new user, the model binding of `POST /Users/{id}/Policy` and what
//! `UpdatePolicyAsync` really keeps. Separate from `users` because the binding and storage
//! quirks are most of the work and are unit-tested on their own.

use hyper::StatusCode;
use serde_json::{json, Map, Value};

use crate::reply::get_ci;
use crate::users::{DEFAULT_AUTH, DEFAULT_RESET};
use crate::{parse_guid, Version, EMPTY_GUID};

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

/// `MediaBrowser.Model/Entities/UnratedItem.cs`.
const UNRATED: &[&str] = &["Movie", "Trailer", "Series", "Music", "Book", "LiveTvChannel", "LiveTvProgram", "ChannelContent", "Other"];
/// `Jellyfin.Data/Enums/SyncPlayUserAccessType.cs`.
const SYNCPLAY: &[&str] = &["CreateAndJoinGroups", "JoinGroups", "None"];

/// `JsonStringEnumConverter`: names case-insensitively, or numbers.
pub(crate) fn enum_value(v: &Value, names: &[&str]) -> Option<Value> {
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
pub(crate) fn bind_policy(sent: &Value, version: &str) -> Result<Map<String, Value>, Map<String, Value>> {
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
pub(crate) fn store_policy(bound: &Map<String, Value>, previous: &Map<String, Value>) -> Result<Map<String, Value>, StatusCode> {
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

pub(crate) fn flag(p: &Map<String, Value>, k: &str) -> bool {
    p.get(k).and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
