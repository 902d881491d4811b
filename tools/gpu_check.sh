#!/usr/bin/env bash
# The GPU check (issues 6 and 27), prepared as ONE script for a session that is lent a GPU
# machine (see ../shared/device/README.md). Two halves:
#
#   bash tools/gpu_check.sh prepare     # here: release build, copy what travels into .gpu/
#   device run (carry [".gpu"]):  bash tools/gpu_check.sh device   # there, about 5 minutes
#
# A dry run of the device half on a machine without a GPU (small sizes, everything on the
# CPU, the expectations of a CPU machine): `GPU_CHECK_DEVICE=cpu bash tools/gpu_check.sh device`.
#
# Every step runs on its own, under its own time limit, with its output in $OUT/<step>.log:
# a failing or hanging step is reported (PASS / FAIL / SKIP, with a one-line note and the end of
# its log) and the run goes on; a step that needs another step's output is skipped when that
# one did not pass. A final table lists every step. In the order they run, with the estimated
# time on an H100/H200 host (16 cores):
#   torch         the device's torch is 2.11.0 (the build's libtorch ABI)                  5 s
#   driver        the NVIDIA driver is 580 or newer (CUDA 13: torch 2.11.0+cu130)           1 s
#   loader        libji.so and the programs resolve every library (glibc >= 2.34, GLIBCXX) 1 s
#   models        a 146-class ResNet-50 (seeded, fc x 4 for clearer margins), a MobileNetV2,
#                 8 photos and the configs, made with the device's own python             10 s
#   version       ji_get_version before any create: the driver probe, cuda.reason null      1 s
#   auto          "device": "auto" picks cuda:0: the result JSON says so, model info has no
#                 cpu_fallback, warmed batch sizes [1, 8] with "warmup" 3 passes each;
#                 ji_get_version after the create: backend loaded, no reason               10 s
#   fp16          "precision": "fp16", plain and frozen ("optimize": true): checked against
#                 fp32 at create (model info: fp16 kept, its largest probability move)     12 s
#   agreement     top-1 of GPU fp32, GPU fp16, frozen fp16, GPU with "cuda_streams" and CPU
#                 on the same photos, and of an hflip-TTA two-model ensemble on GPU and CPU:
#                 none differs where the reference's top-2 margin > 1e-2; the harness's
#                 first call (from a worker thread) within 3x its median call              35 s
#   soak-fp32, soak-fp16, soak-frozen16
#                 210 create/destroy cycles each of the plain fp32, plain fp16 and frozen fp16
#                 paths (MobileNetV2): no growth of GPU memory (the device's and the caching
#                 allocator's) after the first 10 (examples/soak --max-gpu-growth-mib 2)    60 s
#   first-calls   create, first, second and median call (ResNet-50, 3 fresh processes each,
#                 fp32 and fp16): the first judged call within 3x the median               50 s
#   threads       libtorch alone: the first forward on new threads, one after another and
#                 two alive at once, against the main thread's median                      10 s
#   cuda-tree     `make install LIBTORCH=cuda`'s tree, completed from the device's torch
#                 wheel, running on the GPU with LD_LIBRARY_PATH unset                     30 s
#   speed         images/s against the Python pipeline on the same GPU, single and batched
#                 ji_calc_image, fp32 and fp16 (tools/bench_inference.py)                  40 s
#   streams       "cuda_streams" off and on: async lanes and cross-call batching against
#                 one-image calls (examples/bench_async), no differing result             30 s
#   soak-load     threads, 2000 calls, thread churn on the GPU: no error, host memory       25 s
# About 5 minutes in all. How estimated: nothing here has run on a GPU yet, so from the parts:
# a process that loads libtorch_cuda.so (1 GB) and makes a CUDA context takes 2-5 s and the
# script starts about 30 of them (2-3 minutes); the 630 soak cycles of a 14 MB model cost about
# 0.1 s each once cuDNN has tuned (1 minute); copying the 3.3 GB cuda tree 10-30 s; forward
# passes are milliseconds, decoding a 1920x1080 JPEG about 5 ms. The deadline
# (GPU_CHECK_DEADLINE_S, default 480 s) skips the steps that would start later, and no step
# runs past it, so one device call of 10 minutes holds the whole run; each step's own limit
# is about three times its estimate. The table's seconds column is the measurement.
#
# The binaries built here (Debian 12) need glibc >= 2.34 and libstdc++ with GLIBCXX_3.4.29 on
# the device; the loader step says so at once when the device's are older.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
  set -e
  bash tools/setup.sh
  cargo build --release --lib --bins --examples
  make -C test_harness LIBDIR="$PWD/target/release" all
  rm -rf .gpu && mkdir -p .gpu
  # Debug info makes libji.so ~80 MB; what travels must stay under 64 MiB in all.
  for f in target/release/libji.so target/release/harness target/release/examples/soak \
    target/release/examples/bench_async test_harness/build/test-ji-api; do
    strip --strip-debug -o ".gpu/$(basename "$f")" "$f"
  done
  # An installed tree without libtorch (3 MB): on the device, tools/install.py completes it
  # into the cuda profile from the device's own torch wheel (step cuda-tree).
  .venv/bin/python tools/install.py --prefix .gpu/tree --libtorch none >/dev/null
  mkdir -p .gpu/tree/bin
  cc -std=c11 -O1 -I.gpu/tree/include -o .gpu/tree/bin/test-ji-api test_harness/test-ji-api.c \
    -L.gpu/tree/lib -lji -Wl,-rpath,'$ORIGIN/../lib' -Wl,-rpath-link,"$PWD/.venv/libtorch/lib" -lpthread
  # The device's python has torch, torchvision and Pillow but not scikit-image: carry the photos.
  mkdir -p .gpu/photos
  .venv/bin/python - <<'PY'
