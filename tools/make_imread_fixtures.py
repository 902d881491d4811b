#!/usr/bin/env python3
"""Generate the fixtures for the judge's decode (`tests/imread.rs`): image files and what
`cv2.imread(path)` (OpenCV's default flag, IMREAD_COLOR) gives for each.

Usage: python tools/make_imread_fixtures.py [OUT_DIR]   (default tests/fixtures/generated/imread)

The platform's test tools read every image with `cv::imread(path)` and hand the BGR frame to
libji.so; `harness` emulates that decode in Rust (src/decode/imread.rs) without linking
OpenCV. The reference is opencv-python-headless, pinned in tools/requirements.txt. Everything
is generated locally and deterministically (fixed seeds, the photos scikit-image ships), and
covers what differs from PIL's `Image.open(p).convert('RGB')`: EXIF orientations (JPEG, PNG,
WebP), CMYK JPEGs (Adobe-inverted and plain), 16-bit PNGs, BMP layouts OpenCV reads its own
way, truncated files OpenCV accepts; and what must not differ (every JPEG kind, PNG colour
types, WebP with alpha, the photos as shipped).

Per case the manifest records the cv2 result (`expect` "ok" with `width`, `height` and `bgr`, a
raw packed BGR file, or "error" when imread returns an empty image), the format, and how PIL's
decode compares (`pil`: "same", "differs" or "error"). GIF and TIFF files are listed with
`emulated: false`: the harness decodes them as PIL does and says so.
"""

import io
import json
import os
import shutil
import struct
import sys
import time
import zlib

os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # refusals are recorded, not printed
import cv2
import numpy as np
from PIL import Image

from bmp_writer import bmp_file  # noqa: E402 - tools/ is on the path when run

T0 = time.time()
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "generated", "imread")
RNG = np.random.default_rng(20261203)

if os.path.isdir(OUT):
    shutil.rmtree(OUT)
os.makedirs(os.path.join(OUT, "inputs"))
os.makedirs(os.path.join(OUT, "ref"))

CASES = []


def add(name, data, ext, emulated=True, note=""):
    """Writes an input file and cv2.imread's result for it."""
    assert all(c["name"] != name for c in CASES), f"duplicate case {name}"
    rel = f"inputs/{name}.{ext}"
    path = os.path.join(OUT, rel)
    with open(path, "wb") as f:
        f.write(data)
    case = {"name": name, "file": rel, "format": ext, "emulated": emulated, "note": note}
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    try:
        with Image.open(path) as im:
            pil = np.asarray(im.convert("RGB"))[:, :, ::-1]
    except Exception:  # noqa: BLE001 - Pillow refuses it
        pil = None
    if bgr is None:
        case["expect"] = "error"
    else:
        assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3, bgr.shape
        case["expect"] = "ok"
        case["height"], case["width"] = bgr.shape[:2]
        case["bgr"] = f"ref/{name}.bgr"
        with open(os.path.join(OUT, case["bgr"]), "wb") as f:
            f.write(np.ascontiguousarray(bgr).tobytes())
    if pil is None:
        case["pil"] = "error"
    elif bgr is not None and pil.shape == bgr.shape and np.array_equal(pil, bgr):
        case["pil"] = "same"
    else:
        case["pil"] = "differs"
    CASES.append(case)


