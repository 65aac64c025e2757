# SPDX-License-Identifier: GPL-3.0-or-later
"""builder_resources against moto (what it makes, stops and removes), and its exact requests (Stubber)."""
from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.bakery.ami.plugins.module_utils import _builder_find as find
from ansible_collections.bakery.ami.plugins.module_utils import _builder_launch as launch
from ansible_collections.bakery.ami.plugins.module_utils import _builder_release as release
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY
from ansible_collections.bakery.ami.plugins.module_utils._waiter import GROUP_RELEASED, INSTANCE_RUNNING
from ansible_collections.bakery.ami.plugins.modules import builder_resources

BAKE = "unit-bake-1"
TAG = [{"Name": "tag:bakery:bake-id", "Values": [BAKE]}]


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch.time, "sleep", lambda seconds: None)


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _left(ec2: Any) -> dict[str, list[str]]:
    reservations = ec2.describe_instances(
        Filters=TAG + [{"Name": "instance-state-name", "Values": list(find.INSTANCE_STATES_TO_TERMINATE)}])["Reservations"]
    return {
        "instances": [i["InstanceId"] for r in reservations for i in r["Instances"]],
        "groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=TAG)["SecurityGroups"]],
        "keys": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=TAG)["KeyPairs"]],
    }


NOTHING: dict[str, list[str]] = {"instances": [], "groups": [], "keys": []}