import os, shutil, skimage
data = os.path.join(os.path.dirname(skimage.__file__), "data")
for n in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png", "camera.png",
          "horse.png", "coins.png"]:
    shutil.copy(os.path.join(data, n), os.path.join(".gpu", "photos", n))
PY
  du -sh .gpu
}

# ---- the device half: helpers shared by the steps (exported: each step runs in its own bash) --

# One line for the table (the step's note); steps call it as they learn things.
note() { echo "$*" >>"$STEP_NOTE"; }
# A PASS / FAIL line in the step's log and note, and the step's verdict so far.
check() { # CONDITION-STATUS TEXT
  if [ "$1" -eq 0 ]; then note "$2"; echo "ok: $2"; else note "NOT: $2"; echo "FAILED: $2"; STEP_FAILED=1; fi
}
# The model info JSON of a handle on CONFIG (ctypes only: this python never imports torch).
model_info() { # CONFIG
  python3 - "$1" <<'PY'
import ctypes, sys
lib = ctypes.CDLL(".gpu/libji.so")
lib.evsdk_init.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.evsdk_model_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.evsdk_free_string.argtypes = [ctypes.c_void_p]
lib.evsdk_release.argtypes = [ctypes.c_void_p]
lib.evsdk_last_error.restype = ctypes.c_char_p
lib.ji_get_version.argtypes = [ctypes.c_char_p]
h, out = ctypes.c_void_p(), ctypes.c_void_p()
if lib.evsdk_init(sys.argv[1].encode(), ctypes.byref(h)) != 0:
    sys.exit("evsdk_init: " + lib.evsdk_last_error().decode())
lib.evsdk_model_info(h, ctypes.byref(out))
print(ctypes.string_at(out.value).decode())
lib.evsdk_free_string(out)
buf = ctypes.create_string_buffer(512)
lib.ji_get_version(buf)
print(buf.value.decode())  # after the create: the backend's state
lib.evsdk_release(h)
PY
}
# A key of a JSON document on stdin: a string as it is, anything else as JSON ("null" when
# absent).
jkey() { python3 -c 'import json,sys
v = json.loads(sys.stdin.readline())
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))' "$1"; }

step_torch() {
  local v
  v=$(python3 -c 'import torch; print(torch.__version__, torch.__file__)') || { note "python3 cannot import torch"; return 1; }
  echo "torch $v"
  v=${v%% *}
  [[ $v == 2.11.0* ]]; check $? "torch $v (libji.so is built against 2.11.0)"
  return "$STEP_FAILED"
}

