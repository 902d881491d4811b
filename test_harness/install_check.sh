#!/usr/bin/env bash
# The installed tree runs on a machine that never saw the build (README, "Install").
#
# Installs the pipeline fixtures' model (ResNet-18, 146 Chinese class names) with
# `make install LIBTORCH=cpu` and `LIBTORCH=cuda` into a temporary folder, builds the C
# example and the C test program against the cpu tree with the README's link line, and runs
# them in a private mount namespace where the build's .venv and target/ are empty folders and
# LD_LIBRARY_PATH is unset. Their results must equal the development build's, image for image.
# Also: the loader resolves every library of each tree inside the tree (ldd), the cpu tree holds
# no CUDA library beyond the two libtorch_cpu.so itself links, no absolute path is left in
# libji.so's dynamic section, and the README states the glibc floor install.py measures.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fx=$root/tests/fixtures/generated/pipeline
py=$root/.venv/bin/python
tmp=$(mktemp -d /tmp/ji-install-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/    /' | head -30; }

# The fixture config with "device": "auto": the development build finds the wheel's
# libtorch_cuda.so (and no GPU), the cpu tree has none; both must run on the CPU.
"$py" - "$fx/config_stretch.json" "$tmp/config.json" "$fx" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1], encoding="utf-8"))
cfg["device"] = "auto"
cfg["model_path"] = sys.argv[3] + "/" + cfg["model_path"]
cfg["class_names_path"] = sys.argv[3] + "/" + cfg["class_names_path"]
json.dump(cfg, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
PY
install_tree() { # PROFILE
  make --no-print-directory install PREFIX="$tmp/$1" LIBTORCH="$1" MODEL="$fx/model/resnet18_146.pt" \
    CLASSES="$fx/model/class.txt" CONFIG="$tmp/config.json" >"$tmp/install-$1.log" 2>&1
}
for p in cpu cuda; do
  if install_tree $p; then ok "make install LIBTORCH=$p ($(tail -n +1 "$tmp/install-$p.log" | grep -o 'lib/ holds.*'))"
  else bad "make install LIBTORCH=$p" "$(tail -20 "$tmp/install-$p.log")"; fi
done
E=$tmp/cpu
if [ ! -f "$E/lib/libji.so" ] || [ ! -f "$tmp/cuda/lib/libtorch_cuda.so" ]; then
  echo "install-check: $pass passed, $((fail + 1)) failed (no installed tree to check)"
  exit 1
fi

# The README's link line, as written there, against the installed tree.
link=$(grep -m1 '^cc -I\$E/include app.c' README.md)
if [ -z "$link" ]; then
  bad "README link line" "no line starting 'cc -I\$E/include app.c' in README.md"
else
  for prog in example_evsdk test-ji-api; do
    cp "test_harness/$prog.c" "$tmp/app.c"
    if (cd "$tmp" && E=$E eval "$link -Wall -Werror" >"$tmp/cc.log" 2>&1) && mv "$tmp/app" "$tmp/$prog"; then
      ok "README link line builds $prog against the installed tree"
    else bad "README link line builds $prog" "$(cat "$tmp/cc.log")"; fi
  done
fi

# Runs a command where the build cannot be seen: .venv (its real folder, also when .venv is a
# link) and target/ are empty, LD_LIBRARY_PATH is unset, the dynamic loader's cache is not
# consulted for libtorch (it holds no such entry on a clean machine).
venv_real=$(readlink -f "$root/.venv")
hidden() {
  unshare --mount --propagation private -- bash -c '
    for d in "$@"; do [ "$d" = -- ] && break; mount -t tmpfs none "$d" || exit 97; done
    while [ "$1" != -- ]; do shift; done; shift
    [ ! -e "'"$venv_real"'/libtorch" ] || { echo "the venv is still visible"; exit 98; }
    exec env -u LD_LIBRARY_PATH "$@"' _ "$venv_real" "$root/target" -- "$@"
}
if hidden true; then ok "private mount namespace hides .venv and target/"
else bad "private mount namespace (unshare --mount needs root)"; fi

# ldd inside the namespace: nothing "not found", every non-system library from the tree.
ldd_check() { # NAME TREE FILE...
  local name=$1 tree=$2; shift 2
  local out
  out=$(hidden ldd "$@" 2>&1)
  local missing outside
  missing=$(grep -E 'not found' <<<"$out")
  outside=$(grep -E '=> /' <<<"$out" | grep -vE "=> ($tree/lib/|/lib/|/usr/lib/|/lib64/)" )
  if [ -z "$missing" ] && [ -z "$outside" ] && grep -q "=> $tree/lib/libtorch_cpu.so" <<<"$out"; then ok "$name"
  else bad "$name" "$missing$outside"; fi
}
ldd_check "ldd: cpu tree resolves inside itself" "$tmp/cpu" "$tmp/cpu/lib/"*.so*
ldd_check "ldd: cuda tree's libtorch_cuda.so resolves inside itself" "$tmp/cuda" "$tmp/cuda/lib/libtorch_cuda.so" \
  "$tmp/cuda/lib/libtorch_cuda_linalg.so" "$tmp/cuda/lib/libcudnn.so.9" "$tmp/cuda/lib/libji.so"
cuda_in_cpu=$(ls "$tmp/cpu/lib" | grep -Ei 'cuda|cudnn|cublas|nccl|cusparse|cufft|curand|nvrtc|nvshmem' | grep -vE '^libcudart\.so|^libcupti\.so')
[ -z "$cuda_in_cpu" ] && ok "cpu tree: no CUDA library beyond libcudart/libcupti (libtorch_cpu.so's own)" ||
  bad "cpu tree holds CUDA libraries" "$cuda_in_cpu"
needed=$(readelf -d "$tmp/cpu/lib/libji.so" | grep -E 'NEEDED|RUNPATH|RPATH')
if ! grep -q 'libtorch_cpu.so' <<<"$needed"; then bad "readelf -d libji.so" "$needed"
elif grep -q 'libtorch_cuda' <<<"$needed"; then bad "libji.so must not need libtorch_cuda.so" "$needed"
elif grep -E 'R(UN)?PATH' <<<"$needed" | grep -qv '\[\$ORIGIN\]'; then bad "libji.so's RUNPATH is \$ORIGIN only" "$needed"
elif readelf -d "$tmp/cpu/lib/libji.so" | grep -E '^ +0x' | grep -q '/'; then bad "no absolute path in libji.so's dynamic section" "$needed"
else ok "libji.so: RUNPATH \$ORIGIN only, no libtorch_cuda.so, no absolute path"; fi

# Results: the development build (target/release, .venv visible) against the installed cpu tree.
imgs=$(ls "$fx"/images/photo_* 2>/dev/null | head -8 | paste -sd, -)
[ -n "$imgs" ] || imgs=$(ls "$fx"/images/*.jpg | head -8 | paste -sd, -)
results() { grep -E '^ *\{' "$1" | sed -E 's/"(latency|time)[^,}]*[,}]//g'; }
EV_SDK_CONFIG=$tmp/config.json test_harness/build/test-ji-api -f file -i "$imgs" >"$tmp/dev.log" 2>&1
EV_SDK_CONFIG=$E/config/algo_config.json hidden "$tmp/test-ji-api" -f file -i "$imgs" >"$tmp/inst.log" 2>&1
n=$(results "$tmp/dev.log" | wc -l)
if [ "$n" -ge 1 ] && diff <(results "$tmp/dev.log") <(results "$tmp/inst.log") >"$tmp/diff.log" &&
   grep -q '"device":"cpu"' "$tmp/inst.log"; then
  ok "installed cpu tree, .venv hidden: $n results identical to the development build, device cpu"
else bad "installed tree's results equal the development build's" "$(head -c 3000 "$tmp/diff.log"; tail -5 "$tmp/inst.log")"; fi
first=${imgs%%,*}
"$root/test_harness/build/example_evsdk" "$tmp/config.json" "$first" '{"topk": 3}' >"$tmp/ex-dev.log" 2>&1
hidden "$tmp/example_evsdk" "$E/config/algo_config.json" "$first" '{"topk": 3}' >"$tmp/ex-inst.log" 2>&1
if [ -s "$tmp/ex-inst.log" ] && diff <(tail -1 "$tmp/ex-dev.log") <(tail -1 "$tmp/ex-inst.log") >/dev/null &&
   grep -q '"topk":\[' "$tmp/ex-inst.log"; then ok "README's C example runs from the installed tree, same result"
else bad "C example from the installed tree" "$(cat "$tmp/ex-dev.log" "$tmp/ex-inst.log")"; fi

# "device": "cuda" on the cpu tree: a config error naming the library and the loader's reason.
"$py" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["device"]="cuda"; json.dump(c, open(sys.argv[2],"w"), ensure_ascii=False)' \
  "$E/config/algo_config.json" "$E/config/cuda.json"
EV_SDK_CONFIG=$E/config/cuda.json hidden "$tmp/test-ji-api" -f file -i "$first" >"$tmp/cuda.log" 2>&1
if grep -q "CUDA backend could not be loaded: libtorch_cuda.so: cannot open shared object file" "$tmp/cuda.log"; then
  ok "device cuda on the cpu tree: error names libtorch_cuda.so and the loader's message"
else bad "device cuda on the cpu tree" "$(cat "$tmp/cuda.log")"; fi
hidden "$tmp/test-ji-api" -f version >"$tmp/version.log" 2>&1
grep -q '"cuda":{' "$tmp/version.log" && ok "ji_get_version reports the CUDA backend" ||
  bad "ji_get_version reports the CUDA backend" "$(cat "$tmp/version.log")"

# The glibc floor the README states is the one the shipped libji.so needs.
floor=$(objdump -T "$E/lib/libji.so" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sort -uV | tail -1)
[ -n "$floor" ] && grep -q "libji.so needs $floor" README.md && ok "README states libji.so's glibc floor ($floor)" ||
  bad "README must say 'libji.so needs $floor'"

echo "install-check: $pass passed, $fail failed"
[ $fail = 0 ]
