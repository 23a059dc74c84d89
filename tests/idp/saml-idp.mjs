// A real SAML 2.0 identity provider for the integration tests, on loopback, built on the npm
// `samlify` library (request parsing, XML signing with xml-crypto). It behaves like Keycloak
// or authentik do for a service provider imported from its metadata URL.
//
// Start: node tests/idp/saml-idp.mjs   with the JSON configuration in env SAML_IDP_CONFIG:
//   { "entity_id": "...",                    the IdP's entity id (the Issuer it sends)
//     "key": "/path/idp.key", "cert": "/path/idp.crt",   PEM signing key and certificate
//     "sp_metadata_url": "https://127.0.0.1:P/sso/SAML/metadata/NAME",  fetched at first use
//     "sign": "response" | "assertion" | "both",
//     "want_signed_requests": true,          AuthnRequests must be signed by the SP's metadata key
//                                            (HTTP-Redirect: SigAlg + Signature over the query)
//     "encrypt": "gcm" | "cbc",              encrypt assertions to the SP metadata's encryption
//                                            key (RSA-OAEP-MGF1P key transport, AES-256); the
//                                            Response signature, if any, covers the ciphertext
//     "accounts": [{ "login", "password", "name_id", "attributes": { "Role": ["a", "b"], ... } }] }
// Prints one line `SAML_IDP_READY {"sso_url": "...", "port": N}` when it listens.
//
// GET  /metadata                     the IdP's own metadata, as samlify writes it.
// GET  /sso?SAMLRequest&RelayState    (HTTP-Redirect binding) parses the AuthnRequest (verifying
//      its signature when want_signed_requests; a refusal is a 403 page naming samlify's error)
//      and shows a login form: inputs `login`, `password`, submit button id `submit`.
// POST /login                         checks the password and answers with the usual
//      auto-submitting HTML form that POSTs SAMLResponse and RelayState to the SP's ACS.
// The ACS is the AuthnRequest's AssertionConsumerServiceURL, which must be one the SP's
// metadata lists (as Keycloak checks it against the client's registered URLs).
// GET /__control/logout-request?name_id=...&relay=...   (tests only) answers
//      {"url": ...}: an IdP-initiated LogoutRequest for that NameID, HTTP-Redirect binding,
//      signed (detached query signature), addressed to the SP's SingleLogoutService.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import * as samlify from 'samlify';

const cfg = JSON.parse(process.env.SAML_IDP_CONFIG || '{}');
const accounts = new Map((cfg.accounts || []).map((a) => [a.login, a]));
const B = samlify.Constants.namespace.binding;

// The IdP under test trusts its own parsing; request schema validation is not what we test.
samlify.setSchemaValidator({ validate: () => Promise.resolve('skipped') });

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const newId = () => '_' + crypto.randomBytes(16).toString('hex');

let idp;
let sp;
let acsUrls = [];

async function serviceProvider() {
  if (sp) return sp;
  // Self-signed TLS on loopback: the launcher sets NODE_TLS_REJECT_UNAUTHORIZED=0 for us only.
  const r = await fetch(cfg.sp_metadata_url);
  if (!r.ok) throw new Error(`SP metadata: ${r.status}`);
  let xml = await r.text();
  // As an administrator ticking "sign assertions" at the IdP would; samlify reads it from the
  // metadata. The message (Response) is signed unless only assertions are asked for.
  const wantAssertion = cfg.sign === 'assertion' || cfg.sign === 'both';
  xml = xml.replace(/WantAssertionsSigned="[a-z]+"/, `WantAssertionsSigned="${wantAssertion}"`);
  sp = samlify.ServiceProvider({ metadata: xml, wantMessageSigned: cfg.sign !== 'assertion', wantLogoutRequestSigned: true });
  acsUrls = [...xml.matchAll(/AssertionConsumerService[^>]*Location="([^"]+)"/g)].map((m) => m[1]);
  return sp;
}

function page(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html><body>${body}</body></html>`);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (c) => { data += c; if (data.length > 1e6) req.destroy(); });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

function responseXml(request, acs, account) {
  const now = new Date();
  const later = new Date(now.getTime() + 5 * 60 * 1000);
  const attrs = Object.entries(account.attributes || {})
    .map(([name, values]) => `<saml:Attribute Name="${esc(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${
      (Array.isArray(values) ? values : [values]).map((v) => `<saml:AttributeValue xsi:type="xs:string">${esc(v)}</saml:AttributeValue>`).join('')
    }</saml:Attribute>`)
    .join('');
  const id = newId();
  // samlify calls this with its default template; we answer with our own, complete one.
  return () => ({
    id,
    context:
      `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${id}" Version="2.0" IssueInstant="${now.toISOString()}" Destination="${esc(acs)}" InResponseTo="${esc(request.id)}">` +
      `<saml:Issuer>${esc(cfg.entity_id)}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
      `<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="${newId()}" Version="2.0" IssueInstant="${now.toISOString()}">` +
      `<saml:Issuer>${esc(cfg.entity_id)}</saml:Issuer>` +
      `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">${esc(account.name_id)}</saml:NameID>` +
      `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${later.toISOString()}" Recipient="${esc(acs)}" InResponseTo="${esc(request.id)}"/></saml:SubjectConfirmation></saml:Subject>` +
      `<saml:Conditions NotBefore="${now.toISOString()}" NotOnOrAfter="${later.toISOString()}"><saml:AudienceRestriction><saml:Audience>${esc(sp.entityMeta.getEntityID())}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
      `<saml:AuthnStatement AuthnInstant="${now.toISOString()}" SessionIndex="${newId()}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
      (attrs ? `<saml:AttributeStatement>${attrs}</saml:AttributeStatement>` : '') +
      `</saml:Assertion></samlp:Response>`,
  });
}

