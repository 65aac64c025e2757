# SPDX-License-Identifier: GPL-3.0-or-later
"""builder_resources against moto (what it makes, stops and removes), and its exact requests (Stubber)."""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils import _builder_find as find
from ansible_collections.bakery.ami.plugins.module_utils import _builder_launch as launch
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY
from ansible_collections.bakery.ami.plugins.module_utils._waiter import INSTANCE_RUNNING
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


def _present_args(ec2: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {"bake_id": BAKE, "source_image_id": image_id, "ssh_cidr": "198.51.100.7/32", "wait_host_keys": False,
            "key_dir": str(tmp_path / "key"), "tags": {"team": "web"}, **extra}


def _present(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return run_module(builder_resources.main, _present_args(ec2, tmp_path, **extra))


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
    assert tags.pop("bakery:created-at") <= datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
    would = run_module(builder_resources.main, {"bake_id": BAKE, "state": "stopped", "instance_ids": [instance_id]},
                       check_mode=True)
    assert (would["failed"], would["changed"]) == (False, True)
    assert ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
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
    by_id_again = run_module(builder_resources.main, {"bake_id": BAKE, "state": "absent", "find": False,
                                                      "key_names": [made["key_name"]]})
    assert (by_id_again["changed"], by_id_again["deleted_key_pairs"]) == (False, [])
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


# --- state=absent as the one remover: by age and the temporary tag, IAM, refusals, check mode ---

TRUST = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'


POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:UpdateInstanceInformation", "Resource": "*"}]}'


def _managed_policy(iam: Any, name: str) -> str:
    return str(iam.create_policy(PolicyName=name, PolicyDocument=POLICY)["Policy"]["Arn"])


def _moto_clock(monkeypatch: pytest.MonkeyPatch, minutes_ago: int) -> datetime:
    """Makes moto date what it creates `minutes_ago` minutes back (EC2 and IAM creation times)."""
    from moto.ec2.models import instances as moto_instances
    from moto.ec2.models import key_pairs as moto_key_pairs
    from moto.iam import models as moto_iam

    then = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    for module in (moto_instances, moto_key_pairs, moto_iam):
        monkeypatch.setattr(module, "utcnow", lambda: then.replace(tzinfo=None))
    return then


def _leave(ec2: Any, bake_id: str, minutes_ago: int, temporary: bool = True) -> dict[str, str]:
    """What a bake killed `minutes_ago` minutes ago leaves: instance, key pair, group, role and profile."""
    with pytest.MonkeyPatch.context() as clock:
        return _make_leftovers(ec2, bake_id, _moto_clock(clock, minutes_ago), temporary)


def _make_leftovers(ec2: Any, bake_id: str, then: datetime, temporary: bool) -> dict[str, str]:
    tags = {"bakery:bake-id": bake_id, "bakery:created-at": then.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if temporary:
        tags["bakery:temporary"] = "true"
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    name = f"bakery-{bake_id}"
    ec2.create_key_pair(KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list}])
    group_id = ec2.create_security_group(GroupName=name, Description="builder",
                                         TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list}])["GroupId"]
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, KeyName=name, SecurityGroupIds=[group_id],
                                    TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}])["Instances"][0]["InstanceId"]
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST, Tags=tag_list)
    iam.attach_role_policy(RoleName=name, PolicyArn=_managed_policy(iam, f"{name}-policy"))
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=POLICY)
    iam.create_instance_profile(InstanceProfileName=name, Tags=tag_list)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return {"instance": instance_id, "group": group_id, "name": name}


def _bake_left(ec2: Any, bake_id: str) -> dict[str, list[str]]:
    tag = [{"Name": "tag:bakery:bake-id", "Values": [bake_id]}]
    reservations = ec2.describe_instances(
        Filters=tag + [{"Name": "instance-state-name", "Values": list(find.INSTANCE_STATES_TO_TERMINATE)}])["Reservations"]
    iam = boto3.client("iam", region_name="us-east-1")
    return {
        "instances": [i["InstanceId"] for r in reservations for i in r["Instances"]],
        "groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]],
        "keys": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag)["KeyPairs"]],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] == f"bakery-{bake_id}"],
        "profiles": [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
                     if p["InstanceProfileName"] == f"bakery-{bake_id}"],
    }


NOTHING_OF_A_BAKE: dict[str, list[str]] = {"instances": [], "groups": [], "keys": [], "roles": [], "profiles": []}


