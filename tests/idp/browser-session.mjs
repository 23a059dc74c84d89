// An interactive headless Chromium (Debian's, through playwright-core) for session-lifecycle
// tests: several browsers with separate cookie jars and storage, driven by JSON commands on
// stdin, one per line; each answer is one line `BROWSER {json}` on stdout. It prints
// `BROWSER_READY {}` once it reads commands.
//
// Commands ({"cmd": ..., "b": "A"} — `b` names a browser, created on first use):
//   login        {url, login, password}   start URL → OP login form → /web/index.html;
//                                         answers the web client's token, user id, device id
//   goto         {url}                    answers the final URL and the page text
//   proxyLogout  {url}                    open /sso/logout; answers the end-session URL the
//                                         browser was sent to (`endSession`), then confirms
//                                         at the OP and answers where it landed (`landed`)
//   opLogout     {url}                    open the OP's end-session page and confirm
//   webSignOut   {}                       the web client's sign-out (POST /Sessions/Logout
//                                         with its token, as jellyfin-web does), then a page
//                                         load of /web/index.html: answers every URL the
//                                         browser was sent through (`chain`)
//   quit
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const browsers = new Map();
async function browser(name) {
  if (browsers.has(name)) return browsers.get(name);
  const dir = mkdtempSync(join(tmpdir(), 'jsp-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    ignoreHTTPSErrors: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(20000);
  const navigations = [];
  page.on('request', (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations.push(r.url()); });
  const b = { dir, context, page, navigations };
  browsers.set(name, b);
  return b;
}

// Confirm at the OP's logout page; resolves with the URL the OP then sends the browser to
// (whatever that page answers).
async function confirmOpLogout(page) {
  await page.waitForSelector('button[name=logout][value=yes]');
  const op = new URL(page.url()).origin;
  const [away] = await Promise.all([
    page.waitForRequest((r) => r.isNavigationRequest() && !r.url().startsWith(op)).catch(() => null),
    page.click('button[name=logout][value=yes]'),
  ]);
  if (away) await page.waitForLoadState('load').catch(() => {});
  return away ? away.url() : page.url();
}

const commands = {
  async login(b, c) {
    await b.page.goto(c.url);
    await b.page.waitForSelector('#login');
    await b.page.fill('#login', c.login);
    await b.page.fill('#password', c.password);
    await Promise.all([b.page.waitForURL(/\/web\/index\.html$/), b.page.click('#submit')]);
    return b.page.evaluate(() => {
      const creds = JSON.parse(localStorage.getItem('jellyfin_credentials') || '{"Servers":[]}');
      const s = creds.Servers[0] || {};
      return { url: location.href, token: s.AccessToken, userId: s.UserId, deviceId: localStorage.getItem('_deviceId2') };
    });
  },
  async goto(b, c) {
    await b.page.goto(c.url);
    return { url: b.page.url(), text: await b.page.innerText('body').catch(() => '') };
  },
  async proxyLogout(b, c) {
    b.navigations.length = 0;
    await b.page.goto(c.url);
    const endSession = b.navigations.find((u) => u.includes('/session/end')) || null;
    const at = b.page.url();
    if (!endSession) return { endSession, landed: at, chain: [...b.navigations] };
    const landed = await confirmOpLogout(b.page);
    return { endSession, landed, chain: [...b.navigations] };
  },
  async opLogout(b, c) {
    await b.page.goto(c.url);
    return { landed: await confirmOpLogout(b.page) };
  },
  async webSignOut(b) {
    const status = await b.page.evaluate(async () => {
      const creds = JSON.parse(localStorage.getItem('jellyfin_credentials') || '{"Servers":[]}');
      const token = creds.Servers[0].AccessToken;
      const r = await fetch('/Sessions/Logout', { method: 'POST', headers: { Authorization: `MediaBrowser Token="${token}"` } });
      return r.status;
    });
    b.navigations.length = 0;
    await b.page.goto(new URL('/web/index.html', b.page.url()).href);
    await b.page.waitForLoadState('load');
    return { status, chain: [...b.navigations], landed: b.page.url() };
  },
};

const rl = readline.createInterface({ input: process.stdin });
process.stdout.write('BROWSER_READY {}\n');
for await (const line of rl) {
  if (!line.trim()) continue;
  const c = JSON.parse(line);
  if (c.cmd === 'quit') break;
  let out;
  try {
    const b = await browser(c.b || 'A');
    out = await commands[c.cmd](b, c);
  } catch (e) {
    const b = browsers.get(c.b || 'A');
    out = { error: String(e), url: b && b.page.url(), text: b && (await b.page.content().catch(() => '')).slice(0, 2000) };
  }
  process.stdout.write(`BROWSER ${JSON.stringify(out)}\n`);
}
for (const b of browsers.values()) {
  await b.context.close();
  rmSync(b.dir, { recursive: true, force: true });
}
process.exit(0);
