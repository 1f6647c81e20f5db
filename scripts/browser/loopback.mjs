// What both page checks share: headless Chromium with one page on which nothing can leave
// loopback. Every request is recorded; one that would leave is aborted before it is sent and
// listed, and so is a websocket to another host. Chromium: $CHROMIUM, else /usr/bin/chromium.

import { chromium } from 'playwright-core';

/** True for URLs that cannot leave this machine: loopback hosts, and data:/blob: URLs. */
export function isLoopback(url) {
  let u;
  try { u = new URL(url); } catch { return false; }
  if (u.protocol === 'data:' || u.protocol === 'blob:') return true;
  const host = u.hostname;
  return host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** Launches the browser and opens the page; request URLs go into `requests`, refused ones
 * into `nonLoopback`. Returns `{ browser, page }`. */
export async function loopbackPage(requests, nonLoopback) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
      '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    serviceWorkers: 'block', // a service worker's requests would bypass the route below
  });
  // Installed before anything loads: nothing non-loopback is ever sent.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isLoopback(url)) return route.continue();
    nonLoopback.push(url);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('request', (r) => requests.push(r.url()));
  page.on('websocket', (ws) => {
    requests.push(ws.url());
    if (!isLoopback(ws.url().replace(/^ws/, 'http'))) nonLoopback.push(ws.url());
  });
  return { browser, page };
}

/** The fields of a request's multipart/form-data body as `[name, value]` pairs, in order; a
 * file part's value is `<file NAME>` (Chromium reports a file part's headers, not its bytes).
 * `null` when the body is not multipart or the browser did not report it. */
export function multipartFields(request) {
  const type = request.headers()['content-type'] || '';
  const boundary = /^multipart\/form-data;.*\bboundary=(?:"([^"]+)"|([^;]+))/i.exec(type);
  const body = request.postDataBuffer();
  if (!boundary || !body) return null;
  const text = body.toString('latin1');
  const delimiter = `--${boundary[1] || boundary[2]}`;
  const fields = [];
  for (const part of text.split(delimiter).slice(1)) {
    if (part.startsWith('--')) break; // the closing delimiter
    const end = part.indexOf('\r\n\r\n');
    if (end < 0) continue;
    const head = part.slice(0, end);
    const value = part.slice(end + 4).replace(/\r\n$/, '');
    const name = /\bname="([^"]*)"/i.exec(head);
    const file = /\bfilename="([^"]*)"/i.exec(head);
    if (!name) continue;
    fields.push([name[1], file ? `<file ${file[1]}>` : Buffer.from(value, 'latin1').toString('utf8')]);
  }
  return fields;
}
