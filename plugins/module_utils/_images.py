# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Image look-ups, the image result shape every module returns, and deregistration."""
from __future__ import annotations

import re
import time
from typing import Any, Callable, Iterable

from ansible_collections.amazon.aws.plugins.module_utils.transformation import boto3_resource_to_ansible_dict

from ansible_collections.bakery.ami.plugins.module_utils._launch_permissions import describe_launch_permissions
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY, is_aws_error_code
from ansible_collections.bakery.ami.plugins.module_utils._tags import tags_to_dict

# EC2's rule for image names: 3-128 of letters, digits, ( ) [ ] space . / - ' @ _
AMI_NAME_RE = re.compile(r"^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$")
IMAGE_NOT_FOUND = frozenset(("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"))


def ami_name_problem(name: str) -> str | None:
    """Why `name` is not a valid AMI name, or None when it is."""
    if len(name) < 3:
        return f"the AMI name {name!r} is too short: it needs 3 to 128 characters"
    if len(name) > 128:
        return f"the AMI name {name[:20]!r}... is {len(name)} characters long: at most 128 are allowed"
    if not AMI_NAME_RE.match(name):
        bad = sorted({c for c in name if not AMI_NAME_RE.match(c * 3)})
        return (
            f"the AMI name {name!r} contains {''.join(bad)!r}: only letters, digits, spaces and ( ) [ ] . / - ' @ _ are allowed"
        )
    return None


def describe_image(client: Any, image_id: str) -> dict[str, Any] | None:
    """The image `image_id` (any owner, including deregistered-but-visible states), or None."""
    try:
        images = client.describe_images(ImageIds=[image_id], aws_retry=True)["Images"]
    except is_aws_error_code(*IMAGE_NOT_FOUND):
        return None
    return images[0] if images else None


def find_own_images(client: Any, filters: dict[str, list[str]], owners: list[str] | None = None) -> list[dict[str, Any]]:
    """Images matching `filters` owned by `owners` (the account itself by default)."""
    boto_filters = [{"Name": k, "Values": v} for k, v in filters.items()]
    return _list_images(client, owners or ["self"], boto_filters)


@RETRY
def _list_images(client: Any, owners: list[str], boto_filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Paginators bypass the retrying client wrapper, so the whole listing is retried instead.
    paginator = client.get_paginator("describe_images")
    images: list[dict[str, Any]] = []
    for page in paginator.paginate(Owners=owners, Filters=boto_filters):
        images.extend(page["Images"])
    return images


def find_own_image_by_name(client: Any, name: str) -> dict[str, Any] | None:
    """The account's own image called `name` in the client's region; names are unique per account and region."""
    images = [i for i in find_own_images(client, {"name": [name]}) if i.get("State") != "deregistered"]
    return images[0] if images else None


def snapshot_ids(image: dict[str, Any]) -> list[str]:
    return [
        bdm["Ebs"]["SnapshotId"]
        for bdm in image.get("BlockDeviceMappings", [])
        if bdm.get("Ebs", {}).get("SnapshotId")
    ]


def image_result(image: dict[str, Any], launch_permissions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The image as every module returns it (snake_case, tags as a dict)."""
    return {
        "image_id": image["ImageId"],
        "name": image.get("Name"),
        "description": image.get("Description"),
        "state": image.get("State"),
        "creation_date": image.get("CreationDate"),
        "owner_id": image.get("OwnerId"),
        "architecture": image.get("Architecture"),
        "root_device_name": image.get("RootDeviceName"),
        "block_device_mappings": [boto3_resource_to_ansible_dict(b, force_tags=False) for b in image.get("BlockDeviceMappings", [])],
        "snapshot_ids": snapshot_ids(image),
        "tags": tags_to_dict(image.get("Tags")),
        "public": bool(image.get("Public")),
        "launch_permissions": launch_permissions if launch_permissions is not None else [],
        "deprecation_time": image.get("DeprecationTime"),
    }


def full_image_result(client: Any, image: dict[str, Any]) -> dict[str, Any]:
    """image_result with the launch permissions read from EC2."""
    return image_result(image, describe_launch_permissions(client, image["ImageId"]))


def snapshot_used_elsewhere(
    client: Any,
    snapshot_id: str,
    image_id: str,
    *,
    images: list[dict[str, Any]] | None = None,
    also_gone: Iterable[str] = (),
) -> bool:
    """True when another of the account's images still refers to `snapshot_id`.

    `images` (the account's own images, when the caller already listed them) saves a call;
    images in `also_gone` count as deregistered (what check mode plans). The account's images
    are scanned rather than filtered by block-device-mapping.snapshot-id, a filter some
    EC2-compatible endpoints (moto) lack.
    """
    if images is None:
        images = find_own_images(client, {})
    ignore = {image_id, *also_gone}
    return any(
        i["ImageId"] not in ignore and i.get("State") != "deregistered" and snapshot_id in snapshot_ids(i)
        for i in images
    )


def delete_snapshot(client: Any, snapshot_id: str, attempts: int = 6, sleep: Callable[[float], None] | None = None) -> bool:
    """Deletes a snapshot; just after a deregistration EC2 may still call it in use, so that is retried briefly.

    Returns False when the snapshot was already gone.
    """
    for attempt in range(attempts):
        try:
            client.delete_snapshot(SnapshotId=snapshot_id, aws_retry=True)
            return True
        except is_aws_error_code("InvalidSnapshot.NotFound"):
            return False
        except is_aws_error_code("InvalidSnapshot.InUse"):  # pylint: disable=duplicate-except
            if attempt == attempts - 1:
                raise
            (sleep or time.sleep)(min(2 ** attempt, 10))
    return False


def deregister_image(
    client: Any,
    image: dict[str, Any],
    delete_snapshots: bool = True,
    *,
    images: list[dict[str, Any]] | None = None,
    also_gone: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """Deregisters `image`, then deletes its own snapshots.

    Returns (deleted snapshot ids, kept snapshot ids): a snapshot another image still uses is kept.
    `images` and `also_gone` are passed to snapshot_used_elsewhere.
    """
    image_id = image["ImageId"]
    snaps = snapshot_ids(image)
    try:
        client.deregister_image(ImageId=image_id, aws_retry=True)
    except is_aws_error_code(*IMAGE_NOT_FOUND):
        pass  # already gone
    deleted: list[str] = []
    kept: list[str] = []
    if not delete_snapshots:
        return deleted, snaps
    for snap in snaps:
        if snapshot_used_elsewhere(client, snap, image_id, images=images, also_gone=also_gone):
            kept.append(snap)
        elif delete_snapshot(client, snap):
            deleted.append(snap)
    return deleted, kept
