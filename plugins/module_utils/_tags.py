# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one tag helper: tag specifications at creation, and bringing tags to a wanted state."""
from __future__ import annotations

from typing import Any, Iterable

from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)


def tags_to_dict(tag_list: list[dict[str, str]] | None) -> dict[str, str]:
    return boto3_tag_list_to_ansible_dict(tag_list or [])


def tag_specifications(specs: Iterable[tuple[str, dict[str, str] | None]]) -> list[dict[str, Any]]:
    """TagSpecifications for a create call: one entry per (resource type, tags) with tags."""
    return [
        {"ResourceType": rtype, "Tags": ansible_dict_to_boto3_tag_list(tags)}
        for rtype, tags in specs
        if tags
    ]


def tag_changes(
    current: dict[str, str], wanted: dict[str, str] | None, purge: bool
) -> tuple[dict[str, str], list[str]]:
    """(tags to set, keys to remove) to go from `current` to `wanted`; nothing when wanted is None."""
    if wanted is None:
        return {}, []
    to_set, to_remove = compare_aws_tags(current, wanted, purge_tags=purge)
    # Tags whose key starts with aws: are reserved and cannot be removed.
    return to_set, [k for k in to_remove if not k.startswith("aws:")]


def tags_after(current: dict[str, str], to_set: dict[str, str], to_remove: Iterable[str]) -> dict[str, str]:
    """The tags `current` becomes once tag_changes' (to_set, to_remove) are applied."""
    removed = set(to_remove)
    return {k: v for k, v in {**current, **to_set}.items() if k not in removed}


def change_tags(client: Any, resource_ids: list[str], to_set: dict[str, str], to_remove: list[str]) -> None:
    """Applies tag_changes' (to_set, to_remove) to `resource_ids`."""
    if not resource_ids:
        return
    if to_remove:
        client.delete_tags(Resources=resource_ids, Tags=[{"Key": k} for k in to_remove], aws_retry=True)
    if to_set:
        client.create_tags(Resources=resource_ids, Tags=ansible_dict_to_boto3_tag_list(to_set), aws_retry=True)
