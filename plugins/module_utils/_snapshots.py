# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Snapshots behind an image: their progress, tags and create-volume permissions."""
from __future__ import annotations

from typing import Any, Optional

from ansible_collections.bakery.ami.plugins.module_utils._tags import apply_tags, tags_to_dict


def describe_snapshots(client: Any, snapshot_ids: list[str]) -> list[dict[str, Any]]:
    if not snapshot_ids:
        return []
    return list(client.describe_snapshots(SnapshotIds=snapshot_ids, aws_retry=True)["Snapshots"])


def snapshots_progress(snapshots: list[dict[str, Any]]) -> Optional[str]:
    """`snapshot 40%` (the least advanced one), or None before EC2 reports any."""
    percents = []
    for snap in snapshots:
        text = str(snap.get("Progress") or "").rstrip("%")
        if text.isdigit():
            percents.append(int(text))
    if not percents:
        return None
    return f"snapshot {min(percents)}%"


def apply_snapshot_tags(
    client: Any, snapshots: list[dict[str, Any]], wanted: Optional[dict[str, str]], purge: bool, check_mode: bool
) -> bool:
    """Bring each snapshot's tags to `wanted`; True if any changed."""
    changed = False
    for snap in snapshots:
        changed |= apply_tags(client, [snap["SnapshotId"]], tags_to_dict(snap.get("Tags")), wanted, purge, check_mode)
    return changed


def volume_permission_user_ids(client: Any, snapshot_id: str) -> list[str]:
    attr = client.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission", aws_retry=True)
    return sorted(p["UserId"] for p in attr.get("CreateVolumePermissions", []) if p.get("UserId"))


def apply_volume_permissions(client: Any, snapshot_ids: list[str], wanted: Optional[list[str]], check_mode: bool) -> bool:
    """Make the account ids allowed to create volumes from each snapshot exactly `wanted`; True if any changed."""
    if wanted is None:
        return False
    changed = False
    for snapshot_id in snapshot_ids:
        have = set(volume_permission_user_ids(client, snapshot_id))
        add = sorted(set(wanted) - have)
        remove = sorted(have - set(wanted))
        if not (add or remove):
            continue
        changed = True
        if check_mode:
            continue
        # The OperationType/UserIds form of the call, which every EC2 endpoint accepts.
        if add:
            client.modify_snapshot_attribute(
                SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", UserIds=add, aws_retry=True
            )
        if remove:
            client.modify_snapshot_attribute(
                SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="remove", UserIds=remove, aws_retry=True
            )
    return changed
