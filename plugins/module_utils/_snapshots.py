# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Snapshots behind an image: their progress and create-volume permissions."""
from __future__ import annotations

from typing import Any


def describe_snapshots(client: Any, snapshot_ids: list[str]) -> list[dict[str, Any]]:
    if not snapshot_ids:
        return []
    return list(client.describe_snapshots(SnapshotIds=snapshot_ids, aws_retry=True)["Snapshots"])


def snapshots_progress(snapshots: list[dict[str, Any]]) -> str | None:
    """`snapshot 40%` (the least advanced one), or None before EC2 reports any."""
    percents = []
    for snap in snapshots:
        text = str(snap.get("Progress") or "").rstrip("%")
        if text.isdigit():
            percents.append(int(text))
    if not percents:
        return None
    return f"snapshot {min(percents)}%"


def volume_permission_user_ids(client: Any, snapshot_id: str) -> list[str]:
    attr = client.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission", aws_retry=True)
    return sorted(p["UserId"] for p in attr.get("CreateVolumePermissions", []) if p.get("UserId"))


def volume_permission_changes(current: list[str], wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """(account ids to add, to remove) to make a snapshot's create-volume permissions exactly `wanted`;
    nothing when wanted is None."""
    if wanted is None:
        return [], []
    return sorted(set(wanted) - set(current)), sorted(set(current) - set(wanted))


def change_volume_permissions(client: Any, snapshot_id: str, add: list[str], remove: list[str]) -> None:
    # The OperationType/UserIds form of the call, which every EC2 endpoint accepts.
    if add:
        client.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", UserIds=add, aws_retry=True
        )
    if remove:
        client.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="remove", UserIds=remove, aws_retry=True
        )
