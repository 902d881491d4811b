#!/usr/bin/env python3
"""End-to-end speed: the Python pipeline a contestant would otherwise ship against libji.so,
same machine, same model, same images, same thread count, in one run.

Usage: bench_inference.py [--models lite0,mobilenet,mobilenet_v3,resnet50,repvgg] [--images N]
                          [--repeat R] [--threads T] [--batch B] [--device cpu|cuda]
                          [--precision fp32|fp16] [--order call|block] [--huge-pages on|off]
                          [--libji-process same|own] [--first-calls N]
                          [--lib PATH]
                          [--forward-bench PATH] [--json OUT.json]

For each model it measures images/s and p50/p99 latency per image for
  (a) Python: PIL decode + torchvision transforms + torch, eager (where the model exists
      eagerly) and TorchScript;
  (b) libji through its C API one image at a time (evsdk_process_image on the file bytes:
      decode + preprocess + forward + JSON), called through ctypes, with the default config
      (on the CPU: the fast path, see README "Speed"); and with "optimize": false
      (b_libji_single_plain: the plain TorchScript model);
  (c) libji batched: ji_calc_image with B BGR frames per call (frames decoded beforehand,
      so this is preprocess + batched forward + JSON);
  (d) the model's bare TorchScript forward on pre-made tensors (the floor);
and the ratios (b)/(a) and (b)/(d) in images/s; on the CPU also
  (e) the forward pass alone, libji's fast path against the plain model in C++, interleaved
      (examples/bench_forward.rs; built with `cargo build --release --example bench_forward`).
Models: the demo's EfficientNet-Lite0 (tools/make_demo.py; `lite0`), torchvision MobileNetV2
(`mobilenet`), MobileNetV3-Large (`mobilenet_v3`) and ResNet-50 (`resnet50`) with 146
classes (seeded random weights, traced), and a RepVGG-A0 in deploy form (`repvgg`: 3x3
conv + ReLU stacks, the re-parameterised network; random weights). Images: scikit-image
photos resized to common camera sizes, JPEG q90.
Also checks that (a) and (b) agree on the top-1 class for every image.

--first-calls N measures instead whether the first judged call is the slow one: for each model,
--repeat times, a fresh process (this script with --libji-worker, which never imports torch)
creates a handle (evsdk_init: load, checks, warm-up) and makes N >= 3 calls of
evsdk_process_image on the same image (the first of the set, 1920x1080), as a judge's first
calls after init; it reports the create time, the first and the second call and the median of
the calls after the second, each as the median over the processes (and every process's
numbers in --json).

--order says how (a), (b) and (d) share the run, so that drift and noise on a shared machine
hit all methods alike:
  call  (the default) every image goes through every method in turn, the order rotating: each
        call follows another method's call, so it starts with caches and the allocator's heap
        as the other pipeline left them;
  block each method takes all the images back to back, the methods rotating round by round:
        each call follows a call of its own method, as a judge's calls do.

--libji-process says where (b) runs:
  same  (the default) in this process, through ctypes, beside the Python pipeline (libji's
        opt-in "huge_pages" would then speed up the Python pipeline too: its heap advice is
        process-wide);
  own   in a process of its own (this script with --libji-worker, which never imports torch),
        as a judge runs libji.so; the calls are still interleaved with the other methods', one
        at a time, and each is timed inside the worker around the call and the reading of its
        JSON (as in one process), so the pipe is not counted. (c) still runs in this process,
        with "huge_pages" off. Use it with
        OMP_WAIT_POLICY=PASSIVE: with the default policy each process's OpenMP workers spin
        after its calls, on the cores the other process's call then needs (measured on Lite0:
        ratio 2.48, libji's p99 50 ms).
"""
import argparse
import ctypes
import io
import json
import os
import statistics
import sys
import tempfile
import time