def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def smooth(w, h, seed=0):
    """Smooth colourful content with edges and noise (JPEG-friendly, asymmetric)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / (7.0 + seed) + y / 13.0)
    g = 127.5 + 127.5 * np.cos(np.hypot(x - w / 3, y - h / 4) / (9.0 + seed))
    b = np.where(((x // 8 + y // 16) % 2) == 0, 230.0, 25.0)
    a = np.stack([r, g, b], -1) + RNG.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def noise(w, h, mode="RGB"):
    c = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    a = RNG.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    return Image.fromarray(a[:, :, 0] if c == 1 else a, mode)


def exif_tiff(orientation, big_endian=False):
    """A minimal EXIF block: TIFF header + IFD0 with the Orientation SHORT, no "Exif" prefix."""
    e = ">" if big_endian else "<"
    return ((b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
            + struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
            + struct.pack(e + "I", 0))


def exif_bytes(orientation, big_endian=False):
    """The payload of a JPEG APP1 segment (and what Pillow's `exif=` takes)."""
    return b"Exif\x00\x00" + exif_tiff(orientation, big_endian)


SKDATA = None
try:
    import skimage
    SKDATA = os.path.join(os.path.dirname(skimage.__file__), "data")
except ImportError:  # pragma: no cover - scikit-image is in tools/requirements.txt
    print("warning: scikit-image missing: no real photos", file=sys.stderr)


def shipped(name):
    p = os.path.join(SKDATA, name) if SKDATA else None
    if p and os.path.isfile(p):
        with open(p, "rb") as f:
            return f.read()
    print(f"warning: skimage/data/{name} missing", file=sys.stderr)
    return None


def photo(name, fallback):
    data = shipped(name)
    return Image.open(io.BytesIO(data)).convert("RGB") if data else fallback


CHELSEA = photo("chelsea.png", smooth(451, 300))
COFFEE = photo("coffee.png", smooth(600, 400, 1))

# ------------------------------------------------------------------------------------------
# Real photos, as scikit-image ships them (JPEG and PNG as they are).

for n in ["rocket.jpg", "hubble_deep_field.jpg", "retina.jpg", "chelsea.png", "coffee.png",
          "astronaut.png", "motorcycle_left.png", "color.png", "logo.png", "camera.png"]:
    data = shipped(n)
    if data:
        stem, ext = os.path.splitext(n)
        add(f"photo_{stem}", data, ext[1:], note="scikit-image's file as shipped")

# ------------------------------------------------------------------------------------------
# JPEG: identical to PIL except EXIF orientation and CMYK.

def jpeg(img, **kw):
    return save(img, "JPEG", **kw)


base = smooth(161, 97)
for ss, tag in [(0, "444"), (1, "422"), (2, "420")]:
    add(f"jpeg_{tag}", jpeg(base, quality=90, subsampling=ss), "jpg")
    add(f"jpeg_{tag}_progressive", jpeg(base, quality=90, subsampling=ss, progressive=True), "jpg")
add("jpeg_restart", jpeg(base, quality=85, restart_marker_blocks=3), "jpg")
add("jpeg_gray", jpeg(base.convert("L"), quality=90), "jpg")
add("jpeg_gray_progressive", jpeg(base.convert("L"), quality=80, progressive=True), "jpg")
for w, h in [(1, 1), (17, 3), (3, 17), (33, 31), (2049, 3)]:
    add(f"jpeg_{w}x{h}", jpeg(smooth(w, h, 2), quality=88), "jpg")
add("jpeg_photo_1920x1080", jpeg(COFFEE.resize((1920, 1080), Image.LANCZOS), quality=90), "jpg")
add("jpeg_mpo", save(smooth(40, 30, 6), "MPO", save_all=True, append_images=[smooth(40, 30, 7)]), "jpg")
good = jpeg(base, quality=85)
add("jpeg_trailing_junk", good + b"\x00junk" * 9, "jpg")
# Cut files: libjpeg warns and fills the rest; OpenCV keeps the image, PIL refuses it.
for cut in [len(good) // 3, len(good) // 2, len(good) - 2]:
    add(f"jpeg_truncated_{cut}", good[:cut], "jpg")
prog = jpeg(base, quality=85, progressive=True)
add("jpeg_progressive_truncated", prog[: len(prog) // 2], "jpg")
add("jpeg_truncated_header", good[:200], "jpg")

# EXIF orientation: all eight, on a wide image (the rotated ones come out tall).
ex_src = smooth(40, 24, 3)
for o in range(1, 9):
    add(f"jpeg_exif_{o}", jpeg(ex_src, quality=90, exif=exif_bytes(o)), "jpg")
add("jpeg_exif_6_big_endian", jpeg(ex_src, quality=90, exif=exif_bytes(6, big_endian=True)), "jpg")
add("jpeg_exif_6_progressive", jpeg(ex_src, quality=90, progressive=True, exif=exif_bytes(6)), "jpg")
add("jpeg_exif_0", jpeg(ex_src, quality=90, exif=exif_bytes(0)), "jpg", note="invalid value: ignored")
add("jpeg_exif_9", jpeg(ex_src, quality=90, exif=exif_bytes(9)), "jpg", note="invalid value: ignored")
add("jpeg_photo_exif_6", jpeg(CHELSEA, quality=92, exif=exif_bytes(6)), "jpg",
    note="a phone photo taken upright")
add("jpeg_photo_exif_8", jpeg(COFFEE, quality=85, subsampling=1, exif=exif_bytes(8)), "jpg")
add("jpeg_gray_exif_3", jpeg(base.convert("L"), quality=90, exif=exif_bytes(3)), "jpg")


def strip_app14(data):
    """The JPEG without its Adobe (APP14) segment: plain, not inverted, CMYK."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xEE:
            return data[:i] + data[i + 2 + length:]
        if marker == 0xDA:
            break
        i += 2 + length
    raise AssertionError("no APP14 segment")


cmyk = Image.fromarray(RNG.integers(0, 256, (37, 53, 4), dtype=np.uint8), "CMYK")
add("jpeg_cmyk_adobe", jpeg(cmyk, quality=95), "jpg", note="Pillow writes Adobe-inverted CMYK")
add("jpeg_cmyk_plain", strip_app14(jpeg(cmyk, quality=95)), "jpg", note="no Adobe marker")
add("jpeg_cmyk_photo", jpeg(COFFEE.convert("CMYK"), quality=80), "jpg")
add("jpeg_cmyk_progressive", jpeg(base.convert("CMYK"), quality=70, progressive=True), "jpg")
add("jpeg_cmyk_exif_6", jpeg(base.convert("CMYK"), quality=90, exif=exif_bytes(6)), "jpg")

# ------------------------------------------------------------------------------------------
# PNG

def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png_raw(w, h, color_type, bd, rows, plte=None, trns=None, before_idat=b"", after_idat=b"",
            interlace=False):
    """A PNG of unfiltered rows of packed (big-endian) samples."""
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bd, color_type, 0, 0,
                                                                int(interlace)))
    if plte is not None:
        out += png_chunk(b"PLTE", plte)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += before_idat
    out += png_chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in rows)))
    return out + after_idat + png_chunk(b"IEND", b"")


def pack_row(samples, bd):
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


def png16(w, h, channels, color_type):
    a = RNG.integers(0, 65536, size=(h, w, channels), dtype=np.uint16)
    a[: h // 2, : w // 2, 0] = np.arange(w // 2, dtype=np.uint16)[None, :] * 3
    return png_raw(w, h, color_type, 16, [a[y].reshape(-1).astype(">u2").tobytes() for y in range(h)])


add("png_rgb8", save(smooth(97, 61), "PNG"), "png")
add("png_rgba8", save(noise(45, 33, "RGBA"), "PNG"), "png")
add("png_l8", save(noise(50, 40, "L"), "PNG"), "png")
add("png_la8", save(noise(31, 29, "LA"), "PNG"), "png")
add("png_palette", save(smooth(80, 50).convert("P", palette=Image.ADAPTIVE, colors=60), "PNG"), "png")
add("png_palette_trns", save(smooth(40, 30).convert("P", palette=Image.ADAPTIVE, colors=16), "PNG",
                             transparency=3), "png")
add("png_1bit", save(noise(37, 21, "L").point(lambda v: 255 if v > 127 else 0).convert("1"), "PNG"), "png")
for bd in [2, 4]:
    vals = RNG.integers(0, 1 << bd, size=(19, 24), dtype=np.uint8)
    add(f"png_gray{bd}bit", png_raw(24, 19, 0, bd, [pack_row(vals[y], bd) for y in range(19)]), "png")
add("png_gray16", png16(29, 23, 1, 0), "png", note="OpenCV keeps the high byte, PIL clamps to 255")
add("png_gray_alpha16", png16(29, 23, 2, 4), "png")
add("png_rgb16", png16(41, 27, 3, 2), "png")
add("png_rgba16", png16(41, 27, 4, 6), "png")
g16 = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
add("png_gray16_ramp", png_raw(32, 32, 0, 16, [g16[y].astype(">u2").tobytes() for y in range(32)]), "png")
pal = bytes(RNG.integers(0, 256, size=48, dtype=np.uint8))
pidx = RNG.integers(0, 16, size=(13, 22), dtype=np.uint8)
add("png_palette_short_trns", png_raw(22, 13, 3, 8, [bytes(r) for r in pidx], plte=pal,
                                      trns=bytes([0, 128, 255])), "png")
add("png_gray_trns", png_raw(22, 13, 0, 8, [bytes(r * 15) for r in pidx], trns=b"\x00\x2d"), "png")
rgb_rows = [bytes(RNG.integers(0, 256, 14 * 3, dtype=np.uint8)) for _ in range(12)]
add("png_rgb8_trns", png_raw(14, 12, 2, 8, rgb_rows, trns=b"\x00\x10\x00\x20\x00\x30"), "png")
for o in [3, 6, 8]:
    add(f"png_exif_{o}", png_raw(30, 20, 2, 8, [np.asarray(ex_src.resize((30, 20)))[y].tobytes() for y in range(20)],
                                 before_idat=png_chunk(b"eXIf", exif_tiff(o))), "png")
add("png_exif_6_after_idat", png_raw(30, 20, 2, 8, [np.asarray(ex_src.resize((30, 20)))[y].tobytes() for y in range(20)],
                                     after_idat=png_chunk(b"eXIf", exif_tiff(6))), "png",
    note="libpng reads chunks after the image data only at the end: not applied")
add("png_exif_6_big_endian", png_raw(30, 20, 2, 8, [np.asarray(ex_src.resize((30, 20)))[y].tobytes() for y in range(20)],
                                     before_idat=png_chunk(b"eXIf", exif_tiff(6, big_endian=True))), "png")
add("png_exif_6_with_prefix", png_raw(30, 20, 2, 8, [np.asarray(ex_src.resize((30, 20)))[y].tobytes() for y in range(20)],
                                      before_idat=png_chunk(b"eXIf", exif_bytes(6))), "png",
    note="an eXIf chunk must start with the TIFF header: libpng drops this one")
add("png_pillow_exif_6", save(smooth(30, 20), "PNG", exif=exif_bytes(6)), "png")
gpng = save(smooth(97, 61), "PNG")
add("png_no_iend", gpng[:-12], "png", note="PIL accepts it, libpng does not")
add("png_truncated", gpng[: len(gpng) // 2], "png")
add("png_trailing_junk", gpng + bytes(RNG.integers(0, 256, 300, dtype=np.uint8)), "png")

# ------------------------------------------------------------------------------------------
# BMP: OpenCV's own reader (5-bit channels shifted, RLE padding and fills of its own).

def bmp_palette(n, entry=4):
    p = RNG.integers(0, 256, size=(n, 3), dtype=np.uint8)
    return b"".join(bytes(c) + (b"\0" if entry == 4 else b"") for c in p)


add("bmp_rgb24", save(smooth(63, 47), "BMP"), "bmp")
add("bmp_photo", save(CHELSEA, "BMP"), "bmp")
add("bmp_gray8", save(noise(21, 19, "L"), "BMP"), "bmp")
add("bmp_palette8", save(smooth(30, 20).convert("P", palette=Image.ADAPTIVE, colors=100), "BMP"), "bmp")
add("bmp_1bit", save(noise(33, 9, "L").convert("1"), "BMP"), "bmp")
px16 = RNG.integers(0, 65536, size=(13, 19), dtype=np.uint16)
rows16 = [px16[y].astype("<u2").tobytes() for y in range(13)]
add("bmp_rgb555", bmp_file(19, 13, 16, rows16), "bmp")
add("bmp_rgb565_bitfields", bmp_file(19, 13, 16, rows16, compression=3, masks=(0xF800, 0x07E0, 0x001F)), "bmp")
add("bmp_rgb555_bitfields", bmp_file(19, 13, 16, rows16, compression=3, masks=(0x7C00, 0x03E0, 0x001F)), "bmp")
add("bmp_rgb444_bitfields", bmp_file(19, 13, 16, rows16, compression=3, masks=(0xF00, 0xF0, 0xF)), "bmp")
add("bmp_rgb565_v5", bmp_file(19, 13, 16, rows16, compression=3, masks=(0xF800, 0x07E0, 0x001F), header=124), "bmp")
px32 = RNG.integers(0, 256, size=(11, 15, 4), dtype=np.uint8)
rows32 = [px32[y].tobytes() for y in range(11)]
add("bmp_bgrx32", bmp_file(15, 11, 32, rows32), "bmp")
add("bmp_bgrx32_bitfields", bmp_file(15, 11, 32, rows32, compression=3, masks=(0xFF0000, 0xFF00, 0xFF)), "bmp")
add("bmp_rgbx32_bitfields", bmp_file(15, 11, 32, rows32, compression=3, masks=(0xFF, 0xFF00, 0xFF0000)), "bmp")
add("bmp_bgra32_v5", bmp_file(15, 11, 32, rows32, compression=3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000),
                              header=124), "bmp")
add("bmp_rgba32_pillow", save(noise(17, 13, "RGBA"), "BMP"), "bmp")
px24 = RNG.integers(0, 256, size=(9, 14, 3), dtype=np.uint8)
rows24 = [px24[y].tobytes() for y in range(9)]
add("bmp_rgb24_v4", bmp_file(14, 9, 24, rows24, header=108), "bmp")
add("bmp_rgb24_v5", bmp_file(14, 9, 24, rows24, header=124), "bmp")
add("bmp_rgb24_topdown", bmp_file(14, 9, 24, rows24, top_down=True), "bmp")
add("bmp_rgb24_os2", bmp_file(14, 9, 24, rows24, header=12), "bmp")
add("bmp_rgb24_gap", bmp_file(14, 9, 24, rows24, gap=b"\x07" * 10), "bmp")
idx8 = RNG.integers(0, 20, size=(10, 13), dtype=np.uint8)
rows8 = [idx8[y].tobytes() for y in range(10)]
add("bmp_p8_clrused", bmp_file(13, 10, 8, rows8, palette=bmp_palette(20), clr_used=20), "bmp")
add("bmp_p8_past_palette", bmp_file(13, 10, 8, [(idx8[y] + 10).tobytes() for y in range(10)],
                                    palette=bmp_palette(20), clr_used=20), "bmp",
    note="indices past the palette: black in OpenCV")
add("bmp_p8_os2", bmp_file(13, 10, 8, rows8, palette=bmp_palette(256, 3), header=12), "bmp")
add("bmp_p8_gap", bmp_file(13, 10, 8, rows8, palette=bmp_palette(20), clr_used=20, gap=b"\x01" * 8), "bmp")
add("bmp_p8_topdown", bmp_file(13, 10, 8, rows8, palette=bmp_palette(20), clr_used=20, top_down=True), "bmp")
idx4 = RNG.integers(0, 10, size=(10, 13), dtype=np.uint8)
add("bmp_p4", bmp_file(13, 10, 4, [pack_row(idx4[y], 4) for y in range(10)], palette=bmp_palette(10),
                       clr_used=10), "bmp")
add("bmp_p4_gray_ramp", bmp_file(13, 10, 4, [pack_row(idx4[y], 4) for y in range(10)],
                                 palette=b"".join(bytes([i, i, i, 0]) for i in range(16)), clr_used=16), "bmp")
add("bmp_p8_bw_palette", bmp_file(29, 6, 8, [bytes(RNG.integers(0, 256, 29, dtype=np.uint8)) for _ in range(6)],
                                  palette=b"\0\0\0\0\xff\xff\xff\0", clr_used=2), "bmp")
add("bmp_p1_colour", bmp_file(21, 7, 1, [pack_row(RNG.integers(0, 2, 21), 1) for _ in range(7)],
                              palette=bmp_palette(2)), "bmp")
add("bmp_p2", bmp_file(21, 7, 2, [pack_row(RNG.integers(0, 4, 21), 2) for _ in range(7)],
                       palette=bmp_palette(4)), "bmp", note="2 bits per pixel: OpenCV refuses it")


def rle8(rows_bottom_up):
    """RLE8: runs, absolute runs, end of line after each row, end of bitmap."""
    out = bytearray()
    for r in rows_bottom_up:
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
runs8 = np.repeat(RNG.integers(1, 30, size=(h8, 8), dtype=np.uint8), 3, axis=1)[:, :w8].copy()
runs8[:, 5:9] = RNG.integers(1, 30, size=(h8, 4), dtype=np.uint8)
pal30 = bmp_palette(30)
add("bmp_rle8", bmp_file(w8, h8, 8, None, compression=1, palette=pal30, clr_used=30,
                         pixel_data=rle8(list(runs8[::-1]))), "bmp")
add("bmp_rle8_odd_offset", bmp_file(w8, h8, 8, None, compression=1, palette=pal30, clr_used=30,
                                    pixel_data=rle8(list(runs8[::-1])), gap=b"\0"), "bmp")
add("bmp_rle8_gray", bmp_file(w8, h8, 8, None, compression=1, clr_used=8,
                              palette=b"".join(bytes([i * 30, i * 30, i * 30, 0]) for i in range(8)),
                              pixel_data=rle8(list(runs8[::-1] % 8))), "bmp")
delta = bytes([4, 7]) + b"\x00\x02\x03\x01" + bytes([16, 5]) + rle8(list(runs8[::-1][2:]))
add("bmp_rle8_delta", bmp_file(w8, h8, 8, None, compression=1, palette=pal30, clr_used=30,
                               pixel_data=delta), "bmp")
add("bmp_rle8_early_end", bmp_file(w8, h8, 8, None, compression=1, palette=pal30, clr_used=30,
                                   pixel_data=rle8(list(runs8[::-1][:5]))), "bmp",
    note="end of bitmap before the last row: OpenCV fills with palette entry 0")
short_rows = bytes([5, 3]) + b"\x00\x00" + bytes([w8, 4]) + b"\x00\x00" + bytes([2, 9]) + b"\x00\x01"
add("bmp_rle8_short_rows", bmp_file(w8, 4, 8, None, compression=1, palette=pal30, clr_used=30,
                                    pixel_data=short_rows), "bmp")
add("bmp_rle8_run_past_row", bmp_file(w8, 4, 8, None, compression=1, palette=pal30, clr_used=30,
                                      pixel_data=bytes([w8 + 5, 3]) + b"\x00\x01"), "bmp")
add("bmp_rle8_no_end", bmp_file(w8, h8, 8, None, compression=1, palette=pal30, clr_used=30,
                                pixel_data=rle8(list(runs8[::-1]))[:-2]), "bmp")
add("bmp_rle8_cut", bmp_file(w8, h8, 8, None, compression=1, palette=pal30, clr_used=30,
                             pixel_data=rle8(list(runs8[::-1]))[:40]), "bmp")
rle4 = bytearray()
for y in range(8):
    rle4 += bytes([6, 0x12 + y, 0, 5, 0x34, 0x56, 0x70, 0, 4, 0x9A]) + b"\x00\x00"
rle4 += b"\x00\x01"
add("bmp_rle4", bmp_file(15, 8, 4, None, compression=2, palette=bmp_palette(16), clr_used=16,
                         pixel_data=bytes(rle4)), "bmp")
rle4d = bytes([3, 0x21]) + b"\x00\x02\x02\x01" + bytes([4, 0x43]) + b"\x00\x00" + bytes([0, 3, 0x56, 0x70]) + b"\x00\x01"
add("bmp_rle4_delta", bmp_file(15, 8, 4, None, compression=2, palette=bmp_palette(16), clr_used=16,
                               pixel_data=rle4d), "bmp")
bcut = bmp_file(14, 9, 24, rows24)
for cut in [20, 60, len(bcut) // 2, len(bcut) - 2]:
    add(f"bmp_truncated_{cut}", bcut[:cut], "bmp")
add("bmp_palette_cut", bmp_file(13, 10, 8, rows8, palette=bmp_palette(20), clr_used=20)[:54 + 30], "bmp")
add("bmp_clrused_300", bmp_file(13, 10, 8, rows8, palette=bmp_palette(20), clr_used=300), "bmp")
add("bmp_jpeg_inside", bmp_file(14, 9, 24, rows24, compression=4), "bmp", note="BI_JPEG: refused")

# ------------------------------------------------------------------------------------------
# WebP (libwebp in both OpenCV and Pillow; the EXIF chunk is applied by OpenCV).

add("webp_lossless", save(smooth(83, 59), "WEBP", lossless=True), "webp")
add("webp_lossless_rgba", save(noise(33, 21, "RGBA"), "WEBP", lossless=True, exact=True), "webp")
add("webp_lossy", save(smooth(83, 59), "WEBP", quality=80), "webp")
add("webp_lossy_photo", save(CHELSEA, "WEBP", quality=75), "webp")
add("webp_lossy_rgba", save(smooth(64, 48).convert("RGBA"), "WEBP", quality=70), "webp")
ra = np.asarray(smooth(64, 48)).copy()
alpha = (np.arange(64)[None, :] * 4 % 256).astype(np.uint8).repeat(48, 0)
add("webp_lossy_alpha_gradient", save(Image.fromarray(np.dstack([ra, alpha]), "RGBA"), "WEBP", quality=85),
    "webp")
for o, lossless in [(6, False), (6, True), (3, False)]:
    add(f"webp_exif_{o}_{'lossless' if lossless else 'lossy'}",
        save(ex_src, "WEBP", lossless=lossless, quality=90, exif=exif_bytes(o)), "webp")


def webp_exif_with_prefix(data):
    """The same WebP with "Exif\\0\\0" before the TIFF header in its EXIF chunk (as some writers do)."""
    i, out = 12, b""
    while i + 8 <= len(data):
        fourcc, n = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        payload = data[i + 8:i + 8 + n]
        if fourcc == b"EXIF":
            payload = b"Exif\x00\x00" + payload
        out += fourcc + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
        i += 8 + n + (n & 1)
    return b"RIFF" + struct.pack("<I", len(out) + 4) + b"WEBP" + out


add("webp_exif_6_with_prefix",
    webp_exif_with_prefix(save(ex_src, "WEBP", quality=90, exif=exif_bytes(6))), "webp",
    note="OpenCV ignores an EXIF chunk that does not start with the TIFF header")
add("webp_animated", save(smooth(30, 20), "WEBP", save_all=True, append_images=[smooth(30, 20, 2)],
                          lossless=True), "webp")

# ------------------------------------------------------------------------------------------
# Not emulated: OpenCV reads these with its own GIF reader and libtiff; the harness decodes
# them as PIL does and says so.

add("gif_palette", save(smooth(71, 43).convert("P", palette=Image.ADAPTIVE, colors=200), "GIF"), "gif",
    emulated=False)
add("tiff_rgb", save(smooth(45, 35), "TIFF"), "tif", emulated=False)
for n in ["no_time_for_that_tiny.gif", "multipage_rgb.tif"]:
    data = shipped(n)
    if data:
        stem, ext = os.path.splitext(n)
        add(f"photo_{stem}", data, ext[1:], emulated=False)

manifest = {
    "generator": "tools/make_imread_fixtures.py",
    "opencv": cv2.__version__,
    "format": "raw packed BGR uint8, row-major; paths relative to this file",
    "cases": CASES,
}
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
n_ok = sum(c["expect"] == "ok" for c in CASES)
n_diff = sum(c["pil"] != "same" for c in CASES)
print(f"{len(CASES)} cases ({n_ok} decoded by cv2.imread {cv2.__version__}, {len(CASES) - n_ok} refused; "
      f"{n_diff} where PIL differs or fails) in {OUT}, {time.time() - T0:.1f} s")
