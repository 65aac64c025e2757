# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a team sets the customization: a bake variable means the same in localhost's host vars."""
from __future__ import annotations

from pathlib import Path

from bake_helpers import HERE, NOTHING, REPO, Moto, bake_resources, base_vars, run_playbook


def test_customization_set_in_localhost_host_vars_runs_on_the_builder(
    moto_server: Moto, source_ami: str, tmp_path: Path
) -> None:
    marker = tmp_path / "customized"
    bake_id = "customize-host-vars"
    run = run_playbook(
        REPO / "playbooks/bake.yml",
        base_vars(moto_server, source_ami, bake_id=bake_id, customize_marker_path=str(marker)),
        # a plain moto instance has no console host keys, generalize would change this machine,
        # and imaging is the local cloud tests' (plain moto lacks what CreateImage needs here)
        "--skip-tags", "builder_host_keys,generalize,image",
        inventory=HERE / "inventories/customize_in_host_vars",
        env={"ANSIBLE_ROLES_PATH": str(HERE / "roles")},
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr
    assert marker.read_text() == "set in host_vars/localhost.yml\n"
    assert bake_resources(moto_server, bake_id) == NOTHING


def test_bake_with_nothing_to_customize_fails_before_anything_is_made(moto_server: Moto, source_ami: str) -> None:
    bake_id = "nothing-to-customize"
    run = run_playbook(REPO / "playbooks/bake.yml", base_vars(moto_server, source_ami, bake_id=bake_id),
                       inventory=HERE / "inventories/nothing_to_customize")
    assert run.returncode != 0
    verdict = [line for line in run.stdout.splitlines() if line.startswith("fatal:")][-1]
    assert f"Bake {bake_id} failed at step 'preflight'" in verdict, verdict
    assert "Nothing would customize the image" in verdict
    assert "bake_customize_nothing" in verdict
    assert "Nothing was created." in verdict
    assert bake_resources(moto_server, bake_id) == NOTHING