class JiImageInfo(ctypes.Structure):
    _fields_ = [("nWidth", ctypes.c_uint), ("nHeight", ctypes.c_uint), ("nWidthStride", ctypes.c_uint),
                ("nHeightStride", ctypes.c_uint), ("nFrameRate", ctypes.c_uint), ("dwTimeStamp", ctypes.c_ulong),
                ("pData", ctypes.c_void_p), ("nDataLen", ctypes.c_uint), ("nFormat", ctypes.c_int),
                ("nDataType", ctypes.c_int), ("nFrameNo", ctypes.c_uint), ("byRes", ctypes.c_ubyte * 4)]


class JiEvent(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("json", ctypes.c_char_p)]


def load_lib(path):
    lib = ctypes.CDLL(path)
    lib.evsdk_init.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.evsdk_process_image.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                        ctypes.POINTER(ctypes.c_void_p)]
    lib.evsdk_free_string.argtypes = [ctypes.c_void_p]
    lib.evsdk_release.argtypes = [ctypes.c_void_p]
    lib.evsdk_last_error.restype = ctypes.c_char_p
    lib.ji_create_predictor.restype = ctypes.c_void_p
    lib.ji_destroy_predictor.argtypes = [ctypes.c_void_p]
    lib.ji_calc_image.argtypes = [ctypes.c_void_p, ctypes.POINTER(JiImageInfo), ctypes.c_uint, ctypes.c_char_p,
                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(JiEvent)]
    return lib


def open_handle(lib, config_path):
    h = ctypes.c_void_p()
    if lib.evsdk_init(config_path.encode(), ctypes.byref(h)) != 0:
        sys.exit("evsdk_init: " + lib.evsdk_last_error().decode())
    return h


def classify_blob(lib, handle, blob):
    """evsdk_process_image on an encoded image; its top-1 class id."""
    out = ctypes.c_void_p()
    if lib.evsdk_process_image(handle, blob, len(blob), None, ctypes.byref(out)) != 0:
        sys.exit("evsdk_process_image: " + lib.evsdk_last_error().decode())
    res = json.loads(ctypes.string_at(out.value).decode())
    lib.evsdk_free_string(out)
    return res["model_data"]["class_id"]


def libji_worker(lib_path):
    """--libji-worker LIB: libji.so in a process of its own, driven over stdin/stdout, one
    JSON command per line: {"op": "init", "config": PATH} -> {"handle": N};
    {"op": "files", "files": [...]} -> {}; {"op": "run", "handle": N, "file": I} ->
    {"ms": time of the call and reading its JSON, as timed in one process, "class": top-1
    class id}; {"op": "release"} -> {}. "init" also replies "ms": the time evsdk_init took."""
    lib = load_lib(lib_path)
    handles, blobs = [], []
    for line in sys.stdin:
        cmd = json.loads(line)
        reply = {}
        if cmd["op"] == "init":
            t0 = time.perf_counter()
            handles.append(open_handle(lib, cmd["config"]))
            reply = {"handle": len(handles) - 1, "ms": (time.perf_counter() - t0) * 1e3}
        elif cmd["op"] == "files":
            blobs = [open(f, "rb").read() for f in cmd["files"]]
        elif cmd["op"] == "run":
            t0 = time.perf_counter()
            c = classify_blob(lib, handles[cmd["handle"]], blobs[cmd["file"]])
            reply = {"ms": (time.perf_counter() - t0) * 1e3, "class": c}
        elif cmd["op"] == "release":
            for h in handles:
                lib.evsdk_release(h)
            handles = []
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__" and sys.argv[1:2] == ["--libji-worker"]:
    libji_worker(sys.argv[2])  # before torch is imported: the worker runs libji alone
    sys.exit(0)

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_predict  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png", "camera.png"]


def photo_dir():
    """Where the source photos are: $JI_PHOTOS (the GPU machine has no scikit-image, so
    tools/gpu_check.sh carries copies), else scikit-image's data folder."""
    if os.environ.get("JI_PHOTOS"):
        return os.environ["JI_PHOTOS"]
    import skimage
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def make_images(d, n):
    data = photo_dir()
    photos = PHOTOS
    sizes = [(1920, 1080), (1280, 720), (640, 480), (800, 600), (500, 375), (1024, 768)]
    files = []
    for i in range(n):
        img = Image.open(os.path.join(data, photos[i % len(photos)])).convert("RGB")
        img = img.resize(sizes[i % len(sizes)], Image.BICUBIC)
        p = os.path.join(d, "img%03d.jpg" % i)
        img.save(p, quality=90)
        files.append(p)
    return files


