#!/usr/bin/env python3
"""Load test for a running edgethumb: concurrent clients submit corpus photos and long-poll
them; reports jobs/s and submit-to-done latency percentiles.

    python3 scripts/load.py --url http://127.0.0.1:8080 --clients 8 --jobs 200 \
        ../shared/corpus/photos/*.jpg

Each job gets a distinct width so the dedup cache does not answer it. Standard library only.
"""
import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8080",
                   help="base URL; several comma-separated hosts are used round-robin")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--jobs", type=int, default=100)
    p.add_argument("--api-key")
    p.add_argument("files", nargs="+")
    a = p.parse_args()
    images = [open(f, "rb").read() for f in a.files]
    urls = [u.strip().rstrip("/") for u in a.url.split(",") if u.strip()]
    auth = {"Authorization": f"Bearer {a.api_key}"} if a.api_key else {}
    latencies, failures, lock = [], [], threading.Lock()
    counter = iter(range(a.jobs))

    def client():
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            body = images[n % len(images)]
            base = urls[n % len(urls)]
            t0 = time.monotonic()
            try:
                _, job = request("POST", f"{base}/v1/jobs?width={40 + n % 200}", body,
                                 {"Content-Type": "application/octet-stream", **auth})
                while job["status"] not in ("succeeded", "failed"):
                    _, job = request("GET", f"{base}/v1/jobs/{job['id']}?wait=30", headers=auth)
                dt = time.monotonic() - t0
                with lock:
                    if job["status"] == "succeeded":
                        latencies.append(dt)
                    else:
                        failures.append(f"job {job['id']}: {job.get('error')}")
            except Exception as e:  # noqa: BLE001 - a load test reports, it does not stop
                with lock:
                    failures.append(str(e))

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")
    print(json.dumps({
        "jobs": a.jobs, "clients": a.clients, "succeeded": len(latencies), "failed": len(failures),
        "seconds": round(elapsed, 2), "jobs_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(0.50), 1), "p99_ms": round(pct(0.99), 1),
        "mean_ms": round(statistics.mean(latencies) * 1000, 1) if latencies else None,
    }))
    for f in failures[:5]:
        print(f"failure: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
