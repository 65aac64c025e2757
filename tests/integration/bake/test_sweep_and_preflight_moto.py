# SPDX-License-Identifier: GPL-3.0-or-later
"""sweep.yml, check mode and bad variables of bake.yml, against a plain moto server."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bake_helpers import HERE, NOTHING, REPO, Moto, bake_resources, base_vars, run_playbook

SKIP_SSH = ("--skip-tags", "builder_host_keys,builder_inventory")


def _everything(moto: Moto) -> dict[str, int]:
    """Counts of every instance, group and key pair, bake-tagged or not."""
    ec2 = moto.client("ec2")
    return {
        "instances": sum(len(r["Instances"]) for r in ec2.describe_instances()["Reservations"]),
        "security_groups": len(ec2.describe_security_groups()["SecurityGroups"]),
        "key_pairs": len(ec2.describe_key_pairs()["KeyPairs"]),
        "images": len(ec2.describe_images(Owners=["self"])["Images"]),
    }


def test_sweep_removes_only_old_leftovers(moto_server: Moto, source_ami: str, tmp_path: Path) -> None:
    bake_id = "killed-bake-1"
    made = run_playbook(HERE / "playbooks/builder_resources.yml",
                        base_vars(moto_server, source_ami, bake_id=bake_id, report_path=str(tmp_path / "r.json")),
                        *SKIP_SSH)
    assert made.returncode == 0, made.stdout + made.stderr
    key_dir = Path(json.loads((tmp_path / "r.json").read_text())["key_dir"])
    left = bake_resources(moto_server, bake_id)
    assert all(left.values()), left
    # the open spot request a killed spot bake may leave (tagged at creation like the rest)
    ec2 = moto_server.client("ec2")
    tags = [{"Key": "bakery:bake-id", "Value": bake_id}, {"Key": "bakery:temporary", "Value": "true"}]
    ec2.request_spot_instances(InstanceCount=1, Type="one-time",
                               LaunchSpecification={"ImageId": source_ami, "InstanceType": "t3.micro"},
                               TagSpecifications=[{"ResourceType": "spot-instances-request", "Tags": tags}])
    live = [{"Name": "tag:bakery:bake-id", "Values": [bake_id]}, {"Name": "state", "Values": ["open", "active"]}]
    assert len(ec2.describe_spot_instance_requests(Filters=live)["SpotInstanceRequests"]) == 1

    sweep_vars = {"bake_endpoint_url": moto_server.endpoint_url, "bake_region": "us-east-1", "sweep_bake_id": bake_id}
    # moto dates every spot request 2015-01-01: "older than 20 years" keeps it young as well
    young = run_playbook(REPO / "playbooks/sweep.yml", {**sweep_vars, "sweep_older_than_minutes": 20 * 365 * 24 * 60})
    assert young.returncode == 0, young.stdout + young.stderr
    assert bake_resources(moto_server, bake_id) == left
    assert len(ec2.describe_spot_instance_requests(Filters=live)["SpotInstanceRequests"]) == 1
    assert key_dir.exists()

    old = run_playbook(REPO / "playbooks/sweep.yml", {**sweep_vars, "sweep_older_than_minutes": 0})
    assert old.returncode == 0, old.stdout + old.stderr
    assert bake_resources(moto_server, bake_id) == NOTHING
    assert ec2.describe_spot_instance_requests(Filters=live)["SpotInstanceRequests"] == []
    assert not key_dir.exists()


def test_check_mode_changes_nothing(moto_server: Moto, source_ami: str) -> None:
    before = _everything(moto_server)
    run = run_playbook(REPO / "playbooks/bake.yml", base_vars(moto_server, source_ami, bake_id="check-mode-1"), "--check")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Source AMI {source_ami}" in run.stdout
    assert "Check mode: nothing was created." in run.stdout
    assert _everything(moto_server) == before


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"bake_region": "xx-nowhere-1"}, "Unknown region(s) xx-nowhere-1"),
        ({"bake_copy_regions": ["us-west-2", "mars-north-1"]}, "Unknown region(s) mars-north-1"),
        ({"image_name": "x"}, "Image name 'x' is not a valid AMI name"),
        ({"image_name": "web-{{ bake_timestamp }}?"}, "is not a valid AMI name"),
        ({"builder_source_ami_id": "", "builder_source_ami_filters": {"name": "no-such-image-*"},
          "builder_source_ami_owners": ["self"]}, "No source AMI found in us-east-1"),
        ({"builder_source_ami_ssm_parameter": "/no/such/parameter"}, "Set exactly one of builder_source_ami_id"),
    ],
)
def test_bad_variables_fail_before_anything_is_created(
    moto_server: Moto, source_ami: str, bad: dict[str, Any], message: str
) -> None:
    before = _everything(moto_server)
    run = run_playbook(REPO / "playbooks/bake.yml", {**base_vars(moto_server, source_ami, bake_id="bad-vars"), **bad})
    assert run.returncode != 0
    failures = [line for line in run.stdout.splitlines() if line.startswith("fatal:")]
    assert len(failures) == 2, run.stdout  # the failed check, then the run's verdict naming it
    assert message in failures[-1], failures[-1]
    assert "Bake bad-vars failed at step" in failures[-1]
    assert _everything(moto_server) == before


def _existing_image(moto: Moto, source: str, name: str) -> str:
    ec2 = moto.client("ec2")
    instance = ec2.run_instances(ImageId=source, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=instance, Name=name)["ImageId"]
    ec2.terminate_instances(InstanceIds=[instance])
    return str(image)


def test_second_bake_of_the_same_name_fails_clearly_or_reuses(
    moto_server: Moto, source_ami: str, tmp_path: Path
) -> None:
    name = "same-name-twice"
    image_id = _existing_image(moto_server, source_ami, name)
    before = _everything(moto_server)

    fail = run_playbook(REPO / "playbooks/bake.yml",
                        base_vars(moto_server, source_ami, bake_id="same-name-fail", image_name=name))
    assert fail.returncode != 0
    assert f"An image named '{name}' already exists in us-east-1 ({image_id})" in fail.stdout
    assert "Nothing was created." in fail.stdout
    assert _everything(moto_server) == before

    manifest = tmp_path / "manifest.json"
    reuse = run_playbook(REPO / "playbooks/bake.yml",
                         base_vars(moto_server, source_ami, bake_id="same-name-reuse", image_name=name,
                                   image_if_exists="reuse", image_manifest_path=str(manifest)))
    assert reuse.returncode == 0, reuse.stdout + reuse.stderr
    assert _everything(moto_server) == before  # no builder, no second image
    assert json.loads(manifest.read_text())["builds"][-1]["artifact_id"] == f"us-east-1:{image_id}"
