#!/usr/bin/env node
// Times sharp (native libvips, in process) the way scripts/benchmarks.py times the others:
// 100x100 contain (sharp's `inside`), PNG out, one thread, the median of N runs after a
// warm-up. Prints one JSON line per file: {"file": ..., "median_ms": ...}.
//
//   node scripts/sharp-server/bench.js --iterations 10 FILE...
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const sharp = require('sharp');

sharp.concurrency(1);
sharp.cache(false);

async function median(fn, n) {
  await fn();
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  return times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
}

async function main() {
  const args = process.argv.slice(2);
  let iterations = 10;
  const i = args.indexOf('--iterations');
  if (i >= 0) {
    iterations = Number(args[i + 1]);
    args.splice(i, 2);
  }
  for (const file of args) {
    const data = fs.readFileSync(file);
    const run = () => sharp(data, { failOn: 'none' }).resize(100, 100, { fit: 'inside' }).png().toBuffer();
    // A format sharp does not read (BMP) is reported as such, and the rest go on.
    const ms = await median(run, iterations).catch((e) => ({ error: e.message }));
    const result = typeof ms === 'number' ? { median_ms: ms } : { median_ms: null, error: ms.error };
    console.log(JSON.stringify({ file: path.basename(file), ...result, sharp: sharp.versions.sharp, vips: sharp.versions.vips }));
  }
}

main().catch((e) => {
  console.error(`bench.js: ${e.message}`);
  process.exit(1);
});
