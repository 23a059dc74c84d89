// A real OpenID Provider (npm oidc-provider v9) for the integration tests, on loopback.
//
// Start: node tests/idp/oidc-provider.mjs   with the JSON configuration in env OP_CONFIG:
//   { "clients":  [{ "client_id", "client_secret"?, "redirect_uris": [...], "auth_method":
//                    "client_secret_basic"|"client_secret_post"|"none", "require_par": bool }],
//     "accounts": [{ "login", "password", "claims": {...}, "userinfo_only": ["claim", ...] }],
//     "par": bool,
//     and, to behave like a given product (all optional):
//     "issuer": "{origin}/application/o/jellyfin/" | "http://accounts.google.com" — the issuer it names
//              ({origin} is its own loopback origin; another host is reached with this server
//              as the HTTP proxy: it serves absolute-form request targets by their host),
//     "endpoints": { "token_endpoint": "http://oauth2.googleapis.com/token", ... } — where its
//              discovery document says an endpoint is; requests there are served by the
//              provider's own endpoint (the others are on the issuer's origin, same path),
//     "discovery": { "/common/v2.0": { "issuer": "http://login.microsoftonline.com/{tenantid}/v2.0" } }
//              — more discovery documents, under these paths of the issuer's origin, with
//              fields replaced,
//     "scope_claims": { "openid": ["sub", "tid"], ... } — the claims each scope releases,
//     "iss_param": false — no RFC 9207 `iss` on the callback (Entra does not send it) }
// Extra client metadata per client id may come in env OP_CLIENT_EXTRA (JSON object
//   { "<client_id>": { "backchannel_logout_uri": ..., "post_logout_redirect_uris": [...],
//                      "grant_types": [...], ... } }), merged over the above.
// Back-channel logout and RP-initiated logout are enabled; the logout tokens are posted to
// the proxy's self-signed https address on loopback, so certificate checks and the OP's
// special-use address guard are off for those requests.
// Prints one line `OP_READY {"issuer": "...", "port": N}` when it listens on 127.0.0.1.
//
// Login: the interaction page at /interaction/{uid} is a plain HTML form
//   <form method=post> with inputs `login` and `password` and a submit button id `submit`;
// consent is granted automatically (every requested scope and claim).
// The subject (`sub`) of an account is its login and never changes.
//
// Control endpoints (tests only):
//   POST /__control/account/{login}  body: JSON claims that replace the account's claims
//   POST /__control/rotate-keys      sign with a new key from now on, keep publishing the old
//   POST /__control/disable/{login}  the account no longer exists for the OP: its refresh
//                                    tokens are refused with invalid_grant
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const cfg = JSON.parse(process.env.OP_CONFIG || '{}');
const accounts = new Map((cfg.accounts || []).map((a) => [a.login, a]));
const clientExtra = JSON.parse(process.env.OP_CLIENT_EXTRA || '{}');
const disabled = new Set();
const scopeClaims = cfg.scope_claims || {
  openid: ['sub'],
  profile: ['preferred_username', 'name', 'picture', 'realm_access'],
  email: ['email'],
  groups: ['groups'],
};
if (Object.values(clientExtra).some((x) => x.backchannel_logout_uri)) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}
let keys = [newKey()];
const cookieKeys = [crypto.randomBytes(32).toString('hex')];

