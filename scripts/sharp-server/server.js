#!/usr/bin/env node
// A native baseline for scripts/load.py: the same thumbnail edgethumb makes (fit inside
// 100x100, PNG out), made by sharp (libvips) in a Node cluster.
//
//   npm ci --prefix scripts/sharp-server
//   node scripts/sharp-server/server.js PORT [--workers N]
//
// PORT 0 picks a free one. Once every worker listens, the primary prints `listening PORT` on
// stdout. Workers: --workers N, else SHARP_WORKERS, else 2. Each worker resizes with
// sharp.concurrency(1), so N workers use about N cores, like `edgethumb serve --workers N`.
// Listens on 127.0.0.1 only. Any POST body is an image: 200 + PNG, or 400 + text for input
// sharp can't read; 413 past MAX_BODY_BYTES.

'use strict';

const cluster = require('node:cluster');
const http = require('node:http');

const HOST = '127.0.0.1';
const MAX_BODY_BYTES = 64 * 1024 * 1024;

function parseArgs(argv) {
  let port = null;
  let workers = Number(process.env.SHARP_WORKERS || 2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--workers') workers = Number(argv[++i]);
    else if (argv[i].startsWith('--workers=')) workers = Number(argv[i].slice('--workers='.length));
    else if (port === null) port = Number(argv[i]);
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  if (port === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error('usage: server.js PORT [--workers N]   (PORT 0 picks a free one)');
  }
  if (!Number.isInteger(workers) || workers < 1) throw new Error('--workers must be a positive integer');
  return { port, workers };
}

function primary() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
  const ports = new Set();
  let listening = 0;
  let stopping = false;
  // Workers that all listen on port 0 share one handle that the primary opens, hence one port.
  cluster.on('listening', (_worker, address) => {
    ports.add(address.port);
    listening += 1;
    if (listening === args.workers) {
      if (ports.size !== 1) {
        console.error(`workers listen on different ports: ${[...ports].join(', ')}`);
        shutdown(1);
        return;
      }
      console.log(`listening ${[...ports][0]}`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} died (${signal || code}); stopping`);
      shutdown(1);
    }
  });
  function shutdown(code) {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    setTimeout(() => process.exit(code), 200).unref();
    // Exit as soon as the workers are gone.
    const check = setInterval(() => {
      if (Object.keys(cluster.workers).length === 0) process.exit(code);
    }, 20);
    check.unref();
  }
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  for (let i = 0; i < args.workers; i++) {
    cluster.fork({ SHARP_SERVER_PORT: String(args.port) });
  }
}

function worker() {
  const sharp = require('sharp');
  sharp.concurrency(1);
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'POST' }).end('POST an image\n');
      return;
    }
    const chunks = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooBig = true;
      else chunks.push(chunk);
    });
    req.on('end', async () => {
      if (tooBig) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end('body too large\n');
        return;
      }
      try {
        const out = await sharp(Buffer.concat(chunks))
          .resize(100, 100, { fit: 'inside' })
          .png()
          .toBuffer();
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': out.length }).end(out);
      } catch (e) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
      }
    });
    req.on('error', () => res.destroy());
  });
  server.listen(Number(process.env.SHARP_SERVER_PORT), HOST);
  process.on('SIGTERM', () => process.exit(0));
}

if (cluster.isPrimary) primary();
else worker();
