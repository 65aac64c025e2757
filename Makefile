# Every target installs what it needs itself: the venv from the requirements files, and the
# Debian packages the tests use (as root, with apt-get).
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
# Targets that `make test` runs, in order; mk/*.mk files add theirs.
TEST_TARGETS := pytest sanity lint build-check
# The second lane: targets that start a local cloud (mk/*.mk may append).
CLOUD_TARGETS := pytest-cloud

.PHONY: help venv system-deps test pytest pytest-cloud sanity lint build-check demo clean

help:
	@echo "make demo   run the main job against the local cloud"
	@echo "make test   run every test and quality gate"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

include $(wildcard mk/*.mk)

system-deps:
	@tools/install-debs $(DEB_PACKAGES)

# Two lanes side by side: the local-cloud suites mostly wait on instances and latencies, the
# rest mostly computes. The cloud lane's output follows the other lane's.
test: venv system-deps
	@mkdir -p $(BUILD); rc=0; \
	{ crc=0; for t in $(CLOUD_TARGETS); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || { crc=1; break; }; done; \
	  exit $$crc; } > $(BUILD)/cloud-lane.log 2>&1 & cloud=$$!; \
	for t in $(TEST_TARGETS); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || { rc=1; break; }; done; \
	wait $$cloud || rc=1; \
	cat $(BUILD)/cloud-lane.log; \
	exit $$rc

# Suites that start a local cloud; the rest of tests/ runs in `pytest`.
# (The bake suite's moto-server tests need no local cloud: they run in `pytest`.)
CLOUD_TESTS := tests/integration/localcloud $(wildcard tests/integration/bake/test_*localcloud*.py) tests/integration/modules

pytest: venv system-deps
	$(BIN)/pytest tests/unit tests/integration $(addprefix --ignore=,$(CLOUD_TESTS))

pytest-cloud: venv system-deps
	$(BIN)/pytest -p no:cacheprovider $(CLOUD_TESTS)

sanity: venv
	tools/sanity

lint: venv system-deps
	$(BIN)/ansible-lint --profile production
	shellcheck $$(grep -l '^#!/usr/bin/env bash' tools/* .ci/run)

build-check: venv
	tools/build-check

demo: venv system-deps
	tools/demo

clean:
	rm -rf $(BUILD) .pytest_cache