function configuration() {
  return {
    clients: (cfg.clients || []).map((c) => ({
      client_id: c.client_id,
      ...(c.client_secret ? { client_secret: c.client_secret } : {}),
      redirect_uris: c.redirect_uris,
      token_endpoint_auth_method: c.auth_method,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
      ...(c.require_par ? { require_pushed_authorization_requests: true } : {}),
      ...(clientExtra[c.client_id] || {}),
    })),
    jwks: { keys },
    // The proxy under test is on loopback, which the OP's SSRF guard refuses for the
    // back-channel logout POST: use the plain fetch (tests only).
    fetch: (url, options) => { delete options.dispatcher; return globalThis.fetch(url, options); },
    cookies: { keys: cookieKeys },
    pkce: { required: () => true },
    // Scope claims go into the ID token too (Pocket ID does this for `groups`); claims named
    // in an account's `userinfo_only` are left out of the ID token below (Keycloak style).
    conformIdTokenClaims: false,
    scopes: ['openid', 'offline_access', ...Object.keys(scopeClaims).filter((s) => s !== 'openid')],
    claims: scopeClaims,
    features: {
      devInteractions: { enabled: false },
      pushedAuthorizationRequests: { enabled: !!cfg.par },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const a = accounts.get(id);
      if (!a || disabled.has(id)) return undefined;
      return {
        accountId: id,
        async claims(use) {
          const out = { sub: id };
          for (const [k, v] of Object.entries(a.claims || {})) {
            if (use === 'id_token' && (a.userinfo_only || []).includes(k)) continue;
            out[k] = v;
          }
          return out;
        },
      };
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>error</title><pre>${JSON.stringify(out).replace(/</g, '&lt;')}</pre>`;
    },
  };
}

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(process.env.OP_PORT || 0), '127.0.0.1', resolve));
const port = server.address().port;
const origin = `http://127.0.0.1:${port}`;
const issuer = (cfg.issuer || origin).replace('{origin}', origin);
const issuerUrl = new URL(issuer);
const withOrigin = (u) => u.replace('{origin}', origin);

// The product's discovery shape: every endpoint where `endpoints` says (else on the issuer's
// origin, same path), and a route from each such public URL to the provider's own path.
const routes = new Map(); // "host/path" → the provider's path
async function shapedDiscovery(overrides) {
  const own = await (await globalThis.fetch(`${origin}/.well-known/openid-configuration`, { headers: { 'x-own-discovery': '1' } })).json();
  const doc = { ...own, issuer };
  for (const [k, v] of Object.entries(own)) {
    if (k === 'issuer' || typeof v !== 'string' || !v.startsWith(origin)) continue;
    if (cfg.endpoints && cfg.endpoints[k] === null) { delete doc[k]; continue; } // the product has none
    const ownPath = new URL(v).pathname;
    const pub = new URL(cfg.endpoints && cfg.endpoints[k] ? withOrigin(cfg.endpoints[k]) : `${issuerUrl.origin}${ownPath}`);
    doc[k] = pub.href;
    routes.set(pub.host + pub.pathname, ownPath);
  }
  for (const [k, v] of Object.entries(overrides)) {
    if (typeof own[k] === 'string' && own[k].startsWith(origin)) {
      const pub = new URL(v);
      routes.set(pub.host + pub.pathname, new URL(own[k]).pathname);
    }
  }
  return { ...doc, ...overrides };
}
const discoveries = new Map([[issuerUrl.pathname.replace(/\/$/, ''), {}], ...Object.entries(cfg.discovery || {})]);
function newProvider() {
  const p = new Provider(issuer, configuration());
  p.on('backchannel.error', (ctx, err, client) => process.stderr.write(`OP back-channel logout to ${client && client.clientId} failed: ${err && (err.cause || err.message || err)}\n`));
  return p;
}
let provider = newProvider();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><head><title>Sign in</title></head><body><h1>Test OP sign in</h1>
<form method="post" action="/interaction/${escape(uid)}">
<input name="login" id="login" autocomplete="username"><input name="password" id="password" type="password">
<button type="submit" id="submit">Sign in</button></form></body></html>`);
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    const a = accounts.get(form.get('login') || '');
    if (!a || a.password !== form.get('password')) {
      res.writeHead(401, { 'content-type': 'text/html' });
      res.end('<!doctype html><p>wrong login or password</p>');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: a.login } }, { mergeWithLastSubmission: false });
    return;
  }
  // Consent: grant everything that was asked for.
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
  const d = prompt.details || {};
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  if (d.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

server.on('request', async (req, res) => {
  // A request for another host arrives in absolute form (this server is its HTTP proxy).
  const url = new URL(req.url, `http://${req.headers.host || issuerUrl.host}`);
  try {
    if (cfg.iss_param === false) {
      // The provider always adds RFC 9207 `iss` to the callback; take it off again.
      const setHeader = res.setHeader.bind(res);
      res.setHeader = (k, v) => {
        if (String(k).toLowerCase() === 'location' && typeof v === 'string' && v.includes('iss=')) {
          const u = new URL(v);
          u.searchParams.delete('iss');
          v = u.href;
        }
        return setHeader(k, v);
      };
    }
    if ((cfg.issuer || cfg.endpoints) && !req.headers['x-own-discovery']) {
      const wk = url.pathname.match(/^(.*)\/\.well-known\/openid-configuration$/);
      if (req.method === 'GET' && wk && url.host === issuerUrl.host && discoveries.has(wk[1])) {
        const body = JSON.stringify(await shapedDiscovery(discoveries.get(wk[1])));
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(body);
      }
      const own = routes.get(url.host + url.pathname);
      req.url = (own || url.pathname) + url.search;
    }
    const m = url.pathname.match(/^\/interaction\/([^/]+)$/);
    if (m) return await interaction(req, res, m[1]);
    if (req.method === 'POST' && url.pathname.startsWith('/__control/account/')) {
      const login = decodeURIComponent(url.pathname.slice('/__control/account/'.length));
      const a = accounts.get(login);
      if (!a) { res.writeHead(404); return res.end(); }
      a.claims = JSON.parse(await readBody(req));
      res.writeHead(204);
      return res.end();
    }
    if (req.method === 'POST' && url.pathname.startsWith('/__control/disable/')) {
      disabled.add(decodeURIComponent(url.pathname.slice('/__control/disable/'.length)));
      res.writeHead(204);
      return res.end();
    }
    if (req.method === 'POST' && url.pathname === '/__control/rotate-keys') {
      keys = [newKey(), ...keys];
      provider = newProvider();
      res.writeHead(204);
      return res.end();
    }
    return provider.callback()(req, res);
  } catch (e) {
    process.stderr.write(`OP error: ${e && e.stack}\n`);
    if (!res.headersSent) { res.writeHead(500); }
    res.end();
  }
});

process.stdout.write(`OP_READY ${JSON.stringify({ issuer, port })}\n`);
