//! The page at `/sso/app-passwords` for a browser: the signed-in user's app passwords, a form
//! to make one (shown once) and a revoke button each. Its script calls the JSON API of
//! [`super::app_passwords`] with the proxy's session cookie (same origin); values are put
//! in the page with `textContent`, never as markup.

use http::Response;

use crate::body::Body;
use crate::pages::escape;
use crate::state::random_token;

const SCRIPT: &str = r#"
(function () {
  var base = JSON.parse(document.getElementById('jsp-data').textContent).base;
  var api = base + '/sso/app-passwords';
  var list = document.getElementById('list'), msg = document.getElementById('msg'), shown = document.getElementById('new');
  var opts = { credentials: 'same-origin', headers: { 'Accept': 'application/json', 'Content-Type': 'application/json' } };
  function el(tag, text) { var e = document.createElement(tag); e.textContent = text || ''; return e; }
  function when(s) { return s ? new Date(s * 1000).toLocaleString() : 'never'; }
  function load() {
    fetch(api, opts).then(function (r) { if (!r.ok) { throw r; } return r.json(); }).then(function (items) {
      list.textContent = '';
      if (!items.length) { list.appendChild(el('li', 'No app passwords yet.')); }
      items.forEach(function (p) {
        var li = el('li', p.name + ' (created ' + when(p.created) + ', last used ' + when(p.lastUsed) + (p.device ? ' by ' + p.device : '') + ') ');
        var b = el('button', 'Revoke');
        b.addEventListener('click', function () {
          fetch(api + '/' + encodeURIComponent(p.id), Object.assign({ method: 'DELETE' }, opts)).then(load);
        });
        li.appendChild(b);
        list.appendChild(li);
      });
    }).catch(function () { msg.textContent = 'Sign in first (for example at ' + base + '/sso/link), then open this page again.'; });
  }
  document.getElementById('make').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var name = document.getElementById('name').value;
    fetch(api, Object.assign({ method: 'POST', body: JSON.stringify({ name: name }) }, opts))
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        if (!res.ok) { msg.textContent = res.j.message || 'Could not make an app password.'; return; }
        shown.textContent = 'Password for ' + res.j.name + ': ' + res.j.password + ' (copy it now: it is not shown again)';
        load();
      });
  });
  load();
})();
"#;

pub fn page(base: &str) -> Response<Body> {
    let nonce = random_token();
    let data = crate::sso::complete::script_json(&serde_json::json!({ "base": base }));
    let html = format!(
        r#"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width"><title>App passwords</title>
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;background:#101010;color:#eee;max-width:40rem;margin:2rem auto;padding:0 1rem}}a{{color:#00a4dc}}button{{margin-left:.5rem}}#new{{font-family:monospace;word-break:break-all}}</style></head>
<body><h1>App passwords</h1><p>For apps that cannot sign in with single sign-on: use your user name and one of these passwords.</p>
<p id=msg></p><p id=new></p><ul id=list></ul>
<form id=make><input id=name maxlength=100 required placeholder="Name, e.g. Infuse on the iPad"> <button type=submit>Make a password</button></form>
<p><a href="{b}/web/index.html">Back to Jellyfin</a></p><noscript><p>This page needs JavaScript.</p></noscript>
<script type="application/json" id="jsp-data">{data}</script><script nonce="{nonce}">{SCRIPT}</script></body></html>"#,
        b = escape(base)
    );
    crate::pages::script_page(html, &nonce)
}
