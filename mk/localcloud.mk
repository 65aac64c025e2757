# The local cloud (localcloud/): start and stop it from make; state under LOCALCLOUD_STATE_DIR.
# The Debian packages instances need are in mk/localcloud-runtime.mk.

LOCALCLOUD_STATE_DIR ?= $(CURDIR)/.localcloud
LOCALCLOUD_PORT ?= 0
LOCALCLOUD_SETTINGS ?=

.PHONY: localcloud-start localcloud-stop localcloud-status localcloud-bench

localcloud-start: venv system-deps
	$(BIN)/python -m localcloud --state-dir $(LOCALCLOUD_STATE_DIR) start --port $(LOCALCLOUD_PORT) \
		$(if $(LOCALCLOUD_SETTINGS),--settings $(LOCALCLOUD_SETTINGS))

localcloud-stop: venv
	$(BIN)/python -m localcloud --state-dir $(LOCALCLOUD_STATE_DIR) stop

localcloud-status: venv
	$(BIN)/python -m localcloud --state-dir $(LOCALCLOUD_STATE_DIR) status

localcloud-bench: venv system-deps
	$(BIN)/python benchmarks/localcloud_api.py
