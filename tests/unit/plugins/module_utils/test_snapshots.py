# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshots behind an image: progress, and create-volume permissions made exactly as wanted."""
from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._snapshots import (
    change_volume_permissions,
    describe_snapshots,
    snapshots_progress,
    volume_permission_changes,
    volume_permission_user_ids,
)


def test_snapshots_progress_reports_least_advanced() -> None:
    assert snapshots_progress([{"Progress": "80%"}, {"Progress": "35%"}]) == "snapshot 35%"
    assert snapshots_progress([{"Progress": ""}]) is None
    assert snapshots_progress([]) is None


def test_volume_permission_changes_make_exact_state() -> None:
    assert volume_permission_changes(["444455556666", "777788889999"], ["111122223333", "777788889999"]) == (
        ["111122223333"],
        ["444455556666"],
    )
    assert volume_permission_changes(["444455556666"], None) == ([], [])
    assert volume_permission_changes(["444455556666"], []) == ([], ["444455556666"])


def test_describe_snapshots_of_no_snapshot_makes_no_call(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    with stubber:
        assert describe_snapshots(client, []) == []


def test_volume_permissions_read_and_changed(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response(
        "describe_snapshot_attribute",
        {"SnapshotId": "snap-1", "CreateVolumePermissions": [{"UserId": "444455556666"}, {"Group": "all"}, {"UserId": "111122223333"}]},
        {"SnapshotId": "snap-1", "Attribute": "createVolumePermission"},
    )
    stubber.add_response(
        "modify_snapshot_attribute",
        {},
        {"SnapshotId": "snap-1", "Attribute": "createVolumePermission", "OperationType": "add", "UserIds": ["777788889999"]},
    )
    stubber.add_response(
        "modify_snapshot_attribute",
        {},
        {"SnapshotId": "snap-1", "Attribute": "createVolumePermission", "OperationType": "remove", "UserIds": ["444455556666"]},
    )
    with stubber:
        assert volume_permission_user_ids(client, "snap-1") == ["111122223333", "444455556666"]
        change_volume_permissions(client, "snap-1", ["777788889999"], ["444455556666"])
        change_volume_permissions(client, "snap-1", [], [])
        stubber.assert_no_pending_responses()
