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

from bmp_writer import bmp_file  # noqa: E402 - tools/ is on the path when run

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
    assert all(c["name"] != name for c in CASES), f"duplicate case name {name}"
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

def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def pack_row(samples, bd):
    """One row of integer samples (already interleaved) packed at bit depth bd, big-endian."""
    if bd == 16:
        return np.asarray(samples, dtype=">u2").tobytes()
    if bd == 8:
        return np.asarray(samples, dtype=np.uint8).tobytes()
    out, bits, nb = bytearray(), 0, 0
    for v in samples:
        bits, nb = (bits << bd) | int(v), nb + bd
        if nb == 8:
            out.append(bits)
            bits = nb = 0
    if nb:
        out.append(bits << (8 - nb))
    return bytes(out)


def png_file(w, h, color_type, bd, raw, interlace=False, plte=None, trns=None, level=6, idat_size=None,
             after_idat=b""):
    """A PNG around `raw` (filtered scanlines): IHDR, PLTE, tRNS, IDAT (split into `idat_size`
    chunks if given, as streaming encoders do), `after_idat` chunks, IEND."""
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bd, color_type, 0, 0, int(interlace)))
    if plte is not None:
        out += png_chunk(b"PLTE", plte)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    z = zlib.compress(bytes(raw), level)
    step = idat_size or max(1, len(z))
    for i in range(0, len(z), step):
        out += png_chunk(b"IDAT", z[i:i + step])
    return out + after_idat + png_chunk(b"IEND", b"")


