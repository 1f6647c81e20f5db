#!/usr/bin/env python3
"""Load and faults: jobs from many clients while the server is killed with SIGKILL, with
decompression bombs mixed in, then an account of every job.

What it does
  1. Starts edgethumb itself, on loopback only, in a temporary directory:
     --backend sqlite    one host (SQLite in its data dir);
     --backend postgres  two hosts (separate data dirs and ports) on a fresh database created
                         on 127.0.0.1:5432 (user postgres, trust auth) and dropped at the end.
     Every host runs `serve --workers W --max-memory M --memory-budget B --lease L
     --max-attempts A` (see the options; A defaults to max(3, kills + 1), so that the kills
     alone cannot exhaust a job's attempts and any too_many_attempts is a real anomaly); the
     compiled component is cached in one directory they share.
  2. C client threads send --jobs honest jobs (`POST /v1/jobs?width=..&height=..`, the raw file)
     over the corpus (the images of MANIFEST.tsv under --max-file-bytes), and --bombs
     decompression bombs spread evenly among them: one 7000x7000 16-bit RGBA PNG of zeros
     (~380 KB on the wire, 49 MP, just under the default --max-pixels; its pixels alone are
     374 MiB, and `edgethumb thumb` measures ~378 MiB of peak guest memory for it), made unique
     per job by its `width` so the dedup cache cannot answer. Every (file, width) pair is
     distinct, so every job does real work. Each client submits, then follows its job
     (`?wait=20`) for up to --client-wait seconds before taking the next one, so submissions
     keep pace with the workers and the kills land while jobs are queued and running. A
     client retries connection errors, 429 and 5xx (with the other host first, on PostgreSQL)
     until a host answers, for up to --submit-timeout s.
  3. Kills: after every (jobs + bombs) / (K + 1) submissions, one host is killed with
     os.kill(pid, SIGKILL) (on PostgreSQL the two hosts take turns), restarted on the same
     port and data dir, and waited for until /readyz answers 200.
  4. Every ~100 ms the VmRSS and VmHWM of every server process are read from /proc (and the
     VmHWM again just before each kill); /readyz is sampled for memory_in_use_bytes.
  5. At the end every accepted id is polled until it is finished or --settle-timeout passes,
     the full listing `GET /v1/jobs?limit=100&cursor=...` is read from every host, the hosts
     are stopped with SIGTERM and the logs searched for panics.

The figures
  accepted        submissions answered 202 with an id (only these are accounted for below)
  refused         submissions answered with a final 4xx (e.g. 415 for a file the server does
                  not decode), by problem code; not accepted
  unsubmitted     submissions that got only errors (no answer) until --submit-timeout
  succeeded       accepted jobs that finished with a thumbnail
  failed          accepted jobs that failed, by error.code (honest jobs and bombs apart)
  lost            accepted ids that now answer 404                              (must be 0)
  stuck           accepted jobs not succeeded/failed by --settle-timeout         (must be 0)
  duplicated      ids listed more than once by GET /v1/jobs, plus ids answered to two
                  different submissions                                          (must be 0)
  unlisted        accepted ids that exist but are missing from the listing       (must be 0)
  orphans         listed jobs no client was told about: a submission whose 202 was lost
                  when its host died, then retried (expected, not an error)
  bombs at once   the most bombs in status `running` at the same time (from their started_at
                  and finished_at), to show they were claimed side by side; a claimed job may
                  still wait for the memory budget, so more can be `running` than fit in it
  dedup hits      accepted jobs answered from the dedup cache (attempts 0): every planned
                  submission is distinct, so only a submission retried after its first 202 was
                  lost (an orphan that had already finished) can be one
  retried         accepted jobs that took more than one attempt (their host died under them)
  honest finished honest jobs that finished, of those accepted          (must be all of them)
  unexpected      honest jobs whose outcome breaks MANIFEST.tsv's `expected` (thumbnail must
                  succeed; reject must fail with malformed_image, unsupported_format or
                  image_too_large; either may do both), or a thumbnail larger than the box;
                  bombs that failed with another code than memory_limit_exceeded,
                  image_too_large or deadline_exceeded                           (must be 0)
  crashes         server processes that exited without being killed by this script (must be 0)
  peak RSS        the largest VmHWM/VmRSS of any incarnation of a host, in MiB; the check is
                  peak RSS <= memory budget (its /readyz memory_budget_bytes) + --rss-allowance
                  (host memory outside the sandbox: runtime, database, bodies, hand-over)

The exit code is 0 only when lost, stuck, duplicated, unlisted, unexpected, crashes and
unsubmitted are all 0, every honest job finished, every planned kill was done and every host
passed the RSS check.

Every sandboxed call reserves --max-memory from the budget, whatever the image, so the budget
admits budget / max-memory calls at once: at the defaults (2 workers, 1 GiB, 2 GiB) it admits
both workers; with --workers 4 it makes half of them wait, which tests the budget itself.

Example, from the repository root (the binary must be built first):

    python3 scripts/faults.py --backend sqlite --jobs 300 --clients 8 --kills 3 --bombs 50
    python3 scripts/faults.py --backend postgres --json > faults-postgres.json
    python3 scripts/faults.py --workers 4 --clients 16 --kills 6 --jobs 400   # budget binds

Standard library only. Only 127.0.0.1 is contacted (the servers this script starts, and
PostgreSQL through psql).
"""
import argparse
import collections
import concurrent.futures
import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20
GIB = 1 << 30
DECODE_CODES = {"malformed_image", "unsupported_format", "image_too_large"}
BOMB_CODES = {"memory_limit_exceeded", "image_too_large", "deadline_exceeded"}
TERMINAL = ("succeeded", "failed")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- HTTP (127.0.0.1 only) -----------------------------------------------------------------

CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def http_call(port, method, path, body=None, headers=None, timeout=60.0):
    """One request on a fresh connection to 127.0.0.1:port: (status, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def problem_code(data):
    try:
        return json.loads(data).get("code") or "?"
    except (ValueError, AttributeError):
        return "?"


class GaveUp(Exception):
    pass


# --- the bomb ------------------------------------------------------------------------------


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_bomb(side):
    """A side x side, 16-bit RGBA PNG of zeros, compressed row by row (little memory)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = bytes(1 + side * 8)  # filter byte 0, then 4 channels x 2 bytes per pixel
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    idat = b"".join(parts)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


# --- the corpus and the plan ---------------------------------------------------------------


class Sub:
    """One submission: what was sent, and what became of it."""

    def __init__(self, idx, kind, name, expected, body, width, ctype):
        self.idx, self.kind, self.name, self.expected = idx, kind, name, expected
        self.body, self.width, self.ctype = body, width, ctype
        self.id = None             # set on 202 with an id
        self.refused = None        # problem code of a final non-202 answer
        self.gave_up = None        # last error if no answer came in time
        self.job = None            # last job JSON seen
        self.lost = False          # an accepted id that answered 404

    @property
    def query(self):
        return f"width={self.width}&height={self.width}"


def load_corpus(corpus, max_bytes):
    manifest = corpus / "MANIFEST.tsv"
    files = []
    if manifest.exists():
        lines = manifest.read_text().splitlines()
        header = lines[0].split("\t")
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t")))
            p = corpus / row["path"]
            if p.is_file() and p.stat().st_size <= max_bytes:
                files.append((row["path"], row.get("expected", "either") or "either"))
    else:
        for sub in ("formats", "photos", "pngsuite"):
            for p in sorted((corpus / sub).rglob("*")):
                if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp",
                                                         ".tif", ".tiff", ".ico") \
                        and p.stat().st_size <= max_bytes:
                    files.append((str(p.relative_to(corpus)), "either"))
    if not files:
        raise SystemExit(f"no images under {corpus} (of at most {max_bytes} bytes)")
    return files


def make_plan(corpus, files, jobs, bombs, bomb, seed):
    rng = random.Random(seed)
    order = list(files)
    rng.shuffle(order)
    bodies = {}
    honest = []
    for i in range(jobs):
        name, expected = order[i % len(order)]
        if name not in bodies:
            bodies[name] = (corpus / name).read_bytes()
        # (file, width) pairs never repeat below 4000 x len(files) jobs.
        width = 32 + (i % 4000)
        honest.append(Sub(None, "honest", name, expected, bodies[name], width, "application/octet-stream"))
    total = jobs + bombs
    bomb_slots = {min(total - 1, int((j + 0.5) * total / bombs)) for j in range(bombs)} if bombs else set()
    while len(bomb_slots) < bombs:  # collisions only for tiny totals
        bomb_slots.add(next(i for i in range(total) if i not in bomb_slots))
    plan, h, b = [], iter(honest), 0
    for i in range(total):
        if i in bomb_slots:
            plan.append(Sub(i, "bomb", "bomb-7000x7000-rgba16.png", "bomb", bomb, 100 + b, "image/png"))
            b += 1
        else:
            s = next(h)
            s.idx = i
            plan.append(s)
    return plan


# --- hosts ---------------------------------------------------------------------------------


