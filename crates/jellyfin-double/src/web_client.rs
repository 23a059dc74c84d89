//! What jellyfin-web 10.11 asks for once it holds a token, besides the user and the server
//! info: display preferences (`Jellyfin.Api/Controllers/DisplayPreferencesController.cs`),
//! the home screen's libraries (`Jellyfin.Api/Controllers/UserViewsController.cs`) and the
//! bitrate probe (`Jellyfin.Api/Controllers/MediaInfoController.cs`). A browser the proxy has
//! just signed in makes these calls through it, so the double answers them as Jellyfin would
//! for a new user with no items.

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::{authorized, Caller};
use crate::policy::flag;
use crate::reply::{empty, exception, json_resp, opt_guid, route_guid, validation1, Body, BoxError};
use crate::server::{Inner, Req};
use crate::{parse_guid, EMPTY_GUID};

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, raw, query, caller, .. } = r;
    match (method.as_str(), *segs) {
        // DisplayPreferencesController.GetDisplayPreferences (class-level [Authorize]): `client`
        // is required; the id is a Guid or else hashed with GetMD5. Preferences that were never
        // saved are created with their defaults (DisplayPreferencesManager.GetDisplayPreferences,
        // `Entities/DisplayPreferences.cs` and `Entities/ItemDisplayPreferences.cs` in
        // src/Jellyfin.Database/Jellyfin.Database.Implementations). Creating them for Guid.Empty
        // (an API key without userId) or an unknown user breaks the Users foreign key: 500.
        ("GET", ["displaypreferences", _]) => {
            try_resp!(authorized(caller));
            let requested = try_resp!(opt_guid(query, "userid", "userId"));
            let Some(client) = query.get("client").filter(|c| !c.is_empty()).cloned() else {
                return validation1("client", "The client field is required.");
            };
            let user = try_resp!(user_id(caller, requested));
            if g.user(&user).is_none() {
                return exception(StatusCode::INTERNAL_SERVER_ERROR);
            }
            let item = parse_guid(raw[1]).unwrap_or_else(|| guid_bytes_hex(&get_md5(raw[1])));
            // Null properties are left out (WhenWritingNull); null CustomPrefs values are kept.
            json_resp(
                StatusCode::OK,
                &json!({"Id": guid_d(&item), "SortBy": "SortName", "RememberIndexing": false, "PrimaryImageHeight": 250,
                        "PrimaryImageWidth": 250,
                        "CustomPrefs": {"chromecastVersion": "stable", "skipForwardLength": "30000", "skipBackLength": "10000",
                                        "enableNextVideoInfoOverlay": "False", "tvhome": null, "dashboardTheme": null},
                        "ScrollDirection": "Horizontal", "ShowBackdrop": true, "RememberSorting": false, "SortOrder": "Ascending",
                        "ShowSidebar": false, "Client": client}),
            )
        }

        // UserViewsController.GetUserViews (class-level [Authorize]) and the obsolete
        // GetUserViewsLegacy (`Users/{userId}/Views`): UserManager.GetUserById (Guid.Empty, an
        // API key without userId: ArgumentException → 400; unknown: ResourceNotFoundException
        // → 404), then UserViewManager.GetUserViews: the libraries the policy lets the user see,
        // by name, as CollectionFolder `BaseItemDto`s with the PrimaryImageAspectRatio and
        // DisplayPreferencesId fields the controller adds.
        ("GET", ["userviews"]) | ("GET", ["users", _, "views"]) => {
            try_resp!(authorized(caller));
            let requested = if segs[0] == "userviews" { try_resp!(opt_guid(query, "userid", "userId")) } else { Some(try_resp!(route_guid(raw[1]))) };
            let user = try_resp!(user_id(caller, requested));
            if user == EMPTY_GUID {
                return exception(StatusCode::BAD_REQUEST);
            }
            let Some(u) = g.user(&user) else { return exception(StatusCode::NOT_FOUND) };
            let enabled: Vec<&str> = u.policy.get("EnabledFolders").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let all = flag(&u.policy, "EnableAllFolders");
            let mut folders: Vec<&(String, String)> = g.folders.iter().filter(|(id, _)| all || enabled.contains(&id.as_str())).collect();
            folders.sort_by_key(|(_, n)| n.to_lowercase());
            let prefs_id = guid_bytes_hex(&get_md5("MediaBrowser.Controller.Entities.CollectionFolder"));
            let items: Vec<Value> = folders
                .iter()
                .map(|(id, n)| {
                    json!({"Name": n, "ServerId": g.server_id, "Id": id, "IsFolder": true, "Type": "CollectionFolder",
                           "CollectionType": "movies", "LocationType": "FileSystem", "MediaType": "Unknown", "ImageTags": {},
                           "DisplayPreferencesId": prefs_id})
                })
                .collect();
            json_resp(StatusCode::OK, &json!({"Items": items, "TotalRecordCount": items.len(), "StartIndex": 0}))
        }

        // MediaInfoController.GetBitrateTestBytes (class-level [Authorize]): `int size = 102400`
        // with [Range(1, 100_000_000)]. The buffer comes from ArrayPool<byte>.Shared.Rent(size)
        // and is sent whole, so the answer is the pool's bucket size: the next power of two, at
        // least 16 bytes. Random bytes (Random.Shared.NextBytes), streamed here.
        ("GET", ["playback", "bitratetest"]) => {
            try_resp!(authorized(caller));
            let size = match query.get("size") {
                None => 102_400u64,
                Some(s) => match s.trim().parse::<i32>() {
                    Ok(n) if (1..=100_000_000).contains(&n) => n as u64,
                    Ok(_) => return validation1("size", "The requested size must be greater than or equal to 1 and less than or equal to 100000000"),
                    Err(_) => return validation1("size", &format!("The value '{s}' is not valid.")),
                },
            };
            let len = size.next_power_of_two().max(16);
            const CHUNK: u64 = 64 * 1024;
            let stream = futures_util::stream::unfold(0u64, move |sent| async move {
                if sent >= len {
                    return None;
                }
                let n = CHUNK.min(len - sent);
                let chunk: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
                Some((Ok::<_, BoxError>(Frame::data(Bytes::from(chunk))), sent + n))
            });
            Response::builder()
                .header("content-type", "application/octet-stream")
                .header("content-length", len)
                .body(http_body_util::BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

/// `RequestHelpers.GetUserId`: no (or an empty) userId → the caller's (Guid.Empty for an API
/// key); another user's → Administrator role required (SecurityException → 403).
fn user_id(caller: &Caller, requested: Option<String>) -> Result<String, Response<Body>> {
    match requested.filter(|r| r != EMPTY_GUID) {
        None => Ok(caller.user_id().unwrap_or(EMPTY_GUID).to_string()),
        Some(r) if Some(r.as_str()) == caller.user_id() || caller.admin() => Ok(r),
        Some(_) => Err(exception(StatusCode::FORBIDDEN)),
    }
}

/// `MediaBrowser.Common/Extensions/BaseExtensions.cs` GetMD5: `new Guid(MD5.HashData(
/// Encoding.Unicode.GetBytes(str)))`, the hash of the UTF-16LE text as Guid bytes.
fn get_md5(s: &str) -> [u8; 16] {
    let utf16: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    md5(&utf16)
}

/// The "N" form of `new Guid(bytes)`: the first three fields are little-endian in the bytes.
fn guid_bytes_hex(b: &[u8; 16]) -> String {
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    order.iter().map(|&i| format!("{:02x}", b[i])).collect()
}

/// `Guid.ToString()` ("D"): 8-4-4-4-12 from the "N" form.
fn guid_d(n: &str) -> String {
    format!("{}-{}-{}-{}-{}", &n[..8], &n[8..12], &n[12..16], &n[16..20], &n[20..])
}

/// MD5 (RFC 1321), only for GetMD5's ids.
fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
    // K[i] = floor(|sin(i + 1)| * 2^32).
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32).collect();
    let mut h = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in msg.chunks(64) {
        let m: Vec<u32> = block.chunks(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i / 16 * 4 + i % 4]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 16];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_and_guid_byte_order() {
        let hex = |b: [u8; 16]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"The quick brown fox jumps over the lazy dog")), "9e107d9d372bb6826bd81d3542a419d6");
        assert_eq!(hex(md5(&[b'a'; 100])), "36a92cc94a9e0fa21f625f8bfb007adf", "two blocks");
        // new Guid(byte[]): Data1, Data2 and Data3 are read little-endian.
        let b: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(guid_d(&guid_bytes_hex(&b)), "03020100-0504-0706-0809-0a0b0c0d0e0f");
        // GetMD5 hashes UTF-16LE: "a" is the bytes 61 00.
        assert_eq!(get_md5("a"), md5(&[0x61, 0]));
    }
}
