# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Launch permissions: the option shape users give, and the changes that reach it."""
from __future__ import annotations

from typing import Any

# Option key -> EC2 LaunchPermission key.
PERMISSION_KEYS = {
    "user_ids": "UserId",
    "group_names": "Group",
    "org_arns": "OrganizationArn",
    "org_unit_arns": "OrganizationalUnitArn",
}

LAUNCH_PERMISSIONS_SPEC: dict[str, Any] = {
    "type": "dict",
    "options": {key: {"type": "list", "elements": "str"} for key in PERMISSION_KEYS},
}


def wanted_permissions(option: dict[str, list[str] | None] | None) -> set[tuple[str, str]] | None:
    """The option as a set of (EC2 key, value); None when the option was not given."""
    if option is None:
        return None
    return {(PERMISSION_KEYS[key], str(value)) for key, values in option.items() for value in (values or [])}


def public_requested(option: dict[str, list[str] | None] | None) -> bool:
    return bool(option) and "all" in ((option or {}).get("group_names") or [])


def describe_launch_permissions(client: Any, image_id: str) -> list[dict[str, str]]:
    attr = client.describe_image_attribute(ImageId=image_id, Attribute="launchPermission", aws_retry=True)
    return attr.get("LaunchPermissions", [])


def as_set(permissions: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(k, v) for perm in permissions for k, v in perm.items()}


def permission_changes(
    current: list[dict[str, str]], wanted: set[tuple[str, str]] | None
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(to add, to remove) to make the image's launch permissions exactly `wanted`."""
    if wanted is None:
        return [], []
    have = as_set(current)
    add = [{k: v} for k, v in sorted(wanted - have)]
    remove = [{k: v} for k, v in sorted(have - wanted)]
    return add, remove


def apply_permissions(client: Any, image_id: str, add: list[dict[str, str]], remove: list[dict[str, str]]) -> None:
    change: dict[str, list[dict[str, str]]] = {}
    if add:
        change["Add"] = add
    if remove:
        change["Remove"] = remove
    if change:
        client.modify_image_attribute(ImageId=image_id, LaunchPermission=change, aws_retry=True)


def user_ids(wanted: set[tuple[str, str]] | None) -> list[str]:
    return sorted(v for k, v in (wanted or set()) if k == "UserId")
