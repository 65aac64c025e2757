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

.PHONY: help venv system-deps test pytest sanity lint build-check demo clean

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

test: venv system-deps
	@for t in $(TEST_TARGETS); do echo "== make $$t"; $(MAKE) --no-print-directory $$t; done

pytest: venv system-deps
	$(BIN)/pytest tests/unit tests/integration

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