step_driver() {
  local line release
  line=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
  release=$(echo "$line" | awk -F', ' '{print $2}')
  if [ -z "$release" ] && [ -r /proc/driver/nvidia/version ]; then
    release=$(grep -o 'Kernel Module[^0-9]*[0-9.]*' /proc/driver/nvidia/version | grep -o '[0-9][0-9.]*$')
  fi
  if [ -z "$release" ]; then
    note "no NVIDIA driver found (no nvidia-smi, no /proc/driver/nvidia)"
    [ "$DEV" = cpu ] && return 3 || return 1
  fi
  echo "GPU: $line"
  [ "${release%%.*}" -ge 580 ]; check $? "driver $release on ${line%%,*} (CUDA 13 needs 580 or newer)"
  return "$STEP_FAILED"
}

step_loader() {
  local out missing
  out=$(ldd .gpu/libji.so .gpu/harness .gpu/soak .gpu/bench_async .gpu/test-ji-api 2>&1)
  echo "$out"
  missing=$(echo "$out" | grep -E 'not found' | sort -u)
  [ -z "$missing" ]; check $? "every library resolves${missing:+: $(echo "$missing" | tr -s ' \n' ' ')}"
  echo "glibc: $(ldd --version 2>&1 | head -1)"
  return "$STEP_FAILED"
}

step_models() {
  python3 - "$WORK" "$DEV" <<'PY' || return 1
import json, os, sys, torch, torchvision
from PIL import Image
d, dev = sys.argv[1], sys.argv[2]
for arch, fname in (("resnet50", "model.pt"), ("mobilenet_v2", "small.pt")):
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)(num_classes=146).eval()
    with torch.no_grad():
        head = m.fc if arch == "resnet50" else m.classifier[1]
        head.weight.mul_(4.0)  # clearer margins than random weights give
        torch.jit.trace(m, torch.randn(1, 3, 224, 224)).save(os.path.join(d, fname))
open(os.path.join(d, "class.txt"), "w").write(repr({"类别_%03d" % i: i for i in range(146)}))
data = os.environ["JI_PHOTOS"]
os.makedirs(os.path.join(d, "val", "x"), exist_ok=True)
for i, name in enumerate(["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png",
                          "camera.png", "horse.png", "coins.png"]):
    Image.open(os.path.join(data, name)).convert("RGB").save(os.path.join(d, "val", "x", "%d.jpg" % i), quality=90)
base = {"model_path": "model.pt", "class_names_path": "class.txt", "resize_mode": "shorter_side",
        "resize_size": 256, "crop_size": 224, "topk": 5, "confidence_decimals": None}
gpu = dev if dev == "cuda" else "auto"  # the dry run: what "auto" gives on this machine
configs = {"auto": {"device": "auto"}, "auto_b8": {"device": "auto", "async_max_batch": 8},
           "cpu": {"device": "cpu"},
           "fp16": {"device": gpu, "precision": "fp16"},
           "fp16opt": {"device": gpu, "precision": "fp16", "optimize": True},
           "streams": {"device": "auto", "cuda_streams": True}}
# Test-time augmentation and a two-model ensemble, on the GPU and on the CPU (agreement).
ens = {"tta": ["hflip"], "models": [{"model_path": "model.pt", "weight": 2}, {"model_path": "small.pt"}]}
configs["ens"] = dict(ens, device="auto")
configs["ens_cpu"] = dict(ens, device="cpu")
for name, extra in list(configs.items()):
    c = dict(base, **extra)
    if "models" in c:
        del c["model_path"]
    json.dump(c, open(os.path.join(d, name + ".json"), "w"))
for name in ("auto", "fp16", "fp16opt"):  # the soak's: the small model
    json.dump(dict(base, model_path="small.pt", **configs[name]), open(os.path.join(d, "small_" + name + ".json"), "w"))
print("models, photos and configs in", d)
PY
  note "ResNet-50 and MobileNetV2 (146 classes), 8 photos, configs in $WORK"
}

