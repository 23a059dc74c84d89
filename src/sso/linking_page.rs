//! The self-service account-linking page, at the plugin's old path `/SSOViews/linking`.
//!
//! A signed-in Jellyfin user sees the identities linked to their account (with a remove
//! button each) and a "link" button for each enabled provider. The page holds no data of
//! its own beyond the list of enabled providers of both protocols (from the registry): its
//! script reads the web client's token from `jellyfin_credentials` and calls the
//! admin API (`/sso/{mode}/links/{user}`, `DELETE /sso/{mode}/Link/…`) as that user, so the
//! same authorization rules apply as for any script. "Your devices" lists the user's
//! SSO-minted sessions (`GET /sso/sessions/{user}`) with a sign-out button each
//! (`DELETE /sso/sessions/{user}/{device}`).

use http::Response;

use crate::body::Body;
use crate::pages::escape;
use crate::state::random_token;

const SCRIPT: &str = r#"
(function () {
  var cfg = JSON.parse(document.getElementById('jsp-data').textContent);
  var base = cfg.base;
  var list = document.getElementById('links');
  var msg = document.getElementById('msg');
  var creds = JSON.parse(localStorage.getItem('jellyfin_credentials') || '{"Servers":[]}');
  var me = (creds.Servers || []).filter(function (s) { return s.AccessToken && s.UserId; })[0];
  if (!me) { msg.textContent = 'Sign in to Jellyfin first, then come back to this page.'; return; }
  var auth = { 'Authorization': 'MediaBrowser Token="' + me.AccessToken + '"', 'Accept': 'application/json' };
  function el(tag, text) { var e = document.createElement(tag); if (text) { e.textContent = text; } return e; }
  function load() {
    list.textContent = '';
    Promise.all([
      fetch(base + '/sso/oid/links/' + encodeURIComponent(me.UserId), { headers: auth }).then(function (r) { return r.ok ? r.json() : {}; }),
      fetch(base + '/sso/saml/links/' + encodeURIComponent(me.UserId), { headers: auth }).then(function (r) { return r.ok ? r.json() : {}; })
    ]).then(function (res) {
      var links = { oid: res[0], saml: res[1] };
      ['oid', 'saml'].forEach(function (mode) {
        Object.keys(links[mode]).forEach(function (provider) {
          links[mode][provider].forEach(function (canonical) {
            var li = el('li', provider + ' (' + mode.toUpperCase() + '): ' + canonical + ' ');
            var b = el('button', 'Remove');
            b.addEventListener('click', function () {
              fetch(base + '/sso/' + mode + '/Link/' + encodeURIComponent(provider) + '/' + encodeURIComponent(me.UserId) + '/' + encodeURIComponent(canonical),
                    { method: 'DELETE', headers: auth }).then(load);
            });
            li.appendChild(b);
            list.appendChild(li);
          });
        });
      });
      if (!list.children.length) { list.appendChild(el('li', 'No linked identities yet.')); }
      var add = document.getElementById('add');
      add.textContent = '';
      cfg.providers.forEach(function (p) {
        var a = el('a', 'Link ' + p.name);
        a.href = base + '/sso/' + p.mode + '/start/' + encodeURIComponent(p.name) + '?isLinking=true';
        add.appendChild(el('p')).appendChild(a);
      });
    }).catch(function () { msg.textContent = 'The server could not be reached.'; });
  }
  var devices = document.getElementById('devices');
  function loadDevices() {
    devices.textContent = '';
    fetch(base + '/sso/sessions/' + encodeURIComponent(me.UserId), { headers: auth })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (list) {
        list.forEach(function (s) {
          var when = new Date(s.mintedAt * 1000).toLocaleString();
          var li = el('li', (s.deviceName || s.deviceId) + ' \u2014 ' + (s.client || '') + ', ' + s.provider + ' (' + s.how + '), signed in ' + when + ' ');
          var b = el('button', 'Sign out');
          b.addEventListener('click', function () {
            fetch(base + '/sso/sessions/' + encodeURIComponent(me.UserId) + '/' + encodeURIComponent(s.deviceId),
                  { method: 'DELETE', headers: auth }).then(loadDevices);
          });
          li.appendChild(b);
          devices.appendChild(li);
        });
        if (!devices.children.length) { devices.appendChild(el('li', 'No devices signed in through single sign-on.')); }
      });
  }
  load();
  loadDevices();
})();
"#;

/// The page for a server under `base_path`, offering `providers` (`(URL segment, name)` of
/// each enabled provider, from the registry).
pub fn page(base_path: &str, providers: &[(&str, &str)]) -> Response<Body> {
    let data = serde_json::json!({
        "base": base_path,
        "providers": providers.iter().map(|(mode, name)| serde_json::json!({"mode": mode, "name": name})).collect::<Vec<_>>(),
    });
    let nonce = random_token();
    let html = format!(
        r#"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width"><title>Linked sign-ins</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;background:#101010;color:#eee;max-width:40rem;margin:2rem auto;padding:0 1rem}}a{{color:#00a4dc}}button{{margin-left:.5rem}}</style></head>
<body><h1>Linked sign-ins</h1><p id=msg></p><ul id=links></ul><h2>Link another</h2><div id=add></div><h2>Your devices</h2><ul id=devices></ul>
<p><a href="{base}/web/index.html">Back to Jellyfin</a></p>
<noscript><p>This page needs JavaScript.</p></noscript>
<script type="application/json" id="jsp-data">{data}</script>
<script nonce="{nonce}">{script}</script></body></html>"#,
        base = escape(base_path),
        data = crate::sso::complete::script_json(&data),
        script = SCRIPT,
    );
    crate::pages::script_page(html, &nonce)
}
