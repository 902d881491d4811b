#!/usr/bin/env bash
# The installed tree runs on a machine that never saw the build (README, "Install").
#
# Installs the pipeline fixtures' model (ResNet-18, 146 Chinese class names) with the portable
# `make install LIBTORCH=cpu` and `LIBTORCH=cuda` (libji.so built in a Debian 11 root,
# tools/bullseye.sh; needs root) into a temporary folder, builds the C example and the C test
# program against the cpu tree with the README's link line, and runs them
#   - here, in a private mount namespace where the build's .venv and target/ are empty folders
#     and LD_LIBRARY_PATH is unset, and
#   - in the Debian 11 root (glibc 2.31, GCC 10's libstdc++), compiled there as well.
# Their results must equal the development build's, image for image (the development build
# runs with "device": "cpu", so that the comparison holds on a GPU host too; the trees run
# "auto", which is the CPU without libtorch_cuda.so). Also: every library of both trees is
# within the symbol-version ceilings of tools/floors.tsv, the README and `make install` state
# libji.so's floors, the loader resolves every library of each tree inside the tree (ldd), the
# cpu tree holds no CUDA library beyond the two libtorch_cpu.so itself links, and no absolute
# path is left in libji.so's dynamic section.
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

# The fixture config: "device": "auto" for the trees (the cpu tree has no libtorch_cuda.so, so
# the CPU), "cpu" for the development build, which finds the wheel's libtorch_cuda.so and, on
# a GPU host, a GPU: the results compared are the CPU's on both sides, on any machine.
"$py" - "$fx/config_stretch.json" "$tmp" "$fx" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1], encoding="utf-8"))
cfg["model_path"] = sys.argv[3] + "/" + cfg["model_path"]
cfg["class_names_path"] = sys.argv[3] + "/" + cfg["class_names_path"]
for name, device in (("config.json", "auto"), ("config-dev.json", "cpu")):
    cfg["device"] = device
    json.dump(cfg, open(sys.argv[2] + "/" + name, "w", encoding="utf-8"), ensure_ascii=False)
