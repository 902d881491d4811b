#!/usr/bin/env python3
"""Speed of the platform's Python judge API: the tree's src/ji.py (over libji.so) against a bare
ctypes call, and against a hand-written PyTorch ji.py of the contest baseline's kind.

Usage: bench_jipy.py [--tree DIR] [--calls 200] [--rounds 2] [--json OUT.json]

  --tree   an installed tree (`make install PREFIX=DIR LIBTORCH=cpu`); by default
           target/bench_jipy/ev_sdk, installed with the demo model when it holds no libji.so.
  --calls  calls per measurement (the median of these is reported).
  --rounds the judge-visible comparison alternates the two ji.py's this many times each.

Measures, each in a process of its own started with this interpreter (the .venv's), on the demo
photos read with cv2.imread as the judge reads them:

  (1) overhead of the Python layer: `calls` calls of ji.process_image(handle, frame), each
      paired with the same frame through a bare ctypes call of the library function ji.py
      uses (evsdk_calc_frame on the same handle, the JSON read and freed), the two in
      alternating order; reports both medians and the median of the pairwise differences
      (goal: under 0.2 ms). Once with the tree's model, once with a tiny model (a global
      average pool and a linear layer on a 16x16 input, made here) where the library's own
      time is small enough for the difference to stand out of its noise.
  (2) judge-visible time: init() and `calls` calls of process_image through the tree's ji.py
      (a process that never imports torch) and through a baseline ji.py written here the way
      contestants wrote theirs (cv2 BGR->RGB, PIL, torchvision Resize/CenterCrop/ToTensor/
      Normalize with the tree's preprocessing, torch.jit.load of the tree's model, softmax,
      json.dumps), each in its own process (a process must not hold two libtorch copies);
      median, p90, mean per call, the first call, init, and whether the two agree on the top-1
      class of every frame.

The numbers go into BENCHMARKS.md with the machine and the date; OMP_WAIT_POLICY and the thread
count are printed (libji's `num_threads` 0 and torch's default are both one per physical core).
"""
import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASELINE_JI = r'''
"""A contestant's ji.py of the 2021 baseline's kind: PyTorch in the judge's process."""
import json

import cv2
import torch
from PIL import Image
from torchvision import transforms

MODEL = %(model)r
NAMES = %(names)r
_T = transforms.Compose([
    transforms.Resize(%(resize)r),
    transforms.CenterCrop(%(crop)r),
    transforms.ToTensor(),
    transforms.Normalize(%(mean)r, %(std)r),
])


def init():
    net = torch.jit.load(MODEL, map_location="cpu")
    net.eval()
    return net


def process_image(net, input_image, args=None):
    img = Image.fromarray(cv2.cvtColor(input_image, cv2.COLOR_BGR2RGB))
    x = _T(img).unsqueeze(0)
    with torch.no_grad():
        out = net(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        prob = torch.softmax(out, 1)[0]
    conf, idx = prob.max(0)
    name = NAMES[int(idx)] if NAMES else str(int(idx))
    return json.dumps({"class": name, "confidence": round(float(conf), 3),
                       "algorithm_data": {"is_alert": False, "target_info": None},
                       "model_data": {"class": name, "class_id": int(idx),
                                      "confidence": round(float(conf), 3)}},
                      ensure_ascii=False)
'''