class Host:
    """One `edgethumb serve` process, restartable on the same port and data dir."""

    def __init__(self, name, binary, workdir, serve_args, startup_timeout):
        self.name, self.binary, self.workdir = name, binary, workdir
        self.serve_args, self.startup_timeout = serve_args, startup_timeout
        self.data_dir = workdir / f"data-{name}"
        self.port = 0
        self.proc = None
        self.incarnation = 0
        self.lock = threading.Lock()
        self.logs = []
        self.budget = None
        self.peak_rss_kib = 0      # VmRSS samples and VmHWM readings, over all incarnations
        self.peak_hwm_kib = 0
        self.samples = 0
        self.peak_in_use = 0       # memory_in_use_bytes seen on /readyz
        self.crashes = []          # (incarnation, exit code, log path)
        self.kills = 0

    def start(self):
        """Starts a new incarnation; returns once /readyz answers 200. Holds no lock."""
        for attempt in range(10):
            self.incarnation += 1
            log_path = self.workdir / f"{self.name}.{self.incarnation}.log"
            self.logs.append(log_path)
            env = {**os.environ, "RUST_LOG": os.environ.get("FAULTS_RUST_LOG", "info,sqlx=warn"), "NO_COLOR": "1"}
            cmd = [str(self.binary), "serve", "--bind", f"127.0.0.1:{self.port}",
                   "--data-dir", str(self.data_dir), *self.serve_args]
            with open(log_path, "wb") as f:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                             env=env, start_new_session=True)
            deadline = time.monotonic() + self.startup_timeout
            port = None
            while port is None and time.monotonic() < deadline and self.proc.poll() is None:
                for line in log_path.read_text(errors="replace").splitlines():
                    line = ANSI.sub("", line)
                    if "listening" in line and "addr=" in line:
                        port = int(line.split("addr=", 1)[1].split()[0].rsplit(":", 1)[1])
                        break
                else:
                    time.sleep(0.1)
            if port is None:
                text = log_path.read_text(errors="replace")
                if self.proc.poll() is not None and "in use" in text and attempt < 9:
                    log(f"{self.name}: port {self.port} still in use, retrying")
                    time.sleep(1.0)
                    continue
                self.terminate()
                raise RuntimeError(f"{self.name} did not start (exit {self.proc.returncode}); "
                                   f"log {log_path}:\n{text[-3000:]}")
            self.port = port
            while time.monotonic() < deadline:
                try:
                    status, data = http_call(self.port, "GET", "/readyz", timeout=5)
                    if status == 200:
                        self.budget = json.loads(data).get("memory_budget_bytes")
                        return
                except CONNECTION_ERRORS:
                    pass
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
            raise RuntimeError(f"{self.name} not ready in {self.startup_timeout}s; log {log_path}")
        raise RuntimeError(f"{self.name}: port {self.port} stayed in use")

    def sample(self):
        """Reads VmRSS and VmHWM of the live process (kB)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            text = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
            elif line.startswith("VmHWM:"):
                self.peak_hwm_kib = max(self.peak_hwm_kib, int(line.split()[1]))
        self.samples += 1

    @property
    def peak_kib(self):
        return max(self.peak_rss_kib, self.peak_hwm_kib)

    def kill9(self):
        self.sample()
        os.kill(self.proc.pid, signal.SIGKILL)  # our own child, by its pid
        self.proc.wait(timeout=30)
        self.kills += 1

    def terminate(self):
        """SIGTERM, then SIGKILL after 20 s; our own process only."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.sample()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)


class Cluster:
    def __init__(self, hosts):
        self.hosts = hosts
        self.conn_errors = collections.Counter()   # kind of error -> count
        self.retried_statuses = collections.Counter()
        self.lock = threading.Lock()

    def call(self, method, path, prefer, deadline, body=None, headers=None, retry_statuses=(),
             timeout=60.0):
        """Tries the hosts from `prefer` on; connection errors and retry_statuses go to the
        next host, then all again after a pause, until `deadline`."""
        n = len(self.hosts)
        pause, last = 0.1, None
        while True:
            for k in range(n):
                host = self.hosts[(prefer + k) % n]
                try:
                    status, data = http_call(host.port, method, path, body, headers,
                                             timeout=min(timeout, max(1.0, deadline - time.monotonic() + 1)))
                except CONNECTION_ERRORS as e:
                    last = f"{host.name}: {type(e).__name__}: {e}"
                    with self.lock:
                        self.conn_errors[type(e).__name__] += 1
                    continue
                if status in retry_statuses:
                    last = f"{host.name}: HTTP {status} {problem_code(data)}"
                    with self.lock:
                        self.retried_statuses[f"{status} {problem_code(data)}"] += 1
                    continue
                return status, data, host
            if time.monotonic() > deadline:
                raise GaveUp(last)
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


# --- the run -------------------------------------------------------------------------------


