#!/usr/bin/env python3
"""End-to-end load benchmark: edgethumb against a native sharp (libvips) server.

Concurrent clients POST an image over and over, every request's bytes made unique (a JPEG
comment or a PNG tEXt chunk with a counter) so that edgethumb's dedup cache never answers.
Per target and mode it reports requests/s, p50/p99 latency and failures, as a Markdown table
(or JSON with --json). Only loopback addresses are ever contacted.

Targets:
  --edgethumb-bin PATH  start `PATH serve --bind 127.0.0.1:0 --workers 2 --data-dir <tempdir>`
                        (the port is read from its `listening addr=...` log line; stopped at
                        the end)
  --edgethumb URL       an edgethumb that is already running (http://127.0.0.1:PORT)
  --sharp               start scripts/sharp-server/server.js with 2 cluster workers; install
                        it once with `npm ci --prefix scripts/sharp-server`

Modes (--modes, comma-separated) for edgethumb:
  sync  POST /v1/thumbnail?width=100&height=100 with the raw image; expects 200 + the image
  jobs  POST /v1/jobs?width=100&height=100 (202 + JSON), then GET /v1/jobs/{id}?wait=30 until
        the job succeeded or failed; the latency is submit to done
sharp has one mode, `post`: the image POSTed to / answered with a 100x100-inside PNG.

Each run is a warm-up (--warmup seconds, not counted) followed by --seconds N (requests
completed inside that window) or --requests N (the first N completed after the warm-up).
With --bench (needs --edgethumb-bin) it also runs `PATH bench --json --iterations N FILE` and
reports its single-thread thumbnails/s x 2 (the workers) and end-to-end rate / that.

Example, from the repository root:

    npm ci --prefix scripts/sharp-server
    python3 scripts/load.py --edgethumb-bin target/release/edgethumb --sharp \\
        --modes sync,jobs --clients 8 --seconds 20 --bench \\
        ../shared/corpus/photos/camera-like-12mp.jpg ../shared/corpus/photos/astronaut-2mp.png

Standard library only. The client runs on the same machine as the servers and takes some of
its CPU; that is the same for every target.
"""
import argparse
import http.client
import ipaddress
import json
import math
import os
import selectors
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

SCRIPT_DIR = Path(__file__).resolve().parent
SHARP_SERVER = SCRIPT_DIR / "sharp-server" / "server.js"
QUERY = "width=100&height=100"
REQUEST_TIMEOUT = 120  # seconds for one HTTP request (a long poll waits up to 30)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- unique bodies -------------------------------------------------------------------------


class UniqueBodies:
    """Makes every call return the image with a different marker in it, still a valid image:
    a COM segment right after a JPEG's SOI, or a tEXt chunk right after a PNG's IHDR."""

    PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

    def __init__(self, data, name):
        self.data = data
        self.lock = threading.Lock()
        self.counter = 0
        # A nonce per run, so that a long-running edgethumb has not seen these bodies before.
        self.nonce = uuid.uuid4().hex
        if data[:3] == b"\xff\xd8\xff":
            self.kind = "jpeg"
        elif data[:8] == self.PNG_SIGNATURE and data[12:16] == b"IHDR":
            self.kind = "png"
            (ihdr_len,) = struct.unpack(">I", data[8:12])
            self.after_ihdr = 8 + 4 + 4 + ihdr_len + 4  # signature, length, type, data, CRC
        else:
            raise SystemExit(
                f"{name}: only JPEG and PNG files are supported (a unique marker must be put "
                "into each request's bytes so the dedup cache cannot answer)"
            )

    def next(self):
        with self.lock:
            self.counter += 1
            n = self.counter
        marker = f"edgethumb-load {self.nonce} {n}".encode()
        if self.kind == "jpeg":
            # FF FE, then a big-endian length that counts itself, then the comment.
            segment = b"\xff\xfe" + struct.pack(">H", 2 + len(marker)) + marker
            return self.data[:2] + segment + self.data[2:]
        chunk_data = b"Comment\x00" + marker
        crc = zlib.crc32(b"tEXt" + chunk_data) & 0xFFFFFFFF
        chunk = struct.pack(">I", len(chunk_data)) + b"tEXt" + chunk_data + struct.pack(">I", crc)
        return self.data[: self.after_ihdr] + chunk + self.data[self.after_ihdr :]