// Pending AuthnRequests between the login form and its POST, by an opaque key.
const pending = new Map();

async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/metadata') {
    res.writeHead(200, { 'content-type': 'application/samlmetadata+xml' });
    return res.end(idp.getMetadata());
  }
  if (req.method === 'GET' && url.pathname === '/sso') {
    const s = await serviceProvider();
    const query = Object.fromEntries(url.searchParams);
    // SAML Bindings §3.4.4.1: the signed octets are the query's own SAMLRequest, RelayState
    // and SigAlg parameters, as sent (still URL-encoded), in that order.
    const raw = new Map((req.url.split('?')[1] || '').split('&').map((kv) => [kv.split('=')[0], kv]));
    const octetString = ['SAMLRequest', 'RelayState', 'SigAlg'].filter((k) => raw.has(k)).map((k) => raw.get(k)).join('&');
    let parsed;
    try {
      parsed = await idp.parseLoginRequest(s, 'redirect', { query, octetString });
    } catch (e) {
      return page(res, 403, `AuthnRequest refused: ${esc(e.message)}`);
    }
    const request = parsed.extract.request;
    const acs = request.assertionConsumerServiceUrl || acsUrls[0];
    if (!acsUrls.includes(acs)) return page(res, 400, `unregistered ACS ${esc(acs)}`);
    const key = crypto.randomBytes(16).toString('hex');
    pending.set(key, { request, acs, relay: url.searchParams.get('RelayState') });
    return page(res, 200, `<h1>Test SAML IdP</h1><form method="post" action="/login">` +
      `<input type="hidden" name="key" value="${key}">` +
      `<input id="login" name="login"><input id="password" name="password" type="password">` +
      `<button id="submit" type="submit">Sign in</button></form>`);
  }
  if (req.method === 'POST' && url.pathname === '/login') {
    const form = await readBody(req);
    const p = pending.get(form.get('key') || '');
    const account = accounts.get(form.get('login') || '');
    if (!p) return page(res, 400, 'unknown login request');
    if (!account || account.password !== form.get('password')) return page(res, 401, 'wrong password');
    pending.delete(form.get('key'));
    // With encryption the assertion is encrypted first and the Response signed after, so its
    // signature covers the ciphertext (samlify's encryptThenSign).
    const { context } = await idp.createLoginResponse(sp, { extract: { request: p.request } }, 'post', {}, responseXml(p.request, p.acs, account), !!cfg.encrypt);
    return page(res, 200, `<form method="post" action="${esc(p.acs)}">` +
      `<input type="hidden" name="SAMLResponse" value="${esc(context)}">` +
      (p.relay ? `<input type="hidden" name="RelayState" value="${esc(p.relay)}">` : '') +
      `<noscript><button type="submit">Continue</button></noscript></form>` +
      `<script>document.forms[0].submit()</script>`);
  }
  if (req.method === 'GET' && url.pathname === '/__control/logout-request') {
    const s = await serviceProvider();
    const { context } = await idp.createLogoutRequest(s, 'redirect', { logoutNameID: url.searchParams.get('name_id') }, url.searchParams.get('relay') || '');
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ url: context }));
  }
  page(res, 404, 'not found');
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error('saml-idp:', e);
    page(res, 500, esc(e.message));
  });
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const ssoUrl = `http://127.0.0.1:${port}/sso`;
  idp = samlify.IdentityProvider({
    entityID: cfg.entity_id,
    privateKey: fs.readFileSync(cfg.key),
    signingCert: fs.readFileSync(cfg.cert),
    singleSignOnService: [{ Binding: B.redirect, Location: ssoUrl }],
    // Not served: the tests only make IdP-initiated LogoutRequests (/__control/logout-request).
    singleLogoutService: [{ Binding: B.redirect, Location: `http://127.0.0.1:${port}/slo` }],
    nameIDFormat: ['urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'],
    requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    wantAuthnRequestsSigned: !!cfg.want_signed_requests,
    isAssertionEncrypted: !!cfg.encrypt,
    dataEncryptionAlgorithm: cfg.encrypt === 'cbc' ? 'http://www.w3.org/2001/04/xmlenc#aes256-cbc' : 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
    keyEncryptionAlgorithm: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
  });
  console.log(`SAML_IDP_READY ${JSON.stringify({ sso_url: ssoUrl, port })}`);
});
