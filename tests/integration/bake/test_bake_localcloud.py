# SPDX-License-Identifier: GPL-3.0-or-later
"""Whole bakes with ansible-playbook against the local cloud: real builders, real SSH, real images."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bake_helpers import HERE, REPO, run_playbook

from localcloud.testing import RunningCloud

pytestmark = pytest.mark.localcloud
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]
TASKS = HERE / "playbooks/tasks"  # customization tasks files of the tests


def _bake(cloud: RunningCloud, extra_vars: dict[str, Any], playbook: str = "playbooks/bake.yml") -> Any:
    env = {**cloud.env, "LOCALCLOUD_STATE_DIR": str(cloud.state_dir)}
    inventory = ["-i", str(REPO / "inventories/local")]
    return run_playbook(REPO / playbook, extra_vars, *inventory, env=env, timeout=1800)


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _left_by(cloud: RunningCloud, bake_id: str) -> dict[str, list[str]]:
    """Everything of the bake still in any region: temporary resources, images, snapshots."""
    tag = [{"Name": "tag:bakery:bake-id", "Values": [bake_id]}]
    live = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    left: dict[str, list[str]] = {}
    for region in REGIONS:
        ec2 = cloud.client("ec2", region)
        found = (
            [i["InstanceId"] for r in ec2.describe_instances(Filters=tag + live)["Reservations"] for i in r["Instances"]]
            + [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]]
            + [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag)["KeyPairs"]]
            + [i["ImageId"] for i in ec2.describe_images(Owners=["self"], Filters=tag)["Images"]]
            + [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=tag)["Snapshots"]]
        )
        if found:
            left[region] = found
    return left


def test_full_bake_with_two_copies(localcloud_session: RunningCloud, tmp_path: Path) -> None:
    cloud = localcloud_session
    bake_id = "full-bake-1"
    manifest = tmp_path / "manifest.json"
    run = _bake(cloud, {"bake_id": bake_id, "bake_copy_regions": REGIONS[1:], "image_manifest_path": str(manifest)})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr

    build = json.loads(manifest.read_text())["builds"][-1]
    images = dict(pair.split(":", 1) for pair in build["artifact_id"].split(","))
    assert sorted(images) == sorted(REGIONS)
    assert build["packer_run_uuid"] == bake_id and build["builder_type"] == "amazon-ebs"
    source = build["custom_data"]["source_ami"]
    for region, image_id in images.items():
        ec2 = cloud.client("ec2", region)
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        assert image["State"] == "available"
        assert _tags(image)["bakery:bake-id"] == bake_id
        assert _tags(image)["bakery:source-ami"] == source
        assert "bakery:temporary" not in _tags(image)
        snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
        assert snapshots
        for snapshot in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
            assert _tags(snapshot)["bakery:bake-id"] == bake_id

    # nothing temporary left: only the images and their snapshots carry the bake's tag
    left = _left_by(cloud, bake_id)
    assert {region: [r for r in found if not r.startswith(("ami-", "snap-"))] for region, found in left.items()} == {
        region: [] for region in left
    }
    assert not list(Path("/tmp").glob(f"bakery-{bake_id}-*"))

    # an instance launched from a copy carries the customization and none of the builder's keys
    report = tmp_path / "verify.json"
    verify = _bake(cloud, {"verify_image_id": images["eu-west-1"], "bake_region": "eu-west-1",
                           "verify_builder_host_keys": build["custom_data"]["builder_host_keys"],
                           "verify_report_path": str(report)}, playbook="tools/demo-verify.yml")
    assert verify.returncode == 0, verify.stdout[-6000:] + verify.stderr
    seen = json.loads(report.read_text())
    assert "port=8080" in seen["example_conf"]
    assert "Baked on the local cloud" in seen["motd"]
    assert seen["host_keys"] and not set(seen["host_keys"]) & set(build["custom_data"]["builder_host_keys"])
    assert seen["authorized_keys"] == [seen["launch_key"]]


def test_failing_customization_fails_naming_the_step_and_leaves_nothing(localcloud_session: RunningCloud) -> None:
    bake_id = "fails-in-customize"
    run = _bake(localcloud_session, {"bake_id": bake_id, "bake_customize_tasks": str(TASKS / "customize_fails.yml")})
    assert run.returncode != 0
    assert f"Bake {bake_id} failed at step 'customize' (A customization that fails)" in run.stdout
    assert _left_by(localcloud_session, bake_id) == {}


def test_copy_failing_in_one_region_rolls_the_whole_bake_back(
    localcloud_session: RunningCloud, localcloud_settings: Any
) -> None:
    localcloud_settings.update_settings({"faults": {"copy_image_fail_regions": {"eu-west-1": "state"}}})
    bake_id = "fails-in-copy"
    run = _bake(localcloud_session, {"bake_id": bake_id, "bake_copy_regions": REGIONS[1:]})
    assert run.returncode != 0
    assert f"Bake {bake_id} failed at step 'copy'" in run.stdout
    assert "eu-west-1" in run.stdout
    assert _left_by(localcloud_session, bake_id) == {}