def png_raw(w, h, color_type, bit_depth, rows, plte=None, trns=None):
    """A PNG of unfiltered rows of packed samples."""
    return png_file(w, h, color_type, bit_depth, b"".join(b"\x00" + r for r in rows), plte=plte, trns=trns)


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
    add_case(f"png_gray{bd}bit", png_raw(24, 19, 0, bd, [pack_row(vals[y], bd) for y in range(19)]), "png")
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
# Odd files that real writers produce and Pillow reads but cannot write: written by hand here,
# decoded by Pillow for the reference. (Interlaced PNG, eXIf after IDAT, BMP bit fields / RLE /
# V5 and OS/2 headers / top-down rows, GIF frames that do not cover the canvas, more TIFF and
# animated first frames.)

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_samples(a, color_type, bd, interlace, plte=None, trns=None, after_idat=b""):
    """A PNG from an (h, w, c) array of samples, Adam7-interlaced if asked, filter type cycling
    0..4 per row (the decoder must undo every filter), `after_idat` chunks before IEND."""
    h, w, c = a.shape
    bpp = max(1, c * bd // 8)
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    row_no = 0
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = None
        for y in range(sub.shape[0]):
            line = np.frombuffer(pack_row(sub[y].reshape(-1), bd), dtype=np.uint8).astype(np.int32)
            up = prev if prev is not None else np.zeros_like(line)
            left = np.concatenate([np.zeros(bpp, np.int32), line[:-bpp]])
            ul = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
            ft = row_no % 5
            row_no += 1
            if ft == 0:
                f = line
            elif ft == 1:
                f = line - left
            elif ft == 2:
                f = line - up
            elif ft == 3:
                # Average needs the reconstructed left byte, which is the raw line itself.
                f = line - (left + up) // 2
            else:
                p = left + up - ul
                pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
                pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
                f = line - pred
            raw += bytes([ft]) + (f & 0xFF).astype(np.uint8).tobytes()
            prev = line
    return png_file(w, h, color_type, bd, raw, interlace, plte, trns, level=9, idat_size=97, after_idat=after_idat)


def samples(h, w, c, bd):
    return RNG.integers(0, 1 << bd, size=(h, w, c), dtype=np.uint16 if bd == 16 else np.uint8)


for w, h in [(1, 1), (3, 2), (9, 9), (37, 21), (64, 40)]:
    add_case(f"png_adam7_rgb8_{w}x{h}", png_samples(samples(h, w, 3, 8), 2, 8, True), "png")
add_case("png_adam7_rgba16", png_samples(samples(19, 23, 4, 16), 6, 16, True), "png")
add_case("png_adam7_gray2", png_samples(samples(17, 29, 1, 2), 0, 2, True), "png")
add_case("png_adam7_gray16", png_samples(samples(17, 29, 1, 16), 0, 16, True), "png")
add_case("png_adam7_la8", png_samples(samples(17, 29, 2, 8), 4, 8, True), "png")
add_case("png_adam7_p4", png_samples(samples(21, 26, 1, 4), 3, 4, True,
                                     plte=bytes(RNG.integers(0, 256, 48, dtype=np.uint8)), trns=b"\x10\x80"), "png")
add_case("png_filters_rgb8", png_samples(samples(25, 31, 3, 8), 2, 8, False), "png")
add_case("png_filters_gray1", png_samples(samples(25, 31, 1, 1), 0, 1, False), "png")
add_case("png_rgb8_trns", png_samples(samples(12, 14, 3, 8), 2, 8, False, trns=b"\x00\x10\x00\x20\x00\x30"), "png")
add_case("png_p_short_plte", png_samples(RNG.integers(0, 4, (11, 13, 1), dtype=np.uint8), 3, 8, False,
                                         plte=bytes(RNG.integers(0, 256, 12, dtype=np.uint8))), "png")
exif6 = Image.Exif()
exif6[0x0112] = 6
late = png_chunk(b"eXIf", exif6.tobytes())
pl = png_samples(samples(14, 22, 3, 8), 2, 8, False, after_idat=late)
add_case("png_exif_after_idat", pl, "png", targets=[(224, 224)])
add_case("png_exif_after_idat_transposed", pl, "png", exif_transpose=True, targets=[(224, 224)])


# Camera and web oddities: an MPO (a JPEG followed by a second image; Pillow shows the first),
# bytes after the end of a PNG (after a JPEG: jpeg_trailing_junk above).
mpo_frames = [smooth(40, 30, 6), smooth(40, 30, 7)]
add_case("mpo_two_frames", save(mpo_frames[0], "MPO", save_all=True, append_images=mpo_frames[1:], quality=90), "jpg")
junk = bytes(RNG.integers(0, 256, 777, dtype=np.uint8))
add_case("png_trailing_junk", save(smooth(41, 29, 9), "PNG") + junk, "png")


def bmp_palette(n, entry=4):
    p = RNG.integers(0, 256, size=(n, 3), dtype=np.uint8)
    return b"".join(bytes(c) + (b"\0" if entry == 4 else b"") for c in p)


px16 = RNG.integers(0, 65536, size=(13, 19), dtype=np.uint16)
rows16 = [px16[y].astype("<u2").tobytes() for y in range(13)]
add_case("bmp_rgb555", bmp_file(19, 13, 16, rows16), "bmp")
add_case("bmp_rgb565_bitfields", bmp_file(19, 13, 16, rows16, compression=3, masks=(0xF800, 0x07E0, 0x001F)), "bmp")
add_case("bmp_rgb555_bitfields", bmp_file(19, 13, 16, rows16, compression=3, masks=(0x7C00, 0x03E0, 0x001F)), "bmp")
px32 = RNG.integers(0, 256, size=(11, 15, 4), dtype=np.uint8)
rows32 = [px32[y].tobytes() for y in range(11)]
add_case("bmp_bgrx32_rgb", bmp_file(15, 11, 32, rows32), "bmp")
add_case("bmp_bgrx32_bitfields", bmp_file(15, 11, 32, rows32, compression=3, masks=(0xFF0000, 0xFF00, 0xFF)), "bmp")
add_case("bmp_bgra32_v5", bmp_file(15, 11, 32, rows32, compression=3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), header=124), "bmp")
px24 = RNG.integers(0, 256, size=(9, 14, 3), dtype=np.uint8)
rows24 = [px24[y].tobytes() for y in range(9)]
add_case("bmp_rgb24_v4", bmp_file(14, 9, 24, rows24, header=108), "bmp")
add_case("bmp_rgb24_v5", bmp_file(14, 9, 24, rows24, header=124), "bmp")
add_case("bmp_rgb24_topdown", bmp_file(14, 9, 24, rows24, top_down=True), "bmp")
add_case("bmp_rgb24_os2", bmp_file(14, 9, 24, rows24, header=12), "bmp")
idx8 = RNG.integers(0, 20, size=(10, 13), dtype=np.uint8)
add_case("bmp_p8_clrused", bmp_file(13, 10, 8, [idx8[y].tobytes() for y in range(10)], palette=bmp_palette(20), clr_used=20), "bmp")
add_case("bmp_p8_os2", bmp_file(13, 10, 8, [idx8[y].tobytes() for y in range(10)], palette=bmp_palette(256, 3), header=12), "bmp")
idx4 = RNG.integers(0, 10, size=(10, 13), dtype=np.uint8)
add_case("bmp_p4", bmp_file(13, 10, 4, [pack_row(idx4[y], 4) for y in range(10)], palette=bmp_palette(10), clr_used=10), "bmp")
# Pillow quirks with all-gray palettes: an 8-bit file with a black & white palette is read
# as 1 bit per pixel from each row; a 4-bit file with the gray ramp 0..15 is refused.
add_case("bmp_p8_bw_palette", bmp_file(29, 6, 8, [bytes(RNG.integers(0, 256, 29, dtype=np.uint8)) for _ in range(6)],
                                       palette=b"\0\0\0\0\xff\xff\xff\0", clr_used=2), "bmp")