step_version() {
  local v reason
  v=$(.gpu/test-ji-api -f version 2>&1 | grep -o '{.*}' | head -1)
  echo "$v"
  [ -n "$v" ]; check $? "before any create: driver CUDA $(echo "$v" | jkey cuda.driver), $(echo "$v" | jkey cuda.driver_devices) device(s), backend $(echo "$v" | jkey cuda.backend)"
  reason=$(echo "$v" | jkey cuda.reason)
  if [ "$DEV" = cuda ]; then
    [ "$reason" = null ]; check $? "no reason against CUDA${reason:+ ($reason)}"
    [ "$(echo "$v" | jkey cuda.backend)" = "not loaded" ]; check $? "the backend is loaded only by a create"
  else
    [ "$reason" != null ]; check $? "dry run: reason \"$reason\""
  fi
  return "$STEP_FAILED"
}

step_auto() {
  local out info ver want_dev
  EV_SDK_CONFIG=$WORK/auto.json .gpu/test-ji-api -f file -i "$WORK/val/x/0.jpg" >"$OUT/auto_file.txt" 2>&1
  cat "$OUT/auto_file.txt"
  out=$(model_info "$WORK/auto_b8.json") || { note "model info failed"; return 1; }
  echo "$out"
  info=$(echo "$out" | sed -n 1p)
  ver=$(echo "$out" | sed -n 2p)
  if [ "$DEV" = cuda ]; then want_dev=cuda:0; else want_dev=cpu; fi
  grep -q "\"device\":\"$want_dev\"" "$OUT/auto_file.txt"; check $? "the result JSON says $want_dev"
  [ "$(echo "$info" | jkey device)" = "$want_dev" ]; check $? "model info: device $want_dev"
  if [ "$DEV" = cuda ]; then
    [ "$(echo "$info" | jkey cpu_fallback)" = null ]; check $? "no cpu_fallback"
    [ "$(echo "$ver" | jkey cuda.reason)" = null ]; check $? "after create: backend $(echo "$ver" | jkey cuda.backend), runtime CUDA $(echo "$ver" | jkey cuda.runtime), no reason"
    [ "$(echo "$info" | jkey process_wide.cudnn_benchmark)" = true ]; check $? "cuDNN benchmark mode reported"
  else
    [ "$(echo "$info" | jkey cpu_fallback)" != null ]; check $? "dry run: a cpu_fallback reason"
  fi
  [ "$(echo "$info" | jkey warmed_batch_sizes)" = "[1, 8]" ]; check $? "warmed batch sizes $(echo "$info" | jkey warmed_batch_sizes)"
  [ "$(echo "$info" | jkey warmup)" = 3 ]; check $? "$(echo "$info" | jkey warmup) warm-up passes each"
  return "$STEP_FAILED"
}

step_fp16() {
  local c info precision diff why path
  for c in fp16 fp16opt; do
    info=$(model_info "$WORK/$c.json") || { check 1 "$c: create failed (see the log)"; continue; }
    info=$(echo "$info" | sed -n 1p)
    echo "$c: $info"
    precision=$(echo "$info" | jkey optimization.precision)
    path=$(echo "$info" | jkey optimization.path)
    diff=$(echo "$info" | jkey optimization.fp16_max_prob_diff)
    why=$(echo "$info" | jkey optimization.precision_fallback)
    if [ "$DEV" = cuda ]; then
      [ "$precision" = fp16 ] && [ "$diff" != null ]
      check $? "$c ($path): $precision, max |p16 - p32| $diff$([ "$why" != null ] && echo ", fallback: $why")"
    else
      [ "$precision" = fp32 ] && [[ $why == *"applies on CUDA only"* ]]
      check $? "dry run: $c ($path) in $precision"
    fi
  done
  return "$STEP_FAILED"
}