def make_models(d, which):
    models = {}
    if "lite0" in which:
        demo = os.path.join(ROOT, "demo")
        if not os.path.exists(os.path.join(demo, "model", "model.pt")):
            import subprocess
            subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_demo.py"), demo], check=True)
        cfg = json.load(open(os.path.join(demo, "config", "algo_config.json")))
        cfg["model_path"] = os.path.join(demo, "model", "model.pt")
        cfg["class_names_path"] = os.path.join(demo, "model", "class.txt")
        models["efficientnet-lite0"] = (cfg, None)
    def torchvision_model(arch, resize):
        """A seeded random-weight torchvision model with 146 classes, traced, and its config."""
        torch.manual_seed(0)
        eager = getattr(torchvision.models, arch)(num_classes=146).eval()
        path = os.path.join(d, "%s_146.pt" % arch)
        with torch.no_grad():
            torch.jit.trace(eager, torch.randn(1, 3, 224, 224)).save(path)
        names = os.path.join(d, "class146.txt")
        with open(names, "w", encoding="utf-8") as f:
            f.write(repr({"类别_%03d" % i: i for i in range(146)}))
        cfg = dict(resize, model_path=path, class_names_path=names, crop_size=[224, 224])
        return cfg, eager

    if "mobilenet" in which:
        # Where the demo's EfficientNet package is missing (the GPU machine): a small model
        # of the same class.
        models["mobilenet_v2-146"] = torchvision_model(
            "mobilenet_v2", {"resize_mode": "shorter_side", "resize_size": 256})
    if "mobilenet_v3" in which:
        models["mobilenet_v3_large-146"] = torchvision_model(
            "mobilenet_v3_large", {"resize_mode": "shorter_side", "resize_size": 256})
    if "resnet50" in which:
        models["resnet50-146"] = torchvision_model(
            "resnet50", {"resize_mode": "stretch", "resize_size": [224, 224]})
    if "repvgg" in which:
        torch.manual_seed(0)
        eager = repvgg_a0_deploy(146).eval()
        path = os.path.join(d, "repvgg_a0_deploy_146.pt")
        with torch.no_grad():
            torch.jit.trace(eager, torch.randn(1, 3, 224, 224)).save(path)
        names = os.path.join(d, "class146.txt")
        with open(names, "w", encoding="utf-8") as f:
            f.write(repr({"类别_%03d" % i: i for i in range(146)}))
        models["repvgg_a0_deploy-146"] = (
            {"resize_mode": "shorter_side", "resize_size": 256, "model_path": path,
             "class_names_path": names, "crop_size": [224, 224]}, eager)
    return models


def repvgg_a0_deploy(classes):
    """RepVGG-A0 after re-parameterisation (Ding et al. 2021): each block is one 3x3 conv with
    bias + ReLU; stages of 1, 2, 4, 14, 1 blocks, widths 48, 48, 96, 192, 1280, the first
    block of each stage with stride 2; global average pool + linear."""
    layers, c_in = [], 3
    for blocks, width in [(1, 48), (2, 48), (4, 96), (14, 192), (1, 1280)]:
        for i in range(blocks):
            layers += [torch.nn.Conv2d(c_in, width, 3, 2 if i == 0 else 1, 1), torch.nn.ReLU()]
            c_in = width
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(c_in, classes))


