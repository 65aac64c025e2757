# SPDX-License-Identifier: GPL-3.0-or-later
"""Removing a bake's resources: the IAM order IAM insists on, what a second run skips, the waits (Stubber)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils import _builder_find as find
from ansible_collections.bakery.ami.plugins.module_utils import _builder_release as release
from ansible_collections.bakery.ami.plugins.module_utils._builder_launch import StepError
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY
from ansible_collections.bakery.ami.plugins.module_utils._waiter import GROUP_RELEASED


def _stubbed(service: str) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stub = Stubber(client)
    with stub:
        yield RetryingBotoClientWrapper(client, RETRY), stub
        stub.assert_no_pending_responses()


@pytest.fixture
def ec2() -> Iterator[tuple[Any, Stubber]]:
    yield from _stubbed("ec2")


@pytest.fixture
def iam() -> Iterator[tuple[Any, Stubber]]:
    yield from _stubbed("iam")


PROFILE = {"Path": "/", "InstanceProfileName": "bakery-web-1", "InstanceProfileId": "AIPA1234567890123456",
           "Arn": "arn:aws:iam::123456789012:instance-profile/bakery-web-1", "CreateDate": "2027-01-01T00:00:00Z"}
ROLE = {"Path": "/", "RoleName": "bakery-web-1", "RoleId": "AROA1234567890123456",
        "Arn": "arn:aws:iam::123456789012:role/bakery-web-1", "CreateDate": "2027-01-01T00:00:00Z"}
POLICY_ARN = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def test_a_profile_lets_its_roles_go_before_it_is_deleted(iam: tuple[Any, Stubber]) -> None:
    client, stub = iam
    name = {"InstanceProfileName": "bakery-web-1"}
    stub.add_response("get_instance_profile", {"InstanceProfile": {**PROFILE, "Roles": [ROLE]}}, name)
    stub.add_response("remove_role_from_instance_profile", {}, {**name, "RoleName": "bakery-web-1"})
    stub.add_response("delete_instance_profile", {}, name)
    stub.add_client_error("get_instance_profile", "NoSuchEntity", "gone", expected_params=name)
    assert release.delete_instance_profile(client, "bakery-web-1") is True
    assert release.delete_instance_profile(client, "bakery-web-1") is False  # gone: skipped, not reported


def test_a_role_leaves_its_profiles_and_policies_before_it_is_deleted(iam: tuple[Any, Stubber]) -> None:
    client, stub = iam
    role = {"RoleName": "bakery-web-1"}
    stub.add_response("list_instance_profiles_for_role", {"InstanceProfiles": [{**PROFILE, "Roles": [ROLE]}]}, role)
    stub.add_client_error("remove_role_from_instance_profile", "NoSuchEntity", "already out",
                          expected_params={"InstanceProfileName": "bakery-web-1", **role})
    stub.add_response("list_attached_role_policies", {"AttachedPolicies": [{"PolicyName": "ssm", "PolicyArn": POLICY_ARN}]}, role)
    stub.add_response("detach_role_policy", {}, {**role, "PolicyArn": POLICY_ARN})
    stub.add_response("list_role_policies", {"PolicyNames": ["inline"], "IsTruncated": False}, role)
    stub.add_response("delete_role_policy", {}, {**role, "PolicyName": "inline"})
    stub.add_response("delete_role", {}, role)
    stub.add_client_error("list_instance_profiles_for_role", "NoSuchEntity", "gone", expected_params=role)
    assert release.delete_role(client, "bakery-web-1") is True
    assert release.delete_role(client, "bakery-web-1") is False


def test_iam_that_may_not_be_listed_is_a_warning(iam: tuple[Any, Stubber]) -> None:
    client, stub = iam
    stub.add_client_error("list_instance_profiles", "AccessDenied", "not allowed to iam:ListInstanceProfiles")
    found = release.Release()
    warning = release.find_selected_iam(client, find.Selector(bake_id="web-1"), found)
    assert warning == ("Temporary IAM roles and instance profiles were not looked for:"
                       " AccessDenied: not allowed to iam:ListInstanceProfiles")
    assert (found.instance_profile_names, found.role_names) == ([], [])


def test_security_group_deletion_waits_out_dependency_violation(ec2: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    stub.add_client_error("delete_security_group", "DependencyViolation", "resource sg-1 has a dependent object",
                          expected_params={"GroupId": "sg-1"})
    stub.add_response("delete_security_group", {}, {"GroupId": "sg-1"})
    stub.add_client_error("delete_security_group", "InvalidGroup.NotFound", "gone", expected_params={"GroupId": "sg-2"})
    done = release.Release(security_group_ids=["sg-1", "sg-2"])
    sleeps: list[float] = []
    release.delete_security_groups(client, done, timeout=60, held=True, sleep=sleeps.append)
    assert done.deleted_security_groups == ["sg-1"]
    # the shortest time an instance takes to end, then the steady retry pace
    assert sleeps == [GROUP_RELEASED.first_delay, GROUP_RELEASED.delay]


def test_without_wait_the_groups_and_iam_of_ending_instances_stay(ec2: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = ec2
    stub.add_response("terminate_instances", {"TerminatingInstances": [
        {"InstanceId": "i-1", "PreviousState": {"Name": "running"}, "CurrentState": {"Name": "shutting-down"}}]},
        {"InstanceIds": ["i-1"]})
    stub.add_response("delete_key_pair", {}, {"KeyName": "bakery-web-1"})
    (tmp_path / "key").mkdir()
    todo = release.Release(instance_ids=["i-1"], key_names=["bakery-web-1"], security_group_ids=["sg-1"],
                           role_names=["bakery-web-1"])
    release.remove(client, todo, wait=False, timeout=60, key_dir=str(tmp_path / "key"))
    assert todo.result() == {
        "changed": True, "terminated": ["i-1"], "deleted_security_groups": [], "deleted_key_pairs": ["bakery-web-1"],
        "cancelled_spot_requests": [], "deleted_instance_profiles": [], "deleted_roles": [], "removed_key_dir": True}


def test_iam_goes_after_the_instances_have_ended(ec2: tuple[Any, Stubber], iam: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    iam_client, iam_stub = iam
    stub.add_response("terminate_instances", {"TerminatingInstances": [
        {"InstanceId": "i-1", "PreviousState": {"Name": "stopped"}, "CurrentState": {"Name": "shutting-down"}}]},
        {"InstanceIds": ["i-1"]})
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [
        {"InstanceId": "i-1", "State": {"Name": "terminated"}}]}]}, {"InstanceIds": ["i-1"]})
    iam_stub.add_response("get_instance_profile", {"InstanceProfile": {**PROFILE, "Roles": []}},
                          {"InstanceProfileName": "bakery-web-1"})
    iam_stub.add_response("delete_instance_profile", {}, {"InstanceProfileName": "bakery-web-1"})
    todo = release.Release(instance_ids=["i-1"], instance_profile_names=["bakery-web-1"])
    release.remove(client, todo, iam=iam_client, wait=True, timeout=60, key_dir="", sleep=lambda seconds: None)
    assert (todo.terminated, todo.deleted_instance_profiles) == (["i-1"], ["bakery-web-1"])


def test_a_group_never_let_go_fails_the_cleanup_step(ec2: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    stub.add_client_error("delete_security_group", "DependencyViolation", "held", expected_params={"GroupId": "sg-1"})
    with pytest.raises(StepError) as failed:
        release.remove(client, release.Release(security_group_ids=["sg-1"]), wait=True, timeout=0, key_dir="",
                       sleep=lambda seconds: None)
    assert failed.value.step == "cleanup"
    assert str(failed.value).startswith("DeleteSecurityGroup failed: Timed out after 0s waiting for security group sg-1")