add_case("bmp_p4_gray_ramp", bmp_file(13, 10, 4, [pack_row(idx4[y], 4) for y in range(10)],
                                      palette=b"".join(bytes([i, i, i, 0]) for i in range(16)), clr_used=16), "bmp")
add_case("bmp_p1_colour", bmp_file(21, 7, 1, [pack_row(RNG.integers(0, 2, 21), 1) for _ in range(7)], palette=bmp_palette(2)), "bmp")


def rle8(rows_bottom_up):
    """RLE8: runs, absolute runs, end-of-line, a delta, end-of-bitmap."""
    out = bytearray()
    for y, r in enumerate(rows_bottom_up):
        r = list(r)
        i = 0
        while i < len(r):
            j = i
            while j < len(r) and r[j] == r[i] and j - i < 255:
                j += 1
            if j - i >= 3:
                out += bytes([j - i, r[i]])
                i = j
            else:
                k = min(len(r), i + 5)
                seg = r[i:k]
                if len(seg) >= 3:
                    out += bytes([0, len(seg)]) + bytes(seg) + (b"\0" if len(seg) % 2 else b"")
                else:
                    out += b"".join(bytes([1, v]) for v in seg)
                i = k
        out += b"\x00\x00"
    return bytes(out) + b"\x00\x01"


w8, h8 = 23, 12
runs8 = np.repeat(RNG.integers(0, 30, size=(h8, 8), dtype=np.uint8), 3, axis=1)[:, :w8].copy()
runs8[:, 5:9] = RNG.integers(0, 30, size=(h8, 4), dtype=np.uint8)
add_case("bmp_rle8", bmp_file(w8, h8, 8, None, compression=1, palette=bmp_palette(30), clr_used=30,
                              pixel_data=rle8(list(runs8[::-1]))), "bmp")
# Pixels at an odd file offset: absolute runs are padded to an even *file* position.
add_case("bmp_rle8_odd_offset", bmp_file(w8, h8, 8, None, compression=1, palette=bmp_palette(30), clr_used=30,
                                         pixel_data=rle8(list(runs8[::-1])), gap=b"\0"), "bmp")
# RLE8 with an all-gray palette: Pillow makes it "1" (2 colours: any non-zero index is white) or
# "L" (indices are gray levels, also past the palette).
bw = b"\0\0\0\0\xff\xff\xff\0"
add_case("bmp_rle8_bw", bmp_file(w8, h8, 8, None, compression=1, palette=bw, clr_used=2,
                                 pixel_data=rle8(list(runs8[::-1]))), "bmp")
add_case("bmp_rle8_gray", bmp_file(w8, h8, 8, None, compression=1, clr_used=8,
                                   palette=b"".join(bytes([i, i, i, 0]) for i in range(8)),
                                   pixel_data=rle8(list(runs8[::-1]))), "bmp")
# A delta escape (3 right, 1 up): the skipped pixels are index 0 in Pillow.
delta = bytes([4, 7]) + b"\x00\x02\x03\x01" + bytes([16, 5]) + rle8(list(runs8[::-1][2:]))
add_case("bmp_rle8_delta", bmp_file(w8, h8, 8, None, compression=1, palette=bmp_palette(30), clr_used=30,
                                    pixel_data=delta), "bmp")
# An end of bitmap before the last row: valid BMP, but Pillow raises ("not enough image data").
add_case("bmp_rle8_early_end", bmp_file(w8, h8, 8, None, compression=1, palette=bmp_palette(30), clr_used=30,
                                        pixel_data=rle8(list(runs8[::-1][:5]))), "bmp")
# RLE4: runs alternate two nibbles; absolute runs pack two per byte.
rle4 = bytearray()
for y in range(8):
    rle4 += bytes([6, 0x12 + y, 0, 5, 0x34, 0x56, 0x70, 0, 4, 0x9A]) + b"\x00\x00"
rle4 += b"\x00\x01"
add_case("bmp_rle4", bmp_file(15, 8, 4, None, compression=2, palette=bmp_palette(16), clr_used=16,
                              pixel_data=bytes(rle4)), "bmp")


def gif_patch_first_frame(data, screen, offset):
    """Enlarges a Pillow-written GIF's logical screen and moves its first frame, so the frame
    covers only part of the canvas."""
    b = bytearray(data)
    flags = b[10]
    i = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    while b[i] == 0x21:  # skip extensions
        i += 2
        while b[i]:
            i += b[i] + 1
        i += 1
    assert b[i] == 0x2C
    struct.pack_into("<HH", b, 6, *screen)
    struct.pack_into("<HH", b, i + 1, *offset)
    return bytes(b)


