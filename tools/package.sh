#!/usr/bin/env bash
# Lays out what the judge expects under /usr/local/ev_sdk, ready to copy or archive:
#
#   tools/package.sh OUT_DIR [--model MODEL.pt --classes class.txt --config algo_config.json]
#                            [--with-libtorch]
#
#   OUT_DIR/lib/libji.so           stripped release build (rpath: $ORIGIN and the build's torch)
#   OUT_DIR/include/ji.h (+ ji_types.h, ji_error.h: the platform's 4.x header names)
#   OUT_DIR/config/algo_config.json  the given config, or the template; its model paths are
#                                  rewritten to ../model/<file>
#   OUT_DIR/model/                 the given model and class names
#   OUT_DIR/lib/*.so*              with --with-libtorch: libtorch's own libraries from .venv
#                                  (large: the CUDA build is several GB), found through $ORIGIN
# Without --with-libtorch the target machine must provide torch 2.11's lib/ on the loader path
# (LD_LIBRARY_PATH or ld.so.conf). Set OMP_WAIT_POLICY=PASSIVE for CPU inference (README).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: package.sh OUT_DIR [--model M --classes C --config CFG] [--with-libtorch]}
shift
model="" classes="" config="" libtorch=0
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --classes) classes=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --with-libtorch) libtorch=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
(cd "$root" && cargo build --release --lib)
mkdir -p "$out/lib" "$out/include" "$out/config" "$out/model"
strip --strip-debug -o "$out/lib/libji.so" "$root/target/release/libji.so"
cp "$root/include/ji.h" "$root/include/ji_types.h" "$root/include/ji_error.h" "$out/include/"
[ -n "$model" ] && cp "$model" "$out/model/"
[ -n "$classes" ] && cp "$classes" "$out/model/"
"$root/.venv/bin/python" - "${config:-$root/config/algo_config.json}" "$out/config/algo_config.json" \
  "$(basename "${model:-model.pt}")" "$(basename "${classes:-class.txt}")" <<'PY'
import json, sys
src, dst, model, classes = sys.argv[1:5]
cfg = json.load(open(src, encoding="utf-8"))
cfg["model_path"] = "../model/" + model
cfg["class_names_path"] = "../model/" + classes
json.dump(cfg, open(dst, "w", encoding="utf-8"), ensure_ascii=False, indent=2)
PY
if [ $libtorch = 1 ]; then
  cp -a "$root/.venv/libtorch/lib/." "$out/lib/"
fi
echo "packaged into $out:"
(cd "$out" && find . -maxdepth 2 -type f | sort | head -20)
