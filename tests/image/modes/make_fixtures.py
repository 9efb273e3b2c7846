#!/usr/bin/python3
"""Tiny images in every mode Pillow opens PNG/JPEG files in, and what Pillow makes of them.

For each NAME.{png,jpg}: NAME.rgb = Image.open(f).convert("RGB") and NAME.clip16.rgb = OpenAI CLIP's
_transform up to the tensor (Resize(16, BICUBIC) in the file's own mode, CenterCrop(16),
convert("RGB")), raw uint8 HWC. Run with Debian's python3-pil (9.4): /usr/bin/python3 make_fixtures.py
"""
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
R = 16


def clip_transform(im):
    # torchvision Resize(R) on a PIL image: short side to R, long side int(R * long / short).
    w, h = im.size
    if w <= h:
        size = (R, int(R * h / w))
    else:
        size = (int(R * w / h), R)
    im = im.resize(size, Image.BICUBIC)
    w, h = im.size
    top, left = int(round((h - R) / 2.0)), int(round((w - R) / 2.0))
    return im.crop((left, top, left + R, top + R)).convert("RGB")


def save(name, im, **kw):
    path = os.path.join(HERE, name)
    im.save(path, **kw)
    opened = Image.open(path)
    opened.load()
    with open(os.path.join(HERE, name.rsplit(".", 1)[0] + ".rgb"), "wb") as f:
        f.write(np.asarray(opened.convert("RGB"), dtype=np.uint8).tobytes())
    with open(os.path.join(HERE, name.rsplit(".", 1)[0] + ".clip16.rgb"), "wb") as f:
        f.write(np.asarray(clip_transform(opened), dtype=np.uint8).tobytes())
    print(name, opened.mode, opened.size)


def main():
    rng = np.random.default_rng(15)
    for w, h, tag in ((23, 17, "down"), (9, 7, "up")):
        u8 = lambda *shape: rng.integers(0, 256, size=shape, dtype=np.uint8)
        save(f"gray_{tag}.png", Image.fromarray(u8(h, w), "L"))
        la = u8(h, w, 2)
        la[0, :, 1] = 0
        la[1, :, 1] = 255
        save(f"la_{tag}.png", Image.fromarray(la, "LA"))
        rgba = u8(h, w, 4)
        rgba[0, :, 3] = 0
        rgba[1, :, 3] = 255
        save(f"rgba_{tag}.png", Image.fromarray(rgba, "RGBA"))
        p = Image.fromarray(rng.integers(0, 200, size=(h, w), dtype=np.uint8), "P")
        p.putpalette(list(u8(200 * 3)))
        save(f"palette_{tag}.png", p)
        save(f"palette_trns_{tag}.png", p, transparency=bytes(u8(200)))
        bits = Image.fromarray(u8(h, w) > 127).convert("1")
        save(f"bilevel_{tag}.png", bits)
        # 16-bit gray opens as "I"; values around 255 show convert's clipping.
        save(f"gray16_{tag}.png", Image.fromarray(rng.integers(0, 700, size=(h, w)).astype(np.uint16), "I;16"))
        cmyk = Image.fromarray(u8(h, w, 4), "CMYK")
        save(f"cmyk_{tag}.jpg", cmyk, quality=95)
        save(f"rgb_{tag}.jpg", Image.fromarray(u8(h, w, 3), "RGB"), quality=90)
    # 16-bit RGB / RGBA PNGs (Pillow cannot write them): numpy + zlib.
    import struct
    import zlib

    def png16(name, array, color_type):
        h, w = array.shape[:2]
        raw = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(h))
        chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
        data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
        path = os.path.join(HERE, name)
        with open(path, "wb") as f:
            f.write(data)
        opened = Image.open(path)
        opened.load()
        stem = name.rsplit(".", 1)[0]
        with open(os.path.join(HERE, stem + ".rgb"), "wb") as f:
            f.write(np.asarray(opened.convert("RGB"), dtype=np.uint8).tobytes())
        with open(os.path.join(HERE, stem + ".clip16.rgb"), "wb") as f:
            f.write(np.asarray(clip_transform(opened), dtype=np.uint8).tobytes())
        print(name, opened.mode, opened.size)

    png16("rgb16_down.png", rng.integers(0, 65536, size=(17, 23, 3)), 2)
    png16("rgba16_down.png", rng.integers(0, 65536, size=(17, 23, 4)), 6)


if __name__ == "__main__":
    main()