class Run:
    def __init__(self, a, hosts, plan):
        self.a, self.hosts, self.plan = a, hosts, plan
        self.cluster = Cluster(hosts)
        self.lock = threading.Lock()
        self.next_idx = 0
        self.processed = 0
        self.progress = threading.Condition(self.lock)
        self.by_id = {}                 # id -> Sub
        self.same_id = []               # (id, first sub idx, second sub idx)
        self.kills = []
        self.stop = threading.Event()   # ends the samplers and the supervisor
        self.clients_done = threading.Event()
        self.t0 = time.monotonic()

    # clients

    def take(self):
        with self.lock:
            if self.next_idx >= len(self.plan):
                return None
            sub = self.plan[self.next_idx]
            self.next_idx += 1
            return sub

    def client(self, ci):
        n = len(self.hosts)
        while True:
            sub = self.take()
            if sub is None:
                return
            prefer = (ci + sub.idx) % n
            self.submit(sub, prefer)
            if sub.id:
                self.follow(sub, prefer, time.monotonic() + self.a.client_wait)
            with self.lock:
                self.processed += 1
                self.progress.notify_all()

    def submit(self, sub, prefer):
        try:
            status, data, host = self.cluster.call(
                "POST", f"/v1/jobs?{sub.query}", prefer, time.monotonic() + self.a.submit_timeout,
                body=sub.body, headers={"Content-Type": sub.ctype}, retry_statuses=(429, 500, 502, 503, 504))
        except GaveUp as e:
            sub.gave_up = str(e)
            log(f"gave up submitting #{sub.idx} {sub.name}: {e}")
            return
        if status != 202:
            sub.refused = f"{status} {problem_code(data)}"
            return
        try:
            job = json.loads(data)
            job_id = job["id"]
        except (ValueError, KeyError, TypeError):
            sub.refused = f"202 without an id: {data[:200]!r}"
            return
        with self.lock:
            other = self.by_id.get(job_id)
            if other is not None:
                self.same_id.append((job_id, other.idx, sub.idx))
            else:
                self.by_id[job_id] = sub
        sub.id, sub.job = job_id, job

    def poll_once(self, sub, prefer, wait, deadline):
        """One status read; True when it is finished or lost."""
        status, data, _ = self.cluster.call("GET", f"/v1/jobs/{sub.id}?wait={wait}", prefer, deadline,
                                            retry_statuses=(500, 502, 503, 504), timeout=wait + 30)
        if status == 404:
            sub.lost = True
            return True
        if status == 200:
            sub.job = json.loads(data)
            return sub.job.get("status") in TERMINAL
        return False

    def follow(self, sub, prefer, deadline):
        while time.monotonic() < deadline:
            try:
                if self.poll_once(sub, prefer, 20, deadline):
                    return
            except GaveUp:
                return
            except ValueError:
                time.sleep(0.5)

    # kills

    def killer(self):
        k_total = self.a.kills
        total = len(self.plan)
        for k in range(1, k_total + 1):
            threshold = k * total // (k_total + 1)
            with self.lock:
                while self.processed < threshold and not self.clients_done.is_set() \
                        and not self.stop.is_set():
                    self.progress.wait(timeout=1.0)
                processed = self.processed
            if self.stop.is_set():
                return
            host = self.hosts[(k - 1) % len(self.hosts)]
            in_use = None
            try:
                status, data = http_call(host.port, "GET", "/readyz", timeout=3)
                in_use = json.loads(data).get("memory_in_use_bytes")
            except (CONNECTION_ERRORS + (ValueError,)):
                pass
            with host.lock:
                if host.proc.poll() is not None:
                    host.crashes.append({"incarnation": host.incarnation, "exit": host.proc.returncode,
                                         "log": str(host.logs[-1])})
                    log(f"UNEXPECTED: kill {k}: {host.name} is already down (exit {host.proc.returncode})")
                t_kill = time.monotonic()
                hwm = None
                if host.proc.poll() is None:
                    host.kill9()
                    hwm = host.peak_hwm_kib
                log(f"kill {k}/{k_total}: SIGKILL {host.name} (pid {host.proc.pid}) after {processed} of "
                    f"{total} submissions, guest memory reserved {fmt_mib(in_use)}")
                host.start()
                downtime = time.monotonic() - t_kill
            log(f"kill {k}/{k_total}: {host.name} back on port {host.port} after {downtime:.1f}s")
            self.kills.append({"n": k, "host": host.name, "at_s": round(t_kill - self.t0, 1),
                               "submissions_done": processed, "guest_memory_reserved_mib": mib(in_use),
                               "downtime_s": round(downtime, 1)})

    # samplers

    def rss_sampler(self):
        while not self.stop.wait(self.a.sample_interval):
            for h in self.hosts:
                h.sample()

    def readyz_sampler(self):
        while not self.stop.wait(0.5):
            for h in self.hosts:
                try:
                    status, data = http_call(h.port, "GET", "/readyz", timeout=2)
                    h.peak_in_use = max(h.peak_in_use, json.loads(data).get("memory_in_use_bytes") or 0)
                except (CONNECTION_ERRORS + (ValueError,)):
                    pass

    def supervisor(self):
        """Restarts a host that died without being killed by us, and records it."""
        while not self.stop.wait(0.5):
            for h in self.hosts:
                if h.proc.poll() is None or not h.lock.acquire(blocking=False):
                    continue
                try:
                    if h.proc.poll() is not None and not self.stop.is_set():
                        code = h.proc.returncode
                        h.crashes.append({"incarnation": h.incarnation, "exit": code, "log": str(h.logs[-1])})
                        log(f"UNEXPECTED: {h.name} exited with {code} (log {h.logs[-1]}); restarting")
                        try:
                            h.start()
                        except RuntimeError as e:
                            log(f"restart of {h.name} failed: {e}")
                finally:
                    h.lock.release()

    # the end

    def settle(self):
        """Polls every accepted job until finished (or lost) or --settle-timeout."""
        deadline = time.monotonic() + self.a.settle_timeout
        pending = [s for s in self.plan if s.id and not s.lost
                   and (s.job or {}).get("status") not in TERMINAL]
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.a.clients) as pool:
            while pending and time.monotonic() < deadline:
                def one(s):
                    try:
                        return self.poll_once(s, s.idx % len(self.hosts), 5, min(deadline, time.monotonic() + 60))
                    except (GaveUp, ValueError):
                        return False
                done = list(pool.map(one, pending))
                pending = [s for s, d in zip(pending, done) if not d]
                if pending:
                    log(f"settling: {len(pending)} job(s) not finished yet")
        # Jobs seen finished by their client: read them once more, to see the latest state and
        # catch an id that has since gone (lost).
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.a.clients) as pool:
            list(pool.map(lambda s: self.recheck(s), [s for s in self.plan if s.id and not s.lost]))

    def recheck(self, s):
        try:
            self.poll_once(s, s.idx % len(self.hosts), 0, time.monotonic() + 60)
        except (GaveUp, ValueError):
            pass

    def listing(self, host):
        ids, cursor = [], None
        for _ in range(10_000):
            path = "/v1/jobs?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            status, data, _ = self.cluster.call("GET", path, self.hosts.index(host), time.monotonic() + 60,
                                                retry_statuses=(500, 502, 503, 504))
            if status != 200:
                raise RuntimeError(f"listing on {host.name}: HTTP {status} {data[:200]!r}")
            page = json.loads(data)
            ids.extend(j["id"] for j in page["jobs"])
            cursor = page.get("next_cursor")
            if not cursor:
                return ids
        raise RuntimeError("listing did not end after 10000 pages")


