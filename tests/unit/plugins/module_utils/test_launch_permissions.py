# SPDX-License-Identifier: GPL-3.0-or-later
"""Launch permissions: the option's shape, the exact changes, and the one call that makes them."""
from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._launch_permissions import (
    apply_permissions,
    as_set,
    describe_launch_permissions,
    permission_changes,
    public_requested,
    user_ids,
    wanted_permissions,
)


def test_wanted_permissions_maps_the_option_to_ec2_keys() -> None:
    option = {"user_ids": ["111122223333"], "group_names": ["all"], "org_arns": None, "org_unit_arns": ["arn:aws:organizations::1:ou/o-1/ou-1"]}
    assert wanted_permissions(option) == {
        ("UserId", "111122223333"),
        ("Group", "all"),
        ("OrganizationalUnitArn", "arn:aws:organizations::1:ou/o-1/ou-1"),
    }
    assert wanted_permissions(None) is None
    assert wanted_permissions({"user_ids": []}) == set()


def test_permission_changes_make_exact_state() -> None:
    wanted = wanted_permissions({"user_ids": ["111122223333"], "group_names": None})
    add, remove = permission_changes([{"UserId": "444455556666"}, {"Group": "all"}], wanted)
    assert add == [{"UserId": "111122223333"}]
    assert remove == [{"Group": "all"}, {"UserId": "444455556666"}]
    assert permission_changes([{"Group": "all"}], None) == ([], [])
    assert permission_changes([{"UserId": "111122223333"}], wanted) == ([], [])


def test_public_requested_and_user_ids() -> None:
    assert public_requested({"group_names": ["all"]}) is True
    assert public_requested({"group_names": None}) is False
    assert public_requested(None) is False
    assert user_ids({("UserId", "2"), ("UserId", "1"), ("Group", "all")}) == ["1", "2"]
    assert user_ids(None) == []
    assert as_set([{"UserId": "1"}, {"Group": "all"}]) == {("UserId", "1"), ("Group", "all")}


def test_apply_permissions_is_one_call_and_none_without_changes(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response(
        "modify_image_attribute",
        {},
        {"ImageId": "ami-1", "LaunchPermission": {"Add": [{"UserId": "111122223333"}], "Remove": [{"Group": "all"}]}},
    )
    with stubber:
        apply_permissions(client, "ami-1", [{"UserId": "111122223333"}], [{"Group": "all"}])
        apply_permissions(client, "ami-1", [], [])
        stubber.assert_no_pending_responses()


def test_describe_launch_permissions(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response(
        "describe_image_attribute",
        {"ImageId": "ami-1", "LaunchPermissions": [{"UserId": "111122223333"}]},
        {"ImageId": "ami-1", "Attribute": "launchPermission"},
    )
    with stubber:
        assert describe_launch_permissions(client, "ami-1") == [{"UserId": "111122223333"}]
