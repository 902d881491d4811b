#!/usr/bin/env bash
# The GPU check of issue 6, prepared as ONE script for a session that is lent a GPU machine
# (see ../shared/device/README.md). Two halves:
#
#   bash tools/gpu_check.sh prepare     # here: release build, copy what travels into .gpu/
#   device run (carry [".gpu"]):  bash tools/gpu_check.sh device   # there, ~5 minutes
#
# On the device it writes a table to stdout and logs under $OUT, checking:
#   1. `device: auto` picks CUDA and the JSON says so (model_data.device = cuda:0);
#   2. top-1 agreement between GPU fp32, GPU fp16 (plain and frozen by "optimize": true)
#      and CPU on the same images;
#   3. images/s and p50/p99 through the ABI, single image and batched ji_calc_image, against
#      the Python pipeline on the same GPU, in the same run (tools/bench_inference.py);
#   4. the create/destroy loop watching GPU memory (nvidia-smi) and host RSS;
#   5. `make install LIBTORCH=cuda`'s tree, completed from the device's torch wheel, running on
#      the GPU with LD_LIBRARY_PATH unset;
#   6. the asynchronous mode on the GPU: images/s against one-image calls with lanes and with
#      cross-call batching (examples/bench_async.rs), for choosing the GPU's async defaults.
#
# The binaries built here (Debian 12) need glibc >= 2.34 and libstdc++ with GLIBCXX_3.4.29 on
# the device (`objdump -T .gpu/* | grep GLIBC`); an older system fails at once with
# "version `GLIBC_2.34' not found", costing only the start-up.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
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
  # into the cuda profile from the device's own torch wheel (step 5).
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