def mib(b):
    return None if b is None else round(b / MIB, 1)


def fmt_mib(b):
    return "?" if b is None else f"{b / MIB:.0f} MiB"


def parse_time(t):
    try:
        return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


def max_overlap(subs):
    """Most of these jobs running at once, from their (last attempt's) started_at/finished_at."""
    events = []
    for s in subs:
        a, b = parse_time((s.job or {}).get("started_at")), parse_time((s.job or {}).get("finished_at"))
        if a is not None and b is not None:
            events += [(a, 1), (b, -1)]
    best = cur = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):
        cur += d
        best = max(best, cur)
    return best


def check_outcome(s):
    """None if the finished job's outcome is as expected, else why not."""
    job = s.job or {}
    status = job.get("status")
    code = (job.get("error") or {}).get("code")
    if s.kind == "bomb":
        if status == "failed" and code not in BOMB_CODES:
            return f"bomb failed with {code}"
        return None
    if status == "succeeded":
        if s.expected == "reject":
            return "succeeded, MANIFEST says reject"
        res = job.get("result") or {}
        if not res or res.get("width", 0) > s.width or res.get("height", 0) > s.width:
            return f"result {res.get('width')}x{res.get('height')} does not fit {s.width}x{s.width}"
        return None
    if status == "failed":
        if code not in DECODE_CODES:
            return f"failed with {code}: {(job.get('error') or {}).get('message', '')[:160]}"
        if s.expected == "thumbnail":
            return f"failed with {code}, MANIFEST says thumbnail"
        return None
    return None