def forward_bench(exe, cfg, threads, huge_pages):
    """(e): libji's fast path and the plain model, forward only, in C++ (bench_forward)."""
    import subprocess
    if not os.path.exists(exe):
        print("(no %s: build it with `cargo build --release --example bench_forward`)" % exe)
        return None
    cmd = [exe, cfg["model_path"], "--threads", str(threads), "--rounds", "5", "--calls", "10",
           "--huge-pages", huge_pages]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ask(worker, **cmd):
    """One command to the --libji-worker process and its reply."""
    worker.stdin.write(json.dumps(cmd) + "\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        sys.exit("the libji worker ended (exit status %s)" % worker.wait())
    return json.loads(line)


def first_calls(a, name, cfg_path, image):
    """--first-calls: create + N calls in fresh libji processes; the medians over processes."""
    import subprocess
    rounds = []
    for _ in range(a.repeat):
        worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--libji-worker", a.lib],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        create_ms = ask(worker, op="init", config=cfg_path)["ms"]
        ask(worker, op="files", files=[image])
        times = [ask(worker, op="run", handle=0, file=0)["ms"] for _ in range(a.first_calls)]
        ask(worker, op="release")
        worker.stdin.close()
        worker.wait()
        rounds.append({"create_ms": create_ms, "first_ms": times[0], "second_ms": times[1],
                       "median_ms": statistics.median(times[2:])})
    row = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    row["first_over_median"] = row["first_ms"] / row["median_ms"]
    row["rounds"] = rounds
    print("\n%s (%s, %s, %d threads): create, then %d calls on one image, in %d fresh processes "
          "(medians over the processes)" % (name, a.device, a.precision, a.threads, a.first_calls, a.repeat))
    print("  create %8.1f ms   first call %7.2f ms   second %7.2f ms   median of calls 3..%d %7.2f ms"
          "   first / median %5.2f" % (row["create_ms"], row["first_ms"], row["second_ms"], a.first_calls,
                                        row["median_ms"], row["first_over_median"]))
    return row


def stats(times_ms, images):
    total = sum(times_ms)
    per_image = sorted(times_ms)
    return {"images_per_s": images / (total / 1e3), "p50_ms": statistics.median(per_image),
            "p99_ms": per_image[min(len(per_image) - 1, int(len(per_image) * 0.99))]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lite0,resnet50")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--order", choices=["call", "block"], default="call")
    # Off by default, as in the library. With --libji-process same the advice would reach the
    # whole process's heap, so the Python pipeline in this process would run faster than it
    # does on its own (measured: ResNet-50's Python pipeline 13.5-13.9 -> 14.6-14.9 images/s).
    # Always written into the config, so that an older libji.so given with --lib (whose
    # default was on) is measured the same way.
    ap.add_argument("--huge-pages", choices=["on", "off"], default="off",
                    help="libji's opt-in \"huge_pages\" (default off, as in the library)")
    ap.add_argument("--libji-process", choices=["same", "own"], default="same",
                    help="run (b) in this process (same) or in a process of its own (own)")
    ap.add_argument("--first-calls", type=int, default=0,
                    help="measure create, first, second and median call times in fresh processes "
                         "(N >= 3 calls each) instead of the comparison")
    ap.add_argument("--lib", default=os.path.join(ROOT, "target", "release", "libji.so"))
    ap.add_argument("--forward-bench", default=os.path.join(ROOT, "target", "release", "examples",
                                                            "bench_forward"))
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.first_calls and a.first_calls < 3:
        ap.error("--first-calls needs at least 3 calls (first, second, and the rest's median)")
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True  # as the library does
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    lib = load_lib(a.lib)
    worker = None
    if a.libji_process == "own":
        if os.environ.get("OMP_WAIT_POLICY", "").strip().lower() != "passive":
            print("warning: --libji-process own without OMP_WAIT_POLICY=PASSIVE: each process's "
                  "spinning OpenMP workers slow the other's calls", file=sys.stderr)
        import subprocess
        worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--libji-worker",
                                   a.lib], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
    results = {"device": a.device, "precision": a.precision, "threads": a.threads, "order": a.order,
               "huge_pages": a.huge_pages,
               "libji_process": a.libji_process,
               "models": {},
               "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as d:
        files = make_images(d, a.images)
        blobs = [open(f, "rb").read() for f in files]
        for name, (cfg, eager) in make_models(d, a.models.split(",")).items():
            cfg = dict(cfg, device=a.device, precision=a.precision, num_threads=a.threads, topk=1,
                       confidence_decimals=None, warmup=3, huge_pages=a.huge_pages == "on")
            cfg_path = os.path.join(d, name + ".json")
            json.dump(cfg, open(cfg_path, "w"))
            if a.first_calls:
                results["models"][name] = first_calls(a, name, cfg_path, files[0])
                continue
            pycfg = reference_predict.load_config(cfg_path)
            transform = reference_predict.make_transform(pycfg)
            scripted = torch.jit.load(cfg["model_path"], map_location=dev).eval()
            half = a.precision == "fp16"
            if half:
                scripted = scripted.half()
            rows = {}
            x_bare = torch.randn(1, 3, 224, 224, device=dev)
            x_bare = x_bare.half() if half else x_bare
            eager_dev = None
            if eager is not None:
                eager_dev = eager.to(dev)
                eager_dev = eager_dev.half() if half else eager_dev

            def python_one(model, blob):
                x = transform(Image.open(io.BytesIO(blob)).convert("RGB")).unsqueeze(0).to(dev)
                y = model(x.half() if half else x).float().softmax(1)
                return int(y.argmax(1)[0])

            plain_path = os.path.join(d, name + "_plain.json")
            json.dump(dict(cfg, optimize=False), open(plain_path, "w"))
            if worker is None:
                h = open_handle(lib, cfg_path)
                h_plain = open_handle(lib, plain_path)

                def ours_one(blob, handle=h):
                    return classify_blob(lib, handle, blob)
            else:
                h = ask(worker, op="init", config=cfg_path)["handle"]
                h_plain = ask(worker, op="init", config=plain_path)["handle"]
                ask(worker, op="files", files=files)
                index = {id(blob): i for i, blob in enumerate(blobs)}

                def ours_one(blob, handle=h):
                    r = ask(worker, op="run", handle=handle, file=index[id(blob)])
                    return r["class"], r["ms"]  # timed in the worker

            def bare_one(_blob):
                float(scripted(x_bare).float()[0, 0])  # read the result, as the library does

            methods = [("a_python_torchscript", lambda b: python_one(scripted, b)),
                       ("b_libji_single", ours_one),
                       ("b_libji_single_plain", lambda b: ours_one(b, h_plain)),
                       ("d_bare_forward", bare_one)]
            if eager_dev is not None:
                methods.insert(0, ("a_python_eager", lambda b: python_one(eager_dev, b)))
            # Interleaved (see --order): call by call, or image set by image set, the order
            # of the methods rotating.
            times = {m: [] for m, _ in methods}
            top1 = {m: [] for m, _ in methods}

            def timed(r, name_m, fn, blob):
                t0 = time.perf_counter()
                c = fn(blob)
                ms = (time.perf_counter() - t0) * 1e3
                if isinstance(c, tuple):  # (class, ms timed in the libji worker)
                    c, ms = c
                if r:
                    times[name_m].append(ms)
                else:
                    top1[name_m].append(c)

            with torch.no_grad():
                for r in range(a.repeat + 1):
                    if a.order == "block":
                        k = r % len(methods)
                        for name_m, fn in methods[k:] + methods[:k]:
                            for blob in blobs:
                                timed(r, name_m, fn, blob)
                        continue
                    for i, blob in enumerate(blobs):
                        k = (r + i) % len(methods)
                        for name_m, fn in methods[k:] + methods[:k]:
                            timed(r, name_m, fn, blob)
            if worker is None:
                lib.evsdk_release(h)
                lib.evsdk_release(h_plain)
            else:
                ask(worker, op="release")
            for name_m, _ in methods:
                rows[name_m] = stats(times[name_m], len(blobs) * a.repeat)
            agree = sum(x == y for x, y in zip(top1["a_python_torchscript"], top1["b_libji_single"])) / len(blobs)
            agree_plain = sum(x == y for x, y in zip(top1["a_python_torchscript"],
                                                     top1["b_libji_single_plain"])) / len(blobs)

            if worker is not None:
                # (c) runs in this process: its heap advice would reach the Python pipeline of
                # the next model.
                cfg_path = os.path.join(d, name + "_here.json")
                json.dump(dict(cfg, huge_pages=False), open(cfg_path, "w"))
            os.environ["EV_SDK_CONFIG"] = cfg_path
            pred = lib.ji_create_predictor(0)
            frames = []
            for blob in blobs:
                arr = np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))[:, :, ::-1])
                frames.append(arr)
            times_c = []
            ev = JiEvent()
            for r in range(a.repeat + 1):
                for st in range(0, len(frames), a.batch):
                    chunk = frames[st:st + a.batch]
                    infos = (JiImageInfo * len(chunk))()
                    for i, f in enumerate(chunk):
                        infos[i].nWidth, infos[i].nHeight = f.shape[1], f.shape[0]
                        infos[i].nWidthStride, infos[i].nHeightStride = f.shape[1], f.shape[0]
                        infos[i].pData = f.ctypes.data
                        infos[i].nDataLen = f.nbytes
                        infos[i].nFormat, infos[i].nDataType = 0, 2
                    t0 = time.perf_counter()
                    rc = lib.ji_calc_image(pred, infos, len(chunk), None, None, None, ctypes.byref(ev))
                    t1 = time.perf_counter()
                    if rc != 0:
                        sys.exit("ji_calc_image: %d %s" % (rc, ev.json))
                    if r:
                        times_c.extend([(t1 - t0) * 1e3 / len(chunk)] * len(chunk))
            lib.ji_destroy_predictor(pred)
            rows["c_libji_batch%d_predecoded" % a.batch] = stats(times_c, len(frames) * a.repeat)
            b = rows["b_libji_single"]["images_per_s"]
            rows["ratio_b_over_a"] = b / rows["a_python_torchscript"]["images_per_s"]
            if "a_python_eager" in rows:
                rows["ratio_b_over_a_eager"] = b / rows["a_python_eager"]["images_per_s"]
            rows["ratio_b_over_d"] = b / rows["d_bare_forward"]["images_per_s"]
            rows["ratio_b_plain_over_a"] = (rows["b_libji_single_plain"]["images_per_s"]
                                            / rows["a_python_torchscript"]["images_per_s"])
            rows["top1_agreement_a_b"] = agree
            rows["top1_agreement_a_b_plain"] = agree_plain
            if a.device == "cpu":
                fb = forward_bench(a.forward_bench, cfg, a.threads, a.huge_pages)
                if fb:
                    rows["e_forward_fast_ms"] = fb["fast_ms"]
                    rows["e_forward_plain_ms"] = fb["plain_ms"]
                    rows["e_forward_fast_ms_best_round"] = fb["fast_ms_best_round"]
                    rows["e_forward_plain_ms_best_round"] = fb["plain_ms_best_round"]
                    rows["e_fast_path"] = "%s, %d pads folded, %d fusion groups" % (
                        fb["optimization"]["path"], fb["optimization"]["pads_folded"],
                        fb["optimization"]["fusion_groups"])
            results["models"][name] = rows
            print("\n%s (%s, %s, %d threads, order %s, huge pages %s, libji in %s process)"
                  % (name, a.device, a.precision, a.threads, a.order, a.huge_pages,
                     "this" if worker is None else "its own"))
            for k, v in rows.items():
                if isinstance(v, dict):
                    print("  %-30s %8.1f img/s   p50 %7.2f ms   p99 %7.2f ms" % (k, v["images_per_s"], v["p50_ms"], v["p99_ms"]))
                elif isinstance(v, str):
                    print("  %-30s %s" % (k, v))
                else:
                    print("  %-30s %8.3f" % (k, v))
    if worker is not None:
        worker.stdin.close()
        worker.wait()
    results["load_average_end"] = os.getloadavg()
    print("\nload average (1, 5, 15 min): start %s, end %s (a busy machine makes every number noisy)"
          % (results["load_average_start"], results["load_average_end"]))
    if a.json:
        json.dump(results, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
