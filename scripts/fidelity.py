#!/usr/bin/env python3
"""How close each thumbnailer gets to the ideal thumbnail: PSNR (dB, higher is closer) against a
reference made the slow way, a full decode then one Lanczos3 resize to the same size (Pillow,
no reducing gap, no draft). Compared: edgethumb (`edgethumb thumb`, the sandboxed component),
libvips (`pyvips.Image.thumbnail`) and Pillow (`thumbnail`, LANCZOS, with its default reducing
gap of 2, which also drafts a JPEG at the scale that keeps twice the box). All outputs are PNG, so only the decode and resize are measured.

Each result is reported three ways: RGB, luma (Y) and colour (Cb and Cr together), BT.601 as
JPEG defines them. Images with alpha are laid on mid-grey first, with their own alpha, so both
colour and coverage count. EXIF orientation is applied by all three and by the reference.

    pip install -r scripts/requirements.txt
    cargo build --release -p edgethumb
    python3 scripts/fidelity.py [--photos ../shared/corpus/photos] [--json] [FILE ...]
"""
import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pyvips
from PIL import Image, ImageOps

BOX = (100, 100)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif")


def flatten(im):
    """RGB float array; alpha laid on mid-grey."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        a = rgba[..., 3:4] / 255.0
        return rgba[..., :3] * a + 128.0 * (1.0 - a)
    return np.asarray(im.convert("RGB"), dtype=np.float64)


def psnr(mse):
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def compare(out, ref):
    """PSNR of `out` against `ref` (RGB float arrays of one size): RGB, Y and CbCr."""
    d = out - ref
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    ycc = d @ m.T
    return {
        "rgb": psnr(float(np.mean(d**2))),
        "y": psnr(float(np.mean(ycc[..., 0] ** 2))),
        "cbcr": psnr(float(np.mean(ycc[..., 1:] ** 2))),
    }


def open_oriented(path):
    im = Image.open(path)
    im.seek(0)
    return ImageOps.exif_transpose(im)


def working_mode(im):
    alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    return "RGBA" if alpha else "RGB"


class Reference:
    """Full decode, oriented, then one Lanczos3 resize per output size asked for."""

    def __init__(self, path):
        im = open_oriented(path)
        self.full = im.convert(working_mode(im))
        self.sizes = {}

    def at(self, size):
        if size not in self.sizes:
            self.sizes[size] = flatten(self.full.resize(size, Image.LANCZOS))
        return self.sizes[size]


def edgethumb(binary, path, tmp):
    out = os.path.join(tmp, "edgethumb.png")
    w, h = BOX
    subprocess.run(
        [binary, "thumb", path, "-o", out, "--overwrite", "--width", str(w), "--height", str(h), "--format", "png"],
        check=True,
        capture_output=True,
    )
    return Image.open(out)


def libvips(path):
    w, h = BOX
    data = pyvips.Image.thumbnail(path, w, height=h).write_to_buffer(".png")
    return Image.open(io.BytesIO(data))


def pillow(path):
    im = Image.open(path)
    orientation = im.getexif().get(0x0112, 1)
    box = BOX[::-1] if orientation in (5, 6, 7, 8) else BOX
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert(working_mode(im))
    # thumbnail() drafts a JPEG itself, at twice the box (its reducing gap).
    im.thumbnail(box, Image.LANCZOS)
    if orientation != 1:
        # Turning the small result is lossless, so applying the tag last is fair.
        im.info["exif"] = Image.open(path).info.get("exif", b"")
        im.getexif()[0x0112] = orientation
        im = ImageOps.exif_transpose(im)
    return im


def measure(binary, path, tmp):
    ref = Reference(path)
    row = {"file": os.path.basename(path)}
    for name, make in (
        ("edgethumb", lambda: edgethumb(binary, path, tmp)),
        ("libvips", lambda: libvips(path)),
        ("pillow", lambda: pillow(path)),
    ):
        im = make()
        row[name] = compare(flatten(im), ref.at(im.size))
        row[name]["size"] = list(im.size)
    return row


def table(rows):
    lines = [
        "| photo | edgethumb RGB / Y / CbCr | libvips RGB / Y / CbCr | Pillow RGB / Y / CbCr |",
        "|---|---|---|---|",
    ]
    for r in rows:
        cells = [" / ".join(f"{r[n][k]:.1f}" for k in ("rgb", "y", "cbcr")) for n in ("edgethumb", "libvips", "pillow")]
        lines.append(f"| {r['file']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="images to measure [default: every photo in --photos]")
    p.add_argument("--photos", default=os.path.join(root, "..", "shared", "corpus", "photos"))
    p.add_argument("--binary", default=os.path.join(root, "target", "release", "edgethumb"))
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    a = p.parse_args()
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    pyvips.cache_set_max(0)
    files = a.files or sorted(
        os.path.join(a.photos, f) for f in os.listdir(a.photos) if f.lower().endswith(EXTENSIONS)
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            row = measure(a.binary, path, tmp)
            rows.append(row)
            if a.json:
                print(json.dumps(row), flush=True)
    if not a.json:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