def report(run, wall, listings, panics, rss_allowance):
    plan = run.plan
    accepted = [s for s in plan if s.id]
    honest = [s for s in accepted if s.kind == "honest"]
    bombs = [s for s in accepted if s.kind == "bomb"]
    finished = [s for s in accepted if not s.lost and (s.job or {}).get("status") in TERMINAL]
    lost = [s for s in accepted if s.lost]
    stuck = [s for s in accepted if not s.lost and (s.job or {}).get("status") not in TERMINAL]

    def codes(subs):
        return dict(collections.Counter((s.job.get("error") or {}).get("code") or "?"
                                        for s in subs if s.job.get("status") == "failed").most_common())

    listed_dup = 0
    unlisted = set()
    orphans = set()
    accepted_ids = {s.id for s in accepted}
    for host_name, ids in listings.items():
        counts = collections.Counter(ids)
        listed_dup = max(listed_dup, sum(c - 1 for c in counts.values() if c > 1))
        unlisted |= {s.id for s in accepted if not s.lost and s.id not in counts}
        orphans |= set(counts) - accepted_ids
    duplicated = listed_dup + len(run.same_id)
    unexpected = []
    for s in finished:
        why = check_outcome(s)
        if why:
            unexpected.append({"submission": s.idx, "kind": s.kind, "file": s.name, "expected": s.expected,
                               "width": s.width, "id": s.id, "why": why})
    attempts = collections.Counter(int(s.job.get("attempts") or 0) for s in finished)
    hosts = []
    rss_ok = True
    for h in run.hosts:
        budget = h.budget or 0
        limit = budget + rss_allowance
        peak = h.peak_kib * 1024
        ok = peak <= limit and h.samples > 0
        rss_ok &= ok
        hosts.append({"host": h.name, "port": h.port, "incarnations": h.incarnation, "kills": h.kills,
                      "crashes": h.crashes, "peak_rss_mib": mib(peak), "peak_vmrss_sampled_mib": mib(h.peak_rss_kib * 1024),
                      "memory_budget_mib": mib(budget), "rss_allowance_mib": mib(rss_allowance),
                      "rss_limit_mib": mib(limit), "rss_ok": ok, "rss_samples": h.samples,
                      "peak_guest_memory_reserved_mib": mib(h.peak_in_use)})
    crashes = sum(len(h.crashes) for h in run.hosts)
    unsubmitted = [s for s in plan if s.gave_up]
    honest_finished = sum(1 for s in honest if s in finished)
    r = {
        "backend": run.a.backend,
        "binary": str(run.a.binary),
        "jobs": run.a.jobs, "bombs": run.a.bombs, "clients": run.a.clients, "kills_planned": run.a.kills,
        "workers": run.a.workers, "max_memory_bytes": run.a.max_memory, "memory_budget_bytes": run.a.memory_budget,
        "lease": run.a.lease, "max_attempts": run.a.max_attempts,
        "wall_s": round(wall, 1),
        "submissions": len(plan),
        "accepted": len(accepted), "accepted_honest": len(honest), "accepted_bombs": len(bombs),
        "refused": dict(collections.Counter(s.refused for s in plan if s.refused).most_common()),
        "unsubmitted": len(unsubmitted),
        "succeeded": sum(1 for s in finished if s.job["status"] == "succeeded"),
        "succeeded_honest": sum(1 for s in finished if s.kind == "honest" and s.job["status"] == "succeeded"),
        "succeeded_bombs": sum(1 for s in finished if s.kind == "bomb" and s.job["status"] == "succeeded"),
        "failed": sum(1 for s in finished if s.job["status"] == "failed"),
        "failed_honest_by_code": codes([s for s in finished if s.kind == "honest"]),
        "failed_bombs_by_code": codes([s for s in finished if s.kind == "bomb"]),
        "lost": len(lost), "stuck": len(stuck), "duplicated": duplicated, "unlisted": len(unlisted),
        "orphans": len(orphans),
        "honest_finished": honest_finished, "honest_accepted": len(honest),
        "bombs_running_at_once_max": max_overlap([s for s in finished if s.kind == "bomb"]),
        "dedup_hits": sum(1 for s in finished if s.job.get("deduplicated_from")),
        "retried": sum(n for a, n in attempts.items() if a > 1),
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "unexpected": unexpected,
        "crashes": crashes,
        "panics_in_logs": panics,
        "kills": run.kills,
        "hosts": hosts,
        "peak_rss_mib": max((h["peak_rss_mib"] or 0) for h in hosts),
        "rss_ok": rss_ok,
        "client_connection_errors": dict(run.cluster.conn_errors),
        "client_retried_statuses": dict(run.cluster.retried_statuses),
        "lost_ids": [s.id for s in lost], "stuck_ids": [s.id for s in stuck][:50],
        "same_id_for_two_submissions": run.same_id, "unlisted_ids": sorted(unlisted)[:50],
        "listed_jobs": {k: len(v) for k, v in listings.items()},
    }
    failures = []
    for key in ("lost", "stuck", "duplicated", "unlisted", "crashes", "unsubmitted"):
        if r[key]:
            failures.append(f"{key} = {r[key]}")
    if r["unexpected"]:
        failures.append(f"{len(r['unexpected'])} unexpected outcome(s)")
    if honest_finished != len(honest):
        failures.append(f"only {honest_finished} of {len(honest)} honest jobs finished")
    if not rss_ok:
        failures.append("peak RSS over budget + allowance")
    if not accepted:
        failures.append("nothing was accepted")
    if len(run.kills) != run.a.kills:
        failures.append(f"{len(run.kills)} of {run.a.kills} kills done")
    r["failures"] = failures
    r["ok"] = not failures
    return r


def write_submissions(path, plan):
    """Every submission and what became of it, for digging into a failed run."""
    with open(path, "w") as f:
        f.write("idx\tkind\tfile\texpected\twidth\tid\trefused\tstatus\tcode\tattempts\tlost\n")
        for s in plan:
            job = s.job or {}
            f.write("\t".join(str(x if x is not None else "") for x in (
                s.idx, s.kind, s.name, s.expected, s.width, s.id, s.refused or s.gave_up, job.get("status"),
                (job.get("error") or {}).get("code"), job.get("attempts"), int(s.lost))) + "\n")


