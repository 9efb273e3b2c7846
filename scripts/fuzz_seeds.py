#!/usr/bin/env python3
"""Writes small valid inputs for the fuzz targets (tests/fuzz), one folder per target: PyTorch
files saved by torch itself, PNG/JPEG files of every mode Pillow writes, .npy files saved by
NumPy, wire messages as packed frame lists, instructions. Usage: fuzz_seeds.py OUT_DIR
(scripts/fuzz.sh runs it with Debian's python3, which has torch, NumPy and Pillow)."""
import collections
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def torch_files(out):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)
            self.register_buffer("scale", torch.tensor([0.5], dtype=torch.float16))

        def forward(self, x):
            return self.fc(x) * self.scale.float()

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    objects = {
        "state_dict": Tiny().state_dict(),
        "nested": {"a": [torch.zeros(2), (1, 2.5, "s", None, True)], "b": {"c": torch.ones(1, dtype=torch.int64)}},
        "shared_views": {"whole": base, "row": base[1], "col": base[:, 2], "t": base.t()},
        "dtypes": {str(d): torch.ones(2, dtype=d) for d in (torch.float64, torch.bfloat16, torch.uint8,
                                                             torch.int8, torch.int16, torch.int32, torch.bool)},
        "checkpoint": {"state_dict": collections.OrderedDict(w=torch.randn(2, 2)), "opts": {"lr": 0.1},
                       "latent_avg": torch.zeros(1, 4)},
        "empty": {"e": torch.zeros(0, 3)},
    }
    files = {}
    for name, obj in objects.items():
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        files[name] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Tiny()), buffer)
    files["torchscript"] = buffer.getvalue()
    for name, data in files.items():
        write(out, name + ".pt", data)
        # tests/fuzz/fuzz_torch_file.cpp's wrapped form: [u8 n][n x u16 sizes of data/0..n-1][data.pkl]
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            pickle = next(n for n in names if n.endswith("/data.pkl") and n.count("/") == 1)
            prefix = pickle[: -len("data.pkl")] + "data/"
            sizes = []
            while prefix + str(len(sizes)) in names and len(sizes) < 16:
                sizes.append(archive.getinfo(prefix + str(len(sizes))).file_size)
            if all(size < 65536 for size in sizes):
                wrapped = bytes([len(sizes)]) + b"".join(struct.pack("<H", size) for size in sizes)
                write(out, name + ".pkl", wrapped + archive.read(pickle))


def images(out):
    from PIL import Image

    rgb = Image.fromarray(((np.arange(8 * 6 * 3) * 37) % 256).astype(np.uint8).reshape(6, 8, 3))
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I"):
        buffer = io.BytesIO()
        img = rgb.convert(mode) if mode != "I" else rgb.convert("L").convert("I")
        img.save(buffer, "PNG")
        write(out, f"{mode}.png", buffer.getvalue())
    buffer = io.BytesIO()
    rgb.convert("P").save(buffer, "PNG", transparency=3)
    write(out, "P_trns.png", buffer.getvalue())
    for mode in ("L", "RGB", "CMYK"):
        for progressive in (False, True):
            buffer = io.BytesIO()
            rgb.convert(mode).save(buffer, "JPEG", quality=90, progressive=progressive)
            write(out, f"{mode}{'_progressive' if progressive else ''}.jpg", buffer.getvalue())


def photos(out):
    """JPEGs and PNGs carrying each EXIF orientation (JPEG APP1, PNG eXIf), big- and little-endian."""
    from PIL import Image

    rgb = Image.fromarray(((np.arange(8 * 6 * 3) * 53) % 256).astype(np.uint8).reshape(6, 8, 3))
    for orientation in range(1, 9):
        for endian in ("II", "MM"):
            tiff = (b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
                    + struct.pack("<I", 0)) if endian == "II" else \
                   (b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
                    + struct.pack(">I", 0))
            for kind in ("JPEG", "PNG"):
                buffer = io.BytesIO()
                rgb.save(buffer, kind, exif=b"Exif\x00\x00" + tiff)
                write(out, f"orientation{orientation}_{endian}.{kind.lower()}", buffer.getvalue())


