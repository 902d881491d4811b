"""BMP files written field by field, for the fixture generators (tools/make_parity_fixtures.py,
tools/make_imread_fixtures.py): headers of every size, bit fields, palettes, RLE data and gaps
that no image library writes."""
import struct


def bmp_file(w, h, bpp, rows, compression=0, palette=b"", masks=None, header=40, top_down=False,
             clr_used=0, pixel_data=None, gap=b""):
    """A BMP. `rows` are top-to-bottom unpadded rows (ignored when `pixel_data` is given);
    `gap` goes between the palette and the pixels (the pixel offset accounts for it)."""
    if pixel_data is None:
        stride = (len(rows[0]) + 3) // 4 * 4
        order = rows if top_down else rows[::-1]
        pixel_data = b"".join(r + b"\0" * (stride - len(r)) for r in order)
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bpp)
        extra = b""
    else:
        info = struct.pack("<IiiHHIIiiII", header, w, -h if top_down else h, 1, bpp, compression,
                           len(pixel_data), 2835, 2835, clr_used, 0)
        extra = b""
        if header == 40 and masks is not None:
            extra = struct.pack("<III", *masks[:3])
        elif header > 40:
            m = list(masks or [0, 0, 0, 0]) + [0] * 4
            info += struct.pack("<IIII", *m[:4]) + b"sRGB"[::-1] + b"\0" * (header - 60)
    off = 14 + len(info) + len(extra) + len(palette) + len(gap)
    return (struct.pack("<2sIHHI", b"BM", off + len(pixel_data), 0, 0, off) + info + extra + palette + gap
            + pixel_data)
