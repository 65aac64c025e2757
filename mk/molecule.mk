# Molecule: the collection-level scenarios under extensions/molecule. Each starts a local cloud
# of its own (state under build/molecule/<scenario>/ and its own loopback subnet), so it can run
# in a lane of its own while the local-cloud suites use theirs.
MOLECULE_SCENARIOS := example_web
MOLECULE := $(BIN)/molecule --base-config extensions/molecule/config.yml
MOLECULE_STATE := $(BUILD)/molecule

TEST_LANE_3 += molecule
# verify runs the example unit's command on the builder (the host's /usr) under runuser and
# setsid, and ends it with pkill; create makes the builder key with ssh-keygen.
DEB_PACKAGES += util-linux procps openssh-client

.PHONY: molecule molecule-test

# One after the other (never side by side: they share the scenario's state directory): the
# `molecule test` sequence, then the Molecule tests of the suite (tests/integration/molecule:
# destroy after a create that failed half way).
molecule: venv system-check
	@$(MAKE) --no-print-directory molecule-test
	$(BIN)/pytest -p no:cacheprovider $(MOLECULE_TESTS)

# The whole `molecule test` sequence per scenario. Whatever happens (a failure, an interrupt),
# the scenario's local cloud is stopped afterwards; a cloud still running then fails the target.
molecule-test: venv system-check
	@for s in $(MOLECULE_SCENARIOS); do \
	  state=$(MOLECULE_STATE)/$$s; cloud=$$state/localcloud; mkdir -p $$state; \
	  trap "$(BIN)/python -m localcloud --state-dir $$cloud stop >/dev/null 2>&1 || true" EXIT; trap "exit 130" INT TERM; \
	  rc=0; MOLECULE_EPHEMERAL_DIRECTORY=$$state/ephemeral $(MOLECULE) test -s $$s || rc=$$?; \
	  if $(BIN)/python -m localcloud --state-dir $$cloud status >/dev/null 2>&1; then \
	    echo "molecule $$s: its local cloud ($$cloud) still ran after the test" >&2; rc=1; \
	  fi; \
	  [ $$rc -eq 0 ] || { echo "molecule test -s $$s failed (rc $$rc)" >&2; exit 1; }; \
	done
