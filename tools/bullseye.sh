#!/usr/bin/env bash
# A cached Debian 11 (bullseye) root: glibc 2.31 and GCC 10's libstdc++, the floors of the judge
# images people run (README, "Install"). The portable libji.so is built in it, and
# test_harness/install_check.sh runs the installed tree in it.
#
#   tools/bullseye.sh root                 prepares the root if needed and prints its path
#   tools/bullseye.sh build-lib            builds libji.so in the root -> target/portable/libji.so
#   tools/bullseye.sh run [-b DIR]... -- CMD [ARG]...
#                                          runs CMD in the root, in a private mount namespace with
#                                          /proc and /dev mounted and each DIR bound at its own path
#
# Needs root (debootstrap, mount, chroot). Everything is cached machine-wide under $JI_CACHE
# (default /var/cache/ji-rs), so every checkout on the machine shares it:
#   bullseye-<hash>/               the root: debootstrap --variant=minbase plus the compilers and
#                                  python3-numpy (test_harness/jipy_check.sh runs ji.py there)
#                                  (about 600 MB, a minute to make; <hash> is of the package list,
#                                  so changing the list below makes a new root)
#   bullseye-<hash>/build/target   cargo's target folder of the portable build (libtorch's
#                                  bindings and libjpeg-turbo compile once per machine)
# The packages come from the host's Debian mirror (JI_DEBIAN_MIRROR overrides it, e.g.
# http://archive.debian.org/debian once bullseye leaves the main mirrors).
#
# The build uses the host's Rust toolchain and crate cache (rustup's $RUSTUP_HOME and
# $CARGO_HOME, bound read-write at /root/.rustup and /root/.cargo; cargo runs --frozen, so nothing is
# downloaded: `make build` has fetched every crate), the torch wheel's libtorch (bound read-only
# at /opt/ji-rs/site-packages, the same path for every checkout) and the root's gcc/g++ 10 for
# the C and C++ parts (src/*.cpp, torch-sys's wrapper, libjpeg-turbo). Rust's std links against
# the root's glibc like everything else.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

SUITE=bullseye
PACKAGES=gcc,g++,make,cmake,nasm,libc6-dev,python3,python3-numpy
cache=${JI_CACHE:-/var/cache/ji-rs}
hash=$(printf '%s %s' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-8)
R=$cache/$SUITE-$hash

die() { echo "bullseye.sh: $*" >&2; exit 1; }

need_root() {
  local alt="\`make install PORTABLE=0\` for a libji.so with this machine's glibc/libstdc++ floors (README, \"Install\")"
  [ "$(id -u)" = 0 ] || die "$1 needs root (debootstrap, mount, chroot): run it as root, or use
  $alt"
  # An unprivileged container's root cannot mount (no CAP_SYS_ADMIN).
  unshare --mount --propagation private true 2>/dev/null || die "$1 needs to mount (unshare --mount
  failed here: a container without CAP_SYS_ADMIN? docker run --privileged), or use $alt"
}