step_agreement() {
  local c
  for c in auto fp16 fp16opt streams cpu ens ens_cpu; do
    .gpu/harness --lib .gpu/libji.so --api ji --config "$WORK/$c.json" "$WORK/val" --report "$OUT/report_$c.json" \
      --predictions "$OUT/pred_$c.csv" >"$OUT/harness_$c.txt" 2>&1 || check 1 "harness with $c.json (harness_$c.txt)"
    grep -E "device|top-1 |throughput|latency" "$OUT/harness_$c.txt" | sed "s/^/  [$c] /"
  done
  local res
  res=$(python3 - "$OUT" <<'PY'
import csv, sys
out = sys.argv[1]
rows, bad = {}, 0
for c in ("auto", "fp16", "fp16opt", "streams", "cpu", "ens", "ens_cpu"):
    try:
        rows[c] = {r["path"]: r for r in csv.DictReader(open("%s/pred_%s.csv" % (out, c)))}
    except OSError as e:
        print("no predictions for %s: %s" % (c, e)); bad += 1
notes = []
# A disagreement counts where the reference decided: its top-2 margin above 1e-2.
for ref, other in (("cpu", "auto"), ("auto", "fp16"), ("auto", "fp16opt"), ("auto", "streams"),
                   ("ens_cpu", "ens")):
    if ref not in rows or other not in rows:
        continue
    same = decided = 0
    diff = 0.0
    for k, r in rows[ref].items():
        o = rows[other].get(k)
        if o is None or not o["predicted"]:
            decided += 1; continue
        margin = float(r["top1_confidence"]) - float(r["top2_confidence"])
        if o["predicted"] == r["predicted"]:
            same += 1
            diff = max(diff, abs(float(o["confidence"]) - float(r["confidence"])))
        elif margin > 1e-2:
            decided += 1
    print("%s vs %s: top-1 %d/%d the same, %d decided disagreements, max |conf diff| %.2e"
          % (other, ref, same, len(rows[ref]), decided, diff))
    notes.append("%s/%s %d/%d" % (other, ref, same, len(rows[ref])))
    bad += decided
# The harness creates its predictor on the main thread and calls from a worker thread: its
# first call is the first forward on a new thread (per-thread cuDNN / cuBLAS handles).
slow = []
for c, r in rows.items():
    lat = [float(v["latency_ms"]) for v in r.values() if v["latency_ms"]]
    if len(lat) > 2:
        med = sorted(lat[1:])[(len(lat) - 1) // 2]
        print("%s: first call from a new thread %.1f ms, median of the others %.1f ms" % (c, lat[0], med))
        if lat[0] > 3 * med:
            slow.append("%s %.0f/%.0f ms" % (c, lat[0], med))
notes.append("first call on a new thread within 3x the median" if not slow else "SLOW first call: " + ", ".join(slow))
bad += len(slow)
print("NOTE", ", ".join(notes))
sys.exit(1 if bad else 0)
PY
  )
  check $? "$(echo "$res" | grep '^NOTE' | cut -c6-) (none differs where the reference's margin > 1e-2)"
  echo "$res"
  return "$STEP_FAILED"
}

# The first forward on a new thread, in libtorch alone (no libji): the harness's first call
# from a worker thread was 44-139 ms against 4-8 ms medians on an H200 (2026-12-04), and each
# thread of the churn soak cost about 50 ms. Is it libtorch's per-thread setup (cuDNN / cuBLAS
# handles, which go back to a pool when a thread ends), and does a thread that ended leave it
# paid for the next one?
step_threads() {
  python3 - "$WORK/model.pt" "$DEV" <<'PY'
import sys, threading, time, torch
m = torch.jit.load(sys.argv[1], map_location=sys.argv[2]).eval()
x = torch.randn(1, 3, 224, 224, device=sys.argv[2])
def fwd():
    t = time.perf_counter()
    with torch.no_grad():
        m(x).cpu()
    return 1e3 * (time.perf_counter() - t)
torch.backends.cudnn.benchmark = True
for _ in range(5):
    fwd()
main = sorted(fwd() for _ in range(20))[10]
def on_new_thread():
    r = []
    th = threading.Thread(target=lambda: r.extend([fwd(), fwd()]))
    th.start(); th.join()
    return r
seq = [on_new_thread() for _ in range(4)]
print("main thread median %.2f ms" % main)
for i, (a, b) in enumerate(seq):
    print("new thread %d (started after the one before it ended): first %.2f ms, second %.2f ms" % (i, a, b))
# Two threads alive at once: the second cannot take the first's handles.
r1, r2, go = [], [], threading.Event()
t1 = threading.Thread(target=lambda: (r1.append(fwd()), go.wait()))
t1.start()
while not r1:
    time.sleep(0.001)
t2 = threading.Thread(target=lambda: r2.append(fwd()))
t2.start(); t2.join(); go.set(); t1.join()
print("two threads alive at once: first calls %.2f and %.2f ms" % (r1[0], r2[0]))
print("NOTE main %.1f ms; new threads in turn, first call %s ms; a second live thread %.1f ms" % (
    main, "/".join("%.0f" % a for a, _ in seq), r2[0]))
PY
  local rc=$?
  note "$(grep '^NOTE' "$STEP_LOG" | cut -c6-)"
  return $rc
}

step_first_calls() {
  local p ok
  for p in fp32 fp16; do
    [ "$DEV" = cpu ] && [ $p = fp16 ] && continue
    python3 tools/bench_inference.py --models resnet50 --device "$DEV" --precision $p --lib .gpu/libji.so \
      --first-calls "$FIRST_CALLS" --repeat "$FIRST_ROUNDS" --json "$OUT/first_calls_$p.json" || { check 1 "$p: bench_inference failed"; continue; }
    ok=$(python3 -c 'import json,sys
r = list(json.load(open(sys.argv[1]))["models"].values())[0]
print("%s create %.0f ms, calls 1 / 2 / median %.1f / %.1f / %.1f ms" % ("ok" if r["first_ms"] <= 3 * r["median_ms"] else "SLOW",
      r["create_ms"], r["first_ms"], r["second_ms"], r["median_ms"]))' "$OUT/first_calls_$p.json")
    [[ $ok == ok* ]]; check $? "$p: ${ok#* }"
  done
  return "$STEP_FAILED"
}

step_speed() {
  local p models=mobilenet,resnet50
  for p in fp32 fp16; do
    [ "$DEV" = cpu ] && [ $p = fp16 ] && continue
    [ $p = fp16 ] && models=resnet50
    python3 tools/bench_inference.py --models $models --device "$DEV" --precision $p --lib .gpu/libji.so \
      --images "$BENCH_IMAGES" --repeat "$BENCH_REPEAT" --batch 8 --json "$OUT/bench_$p.json" || { check 1 "$p: bench_inference failed"; continue; }
    note "$p: $(python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))["models"]
print(", ".join("%s %.0f img/s = %.2fx Python, batch-8 %.0f img/s, top-1 = Python %.0f%%" % (k.split("-")[0], v["b_libji_single"]["images_per_s"],
      v["ratio_b_over_a"], v["c_libji_batch8_predecoded"]["images_per_s"], 100 * v["top1_agreement_a_b"]) for k, v in m.items()))' "$OUT/bench_$p.json")"
  done
  return "$STEP_FAILED"
}

step_streams() {
  local c
  for c in auto streams; do
    .gpu/bench_async "$WORK/$c.json" --images "$ASYNC_IMAGES" --rounds "$ASYNC_ROUNDS" --in-flight 32 \
      --modes 1x1,4x1,1x8 >"$OUT/bench_async_$c.txt" 2>&1
    # "median async l4b1: 4.65 images/s (1.23x sync ...": mode, images/s, ratio.
    check $? "$([ $c = auto ] && echo "streams off" || echo "streams on"): $(grep -E '^median' "$OUT/bench_async_$c.txt" |
      sed -E 's/^median (async )?([a-z0-9]+): ([0-9.]+) images\/s \(([0-9.]+)x.*/\2 \3\/s (\4x)/' | tr '\n' ' ')"
    sed "s/^/  [$c] /" "$OUT/bench_async_$c.txt"
  done
  return "$STEP_FAILED"
}

soak_cycles() { # CONFIG
  .gpu/soak "$WORK/$1.json" "$WORK/val/x/0.jpg" "$WORK/val/x/1.jpg" --cycles "$SOAK_CYCLES" --warm-cycles 10 \
    --calls 0 --thread-calls 0 --churn-threads 0 --max-gpu-growth-mib 2
  local rc=$?
  note "$1, $SOAK_CYCLES cycles: $(grep -oE 'growth used .*' "$STEP_LOG" | head -1)$(grep -q 'no CUDA device in use' "$STEP_LOG" && echo 'no GPU in use'); host RSS $(grep -oE 'growth [-+0-9.]+ MB' "$STEP_LOG" | head -1)"
  [ $rc -eq 3 ] && note "GPU memory grew more than 2 MiB"
  return $rc
}
step_soak_fp32() { soak_cycles small_auto; }
step_soak_fp16() { soak_cycles small_fp16; }
step_soak_frozen16() { soak_cycles small_fp16opt; }

step_soak_load() {
  .gpu/soak "$WORK/auto.json" "$WORK/val/x/0.jpg" "$WORK/val/x/1.jpg" --cycles 0 --calls "$SOAK_CALLS" \
    --thread-calls "$SOAK_THREAD_CALLS" --churn-threads "$SOAK_CHURN" || return 1
  ! grep -qE ' [1-9][0-9]* errors' "$STEP_LOG"; check $? "no errors or differing results"
  note "$(grep -oE 'one predictor: [0-9]+ calls in [0-9.]+ s' "$STEP_LOG")"
  return "$STEP_FAILED"
}

step_cuda_tree() {
  if [ "$DEV" = cpu ] && [ -z "${GPU_CHECK_TREE:-}" ]; then
    note "dry run: make install-check installs and runs the cuda profile here (GPU_CHECK_TREE=1 to copy it anyway)"
    return 3
  fi
  local tree want_dev
  tree=$WORK/tree/ev_sdk
  python3 tools/install.py --prefix "$tree" --libtorch cuda --lib .gpu/tree/lib/libji.so \
    --torch-dir "$(dirname "$TORCH_LIB")" --model "$WORK/model.pt" --classes "$WORK/class.txt" \
    --config "$WORK/auto.json" || return 1
  cp -r .gpu/tree/bin "$tree/"
  env -u LD_LIBRARY_PATH ldd "$tree/lib/libji.so" "$tree/lib/libtorch_cuda.so" >"$OUT/ldd_tree.txt" 2>&1
  ! grep -q 'not found' "$OUT/ldd_tree.txt"; check $? "ldd resolves the tree inside itself"
  env -u LD_LIBRARY_PATH EV_SDK_CONFIG="$tree/config/algo_config.json" "$tree/bin/test-ji-api" -f file \
    -i "$WORK/val/x/0.jpg,$WORK/val/x/1.jpg" >"$OUT/tree_cuda.txt" 2>&1
  cat "$OUT/tree_cuda.txt"
  if [ "$DEV" = cuda ]; then want_dev=cuda:0; else want_dev=cpu; fi
  grep -q "\"device\":\"$want_dev\"" "$OUT/tree_cuda.txt"; check $? "the installed cuda tree runs on $want_dev"
  rm -rf "$WORK/tree"
  return "$STEP_FAILED"
}

# Runs step NAME (function step_NAME with - as _) under LIMIT seconds, unless a step it NEEDS
# did not pass or the deadline has passed; records its status, time and note.
NAMES=() STATUS=() SECS=() NOTES=()
run_step() { # NAME LIMIT [NEEDS...]
  local name=$1 limit=$2 fn=step_${1//-/_} need status rc t0 left noteline
  shift 2
  export STEP_NOTE=$OUT/notes/$name STEP_LOG=$OUT/$name.log STEP_FAILED=0
  : >"$STEP_NOTE"
  status=
  for need in "$@"; do
    local i
    for i in "${!NAMES[@]}"; do
      if [ "${NAMES[$i]}" = "$need" ] && [ "${STATUS[$i]}" != PASS ]; then
        status=SKIP; echo "needs step $need, which did not pass" >"$STEP_NOTE"
      fi
    done
  done
  left=$((DEADLINE - SECONDS))
  if [ -z "$status" ] && [ "$left" -le 5 ]; then
    status=SKIP; echo "out of time (deadline ${DEADLINE}s)" >"$STEP_NOTE"
  fi
  t0=$SECONDS
  if [ -z "$status" ]; then
    [ "$limit" -gt "$left" ] && limit=$left
    timeout -k 10 "$limit" bash -c "$fn" >"$STEP_LOG" 2>&1
    rc=$?
    case $rc in
      0) status=PASS ;;
      3) status=SKIP ;;
      124|137) status=FAIL; echo "timed out after ${limit}s" >>"$STEP_NOTE" ;;
      *) status=FAIL ;;
    esac
  fi
  noteline=$(awk 'NR > 1 { printf " | " } { printf "%s", $0 }' "$STEP_NOTE")
  NAMES+=("$name") STATUS+=("$status") SECS+=("$((SECONDS - t0))") NOTES+=("$noteline")
  printf '%-5s %-14s %4ss  %s\n' "$status" "$name" "$((SECONDS - t0))" "$noteline"
  if [ "$status" = FAIL ]; then
    tail -n 12 "$STEP_LOG" | sed 's/^/      | /'
  fi
}

