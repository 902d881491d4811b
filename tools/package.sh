#!/usr/bin/env bash
# Kept for existing scripts; `make install` (tools/install.py) is the supported way.
#
#   tools/package.sh OUT_DIR [--model MODEL.pt --classes class.txt --config algo_config.json]
#                            [--with-libtorch | --libtorch cpu|cuda|none]
#
# Builds the release library, then lays out OUT_DIR as tools/install.py does: lib/libji.so
# (RUNPATH $ORIGIN only), include/, config/ (model paths -> ../model/), model/. Without a
# libtorch option lib/ holds libji.so alone (profile "none": the host provides torch 2.11's
# lib/); --with-libtorch is the "cuda" profile. As `make install`, libji.so is the portable
# build (tools/bullseye.sh, as root) unless PORTABLE=0.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: package.sh OUT_DIR [--model M --classes C --config CFG] [--with-libtorch|--libtorch P]}
shift
args=() profile=none
while [ $# -gt 0 ]; do
  case $1 in
    --model|--classes|--config) args+=("$1" "$2"); shift 2 ;;
    --with-libtorch) profile=cuda; shift ;;
    --libtorch) profile=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
(cd "$root" && cargo build --release --lib)
if [ "${PORTABLE:-1}" != 0 ]; then
  bash "$root/tools/bullseye.sh" build-lib
  args+=(--lib "$root/target/portable/libji.so" --check-floors)
fi
"$root/.venv/bin/python" "$root/tools/install.py" --prefix "$out" --libtorch "$profile" "${args[@]}"
