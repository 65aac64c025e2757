# SPDX-License-Identifier: GPL-3.0-or-later
"""Molecule's destroy after a create that failed half way (the example_web scenario).

RunInstances is refused after the key pair and the security group were made; destroy must
delete both (the cloud's request log shows it) and stop the cloud, and no local key may be
left (the launch removes it when it fails). `make molecule` runs this after `molecule test`:
both use the scenario's one state directory, so they never run side by side.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.requestlog import count_requests

REPO = Path(__file__).resolve().parents[3]
BIN = REPO / ".venv" / "bin"
SCENARIO = "example_web"
# Where extensions/molecule/example_web/molecule.yml keeps the scenario's local cloud.
STATE = REPO / "build" / "molecule" / SCENARIO
CLOUD = STATE / "localcloud"
REFUSAL = "refused by the create-failure check"
FAULTS = {"faults": {"action_errors": [
    {"action": "RunInstances", "code": "InvalidParameterValue", "status": 400, "message": REFUSAL, "times": None},
]}}

pytestmark = pytest.mark.localcloud


def _cloud(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "python"), "-m", "localcloud", "--state-dir", str(CLOUD), command],
                          cwd=REPO, capture_output=True, text=True, check=False, timeout=120)


def _molecule(command: str, env: dict[str, str], log: Path) -> int:
    with log.open("w") as out:
        return subprocess.run(
            [str(BIN / "molecule"), "--base-config", "extensions/molecule/config.yml", command, "-s", SCENARIO],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=900,
        ).returncode


@pytest.fixture
def molecule_env() -> Iterator[dict[str, str]]:
    STATE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "MOLECULE_EPHEMERAL_DIRECTORY": str(STATE / "ephemeral")}
    try:
        yield env
    finally:
        _cloud("stop")  # whatever happened, the scenario's cloud does not outlive the test


def test_destroy_after_a_failed_create_removes_what_the_create_made(molecule_env: dict[str, str]) -> None:
    faults = STATE / "faults.json"
    faults.write_text(json.dumps(FAULTS))
    create_log, destroy_log = STATE / "create-failure.log", STATE / "destroy-after-failure.log"

    rc = _molecule("create", {**molecule_env, "MOLECULE_LOCALCLOUD_SETTINGS": str(faults)}, create_log)
    assert rc != 0, f"molecule create succeeded although RunInstances was refused (see {create_log})"
    bake_id = json.loads((STATE / "ephemeral" / "bake.json").read_text())["bake_id"]
    assert REFUSAL in create_log.read_text(), f"the create did not fail on the refused RunInstances (see {create_log})"

    rc = _molecule("destroy", molecule_env, destroy_log)
    assert rc == 0, f"molecule destroy failed after a failed create:\n{destroy_log.read_text()}"

    left = sorted(Path(tempfile.gettempdir()).glob(f"bakery-{bake_id}-*"))
    assert not left, f"a builder key directory of bake {bake_id} was left: {left}"
    assert _cloud("status").returncode != 0, f"destroy left the local cloud running ({CLOUD})"
    log = CLOUD / "requests.jsonl"
    want = {"RunInstances": "injected", "ImportKeyPair": "ok", "CreateSecurityGroup": "ok",
            "DeleteKeyPair": "ok", "DeleteSecurityGroup": "ok"}
    missing = [action for action, outcome in want.items() if count_requests(log, action=action, outcome=outcome) == 0]
    assert not missing, f"not in the request log after destroy: {missing}"
