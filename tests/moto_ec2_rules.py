# SPDX-License-Identifier: GPL-3.0-or-later
"""EC2 answers the modules rely on that moto 5.2 does not give, for the unit and the integration
moto fixtures alike (moto is imported only when they are applied: the connection suite runs from
a venv without it)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def refuse_like_ec2(backend: Any, instance_id: str, name: str) -> None:
    """What EC2 refuses in CreateImage and moto 5.2 lets through: an instance that is going or
    gone, and a name the account already uses in the region (ami_create relies on both answers)."""
    from moto.ec2.exceptions import EC2ClientError

    instance = backend.get_instance(instance_id)
    if instance.state in ("shutting-down", "terminated"):
        raise EC2ClientError("IncorrectInstanceState", f"The instance '{instance_id}' is not in a state from which it can be imaged.")
    _refuse_taken_name(backend, name)


def _refuse_taken_name(backend: Any, name: Any) -> None:
    from moto.ec2.exceptions import EC2ClientError

    for ami in backend.amis.values():
        if name and ami.name == name and ami.owner_id == backend.account_id and ami.state != "deregistered":
            raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")


def create_image_with_snapshot_tags(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto 5.2 raises NotImplementedError for snapshot TagSpecifications in CreateImage; EC2
    tags the new snapshots with them (the exact request is checked separately with botocore's Stubber)."""

    def create_image(backend: Any, instance_id: str, name: str, description: str, tag_specifications: list[dict[str, Any]]) -> Any:
        image_specs = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
        snapshot_tags = {t["Key"]: t["Value"] for s in tag_specifications if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])}
        refuse_like_ec2(backend, instance_id, name)
        ami = original(backend, instance_id, name, description, tag_specifications=image_specs)
        if snapshot_tags:
            # moto gives an image one snapshot, its root volume's.
            backend.create_tags([ami.ebs_snapshot.id], snapshot_tags)
        return ami

    return create_image


def copy_image_refusing_taken_names(original: Callable[..., Any]) -> Callable[..., Any]:
    """EC2 refuses a CopyImage whose name the account already uses in the target region (ami_copy
    relies on that answer); moto 5.2 makes a second image."""

    def copy_image(backend: Any, source_image_id: str, source_region: str, name: Any = None, description: Any = None) -> Any:
        _refuse_taken_name(backend, name)
        return original(backend, source_image_id, source_region, name, description)

    return copy_image


def patch_moto_like_ec2(monkeypatch: pytest.MonkeyPatch) -> None:
    """CreateImage and CopyImage answer as EC2 does, for this test."""
    from moto.ec2.models.amis import AmiBackend

    monkeypatch.setattr(AmiBackend, "create_image", create_image_with_snapshot_tags(AmiBackend.create_image))
    monkeypatch.setattr(AmiBackend, "copy_image", copy_image_refusing_taken_names(AmiBackend.copy_image))
