# bakery.ami.paramiko: a real OpenSSH sshd for its tests, and the same suite on ansible-core 2.21.
DEB_PACKAGES += openssh-server sudo

# ansible-core 2.21 needs Python >= 3.12 on the controller: PYTHON_2_21 names one, or
# tools/find-python finds one (python3.N on PATH, or pyenv's versions) and fails if there is none.
PYTHON_2_21 ?=
VENV_2_21 := $(CURDIR)/.venv-2.21
CONNECTION_TESTS := tests/unit/plugins/connection tests/integration/connection

TEST_LANE_3 += connection-2.21

.PHONY: connection-2.21 connection-bench

$(VENV_2_21)/.installed: requirements-2.21.txt
	test -x $(VENV_2_21)/bin/python || { py="$(PYTHON_2_21)"; py=$${py:-$$(tools/find-python 3.12)}; "$$py" -m venv $(VENV_2_21); }
	$(VENV_2_21)/bin/pip install -q -U pip
	$(VENV_2_21)/bin/pip install -q -r requirements-2.21.txt
	touch $@

# The connection suite again, on ansible-core 2.21 (which no longer ships a paramiko plugin); its
# sessions' users and addresses (slots from 8) differ from the 2.19 run's, so both may run at once.
connection-2.21: $(VENV_2_21)/.installed system-check
	PATH=$(VENV_2_21)/bin:$$PATH BAKERY_SSHD_SLOT=8 $(VENV_2_21)/bin/pytest -p no:cacheprovider -n $(PYTEST_WORKERS) $(CONNECTION_TESTS)

connection-bench: venv system-deps
	$(BIN)/python benchmarks/connection.py
