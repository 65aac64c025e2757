# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one bake-tag schema: every temporary resource of a bake carries these from creation."""
from __future__ import annotations

BAKE_ID_TAG = "bakery:bake-id"
TEMPORARY_TAG = "bakery:temporary"
SOURCE_AMI_TAG = "bakery:source-ami"
# On a copy made by ami_copy: "<source region>:<source image id>", how a rerun finds it again.
COPY_SOURCE_TAG = "bakery:copy-source"


def bake_tags(bake_id: str, temporary: bool = True, source_ami: str | None = None) -> dict[str, str]:
    """Tags for a resource made by the bake `bake_id`."""
    tags = {BAKE_ID_TAG: bake_id}
    if temporary:
        tags[TEMPORARY_TAG] = "true"
    if source_ami:
        tags[SOURCE_AMI_TAG] = source_ami
    return tags


def copy_source_value(source_region: str, source_image_id: str) -> str:
    return f"{source_region}:{source_image_id}"
