# SPDX-License-Identifier: GPL-3.0-or-later
"""Finding a bake's temporary resources: the selector, and the requests each finder makes (Stubber)."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils import _builder_find as find
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=2)
YOUNG = NOW - timedelta(minutes=5)
SWEEP = find.Selector(older_than_minutes=60, now=NOW)
ONE_BAKE = find.Selector(bake_id="web-1", now=NOW)


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


TEMPORARY = [{"Key": "bakery:temporary", "Value": "true"}, {"Key": "bakery:bake-id", "Value": "web-1"}]


def test_a_sweep_selects_by_the_temporary_tag_and_age() -> None:
    assert SWEEP.ec2_filters() == [{"Name": "tag:bakery:temporary", "Values": ["true"]}]
    assert SWEEP.old_enough(OLD) and not SWEEP.old_enough(YOUNG)
    assert not SWEEP.old_enough(None)  # no known age is never old enough
    assert SWEEP.old_enough(OLD.replace(tzinfo=None))  # a time without zone is UTC
    assert SWEEP.tagged({"bakery:temporary": "true", "bakery:bake-id": "any"})
    assert not SWEEP.tagged({"bakery:bake-id": "any"})


def test_a_sweep_of_one_bake_needs_both_tags() -> None:
    selector = find.Selector(bake_id="web-1", older_than_minutes=60, now=NOW)
    assert selector.ec2_filters() == [{"Name": "tag:bakery:temporary", "Values": ["true"]},
                                      {"Name": "tag:bakery:bake-id", "Values": ["web-1"]}]
    assert not selector.tagged({"bakery:temporary": "true", "bakery:bake-id": "web-2"})


def test_one_bake_is_selected_by_its_id_at_any_age() -> None:
    assert ONE_BAKE.ec2_filters() == [{"Name": "tag:bakery:bake-id", "Values": ["web-1"]}]
    assert ONE_BAKE.old_enough(None) and ONE_BAKE.old_enough(YOUNG)
    assert ONE_BAKE.tagged({"bakery:bake-id": "web-1"})


def test_ec2_finders_ask_by_tag_and_state_and_keep_the_old(ec2: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    tag = SWEEP.ec2_filters()
    stub.add_response("describe_spot_instance_requests", {"SpotInstanceRequests": [
        {"SpotInstanceRequestId": "sir-old", "CreateTime": OLD}, {"SpotInstanceRequestId": "sir-young", "CreateTime": YOUNG}]},
        {"Filters": tag + [{"Name": "state", "Values": ["open", "active"]}]})
    stub.add_response("describe_instances", {"Reservations": [{"Instances": [
        {"InstanceId": "i-old", "LaunchTime": OLD}, {"InstanceId": "i-young", "LaunchTime": YOUNG}]}]},
        {"Filters": tag + [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]})
    stub.add_response("describe_security_groups", {"SecurityGroups": [
        {"GroupId": "sg-old", "Tags": [{"Key": "bakery:created-at", "Value": OLD.strftime("%Y-%m-%dT%H:%M:%SZ")}]},
        {"GroupId": "sg-young", "Tags": [{"Key": "bakery:created-at", "Value": YOUNG.strftime("%Y-%m-%dT%H:%M:%SZ")}]},
        {"GroupId": "sg-undated", "Tags": []}]}, {"Filters": tag})
    stub.add_response("describe_key_pairs", {"KeyPairs": [
        {"KeyName": "bakery-old", "CreateTime": OLD}, {"KeyName": "bakery-young", "CreateTime": YOUNG}]}, {"Filters": tag})
    assert find.spot_requests(client, SWEEP) == ["sir-old"]
    assert find.instances(client, SWEEP) == ["i-old"]
    assert find.security_groups(client, SWEEP) == ["sg-old"]
    assert find.key_pairs(client, SWEEP) == ["bakery-old"]


def test_roles_read_tags_only_of_temporary_names_old_enough(iam: tuple[Any, Stubber]) -> None:
    client, stub = iam
    role = {"Path": "/", "RoleId": "AROA1234567890123456", "Arn": "arn:aws:iam::123456789012:role/x", "CreateDate": OLD}
    stub.add_response("list_roles", {"Roles": [
        {**role, "RoleName": "bakery-web-1"}, {**role, "RoleName": "someone-elses"},
        {**role, "RoleName": "bakery-web-2", "CreateDate": YOUNG}], "IsTruncated": True, "Marker": "m"}, {})
    stub.add_response("list_role_tags", {"Tags": TEMPORARY}, {"RoleName": "bakery-web-1"})
    stub.add_response("list_roles", {"Roles": [{**role, "RoleName": "bakery-web-3"}], "IsTruncated": False}, {"Marker": "m"})
    stub.add_response("list_role_tags", {"Tags": []}, {"RoleName": "bakery-web-3"})
    assert find.roles(client, SWEEP) == ["bakery-web-1"]


def test_instance_profiles_take_tags_from_the_listing_or_ask(iam: tuple[Any, Stubber]) -> None:
    client, stub = iam
    profile = {"Path": "/", "InstanceProfileId": "AIPA1234567890123456", "Arn": "arn:aws:iam::123456789012:instance-profile/x",
               "CreateDate": OLD, "Roles": []}
    stub.add_response("list_instance_profiles", {"InstanceProfiles": [
        {**profile, "InstanceProfileName": "bakery-listed", "Tags": TEMPORARY},
        {**profile, "InstanceProfileName": "bakery-asked"}], "IsTruncated": False}, {})
    asked = {**profile, "InstanceProfileName": "bakery-asked", "Tags": TEMPORARY}
    stub.add_response("get_instance_profile", {"InstanceProfile": asked}, {"InstanceProfileName": "bakery-asked"})
    assert find.instance_profiles(client, SWEEP) == ["bakery-listed", "bakery-asked"]


def test_named_key_pairs_that_are_gone_are_left_out(ec2: tuple[Any, Stubber]) -> None:
    client, stub = ec2
    stub.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "bakery-web-1"}]},
                      {"Filters": [{"Name": "key-name", "Values": ["bakery-gone", "bakery-web-1"]}]})
    assert find.key_pairs_named(client, ["bakery-gone", "bakery-web-1"]) == ["bakery-web-1"]
    assert find.key_pairs_named(client, []) == []  # no call
