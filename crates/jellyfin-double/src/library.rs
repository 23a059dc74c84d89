//! Libraries (`Jellyfin.Api/Controllers/LibraryStructureController.cs`,
//! `Jellyfin.Api/Controllers/LibraryController.cs`): the virtual folders and media folders an
//! administrator lists, so that the proxy can offer them when it sets a new user's policy.
//! No items: a library here is only an id and a name.

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::elevated;
use crate::reply::{empty, json_resp, opt_bool, Body};
use crate::server::{Inner, Req};
use crate::{hex_id, JellyfinDouble};

impl JellyfinDouble {
    /// Add a library; returns its id (`VirtualFolderInfo.ItemId` = `MediaFolders` `Items[].Id`).
    pub fn add_media_folder(&self, name: &str) -> String {
        let id = hex_id();
        self.inner.lock().unwrap().folders.push((id.clone(), name.into()));
        id
    }
}

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(g: &mut Inner, r: &Req) -> Response<Body> {
    let Req { method, segs, query, caller, .. } = r;
    match (method.as_str(), *segs) {
        // LibraryStructureController.GetVirtualFolders (FirstTimeSetupOrElevated: Administrator
        // once the wizard is done) → LibraryManager.GetVirtualFolders.
        ("GET", ["library", "virtualfolders"]) => {
            try_resp!(elevated(caller));
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
            try_resp!(elevated(caller));
            let hidden = try_resp!(opt_bool(query, "ishidden", "isHidden"));
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
        _ => empty(StatusCode::NOT_FOUND),
    }
}