def npy_files(out):
    arrays = {
        "f32_2d": np.arange(6, dtype="<f4").reshape(2, 3),
        "f64_1d": np.linspace(0, 1, 5).astype("<f8"),
        "f32_0d": np.array(3.5, dtype="<f4"),
        "f32_fortran": np.asfortranarray(np.ones((2, 2), dtype="<f4")),
        "f32_big_endian": np.ones(3, dtype=">f4"),
        "i32": np.ones(3, dtype="<i4"),
        "f32_empty": np.zeros((0, 4), dtype="<f4"),
    }
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        write(out, name + ".npy", buffer.getvalue())
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ones(2, dtype="<f4"), version=(2, 0))
    write(out, "v2.npy", buffer.getvalue())


def pack_frames(frames):
    """service/frames.h: [u32 count] then per frame [u32 length][bytes], little-endian."""
    data = struct.pack("<I", len(frames))
    for frame in frames:
        data += struct.pack("<I", len(frame)) + frame
    return data


def messages(out, image_dir):
    latent = struct.pack("<4f", 0.1, -0.2, 0.3, 1e-3)
    with open(os.path.join(image_dir, "RGB.png"), "rb") as f:
        photo = f.read()
    requests = {
        "edit_seed": ({"v": 1, "type": "edit", "id": "a", "instruction": "blond hair", "method": "feu",
                       "latent": "seed", "seed": 42, "psi": 0.7, "alphas": [-3, 0, 3], "beta": 0.15,
                       "k_pos": 100, "k_neg": 100, "negatives": "farthest", "format": "png",
                       "return_original": True, "return_styles": False, "grid": False, "size": 64,
                       "deadline_ms": 30000}, []),
        "edit_global": ({"type": "edit", "id": "g", "instruction": "smile", "method": "global", "neutral": "face",
                         "beta": "auto", "format": "jpg"}, []),
        "edit_w": ({"type": "edit", "id": "w", "instruction": "old", "latent": "w"}, [latent]),
        "edit_photo": ({"type": "edit", "id": "p", "instruction": "old", "latent": "photo", "face": 0,
                        "paste": True}, [photo]),
        "retrieve": ({"type": "retrieve", "id": "r", "text": "smiling", "k": 10}, []),
        "result": ({"type": "result", "id": "a"}, []),
        "cancel": ({"type": "cancel", "id": "a"}, []),
        "status": ({"type": "status"}, []),
        "ping": ({"type": "ping"}, []),
        "done_reply": ({"v": 1, "id": "a", "status": "done", "type": "edit",
                        "images": [{"frame": 1, "format": "png", "width": 8, "height": 6, "alpha": -3.0}],
                        "original": {"frame": 2, "format": "png", "width": 8, "height": 6},
                        "styles": {"frame": 3, "shape": [1, 4]}, "diagnostics": {"retrieval": {}},
                        "timings_ms": {"queue_ms": 3, "run_ms": 41.2, "total_ms": 45}},
                       [photo, photo, latent]),
        "error_reply": ({"v": 1, "id": "a", "status": "error", "code": "no_channels", "message": "none"}, []),
    }
    for name, (header, payloads) in requests.items():
        frames = [json.dumps(header).encode()] + payloads
        write(out, name + ".frames", pack_frames(frames))
        write(out, name + ".json", frames[0])


def instructions(out):
    texts = ["blond hair", "a smiling woman with glasses", "Café &amp; crème brûlée", "ＡＢＣ full width",
             "emoji 😀 and 中文 mixed", "tabs\tand\nnewlines  spaces", "it's  don't I'LL", "  ",
             "x" * 300, "numbers 123 4.5e6", "&#128512; &lt;b&gt; &nbsp;"]
    for i, text in enumerate(texts):
        write(out, f"{i}.txt", text.encode())


def main():
    out = sys.argv[1]
    torch_files(os.path.join(out, "fuzz_torch_file"))
    images(os.path.join(out, "fuzz_image"))
    photos(os.path.join(out, "fuzz_photo"))
    npy_files(os.path.join(out, "fuzz_npy"))
    messages(os.path.join(out, "fuzz_protocol"), os.path.join(out, "fuzz_image"))
    instructions(os.path.join(out, "fuzz_tokenizer"))


if __name__ == "__main__":
    main()
