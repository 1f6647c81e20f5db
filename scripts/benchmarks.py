#!/usr/bin/env python3
"""Regenerates BENCHMARKS.md: edgethumb (sandboxed), edgethumb --native, libvips (pyvips
thumbnail), sharp (native libvips from npm, in its own Node process) and Pillow (draft +
thumbnail, LANCZOS) on the same photos, in one run, on this machine. Single thread, 100x100
contain, PNG out, median of N runs after a warm-up. A peer that cannot read a format shows "-".

    pip install -r scripts/requirements.txt
    npm ci --prefix scripts/sharp-server
    cargo build --release -p edgethumb
    python3 scripts/benchmarks.py [--iterations 10] [--photos ../shared/corpus/photos]
        [--baseline-component before.wasm]

With --baseline-component, another build of the resizer component (for example the one a
change started from) runs sandboxed in the same run, in a column of its own, so a change's
speed is compared with what it replaces under the same conditions.
"""
import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time

FILES = [
    "coffee-12mp.jpg",
    "coffee-12mp-progressive.jpg",
    "motorcycle-24mp.jpg",
    "astronaut-2mp.png",
    "astronaut-2mp-rgba.png",
    "coffee-2mp.webp",
    "coffee-2mp.gif",
    "coffee-2mp.bmp",
    "astronaut-1mp.jpg",
    "camera-like-12mp.jpg",
    "camera-like-12mp-progressive.jpg",
]


def median_ms(fn, iterations):
    fn()  # warm-up
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def sharp(here, paths, iterations):
    """sharp's medians by file name (None where it cannot read the file)."""
    script = os.path.join(here, "sharp-server", "bench.js")
    out = subprocess.run(
        ["node", script, "--iterations", str(iterations), *paths], check=True, capture_output=True, text=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    version = f"sharp {rows[0]['sharp']} (libvips {rows[0]['vips']})" if rows else "sharp"
    return {r["file"]: r["median_ms"] for r in rows}, version


def maybe_median(fn, iterations):
    """The median, or None when this peer cannot read the file."""
    try:
        return median_ms(fn, iterations)
    except Exception:  # noqa: BLE001 - any refusal means "cannot read it"
        return None


def fmt(ms):
    return "-" if ms is None else f"{ms:.1f}"


def edgethumb(binary, paths, iterations, native, component=None):
    cmd = [binary, "bench", "--json", "--iterations", str(iterations), *paths]
    if native:
        cmd.append("--native")
    if component:
        cmd += ["--component", component]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {os.path.basename(r["file"]): r["median_ms"] for r in map(json.loads, out.splitlines())}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--photos", default=os.path.join(root, "..", "shared", "corpus", "photos"))
    p.add_argument("--binary", default=os.path.join(root, "target", "release", "edgethumb"))
    p.add_argument("--out", default=os.path.join(root, "BENCHMARKS.md"))
    p.add_argument("--baseline-component", help="another resizer component to time sandboxed")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds with a baseline")
    a = p.parse_args()
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    import pyvips
    from PIL import Image

    pyvips.cache_set_max(0)
    paths = [os.path.join(a.photos, f) for f in FILES]
    native = edgethumb(a.binary, paths, a.iterations, native=True)
    sharp_ms, sharp_version = sharp(here, paths, a.iterations)
    if a.baseline_component:
        # The two builds take turns, so drift in the machine's speed reaches both alike;
        # each file's figure is the median of its per-round medians.
        rounds = {"new": [], "baseline": []}
        for _ in range(a.rounds):
            rounds["new"].append(edgethumb(a.binary, paths, a.iterations, native=False))
            rounds["baseline"].append(
                edgethumb(a.binary, paths, a.iterations, native=False, component=a.baseline_component)
            )
        sandboxed, baseline = (
            {f: statistics.median(r[f] for r in rounds[k]) for f in FILES} for k in ("new", "baseline")
        )
    else:
        sandboxed = edgethumb(a.binary, paths, a.iterations, native=False)
        baseline = None
    rows = []
    for name, path in zip(FILES, paths):
        data = open(path, "rb").read()

        def vips():
            pyvips.Image.thumbnail_buffer(data, 100, height=100).write_to_buffer(".png")

        def pillow():
            im = Image.open(io.BytesIO(data))
            im.draft("RGB", (100, 100))
            im.thumbnail((100, 100), Image.LANCZOS)
            im.save(io.BytesIO(), "PNG")

        rows.append(
            (
                name,
                sandboxed[name],
                native[name],
                maybe_median(vips, a.iterations),
                sharp_ms.get(name),
                maybe_median(pillow, a.iterations),
                baseline[name] if baseline else None,
            )
        )

    lines = [
        "# Benchmarks",
        "",
        "Median ms per 100x100 thumbnail (contain, PNG out), single thread, same run, same machine",
        f"({platform.machine()}, {os.cpu_count()} cores; {a.iterations} runs after a warm-up).",
        f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)} via pyvips `thumbnail_buffer`;",
        f"{sharp_version}, `resize(100, 100, {{fit: 'inside'}})`, in its own Node process;",
        f"Pillow {Image.__version__} with `draft` + `thumbnail(LANCZOS)`. \"-\": the peer cannot read the",
        "format. Overhead is sandboxed / native, the same code. \"vs fastest\" is sandboxed /",
        "the fastest of libvips, sharp and Pillow. Regenerate with `python3 scripts/benchmarks.py`",
        "(see its docstring). Lower is better; ratios matter more than absolute numbers on a shared",
        "machine.",
        "",
    ]
    head = "| input | edgethumb (sandboxed) |"
    if baseline:
        lines += [
            f"The baseline column is `{os.path.basename(a.baseline_component)}`, sandboxed in the same run; the two",
            f"took turns for {a.rounds} rounds, and each figure is the median of the rounds' medians.",
            "",
        ]
        head += " baseline (sandboxed) | change |"
    head += " edgethumb --native | overhead | libvips | sharp | Pillow | vs fastest |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name, s, n, v, sh, pil, base in rows:
        peers = [t for t in (v, sh, pil) if t is not None]
        row = f"| {name} | {s:.1f} |"
        if baseline:
            row += f" {base:.1f} | {(s / base - 1) * 100:+.0f}% |"
        row += f" {n:.1f} | {s / n:.2f}x | {fmt(v)} | {fmt(sh)} | {fmt(pil)} |"
        row += f" {s / min(peers):.2f}x |" if peers else " - |"
        lines.append(row)
    lines.append("")
    # Hand-written analysis below the marker survives regeneration.
    marker = "<!-- analysis: kept when this file is regenerated -->"
    kept = ""
    if os.path.exists(a.out):
        old = open(a.out).read()
        if marker in old:
            kept = old[old.index(marker):]
    open(a.out, "w").write("\n".join(lines) + ("\n" + kept if kept else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
