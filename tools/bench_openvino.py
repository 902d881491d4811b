#!/usr/bin/env python3
"""Reference point for the CPU forward: the same TorchScript model run by Intel's OpenVINO in
fp32, the runtime tuned for these CPUs, with the same thread count (BENCHMARKS.md compares it
with libji's fast path, `examples/bench_forward --consecutive`).

OpenVINO is not a dependency of the project; install it beside the venv first, e.g.
    .venv/bin/pip install --target /tmp/ovlib openvino
    .venv/bin/python tools/bench_openvino.py demo/model/model.pt --ov-path /tmp/ovlib

Usage: bench_openvino.py MODEL.pt [--threads 2] [--calls 300] [--size H W] [--ov-path DIR]
Prints one JSON object: median and minimum ms per inference, and the largest |logit| difference
from the TorchScript model on the same random input.
"""
import argparse
import json
import statistics
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--size", type=int, nargs=2, default=[224, 224])
    ap.add_argument("--ov-path", help="folder holding the openvino package (pip --target)")
    a = ap.parse_args()
    if a.ov_path:
        sys.path.append(a.ov_path)
    import openvino as ov

    scripted = torch.jit.load(a.model).eval()
    x = torch.randn(1, 3, *a.size)
    core = ov.Core()
    compiled = core.compile_model(ov.convert_model(scripted, example_input=x), "CPU", {
        # OpenVINO computes in bf16 by default on CPUs with AMX or AVX512-BF16.
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": a.threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    })
    req = compiled.create_infer_request()
    xn = x.numpy()
    for _ in range(20):
        req.infer({0: xn})
    times = []
    for _ in range(a.calls):
        t = time.perf_counter()
        req.infer({0: xn})
        times.append((time.perf_counter() - t) * 1e3)
    with torch.no_grad():
        ref = scripted(x)
    out = torch.from_numpy(req.infer({0: xn})[0].copy())
    print(json.dumps({
        "model": a.model, "openvino": ov.__version__, "threads": a.threads,
        "median_ms": statistics.median(times), "min_ms": min(times),
        "max_abs_logit_diff": float((out - ref).abs().max()),
    }))


if __name__ == "__main__":
    main()
