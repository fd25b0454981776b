# SPDX-License-Identifier: Apache-2.0
# Two commands work on a fresh machine: `make demo` and `make test`. Each does its own set-up.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench vectors vectors-check clean system-packages fuzz enclave-toolchain mmdebstrap

# Debian packages the FUSE mount needs; installed only when missing (CI runs as root).
# gcc builds the mount's compiled hot path (setup.py, specs/sync.md §8.1).
system-packages:
	@if ! { command -v fusermount3 >/dev/null || command -v fusermount >/dev/null; } \
	   || ! ldconfig -p | grep -q 'libfuse.so.2' || ! command -v gcc >/dev/null; then \
	  echo "installing fuse3, libfuse2 and gcc from Debian"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq fuse3 libfuse2 gcc libc6-dev >/dev/null; \
	fi

# The enclave toolchain (QEMU, kernel, init, blobs, rootfs) in a cache outside the clone,
# keyed by its inputs (specs/toolchain.md): ~20 min cold, seconds warm. Needs root and
# Debian's mmdebstrap, installed here when missing. NB_CACHE_DIR moves the cache.
enclave-toolchain: mmdebstrap
	$(PY) toolchain/build.py

# The rootfs builder's one host dependency (specs/toolchain.md): the demo's image needs it too.
mmdebstrap:
	@if ! command -v mmdebstrap >/dev/null; then \
	  echo "installing mmdebstrap from Debian"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mmdebstrap >/dev/null; \
	fi

$(STAMP): pyproject.toml setup.py user_runtime/sync/_fastpath.c
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

# Byte-compile as a regular install does: with PYTHONDONTWRITEBYTECODE set (CI, many
# images) an editable install would otherwise recompile every module at every CLI start.
setup: system-packages $(STAMP)
	@$(BIN)/python -m compileall -q package_format owner_tools user_runtime enclave local_stack cli_shell > /dev/null

# `make demo ENCLAVE=qemu` boots the image in QEMU's nitro-enclave machine (builds the
# enclave toolchain first, cached outside the clone); its image's rootfs is built with the
# app's declared requirements (`build-eif --app-requirements examples/ml_app/requirements.txt`,
# cached too): the server's venv and the app's own environment, nothing of the host's venv.
ENCLAVE ?= local
demo: setup mmdebstrap $(if $(filter qemu,$(ENCLAVE)),enclave-toolchain)
	ENCLAVE=$(ENCLAVE) $(BIN)/python examples/demo.py

# Lint first (seconds), the vectors (regenerated, no diff), then the enclave toolchain
# (cached), then the suite; CI runs exactly this.
test: setup lint vectors-check enclave-toolchain
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy benchmarks
	$(BIN)/lint-imports

# Fuzz every parser (tests/fuzz/, issue 15): FUZZ_INPUTS inputs over all targets, FUZZ_JOBS
# workers at once; prints per-target counts, coverage, the slowest input and peak RSS.
# `make test` runs only a short smoke of the same targets (tests/fuzz/test_fuzz_smoke.py).
FUZZ_INPUTS ?= 1000000
FUZZ_JOBS ?= 2
fuzz: setup
	$(BIN)/python tests/fuzz/run_fuzz.py --total $(FUZZ_INPUTS) --jobs $(FUZZ_JOBS)

# Every tests/vectors/generate_NAME_vectors.py writes tests/vectors/NAME/ (NAME's `_` as `-`),
# fixed keys and fixed randomness: `vectors` rewrites the sets, `vectors-check` (part of `test`,
# so CI) regenerates each into a temporary folder and fails on any difference, extra or
# missing file.
VECTOR_GENERATORS := $(wildcard tests/vectors/generate_*_vectors.py)
vector_set = tests/vectors/$(subst _,-,$(patsubst generate_%_vectors.py,%,$(notdir $(1))))

vectors: setup
	@set -e; $(foreach g,$(VECTOR_GENERATORS),rm -rf $(call vector_set,$(g)); \
	  $(BIN)/python $(g) $(call vector_set,$(g)) > /dev/null; echo "wrote $(call vector_set,$(g))";)

vectors-check: setup
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; status=0; \
	$(foreach g,$(VECTOR_GENERATORS),$(BIN)/python $(g) "$$tmp/$(notdir $(g))" > /dev/null \
	  && diff -r -q "$$tmp/$(notdir $(g))" $(call vector_set,$(g)) \
	  || { echo "$(call vector_set,$(g)) differs from $(g): run make vectors"; status=1; };) \
	exit $$status

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
