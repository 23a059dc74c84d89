// Jellyfin's login page in a real headless Chromium (Debian's, through the playwright-core of
// tests/idp): on the web client's page (START_URL, through the proxy) the login disclaimer is
// rendered the way jellyfin-web 10.11 does it (src/controllers/session/login/index.js:
// markdown-it with html, DOMPurify, every <a> rewritten to a new-tab link; the branding's
// CustomCss in a <style>, as components/CustomCss.tsx), from markdown-it and DOMPurify of this
// folder. Then the "Sign in with LABEL" button is clicked, the OP's form filled with LOGIN and
// PASSWORD, and the result is printed as `BROWSER_RESULT {json}`: the final URL, the web
// client's localStorage, the page text, the buttons seen, which parts of the login page were
// visible, and how many tabs were opened. With PICKER=1, START_URL is the proxy's /sso/
// picker and its button is clicked instead.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { chromium } = await import(here('../idp/node_modules/playwright-core/index.mjs'));

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
  let buttons = [];
  let qrVisible = null;
  const visible = {};
  let selector = `button:has-text("Sign in with ${process.env.LABEL}")`;
  if (!process.env.PICKER) {
    selector = `.loginDisclaimer ${selector}`;
    await page.addScriptTag({ path: here('node_modules/markdown-it/dist/markdown-it.min.js') });
    await page.addScriptTag({ path: here('node_modules/dompurify/dist/purify.min.js') });
    await page.evaluate(async () => {
      const options = await (await fetch('/Branding/Configuration', { headers: { Accept: 'application/json' } })).json();
      if (options.CustomCss) {
        const style = document.createElement('style');
        style.textContent = options.CustomCss;
        document.head.appendChild(style);
      }
      const container = document.createElement('div');
      container.id = 'loginPage';
      // The login page's own parts, with jellyfin-web 10.11's classes
      // (src/controllers/session/login/index.html), to see what the CSS hides.
      container.innerHTML = '<form class="manualLoginForm"><input id="txtManualName"><input id="txtManualPassword" type="password"></form>'
        + '<div class="visualLoginForm"><div id="divUsers">user list</div></div>'
        + '<div class="readOnlyContent"><button class="raised cancel block btnManual">Manual</button>'
        + '<button class="raised cancel block btnQuick">Quick Connect</button>'
        + '<button class="raised cancel block btnForgotPassword">Forgot</button>'
        + '<div class="loginDisclaimerContainer"><div class="loginDisclaimer"></div></div></div>';
      document.body.appendChild(container);
      const loginDisclaimer = container.querySelector('.loginDisclaimer');
      // eslint-disable-next-line no-undef
      loginDisclaimer.innerHTML = DOMPurify.sanitize(markdownit({ html: true }).render(options.LoginDisclaimer || ''));
      for (const elem of loginDisclaimer.querySelectorAll('a')) {
        elem.rel = 'noopener noreferrer';
        elem.target = '_blank';
        elem.classList.add('button-link');
        elem.setAttribute('is', 'emby-linkbutton');
      }
    });
    buttons = await page.$$eval('.loginDisclaimer button', (bs) => bs.map((b) => b.textContent));
    qrVisible = await page.isVisible('.loginDisclaimer img.jsp-sso-qr');
    for (const part of ['.manualLoginForm', '.visualLoginForm', '.btnManual', '.btnQuick', '.btnForgotPassword']) {
      visible[part] = await page.isVisible(`#loginPage ${part}`);
    }
  }
  await page.click(selector);
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
  result.buttons = buttons;
  result.qrVisible = qrVisible;
  result.visible = visible;
  result.tabs = context.pages().length;
} catch (e) {
  const page = context.pages()[0];
  result = { error: String(e), url: page && page.url(), text: page && (await page.content()).slice(0, 3000) };
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(`BROWSER_RESULT ${JSON.stringify(result)}\n`);
