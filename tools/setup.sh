#!/usr/bin/env bash
# Idempotent setup: system packages, the pinned Python venv (libtorch + the reference pipeline),
# and the .venv/libtorch link that .cargo/config.toml points tch at. Fast when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)   # builds the bundled libjpeg-turbo
command -v nasm >/dev/null || need_apt+=(nasm)     # its SIMD code
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
command -v valgrind >/dev/null || need_apt+=(valgrind)  # the C tests run under it
command -v patchelf >/dev/null || need_apt+=(patchelf)  # make install: libji.so's RUNPATH -> $ORIGIN
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# `make test` runs rustfmt and clippy: minimal rustup profiles lack them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    echo "setup: adding the rustfmt and clippy components"
    rustup component add rustfmt clippy
  else
    echo "setup: cargo fmt / cargo clippy are missing and there is no rustup to add them" >&2
  fi
fi

stamp=.venv/.requirements.sha
want=$(sha256sum tools/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv (torch 2.11.0 etc., a few minutes the first time)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements.txt
  echo "$want" > "$stamp"
fi

# The real path: a checkout whose .venv is a link to another one's (a worktree, the README
# walk-through test's copy) must not re-point the shared link to a path through itself.
torch_dir=$(readlink -f "$(.venv/bin/python -c 'import torch, os; print(os.path.dirname(torch.__file__))')")
if [ "$(readlink .venv/libtorch 2>/dev/null)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" .venv/libtorch
fi
