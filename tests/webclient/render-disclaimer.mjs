// Render a login disclaimer exactly as jellyfin-web 10.11 does
// (src/controllers/session/login/index.js): markdownIt({ html: true }).render, then
// DOMPurify.sanitize, into `.loginDisclaimer`, then every <a> rewritten (rel, target=_blank,
// class button-link, is=emby-linkbutton; tabIndex -1 on TV layouts).
//
// Reads {"disclaimer": "...", "tv": bool} on stdin; prints one line `RENDER_RESULT {json}`
// with what came out: the HTML, each form (method, action, button text and classes), each
// link, images, and anything script-like that survived.
import { JSDOM } from 'jsdom';
import createDOMPurify from 'dompurify';
import markdownIt from 'markdown-it';

const input = JSON.parse(await new Promise((resolve) => {
  let s = '';
  process.stdin.on('data', (c) => { s += c; });
  process.stdin.on('end', () => resolve(s));
}));
const { window } = new JSDOM('<!doctype html><div class="loginDisclaimerContainer"><div class="loginDisclaimer"></div></div>');
const DOMPurify = createDOMPurify(window);
const loginDisclaimer = window.document.querySelector('.loginDisclaimer');
loginDisclaimer.innerHTML = DOMPurify.sanitize(markdownIt({ html: true }).render(input.disclaimer || ''));
for (const elem of loginDisclaimer.querySelectorAll('a')) {
  elem.rel = 'noopener noreferrer';
  elem.target = '_blank';
  elem.classList.add('button-link');
  elem.setAttribute('is', 'emby-linkbutton');
  if (input.tv) {
    elem.tabIndex = -1;
  }
}
const all = [...loginDisclaimer.querySelectorAll('*')];
const result = {
  html: loginDisclaimer.innerHTML,
  text: loginDisclaimer.textContent,
  forms: [...loginDisclaimer.querySelectorAll('form')].map((f) => ({
    method: f.getAttribute('method'),
    action: f.getAttribute('action'),
    target: f.getAttribute('target'),
    buttons: [...f.querySelectorAll('button')].map((b) => ({ text: b.textContent, type: b.getAttribute('type'), className: b.className, tabIndex: b.tabIndex })),
  })),
  links: [...loginDisclaimer.querySelectorAll('a')].map((a) => ({ href: a.getAttribute('href'), target: a.target, text: a.textContent })),
  images: [...loginDisclaimer.querySelectorAll('img')].map((i) => i.getAttribute('src')),
  scripts: loginDisclaimer.querySelectorAll('script, iframe, object, embed').length,
  eventAttributes: all.flatMap((e) => [...e.attributes].map((a) => a.name).filter((n) => n.startsWith('on'))),
};
process.stdout.write(`RENDER_RESULT ${JSON.stringify(result)}\n`);
