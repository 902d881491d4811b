# The two commands in the README:
#   make demo   classify the bundled demo images through libji.so's C API
#   make test   every test (Rust, C programs, header freshness), rustfmt and clippy
# Both install what they need first (tools/setup.sh is idempotent).

CARGO ?= cargo
# libtorch's OpenMP workers busy-wait between parallel regions by default; on small machines
# running several test threads or programs at once that costs more than the model (measured:
# 16 ms vs 0.6 ms per forward of a small CNN on 2 cores, in Python and in Rust alike). It must
# be set before libtorch loads. A judge leaves it unset: `test-judge-env` runs the ABI suites
# and the C programs once more that way.
export OMP_WAIT_POLICY ?= PASSIVE
PY := .venv/bin/python
RELEASE := target/release
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -O1 -g

.PHONY: all setup build demo test lint fixtures c-tests test-judge-env install-check header-check fuzz soak package install clean report-check ab-bench bench-tta

all: build

setup:
	@bash tools/setup.sh

build: setup
	$(CARGO) build --release --lib --bins

demo: build
	$(PY) tools/make_demo.py demo
	$(CARGO) run --release --bin harness -- --print-json

fixtures: setup
	@test -f tests/fixtures/generated/core/version-2 || $(PY) tools/make_fixtures.py tests/fixtures/generated/core
	@test -f tests/fixtures/generated/parity/manifest.json || $(PY) tools/make_parity_fixtures.py tests/fixtures/generated/parity
	@test -f tests/fixtures/generated/pipeline/version-2 || $(PY) tools/make_pipeline_fixtures.py tests/fixtures/generated/pipeline
	@test -f tests/fixtures/generated/imread/manifest.json || $(PY) tools/make_imread_fixtures.py tests/fixtures/generated/imread
	@test -f tests/fixtures/generated/ensemble/version-1 || $(PY) tools/make_ensemble_fixtures.py tests/fixtures/generated/ensemble

# Tests run in release mode: one libtorch-linked build serves the library, the harness and the tests.
test: build fixtures lint
	$(CARGO) test --release
	$(MAKE) --no-print-directory header-check
	$(MAKE) --no-print-directory install-check
	$(MAKE) --no-print-directory c-tests
	$(MAKE) --no-print-directory test-judge-env
	$(MAKE) --no-print-directory jipy-check

# The environment a judge runs in: OMP_WAIT_POLICY unset (libgomp's default, spinning workers).
# The ji_* and C-API suites and the C programs (valgrind is left to c-tests) run once more there,
# one test at a time so that no two calls' spinning workers compete for the 2 cores.
test-judge-env: build fixtures
	env -u OMP_WAIT_POLICY $(CARGO) test --release --test ji_api --test c_api --test ji_async -- --test-threads=1
	env -u OMP_WAIT_POLICY SKIP_VALGRIND=1 $(MAKE) --no-print-directory -C test_harness LIBDIR=$(CURDIR)/$(RELEASE) run

# Installs the cpu and cuda profiles into a temporary folder and runs the C programs against
# the cpu one with the build's .venv hidden and LD_LIBRARY_PATH unset (test_harness/install_check.sh).
install-check: build fixtures
	$(MAKE) --no-print-directory -C test_harness LIBDIR=$(CURDIR)/$(RELEASE) all
	@bash test_harness/install_check.sh

# Formatting and clippy (warnings are errors) on every target, as part of `make test`.
lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# The platform's Python judge API (src/ji.py of an installed cpu tree) against the C API, in a
# Python without torch, .venv and target/ hidden (test_harness/jipy_check.sh; README, "Python judges").
.PHONY: jipy-check
jipy-check: build fixtures
	@bash test_harness/jipy_check.sh

c-tests: build fixtures
	$(MAKE) --no-print-directory -C test_harness LIBDIR=$(CURDIR)/$(RELEASE) run

header-check:
	@git diff --quiet -- include/ji.h || { echo "include/ji.h is stale: the build regenerated it; commit the new version"; git --no-pager diff --stat -- include/ji.h; exit 1; }
	@echo "header-check: include/ji.h is up to date"

clean:
	$(CARGO) clean
	rm -rf tests/fixtures/generated test_harness/build

