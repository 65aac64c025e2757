# SPDX-License-Identifier: GPL-3.0-or-later
"""Launching a builder: the RunInstances request, the root volume, and finding an earlier run's builder (Stubber)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils import _builder_launch as launch
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY

STATES = ("pending", "running", "stopping", "stopped")
FIND = {"Filters": [{"Name": "tag:bakery:bake-id", "Values": ["web-1"]},
                    {"Name": "instance-state-name", "Values": list(STATES)}]}


@pytest.fixture
def ec2() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(client)
    with stub:
        yield RetryingBotoClientWrapper(client, RETRY), stub
        stub.assert_no_pending_responses()


def _settings(**more: Any) -> launch.LaunchSettings:
    return launch.LaunchSettings(bake_id="web-1", tags={"bakery:bake-id": "web-1"}, instance_type="t3.micro",
                                 ssh_cidr="198.51.100.7/32", **more)


def test_run_request_requires_imdsv2_and_tags_at_creation() -> None:
    request = launch.run_request(_settings(subnet_id="subnet-1", assign_public_ip=True, instance_profile="arn:aws:iam::1:x",
                                           spot=True, spot_max_price="0.02"), "ami-1", "bakery-web-1", "sg-1")
    assert request["MetadataOptions"] == {"HttpEndpoint": "enabled", "HttpTokens": "required"}
    assert request["ClientToken"] == "bakery-web-1"
    assert [spec["ResourceType"] for spec in request["TagSpecifications"]] == ["instance", "volume", "spot-instances-request"]
    assert request["NetworkInterfaces"] == [{"DeviceIndex": 0, "SubnetId": "subnet-1", "Groups": ["sg-1"],
                                             "AssociatePublicIpAddress": True}]
    assert "SecurityGroupIds" not in request
    assert request["IamInstanceProfile"] == {"Arn": "arn:aws:iam::1:x"}
    assert request["InstanceMarketOptions"]["SpotOptions"] == {
        "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate", "MaxPrice": "0.02"}


def test_the_root_volume_is_mapped_only_when_it_differs() -> None:
    assert launch.root_volume_mapping("/dev/xvda", {"size": 0, "encrypted": False}) == []
    assert launch.root_volume_mapping("/dev/sda1", {"size": 20, "type": "gp3", "encrypted": True, "kms_key_id": "k"}) == [
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True,
                                            "VolumeSize": 20, "KmsKeyId": "k"}}]


def _builder(state: str = "running", group: str = "bakery-web-1", key: str = "bakery-web-1") -> dict[str, Any]:
    return {"InstanceId": "i-1", "State": {"Name": state}, "KeyName": key, "ImageId": "ami-1",
            "SecurityGroups": [{"GroupId": "sg-1", "GroupName": group}]}


def _key_dir(tmp_path: Path, public: str = "ssh-ed25519 AAAA bakery-web-1") -> str:
    (tmp_path / "id_ed25519").write_text("private")
    (tmp_path / "id_ed25519.pub").write_text(public + "\n")
    return str(tmp_path)


def test_no_builder_yet(ec2: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    stub.add_response("describe_instances", {"Reservations": []}, FIND)
    assert launch.existing_builder(client, "web-1", STATES, "") is None


def test_a_complete_builder_with_its_key_is_found(ec2: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = ec2
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [_builder()]}]}, FIND)
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "bakery-web-1", "PublicKey": "ssh-ed25519 AAAA other"}]},
                      {"KeyNames": ["bakery-web-1"], "IncludePublicKey": True})
    found = launch.existing_builder(client, "web-1", STATES, _key_dir(tmp_path))
    assert found is not None
    assert (found.instance["InstanceId"], found.key_name, found.group_id) == ("i-1", "bakery-web-1", "sg-1")
    assert found.private_key_file == str(tmp_path / "id_ed25519")
    assert found.public_line == "ssh-ed25519 AAAA bakery-web-1"


def test_a_key_dir_holding_another_key_is_refused(ec2: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = ec2
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [_builder()]}]}, FIND)
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "bakery-web-1", "PublicKey": "ssh-ed25519 BBBB"}]},
                      {"KeyNames": ["bakery-web-1"], "IncludePublicKey": True})
    with pytest.raises(launch.StepError) as refused:
        launch.existing_builder(client, "web-1", STATES, _key_dir(tmp_path))
    assert refused.value.step == "key pair"


@pytest.mark.parametrize(("builder", "message"), [
    (_builder("stopping"), "Bake web-1 already has builder i-1 and it is stopping"),
    (_builder(group="default"), "Bake web-1 already has builder i-1 without its key pair or security group bakery-web-1"),
    (_builder(key="someone-elses"), "Bake web-1 already has builder i-1 without its key pair or security group bakery-web-1"),
])
def test_a_builder_that_cannot_be_used_again_is_refused(ec2: tuple[Any, Stubber], builder: dict[str, Any], message: str) -> None:
    client, stub = ec2
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [builder]}]}, FIND)
    with pytest.raises(launch.StepError) as refused:
        launch.existing_builder(client, "web-1", STATES, "")
    assert str(refused.value) == f"{message}; remove it with state=absent or use another bake_id"
    assert refused.value.step == "launch"
