#!/usr/bin/env python3
"""Writes the colour-management fixtures host/tests/colour.rs checks, into OUT_DIR:

- reference.png: flat patches of saturated and everyday sRGB colours;
- p3.jpg, adobe-rgb.jpg: the same picture converted to Display P3 and to Adobe RGB (1998)
  by LittleCMS (Pillow's ImageCms), with the profile embedded, and an EXIF block with GPS.

The two ICC profiles are written here (v2 matrix/TRC profiles from the colour spaces'
published primaries, white point and transfer curves), since Pillow ships only sRGB.

    python3 scripts/icc_fixtures.py OUT_DIR
"""
import io
import struct
import sys

from PIL import Image, ImageCms

PATCH = 32
COLOURS = [
    (230, 30, 40), (40, 200, 60), (30, 60, 220), (240, 200, 30), (200, 40, 200),
    (30, 200, 210), (128, 128, 128), (220, 170, 140), (90, 60, 40), (250, 250, 250),
]

D65 = (0.3127, 0.3290)
SPACES = {
    "p3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), "srgb"),
    "adobe-rgb": ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060), 563 / 256),
}


def xyz(xy):
    x, y = xy
    return [x / y, 1.0, (1 - x - y) / y]


def solve3(m, v):
    """Solves m . s = v for a 3x3 m (Cramer's rule)."""
    def det(a):
        return (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
                - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
    d = det(m)
    out = []
    for i in range(3):
        mi = [row[:] for row in m]
        for r in range(3):
            mi[r][i] = v[r]
        out.append(det(mi) / d)
    return out


def matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def colorants(primaries):
    """The primaries' XYZ under D65, Bradford-adapted to D50 (ICC's connection space)."""
    cols = [xyz(p) for p in primaries]
    m = [[cols[j][i] for j in range(3)] for i in range(3)]
    s = solve3(m, xyz(D65))
    rgb_to_xyz = [[m[i][j] * s[j] for j in range(3)] for i in range(3)]
    brad = [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
    brad_inv = [[0.9869929, -0.1470543, 0.1599627], [0.4323053, 0.5183603, 0.0492912],
                [-0.0085287, 0.0400428, 0.9684867]]
    src, dst = xyz(D65), [0.9642, 1.0, 0.8249]
    cs, cd = [sum(brad[i][k] * src[k] for k in range(3)) for i in range(3)], [
        sum(brad[i][k] * dst[k] for k in range(3)) for i in range(3)]
    scale = [[cd[i] / cs[i] if i == j else 0.0 for j in range(3)] for i in range(3)]
    adapt = matmul(brad_inv, matmul(scale, brad))
    adapted = matmul(adapt, rgb_to_xyz)
    return [[adapted[i][j] for i in range(3)] for j in range(3)]  # one XYZ per primary


def s15(v):
    return struct.pack(">i", round(v * 65536))


def xyz_tag(v):
    return b"XYZ " + b"\0" * 4 + b"".join(s15(c) for c in v)


def curve_tag(trc):
    if trc == "srgb":
        table = []
        for i in range(1024):
            c = i / 1023
            lin = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
            table.append(round(lin * 65535))
        return b"curv" + b"\0" * 4 + struct.pack(">I", len(table)) + b"".join(struct.pack(">H", t) for t in table)
    return b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", round(trc * 256))


def text_tag(text):
    data = text.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(data)) + data + b"\0" * 12 + b"\0" * 67


def profile(name, primaries, trc):
    r, g, b = colorants(primaries)
    curve = curve_tag(trc)
    tags = [
        (b"desc", text_tag(name)), (b"cprt", b"text" + b"\0" * 4 + b"public domain\0"),
        (b"wtpt", xyz_tag([0.9642, 1.0, 0.8249])),
        (b"rXYZ", xyz_tag(r)), (b"gXYZ", xyz_tag(g)), (b"bXYZ", xyz_tag(b)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
    ]
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    entries, blobs = [], b""
    for sig, data in tags:
        while (offset + len(blobs)) % 4:
            blobs += b"\0"
        entries.append(struct.pack(">4sII", sig, offset + len(blobs), len(data)))
        blobs += data
    body = struct.pack(">I", len(tags)) + b"".join(entries) + blobs
    size = 128 + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"none", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += b"\0" * 12 + b"acsp" + b"\0" * 4 + b"\0" * 4 + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + b"\0" * 4
    header += struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 4
    header += b"\0" * (128 - len(header))
    return header + body


def exif_with_gps():
    exif = Image.Exif()
    exif[0x010F] = "edgethumb test camera"
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    return exif.tobytes()


def main():
    out = sys.argv[1]
    img = Image.new("RGB", (PATCH * len(COLOURS), PATCH))
    for i, c in enumerate(COLOURS):
        img.paste(c, (i * PATCH, 0, (i + 1) * PATCH, PATCH))
    img.save(f"{out}/reference.png")
    srgb = ImageCms.createProfile("sRGB")
    for name, (r, g, b, trc) in SPACES.items():
        icc = profile(name, (r, g, b), trc)
        target = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(img, srgb, target, outputMode="RGB")
        converted.save(f"{out}/{name}.jpg", quality=95, subsampling=0, icc_profile=icc, exif=exif_with_gps())


if __name__ == "__main__":
    main()