def print_report(r):
    p = print
    p(f"edgethumb load and faults: {r['backend']}, {r['binary']}")
    p(f"  {r['submissions']} submissions ({r['jobs']} honest + {r['bombs']} bombs) from {r['clients']} clients, "
      f"{len(r['kills'])} kill(s) of {r['kills_planned']}, workers {r['workers']}, lease {r['lease']}, "
      f"max attempts {r['max_attempts']}, "
      f"wall {r['wall_s']} s")
    p(f"  accepted    {r['accepted']} ({r['accepted_honest']} honest, {r['accepted_bombs']} bombs)")
    p(f"  refused     {r['refused'] or 0}")
    p(f"  unsubmitted {r['unsubmitted']}")
    p(f"  succeeded   {r['succeeded']} ({r['succeeded_honest']} honest, {r['succeeded_bombs']} bombs)")
    p(f"  failed      {r['failed']}: honest {r['failed_honest_by_code'] or {}}, bombs {r['failed_bombs_by_code'] or {}}")
    p(f"  lost        {r['lost']}")
    p(f"  stuck       {r['stuck']}")
    p(f"  duplicated  {r['duplicated']}")
    p(f"  unlisted    {r['unlisted']}   (listing sizes {r['listed_jobs']}; orphans {r['orphans']})")
    p(f"  honest jobs finished {r['honest_finished']} of {r['honest_accepted']}")
    p(f"  bombs at once {r['bombs_running_at_once_max']} (most in status running together)")
    p(f"  dedup hits  {r['dedup_hits']} (answered from the cache: only a retried submission whose first 202 was lost)")
    p(f"  retried     {r['retried']} (attempts {r['attempts']})")
    p(f"  unexpected  {len(r['unexpected'])}")
    for u in r["unexpected"][:20]:
        p(f"    #{u['submission']} {u['kind']} {u['file']} w={u['width']} ({u['expected']}): {u['why']}")
    p(f"  crashes     {r['crashes']}; panics in logs {r['panics_in_logs']}")
    for k in r["kills"]:
        p(f"  kill {k['n']}: {k['host']} at {k['at_s']} s after {k['submissions_done']} submissions "
          f"(guest memory reserved {k['guest_memory_reserved_mib']} MiB), back in {k['downtime_s']} s")
    for h in r["hosts"]:
        p(f"  {h['host']}: peak RSS {h['peak_rss_mib']} MiB <= memory budget {h['memory_budget_mib']} MiB "
          f"+ allowance {h['rss_allowance_mib']} MiB = {h['rss_limit_mib']} MiB: {'ok' if h['rss_ok'] else 'FAILED'} "
          f"({h['rss_samples']} samples, peak guest memory reserved {h['peak_guest_memory_reserved_mib']} MiB, "
          f"{h['incarnations']} incarnations)")
    if r["client_connection_errors"] or r["client_retried_statuses"]:
        p(f"  client retries: connection errors {r['client_connection_errors']}, "
          f"statuses {r['client_retried_statuses']}")
    p("RESULT: " + ("ok" if r["ok"] else "FAILED: " + "; ".join(r["failures"])))


# --- PostgreSQL ----------------------------------------------------------------------------


