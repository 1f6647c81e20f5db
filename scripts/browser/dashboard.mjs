#!/usr/bin/env node
// Drives the dashboard (/) in headless Chromium as a person would: waits for the option
// controls (which the page makes from /openapi.json), sets some, submits an image file or an
// image URL, waits for the thumbnail to show up in the recent jobs, checks its real size,
// opens the job's detail, and takes a screenshot.
//
//   node dashboard.mjs --base http://127.0.0.1:PORT (--image img.jpg | --url URL) \
//     [--set NAME=VALUE ...] --expect-width W --expect-height H --screenshot out.png \
//     [--api-key KEY]
//
// --set fills the control whose id is NAME: a <select> by value, a checkbox checked for
// "true" and unchecked for "false", any other input by typing VALUE.
//
// The summary reports the option controls as the page first showed them (`controls`), the
// form fields the page posted (`sent`; the file as `<file NAME>`), and the source
// URL the detail panel shows (`detail_source`).
//
// Every request the page makes is recorded, and any that would leave loopback is aborted
// before it is sent and fails the run. Prints one JSON line and exits 0, or the reason on
// stderr and exits 1. Chromium: $CHROMIUM, else /usr/bin/chromium.

import { parseArgs } from 'node:util';
import path from 'node:path';
import { loopbackPage, multipartFields } from './loopback.mjs';

const OVERALL_MS = 120_000;
const THUMB_MS = 60_000;

const { values: opt } = parseArgs({
  options: {
    base: { type: 'string' },
    image: { type: 'string' },
    url: { type: 'string' },
    set: { type: 'string', multiple: true, default: [] },
    'expect-width': { type: 'string' },
    'expect-height': { type: 'string' },
    screenshot: { type: 'string' },
    'api-key': { type: 'string' },
  },
  strict: true,
});
for (const name of ['base', 'expect-width', 'expect-height', 'screenshot']) {
  if (!opt[name]) {
    console.error(`dashboard.mjs: --${name} is required`);
    process.exit(1);
  }
}
if (Boolean(opt.image) === Boolean(opt.url)) {
  console.error('dashboard.mjs: give one of --image and --url');
  process.exit(1);
}
const settings = opt.set.map((s) => {
  const at = s.indexOf('=');
  if (at < 1) {
    console.error(`dashboard.mjs: --set ${s}: expected NAME=VALUE`);
    process.exit(1);
  }
  return [s.slice(0, at), s.slice(at + 1)];
});
const base = opt.base.replace(/\/+$/, '');
const expectWidth = Number(opt['expect-width']);
const expectHeight = Number(opt['expect-height']);

let browser;
const requests = [];
const nonLoopback = [];
const pageErrors = [];