gp = smooth(21, 13).convert("P", palette=Image.ADAPTIVE, colors=40)
add_case("gif_frame_inside_canvas", gif_patch_first_frame(save(gp, "GIF"), (40, 30), (7, 5)), "gif")
add_case("gif_frame_inside_canvas_bg", gif_patch_first_frame(save(gp, "GIF", background=9), (40, 30), (7, 5)), "gif")
add_case("gif_frame_inside_canvas_trns", gif_patch_first_frame(save(gp, "GIF", transparency=3), (40, 30), (7, 5)), "gif")
def gif_drop_global_table(data):
    flags = data[10]
    return data[:10] + bytes([flags & 0x78]) + data[11:13] + data[13 + 3 * 2 ** ((flags & 7) + 1):]


add_case("gif_no_colour_table", gif_drop_global_table(save(gp, "GIF")), "gif")
add_case("gif_frame_sticks_out", gif_patch_first_frame(save(gp, "GIF"), (15, 10), (3, 2)), "gif")
add_case("gif_interlaced", save(smooth(33, 40).convert("P", palette=Image.ADAPTIVE, colors=64), "GIF", interlace=True), "gif")
frames = [smooth(30, 20, s).convert("P", palette=Image.ADAPTIVE, colors=50) for s in range(3)]
add_case("gif_animated", save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0), "gif")
add_case("webp_animated", save(smooth(30, 20), "WEBP", save_all=True, append_images=[smooth(30, 20, 2)], lossless=True), "webp")

# Truncations: Pillow raises for most, but not all (a GIF without its trailer, a BMP whose
# last row lacks its padding): we must agree either way.
gcut = save(smooth(33, 40).convert("P", palette=Image.ADAPTIVE, colors=64), "GIF")
for cut in [12, 200, 800, len(gcut) // 2, len(gcut) - 3, len(gcut) - 1]:
    add_case(f"gif_truncated_{cut}", gcut[:cut], "gif")
bcut = bmp_file(14, 9, 24, rows24)
for cut in [20, 60, len(bcut) // 2, len(bcut) - 2]:
    add_case(f"bmp_truncated_{cut}", bcut[:cut], "bmp")
pcut = bmp_file(13, 10, 8, [idx8[y].tobytes() for y in range(10)], palette=bmp_palette(20), clr_used=20)
add_case("bmp_p8_truncated_palette", pcut[:54 + 30], "bmp")
# Sweeps of cut points through small files (every 5th byte), with one resize target each.
sweeps = {
    "gif": save(smooth(19, 23).convert("P", palette=Image.ADAPTIVE, colors=20), "GIF"),
    "gifi": save(noise(17, 21, "L").convert("P", palette=Image.ADAPTIVE, colors=128), "GIF", interlace=True),
    "rle8": bmp_file(w8, h8, 8, None, compression=1, palette=bmp_palette(30), clr_used=30,
                     pixel_data=rle8(list(runs8[::-1]))),
}
for tag, full in sweeps.items():
    for cut in range(11, len(full), 5):
        add_case(f"cut_{tag}_{cut}", full[:cut], "gif" if tag.startswith("gif") else "bmp", targets=[(7, 5)])

add_case("tiff_l", save(noise(23, 17, "L"), "TIFF"), "tif")
add_case("tiff_1bit", save(noise(23, 17, "L").convert("1"), "TIFF"), "tif")
add_case("tiff_p", save(smooth(23, 17).convert("P", palette=Image.ADAPTIVE, colors=30), "TIFF"), "tif")
add_case("tiff_rgba", save(noise(23, 17, "RGBA"), "TIFF"), "tif")
add_case("tiff_cmyk", save(Image.fromarray(RNG.integers(0, 256, (17, 23, 4), dtype=np.uint8), "CMYK"), "TIFF"), "tif")
add_case("tiff_i16", save(Image.fromarray(RNG.integers(0, 1024, (17, 23), dtype=np.uint16)), "TIFF"), "tif")
add_case("tiff_deflate", save(smooth(45, 35), "TIFF", compression="tiff_adobe_deflate"), "tif")
add_case("tiff_packbits", save(smooth(45, 35), "TIFF", compression="packbits"), "tif")
add_case("tiff_jpeg", save(smooth(48, 32), "TIFF", compression="jpeg", quality=90), "tif")
add_case("tiff_jpeg_strips", save(smooth(50, 37, 3), "TIFF", compression="jpeg", quality=80, tiffinfo={278: 8}), "tif")
add_case("tiff_jpeg_ycbcr", save(smooth(50, 37, 4).convert("YCbCr"), "TIFF", compression="jpeg", quality=85), "tif")
add_case("tiff_jpeg_gray", save(smooth(50, 37, 5).convert("L"), "TIFF", compression="jpeg", quality=85), "tif")
add_case("tiff_multipage", save(smooth(20, 14), "TIFF", save_all=True, append_images=[noise(9, 9)]), "tif")

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
