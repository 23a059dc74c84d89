// Drive a real headless Chromium (Debian's, through playwright-core) through an SSO login.
//
// Env: START_URL (the proxy's /sso/.../start/... URL), LOGIN, PASSWORD; with LINKING_PAGE=1 it
// then opens /SSOViews/linking, records the listed links, removes the first one, and records
// the list again (`linksBefore`, `linksAfter`), and the "Your devices" list (`devices`).
// Prints one line `BROWSER_RESULT {json}` with the final URL, the page's localStorage
// (`jellyfin_credentials`, `_deviceId2`, `enableAutoLogin`) and the page text.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const userDataDir = mkdtempSync(join(tmpdir(), 'jsp-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
let result;
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(20000);
  await page.goto(process.env.START_URL);
  await page.waitForSelector('#login');
  await page.fill('#login', process.env.LOGIN);
  await page.fill('#password', process.env.PASSWORD);
  await Promise.all([page.waitForURL(/\/web\/index\.html$/), page.click('#submit')]);
  result = await page.evaluate(() => ({
    url: location.href,
    credentials: JSON.parse(localStorage.getItem('jellyfin_credentials') || 'null'),
    deviceId: localStorage.getItem('_deviceId2'),
    autoLogin: localStorage.getItem('enableAutoLogin'),
    text: document.body.innerText,
  }));
  if (process.env.LINKING_PAGE) {
    await page.goto(new URL('/SSOViews/linking', page.url()).href);
    await page.waitForSelector('#links li button');
    result.linksBefore = await page.innerText('#links');
    result.linkButtons = await page.$$eval('#add a', (as) => as.map((a) => a.getAttribute('href')));
    await page.waitForSelector('#devices li');
    result.devices = await page.innerText('#devices');
    await page.click('#links li button');
    await page.waitForFunction(() => document.getElementById('links').innerText.includes('No linked identities yet.'));
    result.linksAfter = await page.innerText('#links');
  }
} catch (e) {
  const page = context.pages()[0];
  result = { error: String(e), url: page && page.url(), text: page && (await page.content()).slice(0, 2000) };
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(`BROWSER_RESULT ${JSON.stringify(result)}\n`);