# The judge's tree: lib/ (libji.so, RUNPATH $$ORIGIN, plus the libtorch profile), include/,
# config/ (model paths rewritten to ../model/), model/. The demo model unless MODEL, CLASSES
# and CONFIG name others; CONFIG alone installs the files it names (its model_path, or every
# member of a "models" ensemble, and its class_names_path). LIBTORCH=cpu (libtorch's CPU
# libraries), cuda (plus every CUDA library libtorch_cuda needs) or none (the host provides
# torch 2.11's lib/). README: "Install".
# PORTABLE=1 (the default): libji.so is built again in a cached Debian 11 root
# (tools/bullseye.sh, needs root), within the floors of tools/floors.tsv (glibc 2.28, GCC 10's
# libstdc++). PORTABLE=0: the development build, with this machine's floors.
PREFIX ?= /usr/local/ev_sdk
PORTABLE ?= 1
# LIBTORCH is also the variable tch's build reads (the libtorch folder): the profile name must
# not reach cargo's environment, where it would send torch-sys looking for ./cpu/include.
unexport LIBTORCH
install: build
	@case "$(LIBTORCH)" in cpu|cuda|none) ;; *) echo "make install: set LIBTORCH=cpu, cuda or none (README, \"Install\")"; exit 2 ;; esac
	@case "$(PORTABLE)" in 0|1) ;; *) echo "make install: PORTABLE=1 (the default: built in Debian 11) or 0 (this machine's build)"; exit 2 ;; esac
	@if [ -z "$(MODEL)$(CONFIG)" ]; then $(PY) tools/make_demo.py demo >/dev/null; fi
	$(if $(filter 1,$(PORTABLE)),bash tools/bullseye.sh build-lib)
	$(PY) tools/install.py --prefix "$(PREFIX)" --libtorch $(LIBTORCH) \
	  $(if $(filter 1,$(PORTABLE)),--lib target/portable/libji.so --check-floors) \
	  $(if $(MODEL),--model "$(MODEL)",$(if $(CONFIG),,--model demo/model/model.pt)) \
	  $(if $(CLASSES),--classes "$(CLASSES)",$(if $(MODEL)$(CONFIG),,--classes demo/model/class.txt)) \
	  --config "$(or $(CONFIG),$(if $(MODEL),config/algo_config.json,demo/config/algo_config.json))"

# The demo's judge tree in dist/ev_sdk (libji.so only; add LIBTORCH=cpu|cuda for a standalone one).
package:
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/dist/ev_sdk LIBTORCH=$(or $(LIBTORCH),none)

# Load and leak check through the ji_* ABI (numbers go into BENCHMARKS.md).
soak: fixtures
	$(CARGO) run --release --example soak -- tests/fixtures/generated/core/conv.json \
	  tests/fixtures/generated/core/images/red.jpg tests/fixtures/generated/core/images/green.png \
	  tests/fixtures/generated/core/images/blue.bmp

# A longer fuzz run of decode + preprocess (not part of `make test`); crashes are saved to
# tests/fuzz_regressions/, which the test suite replays. FUZZ_EXECS=1000000 for a long run.
FUZZ_EXECS ?= 200000
fuzz: fixtures
	$(CARGO) run --release --example fuzz_decode -- $(FUZZ_EXECS) $$(date +%s)

# Two builds of libji.so side by side in one process, call by call on the demo's images
# (tools/ab_bench.c; not part of `make test`): the way to see a few percent on a noisy machine.
#   cp target/release/libji.so /tmp/libji_a.so   # before the change
#   make ab-bench A=/tmp/libji_a.so              # after it: B is the new target/release/libji.so
# The Makefile's OMP_WAIT_POLICY applies; for libgomp's default run target/ab_bench directly.
A ?=
B ?= $(RELEASE)/libji.so
AB_ROUNDS ?= 20
AB_GAP_MS ?= 0
ab-bench: build
	@test -n "$(A)" || { echo "make ab-bench A=/path/to/other/libji.so [B=...]"; exit 2; }
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o target/ab_bench tools/ab_bench.c -ldl
	target/ab_bench --rounds $(AB_ROUNDS) --gap-ms $(AB_GAP_MS) demo/config/algo_config.json $(A) $(B) demo/val/*/*

# The whole-call CPU cost of "tta" (hflip, hflip+vflip) and of a two-model ensemble against one
# view of one model, call by call on the demo's images (examples/bench_tta.rs; not part of
# `make test`; numbers go into BENCHMARKS.md, "TTA and ensembles").
TTA_ROUNDS ?= 7
bench-tta: build
	@test -f demo/val/tabby/chelsea.jpg || $(PY) tools/make_demo.py demo
	$(CARGO) run --release --example bench_tta -- demo/config/algo_config.json demo/val/*/* --rounds $(TTA_ROUNDS)

# The harness's HTML report in a real browser (not part of `make test`: it installs Chromium):
# renders the demo's report and a copy of the demo with Chinese class names in headless
# Chromium, checks the screenshots (target/report-check/*.png) are not blank and that Chinese
# glyphs render. Installs chromium and fonts-noto-cjk with apt when they are missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
report-check: build
	@if ! command -v chromium >/dev/null 2>&1 || ! { dpkg -s fonts-noto-cjk >/dev/null 2>&1 \
	    || fc-list :lang=zh 2>/dev/null | grep -q .; }; then \
	  echo "report-check: installing chromium and fonts-noto-cjk (apt)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends chromium fonts-noto-cjk; \
	fi
	@test -f demo/val/tabby/chelsea.jpg || $(PY) tools/make_demo.py demo
	$(CARGO) test --release --test report_html -- --ignored --nocapture