def test_absent_by_age_removes_only_old_temporary_resources(run_module: Callable[..., dict[str, Any]], ec2: Any) -> None:
    old = _leave(ec2, "killed-long-ago", minutes_ago=120)
    _leave(ec2, "killed-just-now", minutes_ago=10)
    _leave(ec2, "not-temporary", minutes_ago=120, temporary=False)
    young_before = _bake_left(ec2, "killed-just-now")
    kept_before = _bake_left(ec2, "not-temporary")

    check = run_module(builder_resources.main, {"state": "absent", "older_than_minutes": 60}, check_mode=True)
    assert not check["failed"], check
    assert check["changed"] and check["terminated"] == [old["instance"]]
    assert _bake_left(ec2, "killed-long-ago") != NOTHING_OF_A_BAKE  # check mode removed nothing

    swept = run_module(builder_resources.main, {"state": "absent", "older_than_minutes": 60})
    assert not swept["failed"], swept
    assert swept["changed"]
    assert swept["terminated"] == [old["instance"]]
    assert swept["deleted_security_groups"] == [old["group"]]
    assert swept["deleted_key_pairs"] == [old["name"]]
    assert swept["deleted_instance_profiles"] == [old["name"]]
    assert swept["deleted_roles"] == [old["name"]]
    assert {k: swept[k] for k in ("cancelled_spot_requests", "removed_key_dir")} == {
        "cancelled_spot_requests": [], "removed_key_dir": False}
    assert _bake_left(ec2, "killed-long-ago") == NOTHING_OF_A_BAKE
    assert _bake_left(ec2, "killed-just-now") == young_before
    assert _bake_left(ec2, "not-temporary") == kept_before

    again = run_module(builder_resources.main, {"state": "absent", "older_than_minutes": 60})
    assert (again["failed"], again["changed"]) == (False, False)


def test_absent_by_age_and_bake_id_keeps_other_bakes(run_module: Callable[..., dict[str, Any]], ec2: Any) -> None:
    _leave(ec2, "one-bake", minutes_ago=120)
    _leave(ec2, "other-bake", minutes_ago=120)
    other_before = _bake_left(ec2, "other-bake")
    swept = run_module(builder_resources.main, {"state": "absent", "bake_id": "one-bake", "older_than_minutes": 60})
    assert not swept["failed"], swept
    assert _bake_left(ec2, "one-bake") == NOTHING_OF_A_BAKE
    assert _bake_left(ec2, "other-bake") == other_before


def test_absent_by_bake_id_removes_its_role_and_instance_profile(run_module: Callable[..., dict[str, Any]], ec2: Any) -> None:
    left = _leave(ec2, BAKE, minutes_ago=1)
    gone = run_module(builder_resources.main, {"state": "absent", "bake_id": BAKE})
    assert not gone["failed"], gone
    assert (gone["deleted_instance_profiles"], gone["deleted_roles"]) == ([left["name"]], [left["name"]])
    assert _bake_left(ec2, BAKE) == NOTHING_OF_A_BAKE


