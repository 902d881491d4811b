#!/usr/bin/env bash
# The platform's Python judge API (src/ji.py of the installed tree) against the C API
# (README, "Python judges"; `make jipy-check`, part of `make test`).
#
# Installs the pipeline fixtures' model (ResNet-18, 146 Chinese class names) with
# `make install LIBTORCH=cpu` into a temporary folder, reads the fixture images with cv2.imread
# (the pinned opencv-python-headless of the build's .venv) into .npy frames, and runs
# test_harness/jipy_check.py with the .venv's base interpreter, a Python without torch, numpy
# copied beside it, in a private mount namespace where the build's .venv and target/ are empty
# folders and LD_LIBRARY_PATH and EV_SDK_CONFIG are unset. jipy_check.py takes the interpreter,
# the tree and the frames from its arguments, so the same check can run in another root (a
# Debian 11 chroot with python3-numpy), and it does: the last part runs it in tools/bullseye.sh's
# root with Debian's python3 and python3-numpy.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fx=$root/tests/fixtures/generated/pipeline
py=$root/.venv/bin/python
tmp=$(mktemp -d /tmp/ji-jipy-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/    /' | head -30; echo "jipy-check: failed"; exit 1; }

"$py" - "$fx/config_stretch.json" "$tmp/config.json" "$fx" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1], encoding="utf-8"))
cfg["device"] = "cpu"
cfg["model_path"] = sys.argv[3] + "/" + cfg["model_path"]
cfg["class_names_path"] = sys.argv[3] + "/" + cfg["class_names_path"]
json.dump(cfg, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
PY
make --no-print-directory install PREFIX="$tmp/tree" LIBTORCH=cpu MODEL="$fx/model/resnet18_146.pt" \
  CLASSES="$fx/model/class.txt" CONFIG="$tmp/config.json" >"$tmp/install.log" 2>&1 ||
  fail "make install LIBTORCH=cpu" "$(tail -20 "$tmp/install.log")"
[ -f "$tmp/tree/src/ji.py" ] || fail "make install puts ji.py in src/"
echo "ok   make install LIBTORCH=cpu puts src/ji.py beside lib/libji.so"

imgs=$(ls "$fx"/images/*.jpg "$fx"/images/*.png)
# shellcheck disable=SC2086  # one path per word
"$py" test_harness/jipy_frames.py "$tmp/frames" $imgs || fail "cv2.imread frames"

# The interpreter the .venv was made from (no torch, no numpy), and numpy copied out of the
# .venv, which is hidden below.
base_py=$("$py" -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)')
base_py=$(readlink -f "$base_py")
venv_real=$(readlink -f "$root/.venv")
case "$base_py" in "$venv_real"/*) fail "the .venv's base interpreter $base_py lies inside the .venv" ;; esac
site=$("$py" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')
mkdir -p "$tmp/pylib"
for d in numpy numpy.libs; do [ ! -e "$site/$d" ] || cp -r "$site/$d" "$tmp/pylib/"; done

echo "== this machine: the .venv's base Python, numpy copied beside it"
host_rc=0
unshare --mount --propagation private -- bash -c '
  mount -t tmpfs none "$1" && mount -t tmpfs none "$2" || exit 97
  [ ! -e "$1/bin/python" ] || { echo "the venv is still visible"; exit 98; }
  shift 2
  exec env -u LD_LIBRARY_PATH -u EV_SDK_CONFIG -u PYTHONPATH -u PYTHONHOME "$@"' _ \
  "$venv_real" "$root/target" \
  "$base_py" -s test_harness/jipy_check.py --tree "$tmp/tree" --frames "$tmp/frames" \
  --pythonpath "$tmp/pylib" || host_rc=$?

# The same check in the Debian 11 root of tools/bullseye.sh (glibc 2.31, Debian's python3 3.9 and
# python3-numpy): the tree, built there by default, and the frames bound in, nothing else of the
# build visible.
echo "== Debian 11 root: Debian's python3 and python3-numpy"
cp test_harness/jipy_check.py "$tmp/jipy_check.py"
deb_rc=0
bash tools/bullseye.sh run -b "$tmp" -- python3 -s "$tmp/jipy_check.py" --tree "$tmp/tree" \
  --frames "$tmp/frames" || deb_rc=$?
[ $deb_rc = 0 ] || echo "FAIL the Debian 11 run (exit $deb_rc)"
[ $host_rc = 0 ] && [ $deb_rc = 0 ]