def _present(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    args = {"bake_id": BAKE, "source_image_id": image_id, "ssh_cidr": "198.51.100.7/32", "wait_host_keys": False,
            "key_dir": str(tmp_path / "key"), "tags": {"team": "web"}, **extra}
    return run_module(builder_resources.main, args)


def test_present_makes_tagged_locked_down_resources(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path) -> None:
    result = _present(run_module, ec2, tmp_path)
    assert not result["failed"], result
    assert result["changed"]
    instance = ec2.describe_instances(InstanceIds=[result["instance_id"]])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "running"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["KeyName"] == result["key_name"] == f"bakery-{BAKE}"
    assert result["address"] == instance["PrivateIpAddress"]
    tags = _tags(instance)
    assert tags.pop("bakery:created-at") <= datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tags == {"bakery:bake-id": BAKE, "bakery:temporary": "true", "team": "web", "Name": f"bakery-builder-{BAKE}"}
    group = ec2.describe_security_groups(GroupIds=[result["security_group_id"]])["SecurityGroups"][0]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
            for p in group["IpPermissions"]] == [("tcp", 22, 22, ["198.51.100.7/32"])]
    assert _tags(group)["bakery:bake-id"] == BAKE
    pair = ec2.describe_key_pairs(KeyNames=[result["key_name"]])["KeyPairs"][0]
    assert _tags(pair)["bakery:temporary"] == "true"
    private = Path(result["private_key_file"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(result["key_dir"]).stat().st_mode) == 0o700
    assert private.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert result["public_key"].startswith("ssh-ed25519 ")
    assert "PRIVATE KEY" not in repr(result)  # the private key is never returned


def test_root_volume_and_spot_reach_run_instances(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path) -> None:
    result = _present(run_module, ec2, tmp_path, spot=True, root_volume={"size": 12, "encrypted": True})
    assert not result["failed"], result
    instance = ec2.describe_instances(InstanceIds=[result["instance_id"]])["Reservations"][0]["Instances"][0]
    assert instance["InstanceLifecycle"] == "spot"
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert (volume["Size"], volume["Encrypted"]) == (12, True)


def test_check_mode_looks_the_source_up_and_creates_nothing(run_module: Callable[..., dict[str, Any]], ec2: Any) -> None:
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    result = run_module(builder_resources.main, {"bake_id": BAKE, "source_image_id": image_id, "ssh_cidr": "10.0.0.1/32"},
                        check_mode=True)
    assert not result["failed"], result
    assert result["source_image"]["image_id"] == image_id
    assert "instance_id" not in result
    assert _left(ec2) == NOTHING


@pytest.mark.parametrize(("args", "message"), [
    ({"source_image_id": "ami-12345678", "source_filters": {"name": "x"}},
     "Give exactly one of source_image_id, source_ssm_parameter and source_filters for state=present."),
    ({}, "Give exactly one of source_image_id, source_ssm_parameter and source_filters for state=present."),
    ({"source_image_id": "ami-12345678", "ssh_cidr": "everywhere"},
     "ssh_cidr 'everywhere' is not an address range such as 198.51.100.7/32."),
    ({"state": "stopped"}, "state=stopped needs instance_ids."),
])
def test_bad_input_is_one_sentence_and_creates_nothing(
    run_module: Callable[..., dict[str, Any]], ec2: Any, args: dict[str, Any], message: str
) -> None:
    result = run_module(builder_resources.main, {"bake_id": BAKE, "ssh_cidr": "10.0.0.1/32", **args})
    assert result["failed"]
    assert result["msg"] == message
    assert _left(ec2) == NOTHING


def test_no_source_image_fails_at_source_lookup(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path) -> None:
    result = run_module(builder_resources.main, {"bake_id": BAKE, "source_filters": {"name": "no-such-image-*"},
                                                 "ssh_cidr": "10.0.0.1/32", "key_dir": str(tmp_path / "k")})
    assert result["failed"]
    assert result["bake_step"] == "source lookup"
    assert result["msg"].startswith("No source AMI found in us-east-1 for {'name': 'no-such-image-*'}")
    assert _left(ec2) == NOTHING
    assert not (tmp_path / "k").exists()


def test_missing_host_keys_fail_at_their_step_and_the_key_dir_goes(
    run_module: Callable[..., dict[str, Any]], ec2: Any
) -> None:
    # moto's console output has no host key block
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    result = run_module(builder_resources.main, {"bake_id": BAKE, "source_image_id": image_id, "ssh_cidr": "10.0.0.1/32",
                                                 "host_keys_timeout": 0})
    assert result["failed"]
    assert result["bake_step"] == "host keys"
    assert "No SSH host key block in the console output" in result["msg"]
    assert len(_left(ec2)["instances"]) == 1  # left, tagged, for the cleanup
    assert not [d for d in os.listdir(os.environ.get("TMPDIR", "/tmp")) if d.startswith(f"bakery-{BAKE}-")]


def test_stopped_then_absent_by_id_then_by_tag(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path) -> None:
    made = _present(run_module, ec2, tmp_path)
    instance_id = made["instance_id"]
    stopped = run_module(builder_resources.main, {"bake_id": BAKE, "state": "stopped", "instance_ids": [instance_id]})
    assert (stopped["failed"], stopped["changed"]) == (False, True)
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "stopped"
    again = run_module(builder_resources.main, {"bake_id": BAKE, "state": "stopped", "instance_ids": [instance_id]})
    assert (again["failed"], again["changed"]) == (False, False)

    # by id only: the key pair named goes, the rest stays
    by_id = run_module(builder_resources.main, {"bake_id": BAKE, "state": "absent", "find": False,
                                                "key_names": [made["key_name"]]})
    assert by_id["deleted_key_pairs"] == [made["key_name"]]
    assert _left(ec2) == {"instances": [instance_id], "groups": [made["security_group_id"]], "keys": []}

    check = run_module(builder_resources.main, {"bake_id": BAKE, "state": "absent"}, check_mode=True)
    assert check["changed"] and check["terminated"] == [instance_id]
    assert _left(ec2)["instances"] == [instance_id]

    for attempt in (1, 2):  # twice is harmless
        gone = run_module(builder_resources.main, {"bake_id": BAKE, "state": "absent", "key_dir": made["key_dir"]})
        assert not gone["failed"], gone
        assert gone["changed"] is (attempt == 1)
        assert _left(ec2) == NOTHING
        assert not Path(made["key_dir"]).exists()


def _stubbed() -> tuple[Any, Stubber]:
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return RetryingBotoClientWrapper(client, RETRY), Stubber(client)


def _instance(state: str) -> dict[str, Any]:
    return {"Reservations": [{"Instances": [{"InstanceId": "i-0123456789abcdef0", "State": {"Name": state},
                                             "PrivateIpAddress": "10.0.0.5"}]}]}


def test_launch_makes_only_the_calls_it_needs(tmp_path: Path) -> None:
    """Source, key, group + rule, instance, two polls, the console: nothing found twice."""
    client, stub = _stubbed()
    settings = launch.LaunchSettings(bake_id=BAKE, tags={"bakery:bake-id": BAKE}, instance_type="t3.micro",
                                     ssh_cidr="198.51.100.7/32")
    tags = [{"Key": "bakery:bake-id", "Value": BAKE}]
    console = "x\n-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAC3Nza root@b\n-----END SSH HOST KEY KEYS-----\n"
    stub.add_response("describe_images", {"Images": [{"ImageId": "ami-12345678", "State": "available"}]},
                      {"ImageIds": ["ami-12345678"]})
    stub.add_response("import_key_pair", {"KeyName": f"bakery-{BAKE}"}, {
        "KeyName": f"bakery-{BAKE}", "PublicKeyMaterial": b"ssh-ed25519 AAAA",
        "TagSpecifications": [{"ResourceType": "key-pair", "Tags": tags}]})
    stub.add_response("create_security_group", {"GroupId": "sg-12345678"}, {
        "GroupName": f"bakery-{BAKE}", "Description": f"bakery.ami temporary builder access for bake {BAKE}",
        "TagSpecifications": [{"ResourceType": "security-group", "Tags": tags}]})
    stub.add_response("authorize_security_group_ingress", {"Return": True}, {
        "GroupId": "sg-12345678", "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [
            {"CidrIp": "198.51.100.7/32", "Description": "SSH from the bake runner"}]}]})
    stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]},
                      launch.run_request(settings, "ami-12345678", f"bakery-{BAKE}", "sg-12345678"))
    stub.add_response("describe_instances", _instance("pending"), {"InstanceIds": ["i-0123456789abcdef0"]})
    stub.add_response("describe_instances", _instance("running"), {"InstanceIds": ["i-0123456789abcdef0"]})
    stub.add_response("get_console_output", {"Output": console}, {"InstanceId": "i-0123456789abcdef0", "Latest": True})
    sleeps: list[float] = []
    with stub:
        image = launch.source_image(client, "us-east-1", "ami-12345678", {}, [], True)
        launch.import_key_pair(client, f"bakery-{BAKE}", "ssh-ed25519 AAAA", settings.tags)
        group_id = launch.create_security_group(client, settings)
        started = launch.run_instance(client, launch.run_request(settings, image["ImageId"], f"bakery-{BAKE}", group_id))
        running = launch.wait_running(client, started["InstanceId"], 60, sleep=sleeps.append)
        keys = launch.read_host_keys(client, started["InstanceId"], 60, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert running["PrivateIpAddress"] == "10.0.0.5"
    assert keys == ["ssh-ed25519 AAAAC3Nza"]
    assert sleeps[0] == INSTANCE_RUNNING.first_delay  # no poll before an instance could be running


def test_security_group_deletion_waits_out_dependency_violation() -> None:
    client, stub = _stubbed()
    stub.add_client_error("delete_security_group", "DependencyViolation", "resource sg-1 has a dependent object",
                          expected_params={"GroupId": "sg-1"})
    stub.add_response("delete_security_group", {}, {"GroupId": "sg-1"})
    stub.add_client_error("delete_security_group", "InvalidGroup.NotFound", "gone", expected_params={"GroupId": "sg-2"})
    done = release.Release(security_group_ids=["sg-1", "sg-2"])
    sleeps: list[float] = []
    with stub:
        release.delete_security_groups(client, done, timeout=60, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert done.deleted_security_groups == ["sg-1"]
    assert sleeps == [GROUP_RELEASED.delay]


def test_the_source_can_come_from_an_ssm_parameter(run_module: Callable[..., dict[str, Any]], ec2: Any) -> None:
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    boto3.client("ssm", region_name="us-east-1").put_parameter(Name="/bake/source", Value=image_id, Type="String")
    args = {"bake_id": BAKE, "ssh_cidr": "10.0.0.1/32"}
    found = run_module(builder_resources.main, {**args, "source_ssm_parameter": "/bake/source"}, check_mode=True)
    assert not found["failed"], found
    assert found["source_image"]["image_id"] == image_id
    missing = run_module(builder_resources.main, {**args, "source_ssm_parameter": "/bake/missing"})
    assert missing["failed"] and missing["bake_step"] == "source lookup"
    assert missing["msg"].startswith("GetParameter /bake/missing failed: ParameterNotFound")
    assert _left(ec2) == NOTHING
