//! The completion page: the last step of a browser login, shared by OIDC and SAML.
//!
//! The page knows only an opaque one-time handle. Its script (allowed by a per-response CSP
//! nonce; no iframe, no polling of another page's storage) reads or creates the Jellyfin web
//! client's device id (`_deviceId2`, in jellyfin-web's own format), POSTs the device and the
//! handle to `/sso/{mode}/Auth/{provider}`, merges the returned token into
//! `jellyfin_credentials` the way jellyfin-web stores servers, turns on auto-login, and opens
//! `/web/index.html` (or `/sso/link` for a device-linking sign-in: where to go is fixed by the
//! flow when it starts). Without JavaScript it says so.

use http::header::{HeaderValue, REFERRER_POLICY};
use http::Response;

use crate::body::Body;
use crate::pages::escape;
use crate::state::random_token;

/// What the page needs to finish.
pub struct Completion<'a> {
    /// The protocol's path segment (`OID` or `SAML`), as in the endpoint path.
    pub protocol: &'a str,
    pub provider: &'a str,
    pub handle: &'a str,
    /// `public_url` (the server address the web client will use).
    pub server_url: &'a str,
    /// Base path, e.g. `""` or `/jellyfin`.
    pub base_path: &'a str,
    pub server_name: &'a str,
    pub app_version: &'a str,
    pub linking: bool,
    /// Where to go once signed in, under the base path (`/web/index.html` or `/sso/link`).
    pub next: &'a str,
}

/// JSON that is safe inside a `<script type="application/json">` element.
pub(crate) fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

const SCRIPT: &str = r#"
(function () {
  var cfg = JSON.parse(document.getElementById('jsp-data').textContent);
  var status = document.getElementById('status');
  function fail(msg) { status.textContent = msg; document.getElementById('retry').hidden = false; }
  // jellyfin-web's device id: base64 of "userAgent|timestamp" with '=' replaced by '1'.
  var deviceId = localStorage.getItem('_deviceId2');
  if (!deviceId) {
    deviceId = btoa([navigator.userAgent, new Date().getTime()].join('|')).replace(/=/g, '1');
    localStorage.setItem('_deviceId2', deviceId);
  }
  var ua = navigator.userAgent;
  var deviceName = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Web Browser';
  var body = { deviceId: deviceId, deviceName: deviceName, appName: 'Jellyfin Web', appVersion: cfg.appVersion, data: cfg.handle };
  var headers = { 'Content-Type': 'application/json', 'Accept': 'application/json' };
  if (cfg.linking) {
    var creds = JSON.parse(localStorage.getItem('jellyfin_credentials') || '{"Servers":[]}');
    var mine = (creds.Servers || []).filter(function (s) { return s.AccessToken && s.UserId; })[0];
    if (!mine) { fail('Sign in to Jellyfin first, then link your account.'); return; }
    headers['Authorization'] = 'MediaBrowser Token="' + mine.AccessToken + '"';
    cfg.authUrl = cfg.linkUrl + encodeURIComponent(mine.UserId);
  }
  fetch(cfg.authUrl, { method: 'POST', credentials: 'same-origin', headers: headers, body: JSON.stringify(body) })
    .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
    .then(function (res) {
      if (!res.ok) { fail(res.j.message || 'Sign-in failed.'); return; }
      if (cfg.linking) { location.replace(cfg.base + '/SSOViews/linking'); return; }
      var r = res.j;
      var creds = JSON.parse(localStorage.getItem('jellyfin_credentials') || '{"Servers":[]}');
      if (!Array.isArray(creds.Servers)) { creds.Servers = []; }
      var entry = { Id: r.ServerId, ManualAddress: cfg.serverUrl, LastConnectionMode: 2, DateLastAccessed: Date.now(),
                    UserId: r.User.Id, AccessToken: r.AccessToken, Name: cfg.serverName };
      var found = false;
      creds.Servers = creds.Servers.map(function (s) {
        if (s.Id !== r.ServerId) { return s; }
        found = true;
        return Object.assign({}, s, entry);
      });
      if (!found) { creds.Servers.push(entry); }
      localStorage.setItem('jellyfin_credentials', JSON.stringify(creds));
      localStorage.setItem('enableAutoLogin', 'true');
      location.replace(cfg.base + cfg.next);
    })
    .catch(function () { fail('The server could not be reached. Try again.'); });
})();
"#;

/// Render the completion page.
pub fn page(c: &Completion<'_>) -> Response<Body> {
    let nonce = random_token();
    let data = serde_json::json!({
        "handle": c.handle,
        "authUrl": format!("{}/sso/{}/Auth/{}", c.base_path, c.protocol, c.provider),
        "linkUrl": format!("{}/sso/{}/Link/{}/", c.base_path, c.protocol, c.provider),
        "serverUrl": c.server_url.trim_end_matches('/'),
        "serverName": c.server_name,
        "appVersion": c.app_version,
        "base": c.base_path,
        "linking": c.linking,
        "next": c.next,
    });
    let html = format!(
        r#"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width"><title>Signing in…</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;background:#101010;color:#eee;display:flex;min-height:90vh;align-items:center;justify-content:center}}main{{max-width:32rem;padding:2rem;background:#202020;border-radius:.5rem}}a{{color:#00a4dc}}</style></head>
<body><main><h1>Signing in to {name}…</h1><p id=status>Finishing sign-in.</p>
<p id=retry hidden><a href="{base}/sso/{protocol}/start/{provider}">Start again</a></p>
<noscript><p>JavaScript is turned off. Signing in to Jellyfin's web client needs JavaScript: turn it on for this site and start again.</p></noscript></main>
<script type="application/json" id="jsp-data">{data}</script>
<script nonce="{nonce}">{SCRIPT}</script></body></html>"#,
        name = escape(c.server_name),
        base = escape(c.base_path),
        protocol = escape(c.protocol),
        provider = escape(c.provider),
        data = script_json(&data),
    );
    // The page's URL carries nothing, but what it posts does: never a referrer.
    let mut r = crate::pages::script_page(html, &nonce);
    r.headers_mut().insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_break_out_of_the_script_element() {
        let s = script_json(&serde_json::json!({"x": "</script><script>alert(1)</script>"}));
        assert!(!s.contains('<') && !s.contains('>'));
    }
}
