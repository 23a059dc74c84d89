//! Users as `Jellyfin.Api/Controllers/UserController.cs` and `UserManager` handle them: sign-in
//! by name and password, listing, creation, policy updates, lookup and deletion, and the
//! `UserDto` they answer with. The proxy creates and updates Jellyfin accounts for people who
//! sign in with SSO, so the checks (names, the last administrator, disabled accounts,
//! lockout) follow Jellyfin's order and status codes.

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::auth::{authorized, elevated};
use crate::policy::{bind_policy, flag, new_user_policy, store_policy};
use crate::reply::{empty, exception, get_ci, json_body, json_resp, message, opt_bool, problem, route_guid, str_field, validation, validation1, Body};
use crate::server::{Inner, Req};
use crate::sessions::{auth_result, open_session};
use crate::{hex_id, jellyfin_date, parse_guid, JellyfinDouble, Version, EMPTY_GUID};

/// `Jellyfin.Server.Implementations/Users/DefaultAuthenticationProvider.cs` (the full type name
/// `UserManager.CreateUserInternalAsync` stores for new users).
pub const DEFAULT_AUTH: &str = "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider";
/// `Jellyfin.Server.Implementations/Users/InvalidAuthProvider.cs`: `IsEnabled => false`,
/// `Authenticate` always throws `AuthenticationException`.
pub const INVALID_AUTH: &str = "Jellyfin.Server.Implementations.Users.InvalidAuthProvider";
/// `Jellyfin.Server.Implementations/Users/DefaultPasswordResetProvider.cs`.
pub const DEFAULT_RESET: &str = "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider";

#[derive(Clone, Debug)]
pub(crate) struct User {
    /// A Guid in "N" form (`JsonGuidConverter` writes `ToString("N")`).
    pub(crate) id: String,
    pub(crate) name: String,
    /// None = no password (`DefaultAuthenticationProvider.ChangePassword("")` stores null).
    pub(crate) password: Option<String>,
    /// The policy as `UserManager.GetUserDto` reports it (null fields left out).
    pub(crate) policy: Map<String, Value>,
    pub(crate) avatar: Option<(Vec<u8>, String)>,
    pub(crate) last_login: Option<String>,
    pub(crate) last_activity: Option<String>,
}

impl JellyfinDouble {
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

}

/// `UserDto` as `UserManager.GetUserDto` builds it (`MediaBrowser.Model/Dto/UserDto.cs`).
pub(crate) fn user_dto(g: &Inner, u: &User) -> Value {
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

/// `UserManager.ThrowIfInvalidUsername`: `^(?!\s)[\w\ \-'._@+]+(?<!\s)$` (`\w` approximated by
/// Unicode alphanumerics and `_`); 12.0 also refuses "." and "..".
fn valid_username(name: &str, v: Version) -> bool {
    !name.is_empty()
        && !name.starts_with(char::is_whitespace)
        && !name.ends_with(char::is_whitespace)
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || " -'.@+".contains(c))
        && !(v.at_least(12, 0) && (name == "." || name == ".."))
}

/// `SessionManager.AuthenticateNewSession` → `UserManager.AuthenticateUser` for `name` and `pw`,
/// as the requesting device (`auth`).
fn authenticate(g: &mut Inner, auth: &crate::auth::AuthInfo, name: String, pw: String) -> Response<Body> {
    let Some((client, device, device_id, version)) = auth.device_fields() else { return exception(StatusCode::BAD_REQUEST) };
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

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, raw, query, headers, body, auth, caller, v, .. } = r;
    match (method.as_str(), *segs) {
        // UserController.AuthenticateUserByName → SessionManager.AuthenticateNewSession →
        // UserManager.AuthenticateUser (Jellyfin.Server.Implementations/Users/UserManager.cs).
        ("POST", ["users", "authenticatebyname"]) => {
            let b = try_resp!(json_body(headers, body, "request"));
            authenticate(g, auth, str_field(&b, "Username").unwrap_or_default(), str_field(&b, "Pw").unwrap_or_default())
        }

        // UserController.AuthenticateUser, obsolete (`[Obsolete("Authenticate with username
        // instead")]`, 10.9–12.0): the password in `?pw=` ([FromQuery, Required]: missing → 400
        // validation), the user by id (`NotFound("User not found")` → 404 JSON string), then
        // exactly AuthenticateUserByName with that user's name.
        ("POST", ["users", _, "authenticate"]) => {
            let id = try_resp!(route_guid(raw[1]));
            let Some(pw) = query.get("pw").cloned() else { return validation1("pw", "The pw field is required.") };
            let Some(name) = g.user(&id).map(|u| u.name.clone()) else { return message(StatusCode::NOT_FOUND, "User not found") };
            authenticate(g, auth, name, pw)
        }

        // UserController.GetUsers ([Authorize]): filtered by IsHidden / IsDisabled, ordered by name.
        ("GET", ["users"]) => {
            try_resp!(authorized(caller));
            let hidden = try_resp!(opt_bool(query, "ishidden", "isHidden"));
            let disabled = try_resp!(opt_bool(query, "isdisabled", "isDisabled"));
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
            try_resp!(authorized(caller));
            match caller.user_id().and_then(|id| g.user(id)) {
                Some(u) => json_resp(StatusCode::OK, &user_dto(g, u)),
                None => problem(StatusCode::BAD_REQUEST),
            }
        }

        // UserController.CreateUserByName (RequiresElevation) → UserManager.CreateUserAsync.
        ("POST", ["users", "new"]) => {
            try_resp!(elevated(caller));
            let b = try_resp!(json_body(headers, body, "request"));
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
            if !valid_username(&name, *v) || g.user_by_name(&name).is_some() {
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
            try_resp!(elevated(caller));
            let id = try_resp!(route_guid(raw[1]));
            let b = try_resp!(json_body(headers, body, "newPolicy"));
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
            try_resp!(authorized(caller));
            let id = try_resp!(route_guid(raw[1]));
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
            try_resp!(elevated(caller));
            let id = try_resp!(route_guid(raw[1]));
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
        _ => empty(StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use crate::server::test_util::{add_user, call, inner, DEVICE};

    #[test]
    fn the_obsolete_authenticate_by_id_is_authenticate_by_name() {
        let mut g = inner("10.10.7");
        let id = add_user(&mut g, "ann", false);
        // No stored password: only the empty one is accepted.
        let (st, r) = call(&mut g, "POST", &format!("/Users/{id}/Authenticate?pw="), Some(DEVICE), None);
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["User"]["Name"], "ann");
        assert_eq!(call(&mut g, "POST", &format!("/Users/{id}/Authenticate?pw=wrong"), Some(DEVICE), None).0, 401);
        assert_eq!(call(&mut g, "POST", &format!("/Users/{id}/Authenticate"), Some(DEVICE), None).0, 400, "pw is required");
        assert_eq!(call(&mut g, "POST", "/Users/0123456789abcdef0123456789abcdef/Authenticate?pw=", Some(DEVICE), None).0, 404);
    }
}
