# The two commands in the README:
#   make demo   classify the bundled demo images through libji.so's C API
#   make test   every test (Rust, C programs, header freshness), rustfmt and clippy
# Both install what they need first (tools/setup.sh is idempotent).

CARGO ?= cargo
# libtorch's OpenMP workers busy-wait between parallel regions by default; on small machines
# that costs more than the model (measured: 16 ms vs 0.6 ms per forward of a small CNN on
# 2 cores, in Python and in Rust alike). It must be set before libtorch loads.
export OMP_WAIT_POLICY ?= PASSIVE
PY := .venv/bin/python
RELEASE := target/release
CFLAGS_TEST := -std=c11 -Wall -Wextra -Werror -O1 -g

.PHONY: all setup build demo test lint fixtures c-tests header-check fuzz soak package clean

all: build

setup:
	@bash tools/setup.sh

build: setup
	$(CARGO) build --release --lib --bins

demo: build
	$(PY) tools/make_demo.py demo
	$(CARGO) run --release --bin harness -- --print-json

fixtures: setup
	@test -f tests/fixtures/generated/core/colour.json || $(PY) tools/make_fixtures.py tests/fixtures/generated/core
	@test -f tests/fixtures/generated/parity/manifest.json || $(PY) tools/make_parity_fixtures.py tests/fixtures/generated/parity
	@test -f tests/fixtures/generated/pipeline/manifest.json || $(PY) tools/make_pipeline_fixtures.py tests/fixtures/generated/pipeline

# Tests run in release mode: one libtorch-linked build serves the library, the harness and the tests.
test: build fixtures lint
	$(CARGO) test --release
	$(MAKE) --no-print-directory header-check
	$(MAKE) --no-print-directory c-tests

# Formatting and clippy (warnings are errors) on every target, as part of `make test`.
lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

c-tests: build fixtures
	$(MAKE) --no-print-directory -C test_harness LIBDIR=$(CURDIR)/$(RELEASE) run

header-check:
	@git diff --quiet -- include/ji.h || { echo "include/ji.h is stale: the build regenerated it; commit the new version"; git --no-pager diff --stat -- include/ji.h; exit 1; }
	@echo "header-check: include/ji.h is up to date"

clean:
	$(CARGO) clean
	rm -rf tests/fixtures/generated test_harness/build

# The judge's layout (lib/, include/, config/, model/) with the demo model, in dist/ev_sdk.
package: build
	$(PY) tools/make_demo.py demo
	tools/package.sh dist/ev_sdk --model demo/model/model.pt --classes demo/model/class.txt \
	  --config demo/config/algo_config.json

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