# --- HTTP ----------------------------------------------------------------------------------


def loopback_url(url):
    """Returns (host, port, path prefix) of an http URL, refusing anything but loopback."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname or not u.port:
        raise SystemExit(f"{url}: expected http://127.0.0.1:PORT")
    host = "127.0.0.1" if u.hostname == "localhost" else u.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"{url}: only loopback addresses (127.0.0.1) may be used")
    return host, u.port, u.path.rstrip("/")


class Client:
    """One keep-alive connection to a target; reconnects after an error."""

    def __init__(self, base_url, headers=None):
        self.host, self.port, self.prefix = loopback_url(base_url)
        self.headers = headers or {}
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        try:
            self.conn.request(method, self.prefix + path, body=body,
                              headers={**self.headers, **(headers or {})})
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.getheader("connection", "").lower() == "close":
                self.close()
            return resp.status, resp.getheader("content-type", ""), data
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def describe(status, data):
    return f"HTTP {status}: {data[:200].decode('utf-8', 'replace').strip()}"


def expect_image(status, ctype, data):
    if status != 200:
        raise RuntimeError(describe(status, data))
    if not ctype.startswith("image/") or not data:
        raise RuntimeError(f"HTTP 200 but not an image: {ctype!r}, {len(data)} bytes")


def do_sync(client, body):
    expect_image(*client.request("POST", f"/v1/thumbnail?{QUERY}", body,
                                 {"Content-Type": "application/octet-stream"}))


def do_jobs(client, body):
    status, _, data = client.request("POST", f"/v1/jobs?{QUERY}", body,
                                     {"Content-Type": "application/octet-stream"})
    if status != 202:
        raise RuntimeError(describe(status, data))
    job = json.loads(data)
    if job.get("deduplicated_from"):
        raise RuntimeError(f"job {job['id']} was answered from the dedup cache")
    while job["status"] not in ("succeeded", "failed"):
        status, _, data = client.request("GET", f"/v1/jobs/{job['id']}?wait=30")
        if status != 200:
            raise RuntimeError(describe(status, data))
        job = json.loads(data)
    if job["status"] == "failed":
        raise RuntimeError(f"job {job['id']} failed: {job.get('error')}")


def do_sharp(client, body):
    expect_image(*client.request("POST", "/", body, {"Content-Type": "application/octet-stream"}))


# --- one run -------------------------------------------------------------------------------


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def run(base_url, do, bodies, clients, warmup, seconds=None, requests=None, headers=None):
    """Clients loop from the start; a request counts if it completes after the warm-up and
    inside the window (--seconds), or among the first `requests` completed after the warm-up."""
    lock = threading.Lock()
    measured = []  # (finished_at, latency_s, error or None)
    warmup_errors = []
    started = time.monotonic()
    measure_from = started + warmup
    stop_at = measure_from + seconds if seconds else None
    stop = threading.Event()

    def client_loop():
        client = Client(base_url, headers)
        try:
            while not stop.is_set():
                body = bodies.next()
                t0 = time.monotonic()
                error = None
                try:
                    do(client, body)
                except Exception as e:  # noqa: BLE001 - a load test reports, it does not stop
                    error = f"{type(e).__name__}: {e}"
                t1 = time.monotonic()
                with lock:
                    if t1 < measure_from:
                        if error:
                            warmup_errors.append(error)
                    elif stop_at is not None and t1 > stop_at:
                        stop.set()
                    elif requests is not None and len(measured) >= requests:
                        stop.set()
                    else:
                        measured.append((t1, t1 - t0, error))
                        if requests is not None and len(measured) >= requests:
                            stop.set()
                if error:
                    time.sleep(0.05)  # do not spin on a server that refuses everything
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    if stop_at is not None:
        stop.wait(max(0.0, stop_at - time.monotonic()))
        stop.set()
    for t in threads:
        t.join()
    if stop_at is not None:
        window = seconds
    else:
        window = (max(f for f, _, _ in measured) - measure_from) if measured else float("nan")
    ok = sorted(lat for _, lat, err in measured if err is None)
    errors = [err for _, _, err in measured if err is not None]
    if warmup_errors:
        log(f"  {len(warmup_errors)} failure(s) during the warm-up, first: {warmup_errors[0]}")
    return {
        "clients": clients,
        "seconds": round(window, 2),
        "succeeded": len(ok),
        "failures": len(errors),
        "first_error": errors[0] if errors else None,
        "requests_per_second": round(len(ok) / window, 2) if window and window > 0 else None,
        "p50_ms": round(percentile(ok, 0.50) * 1000, 1) if ok else None,
        "p99_ms": round(percentile(ok, 0.99) * 1000, 1) if ok else None,
        "mean_ms": round(sum(ok) / len(ok) * 1000, 1) if ok else None,
    }


# --- starting servers ----------------------------------------------------------------------


class Server:
    """A server this script started, in its own process group; stop() ends the group."""

    def __init__(self, name, proc, url, tempdir=None):
        self.name, self.proc, self.url, self.tempdir = name, proc, url, tempdir

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.tempdir:
            # Every body was unique, so nothing should have come from the dedup cache.
            log_path = Path(self.tempdir) / "serve.log"
            if log_path.exists():
                hits = log_path.read_text(errors="replace").count("answered from the dedup cache")
                if hits:
                    log(f"WARNING: edgethumb answered {hits} request(s) from its dedup cache")
            shutil.rmtree(self.tempdir, ignore_errors=True)


def wait_ready(url, deadline):
    client = Client(url)
    while time.monotonic() < deadline:
        try:
            status, _, _ = client.request("GET", "/readyz")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}/readyz did not answer 200 in time")


def start_edgethumb(binary, workers, startup_timeout):
    tempdir = tempfile.mkdtemp(prefix="edgethumb-load-")
    log_path = Path(tempdir) / "serve.log"
    env = {**os.environ, "RUST_LOG": "info,sqlx=warn"}  # the `listening` line is at info
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1:0", "--workers", str(workers),
             "--data-dir", str(Path(tempdir) / "data")],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
            start_new_session=True)
    server = Server("edgethumb", proc, None, tempdir)
    try:
        deadline = time.monotonic() + startup_timeout
        while server.url is None:
            if proc.poll() is not None:
                raise RuntimeError(f"edgethumb exited ({proc.returncode}):\n{log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no `listening addr=` line from edgethumb in {startup_timeout}s")
            for line in log_path.read_text(errors="replace").splitlines():
                if "listening" in line and "addr=" in line:
                    addr = line.split("addr=", 1)[1].split()[0]
                    server.url = f"http://{addr}"
                    break
            else:
                time.sleep(0.1)
        loopback_url(server.url)
        wait_ready(server.url, deadline)
    except BaseException:
        server.stop()
        raise
    log(f"edgethumb {binary} listening on {server.url} (workers {workers}, log {log_path})")
    return server


def start_sharp(workers, startup_timeout):
    if not (SHARP_SERVER.parent / "node_modules" / "sharp").is_dir():
        raise SystemExit(f"sharp is not installed: run `npm ci --prefix {SHARP_SERVER.parent}`")
    proc = subprocess.Popen(
        ["node", str(SHARP_SERVER), "0", "--workers", str(workers)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    server = Server("sharp", proc, None)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=startup_timeout):
            raise RuntimeError(f"no `listening PORT` line from the sharp server in {startup_timeout}s")
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"sharp server said {line!r} (exit code {proc.poll()})")
        server.url = f"http://127.0.0.1:{int(line.split()[1])}"
    except BaseException:
        server.stop()
        raise
    log(f"sharp listening on {server.url} (workers {workers})")
    return server


def run_bench(binary, path, iterations):
    """Single-thread sandboxed thumbnails/s of `edgethumb bench` for one file."""
    out = subprocess.run([binary, "bench", "--json", "--iterations", str(iterations), str(path)],
                         check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- report --------------------------------------------------------------------------------

COLUMNS = ["file", "target", "mode", "clients", "ok", "req/s", "p50 ms", "p99 ms", "failures",
           "bench/s x2", "ratio", "first error"]


def table_row(cells):
    return "| " + " | ".join("" if c is None else str(c) for c in cells) + " |"


def print_row(r):
    print(table_row([r["file"], r["target"], r["mode"], r["clients"], r["succeeded"],
                     r["requests_per_second"], r["p50_ms"], r["p99_ms"], r["failures"],
                     r.get("bench_rate_x2"), r.get("ratio"),
                     (r["first_error"] or "").replace("|", "/")[:120] or None]), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring for details.")
    p.add_argument("files", nargs="+", type=Path, help="JPEG or PNG images")
    p.add_argument("--edgethumb", metavar="URL", help="an edgethumb already running on loopback")
    p.add_argument("--edgethumb-bin", metavar="PATH", help="start this edgethumb binary")
    p.add_argument("--edgethumb-workers", type=int, default=2)
    p.add_argument("--sharp", action="store_true", help="start the sharp server too")
    p.add_argument("--sharp-workers", type=int, default=2)
    p.add_argument("--modes", default="sync,jobs", help="edgethumb modes: sync, jobs [sync,jobs]")
    p.add_argument("--clients", type=int, default=8)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="measure for this long [20]")
    length.add_argument("--requests", type=int, help="measure this many requests instead")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds not counted, first [3]")
    p.add_argument("--api-key", help="Bearer token for edgethumb")
    p.add_argument("--bench", action="store_true",
                   help="also run `edgethumb bench` on each file (needs --edgethumb-bin)")
    p.add_argument("--bench-iterations", type=int, default=20)
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--json", action="store_true", help="print a JSON array instead of the table")
    a = p.parse_args()
    if a.seconds is None and a.requests is None:
        a.seconds = 20.0
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if bad := [m for m in modes if m not in ("sync", "jobs")]:
        p.error(f"unknown mode(s) {bad}; use sync and/or jobs")
    if a.edgethumb and a.edgethumb_bin:
        p.error("give --edgethumb or --edgethumb-bin, not both")
    if not (a.edgethumb or a.edgethumb_bin or a.sharp):
        p.error("nothing to measure: give --edgethumb, --edgethumb-bin and/or --sharp")
    if a.bench and not a.edgethumb_bin:
        p.error("--bench needs --edgethumb-bin")
    if a.edgethumb:
        loopback_url(a.edgethumb)
    images = {f: UniqueBodies(f.read_bytes(), f) for f in a.files}  # refuses other formats early

    servers, results = [], []
    try:
        targets = []  # (name, url, [(mode, function)], headers)
        auth = {"Authorization": f"Bearer {a.api_key}"} if a.api_key else {}
        do_mode = {"sync": do_sync, "jobs": do_jobs}
        if a.edgethumb_bin:
            servers.append(start_edgethumb(a.edgethumb_bin, a.edgethumb_workers, a.startup_timeout))
            targets.append(("edgethumb", servers[-1].url, [(m, do_mode[m]) for m in modes], auth))
        elif a.edgethumb:
            targets.append(("edgethumb", a.edgethumb.rstrip("/"), [(m, do_mode[m]) for m in modes], auth))
        if a.sharp:
            servers.append(start_sharp(a.sharp_workers, a.startup_timeout))
            targets.append(("sharp", servers[-1].url, [("post", do_sharp)], {}))

        if not a.json:
            print(table_row(COLUMNS))
            print(table_row(["---"] * len(COLUMNS)), flush=True)
        for path, bodies in images.items():
            bench = None
            if a.bench:
                log(f"bench {path} ({a.bench_iterations} iterations)")
                bench = run_bench(a.edgethumb_bin, path, a.bench_iterations)
            for name, url, target_modes, headers in targets:
                for mode, do in target_modes:
                    load_before = os.getloadavg()
                    log(f"{name} {mode} {path.name}: {a.clients} clients, warm-up {a.warmup}s, "
                        f"load average before {load_before[0]:.2f}")
                    r = run(url, do, bodies, a.clients, a.warmup, a.seconds, a.requests, headers)
                    r = {"file": path.name, "target": name, "mode": mode, **r,
                         "loadavg_1m_before": round(load_before[0], 2),
                         "loadavg_1m_after": round(os.getloadavg()[0], 2)}
                    if bench and name == "edgethumb":
                        r["bench"] = bench
                        r["bench_rate_x2"] = round(bench["thumbnails_per_second"] * 2, 2)
                        if r["requests_per_second"]:
                            r["ratio"] = round(r["requests_per_second"] / r["bench_rate_x2"], 3)
                    results.append(r)
                    if not a.json:
                        print_row(r)
    finally:
        for s in servers:
            s.stop()
    if a.json:
        print(json.dumps(results, indent=2))
    return 1 if any(r["failures"] or not r["succeeded"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
