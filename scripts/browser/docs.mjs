#!/usr/bin/env node
// Opens the API docs (/docs, Swagger UI served by the server itself) in headless Chromium and
// checks that they render: at least 10 operations, /v1/jobs among them, every asset loaded
// from the server, nothing failed, nothing tried to leave loopback.
//
//   node docs.mjs --base http://127.0.0.1:PORT --screenshot out.png
//
// Prints one JSON line and exits 0, or the reason on stderr and exits 1.
// Chromium: $CHROMIUM, else /usr/bin/chromium.

import { parseArgs } from 'node:util';
import { isLoopback, loopbackPage } from './loopback.mjs';

const OVERALL_MS = 90_000;
const MIN_OPERATIONS = 10;

const { values: opt } = parseArgs({
  options: { base: { type: 'string' }, screenshot: { type: 'string' } },
  strict: true,
});
for (const name of ['base', 'screenshot']) {
  if (!opt[name]) {
    console.error(`docs.mjs: --${name} is required`);
    process.exit(1);
  }
}
const base = opt.base.replace(/\/+$/, '');

let browser;
const requests = [];
const nonLoopback = [];
const failed = [];
const badStatus = [];
const pageErrors = [];

async function run() {
  let page;
  ({ browser, page } = await loopbackPage(requests, nonLoopback));
  page.on('requestfailed', (r) => {
    // Those aborted above are reported as non-loopback already.
    if (isLoopback(r.url())) failed.push(`${r.url()}: ${r.failure() ? r.failure().errorText : 'failed'}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !new URL(r.url()).pathname.endsWith('/favicon.ico')) {
      badStatus.push(`${r.status()} ${r.url()}`);
    }
  });
  page.on('pageerror', (e) => pageErrors.push(String(e && e.message || e)));

  const answer = await page.goto(`${base}/docs`, { waitUntil: 'domcontentloaded' });
  if (!answer || !answer.ok()) throw new Error(`GET /docs answered ${answer ? answer.status() : 'nothing'}`);

  const operations = await page.waitForFunction((min) => {
    const n = document.querySelectorAll('.swagger-ui .opblock').length;
    return n >= min ? n : null;
  }, MIN_OPERATIONS, { timeout: 30_000, polling: 200 }).then((h) => h.jsonValue()).catch(async () => {
    const n = await page.locator('.swagger-ui .opblock').count();
    throw new Error(`Swagger UI rendered ${n} operations, expected at least ${MIN_OPERATIONS}`);
  });
  const text = await page.locator('.swagger-ui').first().innerText();
  if (!text.includes('/v1/jobs')) throw new Error('the docs page does not mention /v1/jobs');

  // Late requests (a validator badge, fonts, source maps) count too: let the page settle.
  await page.waitForLoadState('networkidle', { timeout: 10_000 }).catch(() => {});
  await page.screenshot({ path: opt.screenshot, fullPage: true });

  const problems = [];
  if (nonLoopback.length) problems.push(`requests that would leave loopback: ${nonLoopback.join(', ')}`);
  if (failed.length) problems.push(`failed requests: ${failed.join(', ')}`);
  if (badStatus.length) problems.push(`error responses: ${badStatus.join(', ')}`);
  if (pageErrors.length) problems.push(`uncaught errors in the page: ${pageErrors.join('; ')}`);
  if (problems.length) throw new Error(problems.join('; '));
  return { operations };
}

let timer;
const overall = new Promise((_, reject) => {
  timer = setTimeout(() => reject(new Error(`gave up after ${OVERALL_MS / 1000} s`)), OVERALL_MS);
});
let code = 1;
try {
  const r = await Promise.race([run(), overall]);
  console.log(JSON.stringify({
    ok: true, operations: r.operations, request_count: requests.length,
    requests: [...new Set(requests)], failed, bad_status: badStatus, non_loopback: nonLoopback,
  }));
  code = 0;
} catch (e) {
  console.error(`docs.mjs: ${e && e.message || e}`);
} finally {
  clearTimeout(timer);
  // Bounded too: a wedged browser must not keep the script alive.
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
}
process.exit(code);
