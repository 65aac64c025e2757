# SPDX-License-Identifier: GPL-3.0-or-later
"""A bake under throttling, and a bake killed mid-way then swept, against the local cloud."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from bake_helpers import BIN, FAKE_CREDENTIALS, REPO
from test_bake_localcloud import REGIONS, TASKS, _bake, _left_by

from localcloud.testing import RunningCloud

pytestmark = pytest.mark.localcloud


def test_bake_succeeds_with_30_percent_of_calls_throttled(
    localcloud_session: RunningCloud, localcloud_settings: Any, tmp_path: Path
) -> None:
    localcloud_settings.update_settings({"faults": {"throttle_rate": 0.3}})
    mark = localcloud_session.mark()
    bake_id = "throttled-bake"
    manifest = tmp_path / "manifest.json"
    run = _bake(localcloud_session, {"bake_id": bake_id, "bake_copy_regions": ["us-west-2"],
                                     "image_manifest_path": str(manifest)})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr
    assert localcloud_session.count(outcome="injected", since=mark) > 0
    localcloud_settings.update_settings({"faults": {"throttle_rate": 0.0}})  # for the checks below
    assert len(json.loads(manifest.read_text())["builds"][-1]["artifact_id"].split(",")) == 2
    left = _left_by(localcloud_session, bake_id)
    assert all(r.startswith(("ami-", "snap-")) for found in left.values() for r in found), left


def test_bake_killed_during_customization_is_swept(localcloud_session: RunningCloud, tmp_path: Path) -> None:
    cloud = localcloud_session
    marker = tmp_path / "customizing"
    bake_id = "killed-mid-bake"
    env = {**os.environ, **FAKE_CREDENTIALS, **cloud.env, "LOCALCLOUD_STATE_DIR": str(cloud.state_dir),
           "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories/local"), str(REPO / "playbooks/bake.yml"),
               "-e", json.dumps({"bake_id": bake_id, "bake_customize_tasks": str(TASKS / "customize_slowly.yml"),
                                 "bake_test_marker": str(marker)})]
    bake = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while not marker.exists():
            assert bake.poll() is None, "the bake ended before its customization ran"
            assert time.monotonic() < deadline, "the customization did not start within 900 s"
            time.sleep(1)
    finally:
        os.killpg(bake.pid, signal.SIGKILL)
        bake.wait(timeout=30)
    assert _left_by(cloud, bake_id)  # the killed bake left its builder behind

    sweep = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories/local"), str(REPO / "playbooks/sweep.yml"),
         "-e", json.dumps({"sweep_older_than_minutes": 0, "sweep_bake_id": bake_id, "bake_copy_regions": REGIONS[1:]})],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert sweep.returncode == 0, sweep.stdout[-6000:] + sweep.stderr
    assert _left_by(cloud, bake_id) == {}
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"bakery-{bake_id}-*"))


def _run_tag() -> str:
    """Keeps this run's bake ids (and so its local key directories) apart from another run's on the host."""
    return "-" + uuid.uuid4().hex[:6]


# (action failing, step named, AWS's message shown, extra variables of the bake)
API_FAULTS: list[tuple[str, str, bool, dict[str, Any]]] = [
    # the local inventory picks its source by SSM parameter, as bakes of AWS's own images do
    ("GetParameter", "source lookup", True, {}),
    ("ImportKeyPair", "key pair", True, {}),
    ("CreateSecurityGroup", "security group", True, {}),
    ("RunInstances", "launch", True, {}),
    ("RunInstances", "launch", True, {"builder_spot": True}),
    ("StopInstances", "stop", True, {}),
    ("CreateImage", "create image", True, {}),
    # sharing runs after the copy: the image and its copy must both be rolled back
    # (amazon.aws.ec2_ami reports "Failed to modify image attribute" without AWS's text)
    ("ModifyImageAttribute", "sharing", False, {"image_share_user_ids": ["111122223333"]}),
]


@pytest.mark.parametrize(("action", "step", "aws_message_shown", "extra_vars"), API_FAULTS,
                         ids=[fault[0] + ("-spot" if fault[3].get("builder_spot") else "") for fault in API_FAULTS])
def test_an_api_failure_at_each_step_fails_naming_it_and_leaves_nothing(
    localcloud_session: RunningCloud, localcloud_settings: Any, action: str, step: str, aws_message_shown: bool,
    extra_vars: dict[str, Any],
) -> None:
    localcloud_settings.update_settings({"faults": {"action_errors": [
        {"action": action, "code": "UnauthorizedOperation", "message": f"injected failure of {action}",
         "status": 403, "times": None},
    ]}})
    bake_id = f"fails-at-{action.lower()}" + ("-spot" if extra_vars.get("builder_spot") else "") + _run_tag()
    mark = localcloud_session.mark()
    run = _bake(localcloud_session, {"bake_id": bake_id, **extra_vars})
    assert run.returncode != 0
    assert f"Bake {bake_id} failed at step '{step}'" in run.stdout, run.stdout[-4000:]
    if step == "sharing":  # each region's error is named
        assert "Launch permissions could not be set: us-east-1: " in run.stdout, run.stdout[-4000:]
    # the fault was met, not some other failure on the way
    assert localcloud_session.count(action=action, outcome="injected", since=mark) > 0
    if aws_message_shown:
        assert f"injected failure of {action}" in run.stdout, [x for x in run.stdout.splitlines() if "failed at step" in x]
    created = step != "source lookup"
    assert ("Its temporary resources were removed." if created else "Nothing was created.") in run.stdout
    localcloud_settings.reset()
    assert _left_by(localcloud_session, bake_id) == {}
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"bakery-{bake_id}-*")), run.stdout[-8000:]


def test_builder_refusing_ssh_fails_at_connect_and_leaves_nothing(localcloud_session: RunningCloud) -> None:
    # The classic slip: the login user of another distribution. sshd answers and refuses the key.
    bake_id = "fails-at-connect" + _run_tag()
    run = _bake(localcloud_session, {"bake_id": bake_id, "builder_ssh_user": "ubuntu", "bake_connect_timeout": 10})
    assert run.returncode != 0
    assert f"Bake {bake_id} failed at step 'connect' (Connect | wait for SSH on the builder)" in run.stdout, \
        run.stdout[-4000:]
    assert "authentication failed for ubuntu@" in run.stdout  # the cause is in the message
    assert "Its temporary resources were removed." in run.stdout
    assert _left_by(localcloud_session, bake_id) == {}
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"bakery-{bake_id}-*")), run.stdout[-8000:]


def test_generalize_failing_on_the_builder_fails_at_generalize_and_leaves_nothing(
    localcloud_session: RunningCloud,
) -> None:
    # A hardening customization revokes the login user's passwordless sudo as its last task:
    # it succeeds, and generalize, which needs root, is the first to pay for it.
    bake_id = "fails-at-generalize" + _run_tag()
    run = _bake(localcloud_session, {"bake_id": bake_id,
                                     "bake_customize_tasks": str(TASKS / "customize_revokes_sudo.yml")})
    assert run.returncode != 0
    assert f"Bake {bake_id} failed at step 'generalize' (Generalize | find the SSH host keys)" in run.stdout, \
        run.stdout[-4000:]
    failure = next(line for line in run.stdout.splitlines() if f"Bake {bake_id} failed at step" in line)
    assert "sudo: a password is required" in failure, failure  # the reason the hardening gave, in the message
    assert "Its temporary resources were removed." in run.stdout
    assert _left_by(localcloud_session, bake_id) == {}
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"bakery-{bake_id}-*")), run.stdout[-8000:]