device() {
  : "${OUT:=/tmp/gpu-out}"
  mkdir -p "$OUT/notes"
  export OUT PYTHONUNBUFFERED=1
  # The device's torch lives in /opt/torch/.venv; here (the dry run) in .venv.
  if ! python3 -c 'import torch' 2>/dev/null; then
    for v in /opt/torch/.venv "$PWD/.venv"; do
      [ -x "$v/bin/python3" ] && { export PATH="$v/bin:$PATH"; break; }
    done
  fi
  export JI_PHOTOS="$PWD/.gpu/photos"
  TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
  export TORCH_LIB LD_LIBRARY_PATH="$PWD/.gpu:$TORCH_LIB:${LD_LIBRARY_PATH:-}"
  export DEV=${GPU_CHECK_DEVICE:-cuda}
  local dry=; [ "$DEV" = cpu ] && dry=1
  # Sizes: full on the device, small for the dry run; each may be set in the environment.
  size() { if [ -n "$dry" ]; then echo "$2"; else echo "$1"; fi; }
  export FIRST_CALLS=${FIRST_CALLS:-$(size 20 5)} FIRST_ROUNDS=${FIRST_ROUNDS:-$(size 3 1)}
  export BENCH_IMAGES=${BENCH_IMAGES:-$(size 24 4)} BENCH_REPEAT=${BENCH_REPEAT:-$(size 3 1)}
  export ASYNC_IMAGES=${ASYNC_IMAGES:-$(size 64 16)} ASYNC_ROUNDS=${ASYNC_ROUNDS:-$(size 2 1)}
  export SOAK_CYCLES=${SOAK_CYCLES:-$(size 210 20)} SOAK_CALLS=${SOAK_CALLS:-$(size 2000 50)}
  export SOAK_THREAD_CALLS=${SOAK_THREAD_CALLS:-$(size 100 5)} SOAK_CHURN=${SOAK_CHURN:-$(size 200 10)}
  export DEADLINE=${GPU_CHECK_DEADLINE_S:-$(size 480 1500)}
  WORK=$(mktemp -d) && export WORK
  export -f note check model_info jkey soak_cycles $(compgen -A function step_)
  echo "gpu_check ($DEV$([ -n "$dry" ] && echo ", dry run"), deadline ${DEADLINE}s), logs in $OUT; $(date -u +'%Y-%m-%d %H:%M UTC')"
  nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv >"$OUT/gpu.txt" 2>&1
  run_step torch 30
  run_step driver 30
  run_step loader 30
  run_step models 120 torch
  run_step version 30 loader
  run_step auto 60 loader models
  run_step fp16 90 loader models
  run_step agreement 120 loader models
  # Most telling first: what is left when the deadline comes is the least needed.
  run_step soak-fp32 90 loader models
  run_step soak-fp16 90 loader models
  run_step soak-frozen16 90 loader models
  run_step first-calls 120 loader models
  run_step threads 60 torch models
  run_step cuda-tree 120 torch models
  run_step speed 150 loader models
  run_step streams 120 loader models
  run_step soak-load 90 loader models
  rm -rf "$WORK"
  local i pass fail skip
  echo
  echo "== gpu_check summary ($DEV, ${SECONDS}s in all)"
  printf '%-14s %-5s %5s  %s\n' step status secs note
  for i in "${!NAMES[@]}"; do
    printf '%-14s %-5s %5s  %s\n' "${NAMES[$i]}" "${STATUS[$i]}" "${SECS[$i]}" "${NOTES[$i]}"
  done | tee "$OUT/summary.txt"
  pass=$(grep -c '^[^ ]* *PASS ' "$OUT/summary.txt"); fail=$(grep -c '^[^ ]* *FAIL ' "$OUT/summary.txt")
  skip=$(grep -c '^[^ ]* *SKIP ' "$OUT/summary.txt")
  echo "$pass passed, $fail failed, $skip skipped"
  [ "$fail" -eq 0 ]
}

case "${1:-}" in
  prepare) prepare ;;
  device) device ;;
  *) echo "usage: $0 prepare|device"; exit 2 ;;
esac
