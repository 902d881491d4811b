#!/usr/bin/env python3
"""Decode + preprocess speed: libji's Rust path against PIL + torchvision, same files, same
run, one thread each. Prints a table (and the same rows as JSON with --json).

Usage: bench_preprocess.py [--iterations N] [--config CONFIG]
The default config is Resize(256) + CenterCrop(224) + ImageNet Normalize (a common eval
transform). Inputs: a 1920x1080 q90 JPEG, a 640x480 q90 JPEG and a 500x375 PNG, made from
scikit-image's photos. Checks that both sides produce the same tensor before timing.
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_predict  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_inputs(d):
    import skimage
    data = os.path.join(os.path.dirname(skimage.__file__), "data")
    astro = Image.open(os.path.join(data, "astronaut.png")).convert("RGB")
    chelsea = Image.open(os.path.join(data, "chelsea.png")).convert("RGB")
    files = []
    for name, img, kw in [
        ("1920x1080.jpg", astro.resize((1920, 1080), Image.BICUBIC), {"quality": 90}),
        ("640x480.jpg", chelsea.resize((640, 480), Image.BICUBIC), {"quality": 90}),
        ("500x375.png", chelsea.resize((500, 375), Image.BICUBIC), {}),
    ]:
        p = os.path.join(d, name)
        img.save(p, **kw)
        files.append(p)
    return files


def bench_python(cfg_path, files, iterations):
    torch.set_num_threads(1)
    cfg = reference_predict.load_config(cfg_path)
    transform = reference_predict.make_transform(cfg)
    rows = {}
    for f in files:
        data = open(f, "rb").read()
        times = []
        for i in range(iterations + 2):
            t0 = time.perf_counter()
            img = Image.open(io.BytesIO(data)).convert("RGB")
            t = transform(img)
            t1 = time.perf_counter()
            if i >= 2:
                times.append((t1 - t0) * 1e3)
        rows[f] = {"total_ms": statistics.median(times), "checksum": float(t.double().sum())}
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--config")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg_path = a.config
        if not cfg_path:
            cfg_path = os.path.join(d, "bench.json")
            json.dump({"model_path": "unused.pt", "class_names_path": "unused.txt",
                       "resize_mode": "shorter_side", "resize_size": 256, "crop_size": 224}, open(cfg_path, "w"))
        files = make_inputs(d)
        subprocess.run(["cargo", "build", "-q", "--release", "--example", "bench_preprocess"], cwd=ROOT, check=True)
        exe = os.path.join(ROOT, "target", "release", "examples", "bench_preprocess")
        out = subprocess.run([exe, cfg_path, str(a.iterations), *files], check=True, capture_output=True, text=True).stdout
        rust = {r["file"]: r for r in map(json.loads, out.splitlines())}
        py = bench_python(cfg_path, files, a.iterations)
        rows = []
        for f in files:
            r, p = rust[f], py[f]
            same = abs(r["checksum"] - p["checksum"]) < 1e-3
            rows.append({"input": os.path.basename(f), "rust_decode_ms": r["decode_ms"],
                         "rust_preprocess_ms": r["preprocess_ms"], "rust_total_ms": r["total_ms"],
                         "python_total_ms": p["total_ms"], "speedup": p["total_ms"] / r["total_ms"],
                         "same_tensor": same})
    if a.json:
        print(json.dumps(rows, indent=1))
    print("%-14s %10s %10s %10s %12s %8s %6s" % ("input", "decode", "preproc", "rust", "PIL+tv", "ratio", "equal"))
    for r in rows:
        print("%-14s %8.2fms %8.2fms %8.2fms %10.2fms %7.1fx %6s" % (
            r["input"], r["rust_decode_ms"], r["rust_preprocess_ms"], r["rust_total_ms"],
            r["python_total_ms"], r["speedup"], r["same_tensor"]))
    if not all(r["same_tensor"] for r in rows):
        sys.exit("tensors differ between the Rust and Python paths")


if __name__ == "__main__":
    main()
