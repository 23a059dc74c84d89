//! User images (`Jellyfin.Api/Controllers/ImageController.cs`): upload and download of a user's
//! primary image on `/UserImage` (10.9+) and the obsolete `/Users/{id}/Images/{type}` routes.
//! The proxy copies an avatar from the identity provider into Jellyfin, so the quirks that
//! matter are kept: the body is base64 in every version and the content type must be an image.

use base64::Engine;
use bytes::Bytes;
use hyper::{Method, Response, StatusCode};

use crate::auth::authorized;
use crate::policy::flag;
use crate::reply::{empty, exception, full, message, opt_guid, problem, respond, route_guid, validation1, Body};
use crate::server::{Inner, Req};
use crate::{parse_guid, JellyfinDouble, EMPTY_GUID};

/// Image types accepted by the legacy image routes (`MediaBrowser.Model/Entities/ImageType.cs`).
const IMAGE_TYPES: &[&str] = &["Primary", "Art", "Backdrop", "Banner", "Logo", "Thumb", "Disc", "Box", "Screenshot", "Menu", "Chapter", "BoxRear", "Profile"];

/// Image media types with a known extension (`MediaBrowser.Model/Net/MimeTypes.cs` `ToExtension`
/// and the MimeTypes package it falls back to); `ImageController.TryGetImageExtensionFromContentType`.
const IMAGE_MIME: &[&str] = &[
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/svg+xml", "image/tiff", "image/x-png", "image/x-icon",
    "image/vnd.microsoft.icon", "image/avif", "image/heic", "image/heif", "image/apng", "image/jxl",
];

impl JellyfinDouble {
    /// The user's uploaded image, decoded.
    pub fn avatar(&self, user_id: &str) -> Option<Vec<u8>> {
        let id = parse_guid(user_id)?;
        self.inner.lock().unwrap().user(&id).and_then(|u| u.avatar.clone()).map(|(b, _)| b)
    }
}

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, raw, query, headers, body, caller, v, .. } = r;
    match (method.as_str(), *segs) {
        // ImageController.PostUserImage: POST /UserImage?userId= (10.9+) and the obsolete
        // POST /Users/{userId}/Images/{imageType}[/{index}]. The body is base64 in every version
        // (GetFromBase64Stream: CryptoStream + FromBase64Transform, white space ignored).
        ("POST", ["userimage"]) | ("POST", ["users", _, "images", _]) | ("POST", ["users", _, "images", _, _])
            if segs[0] != "userimage" || v.at_least(10, 9) =>
        {
            try_resp!(authorized(caller));
            let requested = if segs[0] == "userimage" {
                try_resp!(opt_guid(query, "userid", "userId"))
            } else {
                let id = try_resp!(route_guid(raw[1]));
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
                match try_resp!(opt_guid(query, "userid", "userId")).or_else(|| caller.user_id().map(str::to_string)) {
                    Some(t) => t,
                    None => return message(StatusCode::BAD_REQUEST, "UserId is required if unauthenticated"),
                }
            } else {
                try_resp!(route_guid(raw[1]))
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
        _ => empty(StatusCode::NOT_FOUND),
    }
}
