# Molecule: the collection-level scenarios under extensions/molecule. Each starts a local cloud
# of its own (state under build/molecule/<scenario>/ and its own loopback subnet), so it can run
# in the first lane while the cloud lane's suites use theirs.
MOLECULE_SCENARIOS := example_web
MOLECULE := $(BIN)/molecule --base-config extensions/molecule/config.yml
MOLECULE_STATE := $(BUILD)/molecule

TEST_TARGETS += molecule
# verify runs the example unit's command on the builder (the host's /usr) under runuser and
# setsid, and ends it with pkill; create makes the builder key with ssh-keygen.
DEB_PACKAGES += util-linux procps openssh-client

.PHONY: molecule molecule-test molecule-create-failure

# One after the other (never side by side: they share the scenario's state directory).
molecule: venv system-deps
	@$(MAKE) --no-print-directory molecule-test
	@$(MAKE) --no-print-directory molecule-create-failure

# The whole `molecule test` sequence per scenario. Whatever happens (a failure, an interrupt),
# the scenario's local cloud is stopped afterwards; a cloud still running then fails the target.
molecule-test: venv system-deps
	@for s in $(MOLECULE_SCENARIOS); do \
	  state=$(MOLECULE_STATE)/$$s; cloud=$$state/localcloud; mkdir -p $$state; \
	  trap "$(BIN)/python -m localcloud --state-dir $$cloud stop >/dev/null 2>&1 || true" EXIT; trap "exit 130" INT TERM; \
	  rc=0; MOLECULE_EPHEMERAL_DIRECTORY=$$state/ephemeral $(MOLECULE) test -s $$s || rc=$$?; \
	  if $(BIN)/python -m localcloud --state-dir $$cloud status >/dev/null 2>&1; then \
	    echo "molecule $$s: its local cloud ($$cloud) still ran after the test" >&2; rc=1; \
	  fi; \
	  [ $$rc -eq 0 ] || { echo "molecule test -s $$s failed (rc $$rc)" >&2; exit 1; }; \
	done

# Destroy after a create that failed half way: RunInstances is refused after the key pair and
# the security group were made; destroy must delete both (the cloud's request log shows it) and
# stop the cloud, and no local key may be left (the launch removes it when it fails).
molecule-create-failure: venv system-deps
	@state=$(MOLECULE_STATE)/example_web; cloud=$$state/localcloud; mkdir -p $$state; \
	export MOLECULE_EPHEMERAL_DIRECTORY=$$state/ephemeral; \
	trap "$(BIN)/python -m localcloud --state-dir $$cloud stop >/dev/null 2>&1 || true" EXIT; trap "exit 130" INT TERM; \
	echo '{"faults": {"action_errors": [{"action": "RunInstances", "code": "InvalidParameterValue",' \
	  '"status": 400, "message": "refused by the create-failure check", "times": null}]}}' > $$state/faults.json; \
	if MOLECULE_LOCALCLOUD_SETTINGS=$$state/faults.json $(MOLECULE) create -s example_web > $$state/create-failure.log 2>&1; then \
	  echo "molecule create succeeded although RunInstances was refused (see $$state/create-failure.log)" >&2; exit 1; \
	fi; \
	bake_id=$$($(BIN)/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["bake_id"])' $$MOLECULE_EPHEMERAL_DIRECTORY/bake.json); \
	grep -q "refused by the create-failure check" $$state/create-failure.log \
	  || { echo "the create did not fail on the refused RunInstances (see $$state/create-failure.log)" >&2; exit 1; }; \
	$(MOLECULE) destroy -s example_web > $$state/destroy-after-failure.log 2>&1 \
	  || { cat $$state/destroy-after-failure.log; echo "molecule destroy failed after a failed create" >&2; exit 1; }; \
	! ls -d "$${TMPDIR:-/tmp}/bakery-$$bake_id-"* 2>/dev/null \
	  || { echo "a builder key directory of bake $$bake_id was left" >&2; exit 1; }; \
	if $(BIN)/python -m localcloud --state-dir $$cloud status >/dev/null 2>&1; then \
	  echo "destroy left the local cloud running ($$cloud)" >&2; exit 1; \
	fi; \
	$(BIN)/python -c 'import sys; from pathlib import Path; from localcloud.requestlog import count_requests as n; \
	log = Path(sys.argv[1]); \
	want = {"RunInstances": "injected", "ImportKeyPair": "ok", "CreateSecurityGroup": "ok", "DeleteKeyPair": "ok", "DeleteSecurityGroup": "ok"}; \
	missing = [a for a, o in want.items() if n(log, action=a, outcome=o) == 0]; \
	sys.exit(f"not in the request log after destroy: {missing}") if missing else print("molecule: destroy after a failed create removed the key pair, the security group, the key and the cloud")' \
	  $$cloud/requests.jsonl
