# Two kinds of target. `make test` and `make demo` (and the benchmarks and `localcloud-start`, the
# commands that run the product on a fresh machine) install what they need: the venv from the
# requirements files, and the Debian packages (as root, with apt-get: `make system-deps`). Every
# other target installs only the venv: it checks the Debian packages are there and names
# `make system-deps` when they are not.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/build
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# Debian packages the test suite needs; mk/*.mk files add theirs.
DEB_PACKAGES := git shellcheck
# The fast loop (no local cloud), side by side: `make check`.
CHECK_TARGETS := unit sanity lint
# `make test` runs two lanes side by side: these targets one after the other in the first,
TEST_TARGETS := pytest sanity lint build-check
# and these in the second (mk/*.mk files append to both).
CLOUD_TARGETS := pytest-cloud

.PHONY: help venv system-deps system-check test check unit pytest pytest-cloud sanity lint lint-python \
	build-check demo clean

help:
	@echo "make demo    run the main job against the local cloud"
	@echo "make test    run every test and quality gate (installs Debian packages as root)"
	@echo "make check   the fast loop: unit tests, sanity and lint, no local cloud"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

include $(wildcard mk/*.mk)

system-deps:
	@tools/install-debs $(sort $(DEB_PACKAGES))

system-check:
	@tools/install-debs --check $(sort $(DEB_PACKAGES))

# The cloud lane's output follows the first lane's.
test: venv system-deps
	@mkdir -p $(BUILD); rc=0; \
	{ crc=0; for t in $(CLOUD_TARGETS); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || { crc=1; break; }; done; \
	  exit $$crc; } > $(BUILD)/cloud-lane.log 2>&1 & cloud=$$!; \
	for t in $(TEST_TARGETS); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || { rc=1; break; }; done; \
	wait $$cloud || rc=1; \
	cat $(BUILD)/cloud-lane.log; \
	exit $$rc

check: venv system-check
	@$(MAKE) --no-print-directory -j$(words $(CHECK_TARGETS)) --output-sync=target $(CHECK_TARGETS)

# Suites that start a local cloud; the rest of tests/ runs in `pytest`.
# (The bake suite's moto-server tests need no local cloud: they run in `pytest`.)
CLOUD_TESTS := tests/integration/localcloud $(wildcard tests/integration/bake/test_*localcloud*.py) tests/integration/modules
# Run by `make molecule`, after `molecule test` (they share the scenario's state directory).
MOLECULE_TESTS := tests/integration/molecule

unit: venv system-check
	$(BIN)/pytest -p no:cacheprovider tests/unit

pytest: venv system-check
	$(BIN)/pytest tests/unit tests/integration $(addprefix --ignore=,$(CLOUD_TESTS) $(MOLECULE_TESTS))

pytest-cloud: venv system-check
	$(BIN)/pytest -p no:cacheprovider $(CLOUD_TESTS)

sanity: venv system-check
	tools/sanity

lint: venv system-check
	$(BIN)/ansible-lint --profile production
	shellcheck $$(grep -l '^#!/usr/bin/env bash' tools/* .ci/run)

# ruff and mypy over every Python file (settings in pyproject.toml).
lint-python: venv
	tools/lint-python

build-check: venv system-check
	tools/build-check

demo: venv system-deps
	tools/demo

clean:
	rm -rf $(BUILD) .pytest_cache .mypy_cache .ruff_cache
