// A real Jellyfin client: the official TypeScript SDK (npm @jellyfin/sdk), talking to the proxy.
//
// MODE=tv-link: the "TV" starts Quick Connect through the proxy; headless Chromium (Debian's,
//   through playwright-core) opens /sso/link, signs in at the identity provider (LOGIN,
//   PASSWORD), comes back to /sso/link and enters the code; the TV then completes sign-in
//   and reads /Users/Me with its own token.
// MODE=password: sign in with USERNAME and PW (e.g. an app password), then read /Users/Me.
// Env: PROXY_URL, DEVICE_ID. Prints one line `SDK_RESULT {json}`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Jellyfin } from '@jellyfin/sdk';
import { getAuthenticationApi } from '@jellyfin/sdk/lib/utils/api/authentication-api.js';
import { getUserApi } from '@jellyfin/sdk/lib/utils/api/user-api.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test proxy's self-signed certificate

const jellyfin = new Jellyfin({
  clientInfo: { name: 'Jellyfin Android TV', version: '0.18.0' },
  deviceInfo: { name: 'Living room TV', id: process.env.DEVICE_ID || 'tv-device-1' },
});
const api = jellyfin.createApi(process.env.PROXY_URL);
const result = {};

async function me() {
  const r = await getUserApi(api).getCurrentUser();
  return { name: r.data.Name, id: r.data.Id };
}

async function browserEntersCode(code) {
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'jsp-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    ignoreHTTPSErrors: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(20000);
    await page.goto(process.env.PROXY_URL + '/sso/link');
    result.providerButtons = await page.$$eval('a.provider', (as) => as.map((a) => a.getAttribute('href')));
    await page.click('a.provider');
    await page.waitForSelector('#login');
    await page.fill('#login', process.env.LOGIN);
    await page.fill('#password', process.env.PASSWORD);
    await Promise.all([page.waitForURL(/\/sso\/link$/), page.click('#submit')]);
    await page.waitForSelector('input[name=code]');
    result.formAction = await page.getAttribute('form', 'action');
    result.csrf = await page.getAttribute('input[name=csrf]', 'value');
    // A wrong one first, then the TV's.
    await page.fill('input[name=code]', '000000');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    result.wrongOutcome = await page.getAttribute('#notice', 'data-outcome');
    await page.fill('input[name=code]', code);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    result.outcome = await page.getAttribute('#notice', 'data-outcome');
    result.noticeText = await page.innerText('#notice');
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

try {
  if (process.env.MODE === 'tv-link') {
    const auth = getAuthenticationApi(api);
    const qc = (await auth.initiateQuickConnect()).data;
    result.code = qc.Code;
    await browserEntersCode(qc.Code);
    result.stateAfter = (await auth.getQuickConnectState({ secret: qc.Secret })).data.Authenticated;
    const signed = (await auth.authenticateWithQuickConnect({ quickConnectDto: { Secret: qc.Secret } })).data;
    api.update({ accessToken: signed.AccessToken });
    result.token = signed.AccessToken;
    result.me = await me();
  } else {
    const r = await api.authenticateUserByName(process.env.USERNAME, process.env.PW);
    result.status = r.status;
    result.token = r.data.AccessToken;
    api.update({ accessToken: r.data.AccessToken });
    result.sessionDevice = r.data.SessionInfo && r.data.SessionInfo.DeviceId;
    result.me = await me();
  }
} catch (e) {
  result.error = String(e);
  if (e.response) { result.status = e.response.status; result.retryAfter = e.response.headers['retry-after']; result.body = e.response.data; }
}
process.stdout.write(`SDK_RESULT ${JSON.stringify(result)}\n`);