def psql(a, sql, db="postgres"):
    subprocess.run(["psql", "-h", a.pg_host, "-p", str(a.pg_port), "-U", a.pg_user, "-d", db,
                    "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                   check=True, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


# --- main ----------------------------------------------------------------------------------


def default_binary():
    release = REPO / "target" / "release" / "edgethumb"
    return release if release.exists() else REPO / "target" / "debug" / "edgethumb"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (the top of this file) for the figures.")
    p.add_argument("--binary", type=Path, default=None,
                   help="edgethumb binary [target/release/edgethumb if it exists, else target/debug]")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--jobs", type=int, default=300, help="honest jobs [300]")
    p.add_argument("--clients", type=int, default=8, help="client threads [8]")
    p.add_argument("--kills", type=int, default=3, help="SIGKILLs during the run [3]")
    p.add_argument("--bombs", type=int, default=50, help="decompression bombs among the jobs [50]")
    p.add_argument("--bomb-side", type=int, default=7000, help="bomb width and height in pixels [7000]")
    p.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    p.add_argument("--max-file-bytes", type=int, default=3_000_000, help="skip larger corpus files [3000000]")
    p.add_argument("--workers", type=int, default=2, help="workers per host [2]")
    p.add_argument("--max-memory", type=int, default=GIB, help="serve --max-memory, bytes [1 GiB]")
    p.add_argument("--memory-budget", type=int, default=2 * GIB, help="serve --memory-budget, bytes [2 GiB]")
    p.add_argument("--lease", default="5s", help="serve --lease [5s]")
    p.add_argument("--max-attempts", type=int, default=None, help="serve --max-attempts [max(3, kills + 1)]")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `serve` (repeatable, e.g. --server-arg=--deadline=20s)")
    p.add_argument("--rss-allowance", type=int, default=768 * MIB,
                   help="host memory allowed beyond the budget, bytes [768 MiB]")
    p.add_argument("--sample-interval", type=float, default=0.1, help="RSS sampling period, s [0.1]")
    p.add_argument("--submit-timeout", type=float, default=180.0,
                   help="how long a client retries one submission, s [180]")
    p.add_argument("--client-wait", type=float, default=120.0,
                   help="how long a client follows its job before taking the next, s [120]")
    p.add_argument("--settle-timeout", type=float, default=300.0,
                   help="how long the end waits for accepted jobs to finish, s [300]")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="per host start, s [180]")
    p.add_argument("--run-timeout", type=float, default=3600.0, help="the client phase, s [3600]")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, data) even if all is well")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    a = p.parse_args()
    a.binary = (a.binary or default_binary()).resolve()
    if a.max_attempts is None:
        a.max_attempts = max(3, a.kills + 1)
    if not a.binary.exists():
        p.error(f"{a.binary} does not exist; build it first")
    if a.pg_host not in ("127.0.0.1", "localhost", "::1"):
        p.error("--pg-host must be a loopback address")
    if a.jobs < 0 or a.bombs < 0 or a.kills < 0 or a.clients < 1 or a.jobs + a.bombs < 1:
        p.error("need --clients >= 1 and at least one job or bomb")

    files = load_corpus(a.corpus, a.max_file_bytes)
    log(f"corpus: {len(files)} images of at most {a.max_file_bytes} bytes under {a.corpus}")
    bomb = b""
    if a.bombs:
        t = time.monotonic()
        bomb = make_bomb(a.bomb_side)
        log(f"bomb: {a.bomb_side}x{a.bomb_side} 16-bit RGBA PNG, {len(bomb)} bytes, "
            f"{a.bomb_side * a.bomb_side * 8 / MIB:.0f} MiB decoded ({time.monotonic() - t:.1f}s to make)")
    plan = make_plan(a.corpus, files, a.jobs, a.bombs, bomb, a.seed)

    workdir = Path(tempfile.mkdtemp(prefix="edgethumb-faults-"))
    log(f"work directory {workdir}")
    serve_args = ["--workers", str(a.workers), "--max-memory", str(a.max_memory),
                  "--memory-budget", str(a.memory_budget), "--lease", a.lease,
                  "--max-attempts", str(a.max_attempts),
                  "--cache-dir", str(workdir / "compiled"), *a.server_arg]
    dbname = None
    hosts = []
    result = None
    try:
        if a.backend == "postgres":
            dbname = f"edgethumb_faults_{uuid.uuid4().hex[:12]}"
            psql(a, f'CREATE DATABASE "{dbname}"')
            log(f"created database {dbname}")
            url = f"postgres://{a.pg_user}@{a.pg_host}:{a.pg_port}/{dbname}"
            serve_args += ["--database", url]
            names = ["host-a", "host-b"]
        else:
            names = ["host"]
        for name in names:
            h = Host(name, a.binary, workdir, serve_args, a.startup_timeout)
            h.start()  # one after the other: the first compiles the component into the shared cache
            log(f"{name} ready on 127.0.0.1:{h.port}, memory budget {fmt_mib(h.budget)}")
            hosts.append(h)

        run = Run(a, hosts, plan)
        threads = [threading.Thread(target=run.rss_sampler, daemon=True),
                   threading.Thread(target=run.readyz_sampler, daemon=True),
                   threading.Thread(target=run.supervisor, daemon=True)]
        for t in threads:
            t.start()
        killer = threading.Thread(target=run.killer, daemon=True)
        killer.start()
        clients = [threading.Thread(target=run.client, args=(i,), daemon=True) for i in range(a.clients)]
        for t in clients:
            t.start()
        run_deadline = time.monotonic() + a.run_timeout
        last_note = time.monotonic()
        while any(t.is_alive() for t in clients) and time.monotonic() < run_deadline:
            for t in clients:
                t.join(timeout=1.0)
            if time.monotonic() - last_note > 15:
                last_note = time.monotonic()
                with run.lock:
                    log(f"{run.processed} of {len(plan)} submissions done, {len(run.by_id)} accepted")
        if any(t.is_alive() for t in clients):
            log("WARNING: the client phase hit --run-timeout")
        run.clients_done.set()
        with run.lock:
            run.progress.notify_all()
        killer.join(timeout=a.startup_timeout * max(1, a.kills) + 60)
        log(f"clients done after {time.monotonic() - run.t0:.0f}s; settling")
        run.settle()
        wall = time.monotonic() - run.t0
        listings = {h.name: run.listing(h) for h in hosts}
        run.stop.set()
        for t in threads:
            t.join(timeout=10)
        for h in hosts:
            with h.lock:
                h.terminate()
        panics = 0
        for h in hosts:
            for path in h.logs:
                if path.exists():
                    panics += path.read_text(errors="replace").count("panicked")
        result = report(run, wall, listings, panics, a.rss_allowance)
        write_submissions(workdir / "submissions.tsv", plan)
        result["work_dir"] = str(workdir)
    finally:
        for h in hosts:
            try:
                h.terminate()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log(f"stopping {h.name}: {e}")
        if dbname:
            try:
                psql(a, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                log(f"dropped database {dbname}")
            except subprocess.SubprocessError as e:
                log(f"could not drop database {dbname}: {e}")
        if result is not None and result["ok"] and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} (server logs host*.N.log, submissions.tsv, data dirs)")
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