# The host's Debian mirror (deb822 .sources or one-line sources.list), else Debian's own.
mirror() {
  if [ -n "${JI_DEBIAN_MIRROR:-}" ]; then echo "$JI_DEBIAN_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -E '/debian/?$' | head -1)
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' | grep -E '/debian/?$' | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}

ensure_root() {
  need_root "the Debian 11 root"
  [ -f "$R/.ji-rs-root" ] && return 0
  mkdir -p "$cache"
  exec 8>"$cache/$SUITE-$hash.lock"
  flock 8
  if [ ! -f "$R/.ji-rs-root" ]; then
    if ! command -v debootstrap >/dev/null; then
      echo "bullseye.sh: installing debootstrap (apt)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    local m tmp
    m=$(mirror)
    tmp=$R.tmp.$$
    rm -rf "$tmp"
    echo "bullseye.sh: making the Debian 11 root $R (debootstrap --variant=minbase, $PACKAGES, from $m; about a minute, once per machine)" >&2
    if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$m" >"$cache/debootstrap.log" 2>&1; then
      tail -20 "$cache/debootstrap.log" >&2
      rm -rf "$tmp"
      die "debootstrap failed (log: $cache/debootstrap.log); JI_DEBIAN_MIRROR=http://archive.debian.org/debian if $m no longer carries $SUITE"
    fi
    rm -rf "$tmp/var/cache/apt/archives/"*.deb
    echo "$SUITE $PACKAGES" >"$tmp/.ji-rs-root"
    mv "$tmp" "$R"
  fi
  exec 8>&-
}

# Mount points made in the root for one command are removed afterwards (the root is shared and
# cached): missing_points DIR records DIR and its missing parents, remove_points removes them.
made=()
missing_points() {
  local d=$1
  while [ ! -e "$R$d" ]; do made+=("$R$d"); d=$(dirname "$d"); done
}
remove_points() {
  local d
  for d in "${made[@]}"; do rmdir "$d" 2>/dev/null || true; done
}

# run [-b DIR]... [-r DIR]... -- CMD...: -b binds DIR read-write, -r read-only, at the same path.
run_in_root() {
  local binds=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in
      -b|-r) [ $# -ge 2 ] || die "run: $1 needs a folder"; binds+=("$1" "$(readlink -f "$2")"); shift 2 ;;
      *) die "run: unknown option $1 (run [-b DIR]... [-r DIR]... -- CMD...)" ;;
    esac
  done
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || die "run: no command"
  ensure_root
  local i rc=0
  made=()
  for ((i = 1; i < ${#binds[@]}; i += 2)); do missing_points "${binds[i]}"; done
  # The private namespace takes every mount with it when the command ends.
  unshare --mount --propagation private -- bash -euo pipefail -c '
    R=$1; shift
    mount -t proc proc "$R/proc"
    mount --rbind /dev "$R/dev"
    while [ "$1" != -- ]; do
      mkdir -p "$R$2"
      mount --bind "$2" "$R$2"
      [ "$1" = -r ] && mount -o remount,bind,ro "$R$2"
      shift 2
    done
    shift
    exec chroot "$R" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' _ "$R" "${binds[@]}" -- "$@" || rc=$?
  remove_points
  return $rc
}

build_lib() {
  need_root "the portable build"
  local rustup=${RUSTUP_HOME:-$HOME/.rustup} cargo_home=${CARGO_HOME:-$HOME/.cargo}
  [ -x "$cargo_home/bin/cargo" ] && [ -d "$rustup/toolchains" ] ||
    die "the portable build uses a rustup toolchain ($cargo_home/bin/cargo, $rustup/toolchains): none found"
  local torch site
  torch=$(readlink -f "$root/.venv/libtorch")
  [ -f "$torch/lib/libtorch_cpu.so" ] || die "no libtorch under $root/.venv/libtorch (run tools/setup.sh)"
  site=$(dirname "$torch")
  ensure_root
  local T=$R/build/target
  mkdir -p "$T"
  exec 9>"$R/build/.lock"
  flock 9
  # libji.so's file name carries no hash, so the outputs of another checkout would look fresh
  # to this one's fingerprint: the crate is rebuilt whenever the last build was another's.
  if [ "$(cat "$R/build/owner" 2>/dev/null)" != "$root" ]; then
    rm -f "$T"/release/libji.* "$T"/release/deps/libji.*
  fi
  echo "$root" >"$R/build/owner"
  local envs=(CARGO_HOME=/root/.cargo RUSTUP_HOME=/root/.rustup
    PATH=/root/.cargo/bin:/usr/local/bin:/usr/bin:/bin
    LIBTORCH=/opt/ji-rs/site-packages/"$(basename "$torch")" LIBTORCH_CXX11_ABI=1)
  [ -z "${RUSTUP_TOOLCHAIN:-}" ] || envs+=(RUSTUP_TOOLCHAIN="$RUSTUP_TOOLCHAIN")
  [ -z "${CARGO_BUILD_JOBS:-}" ] || envs+=(CARGO_BUILD_JOBS="$CARGO_BUILD_JOBS")
  echo "bullseye.sh: building libji.so in $R (Debian 11: glibc 2.31, gcc 10)" >&2
  made=()
  missing_points "$root"
  unshare --mount --propagation private -- bash -euo pipefail -c '
    R=$1 src=$2 rustup=$3 cargo_home=$4 site=$5; shift 5
    mount -t proc proc "$R/proc"
    mount --rbind /dev "$R/dev"
    mkdir -p "$R$src" "$R/root/.rustup" "$R/root/.cargo" "$R/opt/ji-rs/site-packages"
    mount --bind "$src" "$R$src"
    mount --bind "$rustup" "$R/root/.rustup"
    mount --bind "$cargo_home" "$R/root/.cargo"
    mount --bind "$site" "$R/opt/ji-rs/site-packages"
    mount -o remount,bind,ro "$R/opt/ji-rs/site-packages"
    exec chroot "$R" /usr/bin/env -i HOME=/root LANG=C.UTF-8 "$@" \
      bash -c "cd \"$src\" && cargo build --frozen --release --lib --no-default-features --target-dir /build/target"
  ' _ "$R" "$root" "$rustup" "$cargo_home" "$site" "${envs[@]}" || { remove_points; return 1; }
  remove_points
  mkdir -p "$root/target/portable"
  cp "$T/release/libji.so" "$root/target/portable/libji.so.tmp"
  mv "$root/target/portable/libji.so.tmp" "$root/target/portable/libji.so"
  exec 9>&-
}

case ${1:-} in
  root) ensure_root; echo "$R" ;;
  build-lib) build_lib ;;
  run) shift; run_in_root "$@" ;;
  *) die "usage: tools/bullseye.sh root | build-lib | run [-b DIR]... [-r DIR]... -- CMD..." ;;
esac