device() {
  : "${OUT:=/tmp/gpu-out}"
  mkdir -p "$OUT"
  export PYTHONUNBUFFERED=1
  # The device's torch lives in /opt/torch/.venv; use it if python3 on PATH lacks torch.
  if ! python3 -c 'import torch' 2>/dev/null && [ -x /opt/torch/.venv/bin/python3 ]; then
    export PATH="/opt/torch/.venv/bin:$PATH"
  fi
  export JI_PHOTOS="$PWD/.gpu/photos"
  torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$PWD/.gpu:$torch_lib:${LD_LIBRARY_PATH:-}"
  # GPU_CHECK_DEVICE=cpu dry-runs the whole script on a machine without a GPU (with small
  # BENCH_IMAGES, BENCH_REPEAT, SOAK_CYCLES, SOAK_CALLS, SOAK_THREAD_CALLS).
  dev=${GPU_CHECK_DEVICE:-cuda}
  smi() { if command -v nvidia-smi >/dev/null; then nvidia-smi "$@"; else echo "(no nvidia-smi)"; fi; }
  smi --query-gpu=name,memory.used,memory.total --format=csv | tee "$OUT/gpu.txt"
  work=$(mktemp -d)
  # A 146-class ResNet-50 (seeded) and a few photos, made here with the device's own python.
  python3 - "$work" "$dev" <<'PY'
import json, os, sys, torch, torchvision
from PIL import Image
d, dev = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
m = torchvision.models.resnet50(num_classes=146).eval()
with torch.no_grad():
    m.fc.weight.mul_(4.0)
    torch.jit.trace(m, torch.randn(1, 3, 224, 224)).save(os.path.join(d, "model.pt"))
open(os.path.join(d, "class.txt"), "w").write(repr({"类别_%03d" % i: i for i in range(146)}))
data = os.environ["JI_PHOTOS"]
os.makedirs(os.path.join(d, "val", "x"))
for i, name in enumerate(["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png", "camera.png", "horse.png", "coins.png"]):
    Image.open(os.path.join(data, name)).convert("RGB").save(os.path.join(d, "val", "x", "%d.jpg" % i), quality=90)
base = {"model_path": "model.pt", "class_names_path": "class.txt", "resize_mode": "shorter_side",
        "resize_size": 256, "crop_size": 224, "topk": 5, "confidence_decimals": None}
for name, extra in {"auto": {"device": "auto"}, "cpu": {"device": "cpu"},
                    "fp16": {"device": dev, "precision": "fp16" if dev == "cuda" else "fp32"},
                    "fp16opt": {"device": dev, "precision": "fp16" if dev == "cuda" else "fp32",
                                "optimize": True}}.items():
    json.dump(dict(base, **extra), open(os.path.join(d, name + ".json"), "w"))
PY
  echo "== 1. device auto"
  EV_SDK_CONFIG=$work/auto.json .gpu/test-ji-api -f version | tee "$OUT/version.txt"
  EV_SDK_CONFIG=$work/auto.json .gpu/test-ji-api -f file -i "$work/val/x/0.jpg" | tee "$OUT/auto.txt"
  grep -q '"device":"cuda:0"' "$OUT/auto.txt" && echo "PASS device auto -> cuda:0" || echo "FAIL device auto did not pick CUDA"

  echo "== 2. agreement GPU fp32 / GPU fp16 / CPU"
  for c in auto fp16 fp16opt cpu; do
    .gpu/harness --lib .gpu/libji.so --api ji --config "$work/$c.json" "$work/val" --report "$OUT/report_$c.json" \
      --predictions "$OUT/pred_$c.csv" > "$OUT/harness_$c.txt" 2>&1 || echo "FAIL harness with $c.json (see harness_$c.txt)"
    grep -E "device|top-1 |throughput|latency" "$OUT/harness_$c.txt" | sed "s/^/  [$c] /"
  done
  python3 - "$OUT" <<'PY'
import csv, sys
out = sys.argv[1]
rows = {}
for c in ("auto", "fp16", "fp16opt", "cpu"):
    try:
        rows[c] = {r["path"]: r["predicted"] for r in csv.DictReader(open("%s/pred_%s.csv" % (out, c)))}
    except OSError as e:
        print("FAIL no predictions for %s: %s" % (c, e))
for a, b in (("auto", "cpu"), ("auto", "fp16"), ("auto", "fp16opt")):
    if a not in rows or b not in rows:
        continue
    same = sum(rows[a][k] == rows[b].get(k) for k in rows[a])
    print("top-1 agreement %s vs %s: %d/%d" % (a, b, same, len(rows[a])))
PY

  echo "== 3. speed against the Python pipeline on the same GPU"
  python3 tools/bench_inference.py --models mobilenet,resnet50 --device "$dev" --precision fp32 --lib .gpu/libji.so \
    --images "${BENCH_IMAGES:-24}" --repeat "${BENCH_REPEAT:-5}" --batch 8 --json "$OUT/bench_fp32.json" | tee "$OUT/bench_fp32.txt"
  if [ "$dev" = cuda ]; then
    python3 tools/bench_inference.py --models resnet50 --device cuda --precision fp16 --lib .gpu/libji.so \
      --images "${BENCH_IMAGES:-24}" --repeat "${BENCH_REPEAT:-5}" --batch 8 --json "$OUT/bench_fp16.json" | tee "$OUT/bench_fp16.txt"
  fi

  echo "== 4. create/destroy loop, GPU memory"
  smi --query-gpu=memory.used --format=csv,noheader | tee "$OUT/mem_before.txt"
  .gpu/soak "$work/auto.json" "$work/val/x/0.jpg" "$work/val/x/1.jpg" --cycles "${SOAK_CYCLES:-200}" --calls "${SOAK_CALLS:-5000}" --thread-calls "${SOAK_THREAD_CALLS:-200}" \
    2>&1 | tee "$OUT/soak.txt" &
  soak=$!
  while kill -0 $soak 2>/dev/null; do smi --query-gpu=memory.used --format=csv,noheader >> "$OUT/mem_during.txt"; sleep 2; done
  wait $soak || echo "FAIL soak exited non-zero"
  echo "GPU memory used during the loop (MiB, every 2 s):"; tr '\n' ' ' < "$OUT/mem_during.txt"; echo

  echo "== 5. the installed cuda tree with nothing but the tree and the driver"
  tree=$(mktemp -d)/ev_sdk
  python3 tools/install.py --prefix "$tree" --libtorch cuda --lib .gpu/tree/lib/libji.so \
    --torch-dir "$(dirname "$torch_lib")" --model "$work/model.pt" --classes "$work/class.txt" \
    --config "$work/auto.json" | tee "$OUT/install_cuda.txt"
  cp -r .gpu/tree/bin "$tree/"
  env -u LD_LIBRARY_PATH ldd "$tree/lib/libji.so" "$tree/lib/libtorch_cuda.so" > "$OUT/ldd_tree.txt" 2>&1
  grep -E 'not found' "$OUT/ldd_tree.txt" && echo "FAIL libraries not found in the tree"
  env -u LD_LIBRARY_PATH EV_SDK_CONFIG="$tree/config/algo_config.json" "$tree/bin/test-ji-api" -f file \
    -i "$work/val/x/0.jpg,$work/val/x/1.jpg" | tee "$OUT/tree_cuda.txt"
  grep -q '"device":"cuda:0"' "$OUT/tree_cuda.txt" && echo "PASS installed cuda tree runs on cuda:0" ||
    echo "FAIL installed cuda tree did not run on CUDA"

  echo "== 6. asynchronous mode on the GPU (lanes x batch), against one-image calls"
  .gpu/bench_async "$work/auto.json" --images "${ASYNC_IMAGES:-64}" --rounds "${ASYNC_ROUNDS:-3}" \
    --in-flight 32 --modes 1x1,2x1,4x1,1x4,1x8,2x8 2>&1 | tee "$OUT/bench_async.txt" |
    grep -E "^median|different" || echo "FAIL bench_async"
}

case "${1:-}" in
  prepare) prepare ;;
  device) device ;;
  *) echo "usage: $0 prepare|device"; exit 2 ;;
esac
