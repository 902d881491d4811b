#!/usr/bin/env python3
"""Generate the pixel-parity fixtures for `tests/parity_pixels.rs`.

Usage: python tools/make_parity_fixtures.py [OUT_DIR]   (default tests/fixtures/generated/parity)

Everything is generated locally and deterministically (fixed seeds, images bundled with
scikit-image; nothing is downloaded). For every input file it records what Pillow gives:

* `Image.open(p).convert('RGB')` as raw packed RGB (`<name>.rgb`), or that Pillow raises;
* for a list of target sizes, `img.resize((w, h), Image.BILINEAR)` of that RGB image;
* for EXIF cases, `ImageOps.exif_transpose(Image.open(p)).convert('RGB')`.

`manifest.json` lists every case. Raw files are uint8 RGB, row-major, no header.
"""

import io
import json
import os
import shutil
import struct
import sys
import time
import zlib

import numpy as np
import PIL
from PIL import Image, ImageOps

T0 = time.time()
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "generated", "parity")
RNG = np.random.default_rng(20240613)

if os.path.isdir(OUT):
    shutil.rmtree(OUT)
os.makedirs(os.path.join(OUT, "inputs"))
os.makedirs(os.path.join(OUT, "ref"))

CASES = []
TOTAL_BYTES = 0


def vertical_first_13(in_w, in_h, out_w, out_h):
    dh, dw = in_h - out_h, in_w - out_w
    return dh > 0 and dh > 2 * dw


def write(rel, data):
    global TOTAL_BYTES
    with open(os.path.join(OUT, rel), "wb") as f:
        f.write(data)
    TOTAL_BYTES += len(data)