async function run() {
  let page;
  ({ browser, page } = await loopbackPage(requests, nonLoopback));
  page.on('pageerror', (e) => pageErrors.push(String(e && e.message || e)));

  const answer = await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  if (!answer || !answer.ok()) throw new Error(`GET / answered ${answer ? answer.status() : 'nothing'}`);

  if (opt['api-key']) await page.fill('#api-key', opt['api-key']);
  // Once /v1/stats has answered, the page knows whether a key is missing.
  await page.waitForSelector('#conn.up', { timeout: 15_000 }).catch(async () => {
    throw new Error(`the page could not read /v1/stats: ${await page.textContent('#error')}`);
  });
  if (await page.isVisible('#key-hint')) throw new Error('the server requires an API key: pass --api-key');

  // The option controls, as the page made them from /openapi.json, before anything is touched.
  await page.waitForSelector('#options [name]', { timeout: 15_000 }).catch(async () => {
    throw new Error(`no option controls were made: ${await page.textContent('#error')}`);
  });
  const controls = await page.$$eval('#options [name]', (els) => els.map((c) => ({
    id: c.id, name: c.name, tag: c.tagName.toLowerCase(), type: c.type, value: c.value,
    checked: c.type === 'checkbox' ? c.checked : null, min: c.min ?? null, max: c.max ?? null,
    step: c.step ?? null, placeholder: c.placeholder ?? null, title: c.title,
    label: c.closest('label') ? c.closest('label').firstChild.textContent.trim() : null,
    choices: c.tagName === 'SELECT' ? [...c.options].map((o) => o.value) : null,
  })));

  for (const [name, value] of settings) {
    const control = page.locator(`#options [id="${name}"]`);
    if (await control.count() !== 1) throw new Error(`--set ${name}: the page has no control #${name}`);
    const kind = await control.evaluate((c) => (c.tagName === 'SELECT' ? 'select' : c.type));
    if (kind === 'select') {
      const picked = await control.selectOption(value);
      if (!picked.includes(value)) throw new Error(`--set ${name}: ${value} is not one of its choices`);
    } else if (kind === 'checkbox') {
      await control.setChecked(value === 'true');
    } else {
      await control.fill(value);
    }
  }

  const posted = page.waitForResponse((r) => r.request().method() === 'POST'
    && new URL(r.url()).pathname === '/v1/jobs', { timeout: 30_000 });
  if (opt.url) await page.fill('#url', opt.url);
  else await page.setInputFiles('#files', path.resolve(opt.image));
  await page.click('#submit');
  const response = await posted;
  const sent = multipartFields(response.request());
  const body = await response.json().catch(() => null);
  if (response.status() !== 202 || !body || !body.id) {
    throw new Error(`POST /v1/jobs answered ${response.status()}: ${body && (body.detail || JSON.stringify(body))}`);
  }
  const id = body.id;

  // Wait for this job's thumbnail to be decoded, or for the job to fail (then say why at once
  // rather than after the whole timeout).
  const seen = await page.waitForFunction((jobId) => {
    const row = document.querySelector(`#jobs [data-job-id="${CSS.escape(jobId)}"]`);
    if (row && (row.dataset.status === 'failed' || row.dataset.status === 'cancelled')) {
      const cell = row.querySelector('.code');
      return { status: row.dataset.status, error: cell ? `${cell.textContent}: ${cell.title}` : row.textContent };
    }
    const img = document.querySelector(`img.thumb[data-job-id="${CSS.escape(jobId)}"]`);
    if (img && img.complete && img.naturalWidth > 0) {
      return { status: 'shown', width: img.naturalWidth, height: img.naturalHeight };
    }
    return null;
  }, id, { timeout: THUMB_MS, polling: 100 }).then((h) => h.jsonValue()).catch(async (e) => {
    const shown = await page.textContent('#error').catch(() => '');
    throw new Error(`no thumbnail for job ${id} within ${THUMB_MS / 1000} s${shown ? ` (page error: ${shown})` : ''}: ${e.message.split('\n')[0]}`);
  });
  if (seen.status !== 'shown') throw new Error(`job ${id} ${seen.status}: ${seen.error}`);
  if (seen.width !== expectWidth || seen.height !== expectHeight) {
    throw new Error(`thumbnail is ${seen.width}x${seen.height}, expected ${expectWidth}x${expectHeight}`);
  }

  await page.click(`#jobs [data-job-id="${id}"]`);
  await page.waitForFunction((jobId) => {
    const text = document.getElementById('detail').textContent;
    return text.includes(jobId) && text.includes('"succeeded"');
  }, id, { timeout: 10_000 }).catch(async () => {
    throw new Error(`#detail does not show job ${id} as "succeeded": ${(await page.textContent('#detail')).slice(0, 300)}`);
  });
  let detailSource = null;
  if (opt.url) {
    await page.waitForFunction((url) => {
      const p = document.getElementById('detail-source');
      return !p.hidden && p.textContent.includes(url);
    }, opt.url, { timeout: 10_000 }).catch(async () => {
      throw new Error(`#detail-source does not show ${opt.url}: ${await page.textContent('#detail-source')}`);
    });
    detailSource = await page.textContent('#detail-source');
  }

  await page.screenshot({ path: opt.screenshot, fullPage: true });
  if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join('; ')}`);
  if (nonLoopback.length) throw new Error(`requests that would leave loopback: ${nonLoopback.join(', ')}`);
  return { id, width: seen.width, height: seen.height, controls, sent, detailSource };
}

let timer;
const overall = new Promise((_, reject) => {
  timer = setTimeout(() => reject(new Error(`gave up after ${OVERALL_MS / 1000} s`)), OVERALL_MS);
});
let code = 1;
try {
  const r = await Promise.race([run(), overall]);
  console.log(JSON.stringify({
    ok: true, job: r.id, width: r.width, height: r.height, controls: r.controls, sent: r.sent,
    detail_source: r.detailSource,
    request_count: requests.length, requests: [...new Set(requests)], non_loopback: nonLoopback,
  }));
  code = 0;
} catch (e) {
  const message = String(e && e.message || e);
  console.error(`dashboard.mjs: ${message}`);
  if (nonLoopback.length && !message.includes('leave loopback')) console.error(`non-loopback requests (aborted): ${nonLoopback.join(', ')}`);
} finally {
  clearTimeout(timer);
  // Bounded too: a wedged browser must not keep the script alive.
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
}
process.exit(code);
