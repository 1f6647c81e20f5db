#!/usr/bin/env node
// Opens the API docs (/docs, Swagger UI served by the server itself) in headless Chromium and
// checks that they render: at least 10 operations, /v1/jobs among them, every asset loaded
// from the server, nothing failed, nothing tried to leave loopback. The summary lists the tag
// sections in the order shown (`tags`).
//
// With --try-submit IMAGE it then uses "Try it out" on POST /v1/jobs as a person would:
// picks the multipart/form-data body, chooses IMAGE for `file` and touches nothing else,
// Executes; then picks application/json and Executes its example as it comes. For each it
// reports what the form was prefilled with, what the browser sent and the status Swagger UI
// shows (`try_form`, `try_json`); the run fails only if the page does.
//
//   node docs.mjs --base http://127.0.0.1:PORT --screenshot out.png [--try-submit img.png]
//
// Prints one JSON line and exits 0, or the reason on stderr and exits 1.
// Chromium: $CHROMIUM, else /usr/bin/chromium.

import { parseArgs } from 'node:util';
import path from 'node:path';
import { isLoopback, loopbackPage, multipartFields } from './loopback.mjs';

const OVERALL_MS = 90_000;
const MIN_OPERATIONS = 10;

const { values: opt } = parseArgs({
  options: { base: { type: 'string' }, screenshot: { type: 'string' }, 'try-submit': { type: 'string' } },
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
  const tags = await page.$$eval('.swagger-ui .opblock-tag-section .opblock-tag',
    (hs) => hs.map((h) => h.dataset.tag || h.textContent.trim()));

  let tryForm = null;
  let tryJson = null;
  if (opt['try-submit']) ({ tryForm, tryJson } = await trySubmit(page));

  // Late requests (a validator badge, fonts, source maps) count too: let the page settle.
  await page.waitForLoadState('networkidle', { timeout: 10_000 }).catch(() => {});
  await page.screenshot({ path: opt.screenshot, fullPage: true });

  const problems = [];
  if (nonLoopback.length) problems.push(`requests that would leave loopback: ${nonLoopback.join(', ')}`);
  if (failed.length) problems.push(`failed requests: ${failed.join(', ')}`);
  if (badStatus.length) problems.push(`error responses: ${badStatus.join(', ')}`);
  if (pageErrors.length) problems.push(`uncaught errors in the page: ${pageErrors.join('; ')}`);
  if (problems.length) throw new Error(problems.join('; '));
  return { operations, tags, tryForm, tryJson };
}

// "Try it out" on POST /v1/jobs, once with a form upload and once with the JSON example.
async function trySubmit(page) {
  const op = page.locator('#operations-jobs-submit');
  await op.locator('.opblock-summary').first().click();
  await op.locator('.try-out__btn').click();
  const contentType = op.locator('select[aria-label="Request content type"]');
  // What the operation's inputs hold now: the query parameters, the form's fields (by
  // property) and the JSON editor's text.
  const prefilled = () => op.evaluate((o) => {
    const control = (tr) => tr.querySelector('select, textarea, input:not([type=checkbox])');
    return {
      params: [...o.querySelectorAll('tr[data-param-name]')]
        .map((tr) => [tr.dataset.paramName, control(tr) ? control(tr).value : null]),
      fields: [...o.querySelectorAll('.opblock-section-request-body tr[data-property-name]')]
        .map((tr) => [tr.dataset.propertyName, control(tr) ? control(tr).value : null]),
      text: [...o.querySelectorAll('.opblock-section-request-body textarea')].map((t) => t.value).join(''),
    };
  });
  // Executes and waits for Swagger UI to show this request's answer (the job it made).
  const execute = async () => {
    const posted = page.waitForResponse((r) => r.request().method() === 'POST'
      && new URL(r.url()).pathname === '/v1/jobs', { timeout: 30_000 });
    await op.locator('.btn.execute').click();
    const response = await posted;
    const request = response.request();
    const body = await response.json().catch(() => null);
    const shown = await page.waitForFunction(([o, marker]) => {
      const row = document.querySelector(`${o} .live-responses-table tbody tr`);
      if (!row) return null;
      const text = row.querySelector('.response-col_description').innerText;
      if (marker && !text.includes(marker)) return null;
      return { status: row.querySelector('.response-col_status').innerText.trim(), text: text.slice(0, 2000) };
    }, ['#operations-jobs-submit', body && body.id], { timeout: 15_000, polling: 100 })
      .then((h) => h.jsonValue())
      .catch(() => { throw new Error(`Swagger UI did not show the answer to POST /v1/jobs (${response.status()})`); });
    return {
      status: Number(shown.status),
      network_status: response.status(),
      job: body && body.id ? body.id : null,
      shown: shown.text,
      sent_url: request.url(),
      sent_content_type: request.headers()['content-type'] || null,
      sent_fields: multipartFields(request),
      sent_body: multipartFields(request) ? null : request.postData(),
    };
  };

  await contentType.selectOption('multipart/form-data');
  const file = op.locator('.opblock-section-request-body tr[data-property-name="file"] input[type=file]');
  await file.waitFor({ timeout: 10_000 });
  const formPrefilled = await prefilled();
  await file.setInputFiles(path.resolve(opt['try-submit']));
  const tryForm = { prefilled: formPrefilled, ...await execute() };

  await contentType.selectOption('application/json');
  await op.locator('.opblock-section-request-body textarea').waitFor({ timeout: 10_000 });
  const jsonPrefilled = await prefilled();
  const tryJson = { prefilled: jsonPrefilled, ...await execute() };
  return { tryForm, tryJson };
}

let timer;
const overall = new Promise((_, reject) => {
  timer = setTimeout(() => reject(new Error(`gave up after ${OVERALL_MS / 1000} s`)), OVERALL_MS);
});
let code = 1;
try {
  const r = await Promise.race([run(), overall]);
  console.log(JSON.stringify({
    ok: true, operations: r.operations, tags: r.tags, try_form: r.tryForm, try_json: r.tryJson,
    request_count: requests.length,
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