PY
install_tree() { # PROFILE
  make --no-print-directory install PORTABLE=1 PREFIX="$tmp/$1" LIBTORCH="$1" MODEL="$fx/model/resnet18_146.pt" \
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

# The README's link line, as written there, against the installed tree (plus -pthread for the
# program that starts threads, which glibc < 2.34 needs: README, "Using it from C").
link=$(grep -m1 '^cc -I\$E/include app.c' README.md)
cflags() { [ "$1" = test-ji-api ] && echo -pthread; }
if [ -z "$link" ]; then
  bad "README link line" "no line starting 'cc -I\$E/include app.c' in README.md"
else
  for prog in example_evsdk test-ji-api; do
    cp "test_harness/$prog.c" "$tmp/app.c"
    if (cd "$tmp" && E=$E eval "$link -Wall -Werror $(cflags $prog)" >"$tmp/cc.log" 2>&1) && mv "$tmp/app" "$tmp/$prog"; then
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
EV_SDK_CONFIG=$tmp/config-dev.json test_harness/build/test-ji-api -f file -i "$imgs" >"$tmp/dev.log" 2>&1
EV_SDK_CONFIG=$E/config/algo_config.json hidden "$tmp/test-ji-api" -f file -i "$imgs" >"$tmp/inst.log" 2>&1
n=$(results "$tmp/dev.log" | wc -l)
if [ "$n" -ge 1 ] && diff <(results "$tmp/dev.log") <(results "$tmp/inst.log") >"$tmp/diff.log" &&
   grep -q '"device":"cpu"' "$tmp/inst.log"; then
  ok "installed cpu tree, .venv hidden: $n results identical to the development build, device cpu"
else bad "installed tree's results equal the development build's" "$(head -c 3000 "$tmp/diff.log"; tail -5 "$tmp/inst.log")"; fi
first=${imgs%%,*}
"$root/test_harness/build/example_evsdk" "$tmp/config-dev.json" "$first" '{"topk": 3}' >"$tmp/ex-dev.log" 2>&1
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

# Debian 11: the cpu tree in the bullseye root, the C programs compiled there with the README's
# link line against the tree's include/ and lib/. /proc is mounted there (libtorch reads it);
# nothing of the build is: only the tree, the fixtures (read-only) and this folder.
q() { printf '%q' "$1"; }
bull() { # SCRIPT: runs in the root, in $tmp/bullseye
  bash tools/bullseye.sh run -b "$tmp" -r "$fx" -- env OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" \
    E="$E" bash -c "cd $(q "$tmp/bullseye") && $1"
}
mkdir -p "$tmp/bullseye"
if bull 'cat /etc/debian_version; ldd --version | head -1
         for v in 28 29; do grep -q "GLIBCXX_3.4.$v" /usr/lib/x86_64-linux-gnu/libstdc++.so.6 && echo "has 3.4.$v" || echo "no 3.4.$v"; done' \
     >"$tmp/bullseye/root.log" 2>&1 &&
   grep -qE '^11\.' "$tmp/bullseye/root.log" && grep -q 'GLIBC 2.31' "$tmp/bullseye/root.log" &&
   grep -qx 'has 3.4.28' "$tmp/bullseye/root.log" && grep -qx 'no 3.4.29' "$tmp/bullseye/root.log"; then
  ok "Debian 11 root: glibc 2.31, libstdc++ up to GLIBCXX_3.4.28 ($(head -1 "$tmp/bullseye/root.log"))"
else bad "the Debian 11 root (tools/bullseye.sh)" "$(cat "$tmp/bullseye/root.log")"; fi
if [ -n "$link" ]; then
  for prog in example_evsdk test-ji-api; do
    cp "test_harness/$prog.c" "$tmp/bullseye/$prog.c"
    if bull "cp $prog.c app.c && $link -Wall -Werror $(cflags $prog) && mv app $prog" >"$tmp/bullseye/cc.log" 2>&1; then
      ok "Debian 11: README link line builds $prog against the installed tree"
    else bad "Debian 11: README link line builds $prog" "$(cat "$tmp/bullseye/cc.log")"; fi
  done
fi
out=$(bull 'ldd "$E/lib/libji.so"' 2>&1)
if ! grep -q 'not found' <<<"$out" && grep -q "libtorch_cpu.so => $E/lib/libtorch_cpu.so" <<<"$out" &&
   grep -qE 'libstdc\+\+.so.6 => /(usr/)?lib/x86_64-linux-gnu/' <<<"$out"; then
  ok "Debian 11: ldd resolves libji.so from the tree and the root's libstdc++"
else bad "Debian 11: ldd libji.so" "$out"; fi
bull "EV_SDK_CONFIG=\$E/config/algo_config.json ./test-ji-api -f file -i $(q "$imgs")" >"$tmp/bullseye/inst.log" 2>&1
if [ "$n" -ge 1 ] && diff <(results "$tmp/dev.log") <(results "$tmp/bullseye/inst.log") >"$tmp/bullseye/diff.log" &&
   grep -q '"device":"cpu"' "$tmp/bullseye/inst.log"; then
  ok "Debian 11: test-ji-api's $n results identical to the development build, device cpu"
else bad "Debian 11: test-ji-api's results equal the development build's" \
  "$(head -c 3000 "$tmp/bullseye/diff.log"; tail -5 "$tmp/bullseye/inst.log")"; fi
bull "./example_evsdk \$E/config/algo_config.json $(q "$first") '{\"topk\": 3}'" >"$tmp/bullseye/ex.log" 2>&1
if grep -q '"topk":\[' "$tmp/bullseye/ex.log" && diff <(tail -1 "$tmp/ex-dev.log") <(tail -1 "$tmp/bullseye/ex.log") >/dev/null; then
  ok "Debian 11: README's C example, same result as the development build"
else bad "Debian 11: C example" "$(cat "$tmp/ex-dev.log" "$tmp/bullseye/ex.log")"; fi

# Symbol versions: every library of both trees within the ceilings of tools/floors.tsv (its
# file's row, else "*"); the README and `make install` state what libji.so needs.
versions() { # FILE -> "KIND VERSION" per symbol version the file needs
  objdump -T "$1" | grep -F '*UND*' | grep -oE '\((GLIBC|GLIBCXX|CXXABI)_[0-9]+(\.[0-9]+)+\)' |
    tr -d '()' | sed 's/_/ /' | sort -u
}
ceiling() { # FILE-NAME KIND
  awk -F'\t' -v n="$1" -v k="$2" '!/^#/ && NF >= 4 {
      c = k == "GLIBC" ? $2 : k == "GLIBCXX" ? $3 : $4
      if ($1 == n) own = c; if ($1 == "*") any = c }
    END { print (own != "" ? own : any) }' tools/floors.tsv
}
newer() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$1" ]; }  # $1 > $2
for p in cpu cuda; do
  over="" count=0
  for f in "$tmp/$p/lib/"*.so*; do
    count=$((count + 1))
    while read -r kind v; do
      c=$(ceiling "$(basename "$f")" "$kind")
      [ -z "$c" ] || [ "$c" = - ] || ! newer "$v" "$c" || over+="$(basename "$f") needs ${kind}_$v (ceiling $c)"$'\n'
    done < <(versions "$f" | sort -k1,1 -k2,2V | awk '{last[$1] = $2} END {for (k in last) print k, last[k]}')
  done
  [ -z "$over" ] && [ "$count" -gt 1 ] && ok "floors: the $p tree's $count libraries within tools/floors.tsv" ||
    bad "floors: the $p tree within tools/floors.tsv" "$over"
done
floor=$(versions "$E/lib/libji.so" | sort -k1,1 -k2,2V |
  awk '{last[$1] = $2} END { n = 0; split("GLIBC GLIBCXX CXXABI", k, " ")
       for (i = 1; i <= 3; i++) if (k[i] in last) p[++n] = k[i] "_" last[k[i]]
       s = p[1]; for (i = 2; i <= n; i++) s = s (i == n ? " and " : ", ") p[i]; print s }')
if [ -n "$floor" ] && grep -qF "libji.so needs $floor" README.md && grep -qF "libji.so needs $floor" "$tmp/install-cpu.log"; then
  ok "README and make install state libji.so's floors ($floor)"
else bad "README and make install must say 'libji.so needs $floor'" "$(grep -h 'needs' "$tmp/install-cpu.log")"; fi

echo "install-check: $pass passed, $fail failed"
[ $fail = 0 ]
