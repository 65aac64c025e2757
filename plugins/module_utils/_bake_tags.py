# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one bake-tag schema: every temporary resource of a bake carries these from creation."""
from __future__ import annotations

from datetime import datetime, timezone

BAKE_ID_TAG = "bakery:bake-id"
TEMPORARY_TAG = "bakery:temporary"
SOURCE_AMI_TAG = "bakery:source-ami"
# When the resource was made, for the kinds EC2 gives no creation time (security groups):
# how a sweep judges their age.
CREATED_AT_TAG = "bakery:created-at"
CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# On a copy made by ami_copy: "<source region>:<source image id>", how a rerun finds it again.
COPY_SOURCE_TAG = "bakery:copy-source"
# Every temporary resource with a name is named from this prefix and the bake id. IAM lists no
# tags, so a search for a bake's roles and instance profiles reads the tags of these names only.
TEMPORARY_NAME_PREFIX = "bakery-"


def bake_tags(
    bake_id: str, temporary: bool = True, source_ami: str | None = None, created_at: datetime | None = None
) -> dict[str, str]:
    """Tags for a resource made by the bake `bake_id`."""
    tags = {BAKE_ID_TAG: bake_id}
    if temporary:
        tags[TEMPORARY_TAG] = "true"
    if source_ami:
        tags[SOURCE_AMI_TAG] = source_ami
    if created_at is not None:
        tags[CREATED_AT_TAG] = created_at.astimezone(timezone.utc).strftime(CREATED_AT_FORMAT)
    return tags


def created_at(tags: dict[str, str]) -> datetime | None:
    """The time in a resource's created-at tag, or None when it has none (or not one we wrote)."""
    try:
        return datetime.strptime(tags.get(CREATED_AT_TAG, ""), CREATED_AT_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def temporary_name(bake_id: str) -> str:
    """The name of the bake's temporary key pair, security group, role or instance profile."""
    return f"{TEMPORARY_NAME_PREFIX}{bake_id}"


def copy_source_value(source_region: str, source_image_id: str) -> str:
    return f"{source_region}:{source_image_id}"