def load_module(path, name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def frames_from(d):
    import numpy as np
    return [np.load(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith(".npy")]


def summary(ms):
    s = sorted(ms)
    return {"median_ms": statistics.median(s), "p90_ms": s[int(0.9 * (len(s) - 1))],
            "mean_ms": statistics.mean(s), "n": len(s)}


def worker_overhead(a):
    """(1) in a process without torch: ji.py against the bare ctypes call, paired."""
    ji = load_module(os.path.join(a.tree, "src", "ji.py"), "ji")
    frames = frames_from(a.frames)
    h = ji.init(a.config)
    lib, ptr = h._lib, h._ptr

    def bare(f):
        out = ctypes.c_void_p()
        lib.evsdk_calc_frame(ptr, f.ctypes.data, f.shape[1], f.shape[0], f.strides[0],
                             f.shape[2] if f.ndim == 3 else 1, None, ctypes.byref(out))
        s = ctypes.string_at(out.value).decode("utf-8")
        lib.evsdk_free_string(out)
        return s

    for f in frames:  # warm both paths
        assert ji.process_image(h, f) == bare(f)
    t_ji, t_bare, diff = [], [], []
    clock = time.perf_counter
    for i in range(a.calls):
        f = frames[i % len(frames)]
        for first in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = clock()
            if first == 0:
                ji.process_image(h, f)
            else:
                bare(f)
            (t_ji if first == 0 else t_bare).append((clock() - t0) * 1e3)
        diff.append(t_ji[-1] - t_bare[-1])
    assert "torch" not in sys.modules
    print(json.dumps({"ji_py": summary(t_ji), "bare_ctypes": summary(t_bare),
                      "pairwise_difference_median_ms": statistics.median(diff)}))


def worker_judge(a):
    """(2) what a judge sees: init() and process_image through one ji.py file."""
    t0 = time.perf_counter()
    mod = load_module(a.ji, "ji")
    import_ms = (time.perf_counter() - t0) * 1e3
    frames = frames_from(a.frames)
    t0 = time.perf_counter()
    h = mod.init()
    init_ms = (time.perf_counter() - t0) * 1e3
    times, top1 = [], []
    for i in range(a.calls + 1):
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        res = mod.process_image(h, f)
        times.append((time.perf_counter() - t0) * 1e3)
        if i < len(frames):
            top1.append(json.loads(res)["model_data"]["class_id"])
    print(json.dumps({"import_ms": import_ms, "init_ms": init_ms, "first_call_ms": times[0],
                      "calls": summary(times[1:]), "top1": top1,
                      "torch_imported": "torch" in sys.modules}))


def run_worker(args):
    out = subprocess.run([sys.executable, os.path.abspath(__file__)] + args, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def tree_preprocess(tree):
    """The tree's model, class names and torchvision transform parameters (config, else the
    model's embedded metadata)."""
    cfg_path = os.path.join(tree, "config", "algo_config.json")
    cfg = json.load(open(cfg_path, encoding="utf-8"))
    base = os.path.dirname(cfg_path)
    model = os.path.normpath(os.path.join(base, cfg["model_path"]))
    meta = {}
    import zipfile
    with zipfile.ZipFile(model) as z:
        for n in z.namelist():
            if n.endswith("extra/ji_metadata.json"):
                meta = json.loads(z.read(n).decode("utf-8"))
    get = lambda k, d=None: cfg.get(k, meta.get(k, d))  # noqa: E731
    if get("resize_mode", "stretch") != "shorter_side":
        sys.exit("bench_jipy: the baseline ji.py implements resize_mode shorter_side (the demo's); "
                 "this tree's model uses %s" % get("resize_mode"))
    names = meta.get("class_names") or []
    if not names and cfg.get("class_names_path"):
        names = [ln.strip() for ln in open(os.path.join(base, cfg["class_names_path"]), encoding="utf-8")
                 if ln.strip()]
    crop = get("crop_size", 224)
    return {"model": model, "names": names, "resize": get("resize_size", 256),
            "crop": list(crop) if isinstance(crop, list) else crop,
            "mean": get("mean", [0.485, 0.456, 0.406]), "std": get("std", [0.229, 0.224, 0.225])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default=os.path.join(ROOT, "target", "bench_jipy", "ev_sdk"))
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--worker", choices=["overhead", "judge"], help=argparse.SUPPRESS)
    ap.add_argument("--frames", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--ji", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.tree = os.path.abspath(a.tree)
    if a.worker == "overhead":
        return worker_overhead(a)
    if a.worker == "judge":
        return worker_judge(a)

    if not os.path.isfile(os.path.join(a.tree, "lib", "libji.so")):
        print("bench_jipy: installing the demo into %s (make install LIBTORCH=cpu)" % a.tree, flush=True)
        subprocess.run(["make", "--no-print-directory", "-C", ROOT, "install", "PREFIX=" + a.tree,
                        "LIBTORCH=cpu"], check=True, stdout=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp(prefix="bench-jipy-")
    try:
        run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp):
    import cv2
    import glob
    import numpy as np
    import torch

    frames = os.path.join(tmp, "frames")
    os.makedirs(frames)
    photos = sorted(glob.glob(os.path.join(ROOT, "demo", "val", "*", "*.jpg")))
    if not photos:
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_demo.py"), os.path.join(ROOT, "demo")],
                       check=True, stdout=subprocess.DEVNULL)
        photos = sorted(glob.glob(os.path.join(ROOT, "demo", "val", "*", "*.jpg")))
    for i, p in enumerate(photos):
        np.save(os.path.join(frames, "%02d.npy" % i), cv2.imread(p))
    sizes = sorted({"%dx%d" % cv2.imread(p).shape[1::-1] for p in photos})

    # The tiny model for (1): the library's own time small, so ji.py's shows.
    tiny = torch.jit.trace(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                               torch.nn.Linear(3, 4)).eval(), torch.zeros(1, 3, 16, 16))
    tiny_model = os.path.join(tmp, "tiny.pt")
    tiny.save(tiny_model)
    classes = os.path.join(tmp, "tiny_classes.txt")
    with open(classes, "w") as f:
        f.write("a\nb\nc\nd\n")
    tiny_cfg = os.path.join(tmp, "tiny.json")
    with open(tiny_cfg, "w") as f:
        json.dump({"model_path": tiny_model, "class_names_path": classes, "device": "cpu",
                   "resize_mode": "stretch", "resize_size": [16, 16], "crop_size": [16, 16]}, f)

    baseline = os.path.join(tmp, "ji_torch.py")
    with open(baseline, "w", encoding="utf-8") as f:
        f.write(BASELINE_JI % tree_preprocess(a.tree))

    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
            "torch_threads": torch.get_num_threads(), "frames": len(photos), "frame_sizes": sizes,
            "calls": a.calls, "tree": a.tree}
    print("bench_jipy: %(frames)d demo photos (%(frame_sizes)s), %(calls)d calls, %(cpus)d CPUs, "
          "OMP_WAIT_POLICY=%(OMP_WAIT_POLICY)s, torch threads %(torch_threads)d" % info, flush=True)

    res = {"info": info, "overhead": {}}
    for label, config in (("tree model", os.path.join(a.tree, "config", "algo_config.json")),
                          ("tiny model", tiny_cfg)):
        r = run_worker(["--worker", "overhead", "--tree", a.tree, "--frames", frames, "--config", config,
                        "--calls", str(a.calls)])
        res["overhead"][label] = r
        print("(1) Python layer, %-10s  ji.py median %8.3f ms   bare ctypes median %8.3f ms   "
              "pairwise difference median %+.3f ms" % (
                  label, r["ji_py"]["median_ms"], r["bare_ctypes"]["median_ms"],
                  r["pairwise_difference_median_ms"]), flush=True)

    runs = {"ji.py (libji.so)": [], "PyTorch ji.py": []}
    for _ in range(a.rounds):
        for label, path in (("ji.py (libji.so)", os.path.join(a.tree, "src", "ji.py")), ("PyTorch ji.py", baseline)):
            runs[label].append(run_worker(["--worker", "judge", "--ji", path, "--frames", frames,
                                           "--calls", str(a.calls)]))
    res["judge"] = runs
    med = {}
    for label, rs in runs.items():
        calls = [r["calls"]["median_ms"] for r in rs]
        med[label] = statistics.median(calls)
        print("(2) %-17s per call median %7.2f ms (rounds: %s), p90 %7.2f ms, first call %7.1f ms, "
              "init %7.1f ms, import %6.1f ms, torch imported: %s" % (
                  label, med[label], ", ".join("%.2f" % c for c in calls),
                  statistics.median(r["calls"]["p90_ms"] for r in rs),
                  statistics.median(r["first_call_ms"] for r in rs),
                  statistics.median(r["init_ms"] for r in rs),
                  statistics.median(r["import_ms"] for r in rs), rs[0]["torch_imported"]))
    agree = runs["ji.py (libji.so)"][0]["top1"] == runs["PyTorch ji.py"][0]["top1"]
    res["top1_agree"] = agree
    print("    PyTorch / libji per call: %.2fx; top-1 class the same on every frame: %s" % (
        med["PyTorch ji.py"] / med["ji.py (libji.so)"], agree))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