def test_absent_by_name_removes_a_role_with_policies_and_its_profile(run_module: Callable[..., dict[str, Any]], ec2: Any) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName="builder-role", AssumeRolePolicyDocument=TRUST)
    iam.attach_role_policy(RoleName="builder-role", PolicyArn=_managed_policy(iam, "builder-policy"))
    iam.put_role_policy(RoleName="builder-role", PolicyName="inline", PolicyDocument=POLICY)
    iam.create_instance_profile(InstanceProfileName="builder-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="builder-profile", RoleName="builder-role")
    args = {"state": "absent", "find": False, "role_names": ["builder-role"], "instance_profile_names": ["builder-profile"]}
    for attempt in (1, 2):
        gone = run_module(builder_resources.main, args)
        assert not gone["failed"], gone
        assert gone["changed"] is (attempt == 1)
        assert gone["deleted_roles"] == (["builder-role"] if attempt == 1 else [])
        assert iam.list_roles()["Roles"] == [] and iam.list_instance_profiles()["InstanceProfiles"] == []


@pytest.mark.parametrize("extra", [{}, {"older_than_minutes": 0}])
def test_find_without_bake_id_or_age_is_refused(run_module: Callable[..., dict[str, Any]], ec2: Any, extra: dict[str, Any]) -> None:
    _leave(ec2, "someone-else", minutes_ago=120)
    before = _bake_left(ec2, "someone-else")
    result = run_module(builder_resources.main, {"state": "absent", **extra})
    assert result["failed"]
    assert result["msg"] == (
        "find=true with neither bake_id nor older_than_minutes would remove the temporary resources of every bake;"
        " give bake_id, older_than_minutes or both (or find=false to remove only what is named).")
    assert _bake_left(ec2, "someone-else") == before


def test_bake_id_is_required_to_launch(run_module: Callable[..., dict[str, Any]], ec2: Any) -> None:
    result = run_module(builder_resources.main, {"source_image_id": "ami-12345678", "ssh_cidr": "10.0.0.1/32"})
    assert result["failed"]
    assert "bake_id" in result["msg"]


def test_present_twice_returns_the_same_builder_unchanged(
    run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path
) -> None:
    first = _present(run_module, ec2, tmp_path)
    assert not first["failed"], first
    for check_mode in (True, False):
        again = run_module(builder_resources.main, _present_args(ec2, tmp_path), check_mode=check_mode)
        assert not again["failed"], again
        assert again["changed"] is False
        assert {k: again[k] for k in first if k != "changed"} == {k: first[k] for k in first if k != "changed"}
    assert len(_left(ec2)["instances"]) == 1

    elsewhere = run_module(builder_resources.main, {**_present_args(ec2, tmp_path), "key_dir": str(tmp_path / "other")})
    assert elsewhere["failed"] and elsewhere["bake_step"] == "key pair"
    assert elsewhere["msg"] == (
        f"Bake {BAKE} already has builder {first['instance_id']}, but the private key of its key pair bakery-{BAKE} is"
        f" not in key_dir {tmp_path / 'other'}; give the key_dir of the run that launched it, or remove it with"
        " state=absent or use another bake_id.")
    assert len(_left(ec2)["instances"]) == 1


def test_present_refuses_a_stopped_builder_of_the_bake(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path) -> None:
    first = _present(run_module, ec2, tmp_path)
    ec2.stop_instances(InstanceIds=[first["instance_id"]])
    again = run_module(builder_resources.main, _present_args(ec2, tmp_path))
    assert again["failed"] and again["bake_step"] == "launch"
    assert again["msg"] == (f"Bake {BAKE} already has builder {first['instance_id']} and it is stopped;"
                            " remove it with state=absent or use another bake_id.")


def test_check_mode_of_absent_changes_nothing(run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path) -> None:
    made = _present(run_module, ec2, tmp_path)
    before = _left(ec2)
    check = run_module(builder_resources.main, {"state": "absent", "bake_id": BAKE, "key_dir": made["key_dir"]},
                       check_mode=True)
    assert not check["failed"], check
    assert check["changed"]
    assert (check["terminated"], check["deleted_security_groups"], check["deleted_key_pairs"], check["removed_key_dir"]) == (
        [made["instance_id"]], [made["security_group_id"]], [made["key_name"]], True)
    assert _left(ec2) == before
    assert Path(made["private_key_file"]).exists()


def test_check_mode_of_absent_by_name_reports_what_a_real_run_would(
        run_module: Callable[..., dict[str, Any]], ec2: Any, tmp_path: Path) -> None:
    made = _present(run_module, ec2, tmp_path)
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName="builder-role", AssumeRolePolicyDocument=TRUST)
    iam.create_instance_profile(InstanceProfileName="builder-profile")
    named = {"state": "absent", "find": False, "instance_ids": [made["instance_id"]],
             "security_group_ids": [made["security_group_id"]], "key_names": [made["key_name"]],
             "role_names": ["builder-role"], "instance_profile_names": ["builder-profile"]}
    keys = ("changed", "terminated", "deleted_security_groups", "deleted_key_pairs", "deleted_roles",
            "deleted_instance_profiles")
    check = run_module(builder_resources.main, named, check_mode=True)
    real = run_module(builder_resources.main, named)
    assert not real["failed"], real
    assert {k: check[k] for k in keys} == {k: real[k] for k in keys} == {
        "changed": True, "terminated": [made["instance_id"]], "deleted_security_groups": [made["security_group_id"]],
        "deleted_key_pairs": [made["key_name"]], "deleted_roles": ["builder-role"],
        "deleted_instance_profiles": ["builder-profile"]}
    # all of it gone or ending: check mode and a real run both report no change
    check_again = run_module(builder_resources.main, named, check_mode=True)
    real_again = run_module(builder_resources.main, named)
    assert {k: check_again[k] for k in keys} == {k: real_again[k] for k in keys} == {
        "changed": False, "terminated": [], "deleted_security_groups": [], "deleted_key_pairs": [],
        "deleted_roles": [], "deleted_instance_profiles": []}