def default_targets(w, h):
    """Resize targets for an input of size w x h (PIL order)."""
    if w * h > 120_000:  # large inputs: fewer, mostly downscaling targets (keeps the set small)
        return [(224, 224), (max(1, w // 3), max(1, h // 3)), (max(1, w // 4), h), (w, max(1, h // 5)), (1, 1)]
    t = [(224, 224)]
    if w * h <= 100 * 100:
        t += [(max(1, w * 2 + 1), max(1, h * 2 - 1))]
    t.append((w + 3, h))
    t += [(max(1, w // 3), max(1, h // 3)), (w, max(1, h // 2)), (max(1, w // 2), h), (1, 1)]
    if w > 2:
        t.append((w - 1, h + 1))
    out = []
    for s in t:
        if s not in out:
            out.append(s)
    return out


def add_case(name, data, ext, targets=None, exif_transpose=False, note=""):
    """Write an input file and Pillow's references for it."""
    rel_in = f"inputs/{name}.{ext}"
    write(rel_in, data)
    case = {"name": name, "file": rel_in, "note": note, "exif_transpose": exif_transpose}
    try:
        with Image.open(io.BytesIO(data)) as im:
            case["pil_mode"] = im.mode
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            rgb = im.convert("RGB")
    except Exception as e:  # Pillow refuses it: so must we.
        case["expect"] = "error"
        case["pil_error"] = f"{type(e).__name__}: {e}"
        CASES.append(case)
        return None
    case["expect"] = "ok"
    w, h = rgb.size
    case["width"], case["height"] = w, h
    rel_rgb = f"ref/{name}.rgb"
    write(rel_rgb, rgb.tobytes())
    case["rgb"] = rel_rgb
    case["resizes"] = []
    if targets is None:
        targets = default_targets(w, h)
    for tw, th in targets:
        out = rgb.resize((tw, th), Image.BILINEAR)
        rel = f"ref/{name}__{tw}x{th}.rgb"
        write(rel, out.tobytes())
        case["resizes"].append(
            {"width": tw, "height": th, "ref": rel, "vertical_first": vertical_first_13(w, h, tw, th)}
        )
    CASES.append(case)
    return rgb


def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


# ------------------------------------------------------------------------------------------
# Source content

def noise(w, h, mode="RGB"):
    c = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    a = RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    return Image.fromarray(a[:, :, 0] if c == 1 else a, mode)


def smooth(w, h, seed=0):
    """Smooth colourful content with edges: JPEG-friendly and resample-sensitive."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / (7.0 + seed) + y / 13.0)
    g = 127.5 + 127.5 * np.cos(np.hypot(x - w / 3, y - h / 2) / (9.0 + seed))
    b = np.where(((x // 16 + y // 16) % 2) == 0, 230.0, 25.0)
    a = np.stack([r, g, b], -1)
    a += RNG.normal(0, 6, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def photos():
    import skimage.data as d

    out = {}
    for n in ["chelsea", "coffee", "rocket", "astronaut"]:
        try:
            out[n] = Image.fromarray(getattr(d, n)()).convert("RGB")
        except Exception as e:  # pragma: no cover - depends on the skimage install
            print(f"warning: skimage.data.{n} unavailable: {e}", file=sys.stderr)
    for n in ["camera", "coins"]:
        try:
            out[n] = Image.fromarray(getattr(d, n)()).convert("L")
        except Exception as e:
            print(f"warning: skimage.data.{n} unavailable: {e}", file=sys.stderr)
    return out


PH = photos()
big_src = PH["astronaut"] if "astronaut" in PH else smooth(512, 512)
coffee = PH["coffee"] if "coffee" in PH else smooth(600, 400, 1)

# ------------------------------------------------------------------------------------------
# JPEG

def jpeg(img, **kw):
    return save(img, "JPEG", **kw)


for n, im in PH.items():
    for q in {"chelsea": [95, 75, 40], "astronaut": [90, 50], "rocket": [92]}.get(n, [85]):
        add_case(f"photo_{n}_q{q}", jpeg(im, quality=q), "jpg", note="skimage photo re-encoded",
                 targets=None if q in (95, 92, 90, 85) else [(224, 224)])

# Natural content at typical camera/phone sizes (upsampled photo, then JPEG).
hd = coffee.resize((1920, 1080), Image.LANCZOS)
add_case("photo_1920x1080_q90", jpeg(hd, quality=90), "jpg",
         targets=[(224, 224), (256, 256), (640, 360), (1920, 97), (101, 1080)])
portrait = big_src.resize((720, 1280), Image.LANCZOS)
add_case("photo_720x1280_q90", jpeg(portrait, quality=90), "jpg",
         targets=[(224, 224), (256, 288), (720, 224), (360, 640)])
add_case("photo_333x517_q85", jpeg(big_src.resize((333, 517), Image.LANCZOS), quality=85), "jpg")
big = coffee.resize((2050, 640), Image.BICUBIC)
add_case("photo_2050x640_q80_progressive", jpeg(big, quality=80, progressive=True), "jpg",
         targets=[(224, 224), (683, 213), (288, 288), (2050, 61), (59, 640)])

base = smooth(161, 97)
for ss, tag in [(0, "444"), (1, "422"), (2, "420")]:
    add_case(f"jpeg_{tag}_q90", jpeg(base, quality=90, subsampling=ss), "jpg")
    add_case(f"jpeg_{tag}_progressive", jpeg(base, quality=90, subsampling=ss, progressive=True), "jpg")
for q in [1, 10, 50, 100]:
    add_case(f"jpeg_quality_{q}", jpeg(base, quality=q), "jpg")
add_case("jpeg_restart_blocks", jpeg(base, quality=85, restart_marker_blocks=3), "jpg")
add_case("jpeg_restart_rows", jpeg(base, quality=85, restart_marker_rows=1, progressive=True), "jpg")
add_case("jpeg_optimize", jpeg(base, quality=85, optimize=True), "jpg")
add_case("jpeg_gray", jpeg(base.convert("L"), quality=90), "jpg")
add_case("jpeg_gray_progressive", jpeg(PH.get("camera", base.convert("L")), quality=80, progressive=True), "jpg")
add_case("jpeg_cmyk", jpeg(base.convert("CMYK"), quality=90), "jpg")
add_case("jpeg_cmyk_photo", jpeg(coffee.convert("CMYK"), quality=80), "jpg")
add_case("jpeg_cmyk_progressive", jpeg(base.convert("CMYK"), quality=70, progressive=True), "jpg")
add_case("jpeg_noise_420", jpeg(noise(64, 48), quality=75), "jpg")

# Odd and tiny sizes, extreme aspect ratios.
for w, h in [(1, 1), (1, 17), (17, 1), (2, 2), (3, 5), (7, 3), (15, 17), (33, 31), (1, 600), (600, 1),
             (1000, 7), (9, 900), (2049, 3)]:
    for ss, tag in [(2, "420"), (1, "422")]:
        img = smooth(w, h, 2)
        add_case(f"jpeg_{w}x{h}_{tag}", jpeg(img, quality=88, subsampling=ss), "jpg",
                 targets=[t for t in [(1, 1), (224, 224) if tag == "420" else (5, 4), (max(1, w // 2), max(1, h // 2)), (w * 3, h), (w, h * 2 + 1)]
                          if t[0] * t[1] <= 3_000_000])

# Errors and oddities: truncated files, missing EOI, trailing junk.
good = jpeg(base, quality=85)
for cut in [2, 20, 200, len(good) // 2, len(good) - 50, len(good) - 2]:
    add_case(f"jpeg_truncated_{cut}", good[:cut], "jpg")
prog = jpeg(base, quality=85, progressive=True)
add_case("jpeg_progressive_truncated_half", prog[: len(prog) // 2], "jpg")
add_case("jpeg_progressive_no_eoi", prog[:-2], "jpg")
add_case("jpeg_trailing_junk", good + b"\x00garbage" * 10, "jpg")

# EXIF orientation: all values, with and without transposing.
ex_src = smooth(40, 24, 3)
for o in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = o
    data = jpeg(ex_src, quality=90, exif=exif.tobytes())
    add_case(f"jpeg_exif_orient{o}", data, "jpg", targets=[(20, 30)])
    add_case(f"jpeg_exif_orient{o}_transposed", data, "jpg", exif_transpose=True,
             targets=[(224, 224) if o in (1, 6) else (33, 21), (20, 30)])

# ------------------------------------------------------------------------------------------
# PNG (Pillow's writer where it can, a hand-written one for 16-bit colour and odd layouts)

def png_raw(w, h, color_type, bit_depth, rows, plte=None, trns=None, interlace=False):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    assert not interlace
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    return out


def png16(w, h, channels, color_type):
    a = RNG.integers(0, 65536, size=(h, w, channels), dtype=np.uint16)
    a[: h // 2, : w // 2, 0] = np.arange(w // 2, dtype=np.uint16)[None, :] * 3  # small values
    rows = [a[y].astype(">u2").tobytes() for y in range(h)]
    return png_raw(w, h, color_type, 16, rows)


add_case("png_rgb8", save(smooth(97, 61), "PNG"), "png")
add_case("png_rgba8", save(noise(45, 33, "RGBA"), "PNG"), "png")
add_case("png_l8", save(PH.get("coins", noise(50, 40, "L")), "PNG"), "png")
add_case("png_la8", save(noise(31, 29, "LA"), "PNG"), "png")
add_case("png_p", save(smooth(80, 50).convert("P", palette=Image.ADAPTIVE, colors=60), "PNG"), "png")
pt = smooth(40, 30).convert("P", palette=Image.ADAPTIVE, colors=16)
add_case("png_p_trns", save(pt, "PNG", transparency=3), "png")
add_case("png_1bit", save(noise(37, 21, "L").point(lambda v: 255 if v > 127 else 0).convert("1"), "PNG"), "png")
i16 = RNG.integers(0, 65536, size=(37, 53), dtype=np.uint16)
i16[:10, :] = np.arange(53, dtype=np.uint16)[None, :] * 6  # values around the 255 clamp
add_case("png_gray16", save(Image.fromarray(i16), "PNG"), "png")
add_case("png_gray16_raw", png16(29, 23, 1, 0), "png")
add_case("png_gray_alpha16", png16(29, 23, 2, 4), "png")
add_case("png_rgb16", png16(41, 27, 3, 2), "png")
add_case("png_rgba16", png16(41, 27, 4, 6), "png")
for bd in [2, 4]:
    maxv = (1 << bd) - 1
    vals = RNG.integers(0, maxv + 1, size=(19, 24), dtype=np.uint8)
    rows = []
    for y in range(19):
        bits = 0
        nb = 0
        row = bytearray()
        for v in vals[y]:
            bits = (bits << bd) | int(v)
            nb += bd
            if nb == 8:
                row.append(bits)
                bits = nb = 0
        if nb:
            row.append(bits << (8 - nb))
        rows.append(bytes(row))
    add_case(f"png_gray{bd}bit", png_raw(24, 19, 0, bd, rows), "png")
pal = bytes(RNG.integers(0, 256, size=48, dtype=np.uint8))
pidx = RNG.integers(0, 16, size=(13, 22), dtype=np.uint8)
add_case("png_p4bit_trns", png_raw(22, 13, 3, 8, [bytes(r) for r in pidx], plte=pal, trns=bytes([0, 128, 255])), "png")
add_case("png_gray_trns", png_raw(22, 13, 0, 8, [bytes(r * 15) for r in pidx], trns=b"\x00\x2d"), "png")
gpng = save(smooth(97, 61), "PNG")
for cut in [8, 40, len(gpng) // 2, len(gpng) - 12]:
    add_case(f"png_truncated_{cut}", gpng[:cut], "png")

exif = Image.Exif()
exif[0x0112] = 6
pe = save(smooth(30, 20), "PNG", exif=exif.tobytes())
add_case("png_exif_orient6", pe, "png", targets=[(224, 224)])
add_case("png_exif_orient6_transposed", pe, "png", exif_transpose=True, targets=[(224, 224)])

# ------------------------------------------------------------------------------------------
# BMP, WebP, GIF, TIFF

add_case("bmp_rgb", save(smooth(63, 47), "BMP"), "bmp")
add_case("bmp_rgb_photo", save(PH.get("chelsea", smooth(451, 300)), "BMP"), "bmp")
add_case("bmp_l", save(noise(21, 19, "L"), "BMP"), "bmp")
add_case("bmp_p", save(smooth(30, 20).convert("P", palette=Image.ADAPTIVE, colors=100), "BMP"), "bmp")
add_case("bmp_1bit", save(noise(33, 9, "L").convert("1"), "BMP"), "bmp")
add_case("bmp_rgba", save(noise(17, 13, "RGBA"), "BMP"), "bmp")

add_case("webp_lossless", save(smooth(83, 59), "WEBP", lossless=True), "webp")
add_case("webp_lossless_rgba", save(noise(33, 21, "RGBA"), "WEBP", lossless=True, exact=True), "webp")
add_case("webp_lossy_q80", save(smooth(83, 59), "WEBP", quality=80), "webp")
add_case("webp_lossy_photo", save(PH.get("chelsea", smooth(451, 300)), "WEBP", quality=75), "webp")
add_case("webp_lossy_rgba", save(smooth(64, 48).convert("RGBA"), "WEBP", quality=70), "webp")

add_case("gif_p", save(smooth(71, 43).convert("P", palette=Image.ADAPTIVE, colors=200), "GIF"), "gif")
add_case("gif_l", save(noise(30, 20, "L"), "GIF"), "gif")
add_case("gif_trns", save(smooth(40, 30).convert("P", palette=Image.ADAPTIVE, colors=32), "GIF", transparency=5), "gif")

add_case("tiff_rgb", save(smooth(45, 35), "TIFF"), "tif")
add_case("tiff_rgb_lzw", save(smooth(45, 35), "TIFF", compression="tiff_lzw"), "tif")

# ------------------------------------------------------------------------------------------
# Resampling sweep: lossless random content, many size pairs (including the exact boundary of
# Pillow 13's vertical-first condition, dh == 2*dw and dh == 2*dw + 1).

sweep = []
for _ in range(70):
    iw, ih = int(RNG.integers(1, 160)), int(RNG.integers(1, 160))
    ow, oh = int(RNG.integers(1, 200)), int(RNG.integers(1, 200))
    sweep.append((iw, ih, ow, oh))
for iw, ih, ow, oh in [(101, 159, 81, 119), (103, 161, 83, 121), (101, 161, 81, 120), (101, 159, 81, 120), (51, 250, 61, 10),
                       (10, 200, 10, 20), (333, 517, 224, 224), (300, 300, 299, 10),
                       (120, 400, 200, 399), (64, 64, 1, 63), (5, 1000, 3, 7)]:
    sweep.append((iw, ih, ow, oh))
groups = {}
for iw, ih, ow, oh in sweep:
    groups.setdefault((iw, ih), []).append((ow, oh))
for (iw, ih), targets in groups.items():
    # Odd pixel counts get noise (where the two pass orders disagree most), even ones smooth content.
    content = noise(iw, ih) if (iw * ih) % 2 else smooth(iw, ih, 1)
    add_case(f"resize_{iw}x{ih}", save(content, "PNG", compress_level=1), "png",
             targets=targets)

# ------------------------------------------------------------------------------------------

manifest = {
    "generator": "tools/make_parity_fixtures.py",
    "pillow": PIL.__version__,
    "numpy": np.__version__,
    "format": "raw packed RGB uint8, row-major; paths relative to this file",
    "cases": CASES,
}
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)

n_ok = sum(c["expect"] == "ok" for c in CASES)
n_rs = sum(len(c.get("resizes", [])) for c in CASES)
print(f"{len(CASES)} cases ({n_ok} decodable, {len(CASES) - n_ok} Pillow errors), {n_rs} resize references, "
      f"{TOTAL_BYTES / 1e6:.1f} MB in {OUT}, {time.time() - T0:.1f} s")
