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
CHECK_TARGETS := unit sanity lint lint-python
# `make test` runs three lanes side by side, each its targets one after the other (mk/*.mk
# files append to them). They are balanced by wall time: the first mostly computes, the others
# mostly wait on instances, playbooks and timeouts.
TEST_LANE_1 := pytest sanity lint lint-python build-check
TEST_LANE_2 := pytest-cloud
TEST_LANE_3 :=

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

# Lanes 2 and 3 write to build/lane-<n>.log, shown after the first lane's output; a lane stops
# at its first failing target, and every lane runs to its end before `make test` fails.
test: venv system-deps
	@mkdir -p $(BUILD); rc=0; pids=; \
	for lane in 2 3; do \
	  case $$lane in 2) targets="$(TEST_LANE_2)";; 3) targets="$(TEST_LANE_3)";; esac; \
	  { for t in $$targets; do echo "== make $$t ($$(date +%T))"; $(MAKE) --no-print-directory $$t || exit 1; done; \
	    echo "== lane $$lane done ($$(date +%T))"; } > $(BUILD)/lane-$$lane.log 2>&1 & pids="$$pids $$!"; \
	done; \
	for t in $(TEST_LANE_1); do echo "== make $$t ($$(date +%T))"; $(MAKE) --no-print-directory $$t || { rc=1; break; }; done; \
	echo "== lane 1 done ($$(date +%T))"; \
	for pid in $$pids; do wait $$pid || rc=1; done; \
	cat $(BUILD)/lane-2.log $(BUILD)/lane-3.log; \
	exit $$rc

check: venv system-check
	@$(MAKE) --no-print-directory -j$(words $(CHECK_TARGETS)) --output-sync=target $(CHECK_TARGETS)

# pytest-xdist workers per suite. The tests mostly wait (on instances, ansible-playbook runs, the
# Waiter's first delays, the timeouts they check), so more workers than cores pay; each worker of a local-cloud suite
# runs a local cloud of its own, and the connection suite gives each its own users and addresses.
PYTEST_WORKERS ?= 4
# Suites that start a local cloud; the rest of tests/ runs in `pytest`.
# (The bake suite's moto-server tests need no local cloud: they run in `pytest`.)
CLOUD_TESTS := tests/integration/localcloud $(wildcard tests/integration/bake/test_*localcloud*.py) tests/integration/modules
# Run by `make molecule`, after `molecule test` (they share the scenario's state directory).
MOLECULE_TESTS := tests/integration/molecule

unit: venv system-check
	$(BIN)/pytest -p no:cacheprovider -n $(PYTEST_WORKERS) tests/unit

pytest: venv system-check
	$(BIN)/pytest -n $(PYTEST_WORKERS) tests/unit tests/integration $(addprefix --ignore=,$(CLOUD_TESTS) $(MOLECULE_TESTS))

pytest-cloud: venv system-check
	$(BIN)/pytest -p no:cacheprovider -n $(PYTEST_WORKERS) $(CLOUD_TESTS)

sanity: venv system-check
	tools/sanity

lint: venv system-check
	$(BIN)/ansible-lint --profile production
	shellcheck $$(grep -l '^#!/usr/bin/env bash' tools/* .ci/run)

# ruff and mypy over every Python file (settings in pyproject.toml).
lint-python: venv system-check
	tools/lint-python

build-check: venv system-check
	tools/build-check

demo: venv system-deps
	tools/demo

clean:
	rm -rf $(BUILD) .pytest_cache .mypy_cache .ruff_cache
