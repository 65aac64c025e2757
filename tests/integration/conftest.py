# SPDX-License-Identifier: GPL-3.0-or-later
"""A moto server on loopback for playbook runs that need no real instances."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest


def refuse_like_ec2(backend: Any, instance_id: str, name: str) -> None:
    """What EC2 refuses in CreateImage and moto 5.2 lets through: an instance that is going or
    gone, and a name the account already uses in the region (ami_create relies on both answers)."""
    from moto.ec2.exceptions import EC2ClientError

    instance = backend.get_instance(instance_id)
    if instance.state in ("shutting-down", "terminated"):
        raise EC2ClientError("IncorrectInstanceState", f"The instance '{instance_id}' is not in a state from which it can be imaged.")
    for ami in backend.amis.values():
        if ami.name == name and ami.owner_id == backend.account_id and ami.state != "deregistered":
            raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")


def create_image_with_snapshot_tags(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto raises NotImplementedError for snapshot TagSpecifications in CreateImage, which EC2
    applies to the new snapshots; ami_create sends them, so the server is given that behaviour."""

    def create_image(backend: Any, instance_id: str, name: str, description: str, tag_specifications: list[dict[str, Any]]) -> Any:
        specs = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
        snapshot_tags = {t["Key"]: t["Value"] for s in tag_specifications if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])}
        refuse_like_ec2(backend, instance_id, name)
        ami = original(backend, instance_id, name, description, tag_specifications=specs)
        if snapshot_tags:
            backend.create_tags([ami.ebs_snapshot.id], snapshot_tags)
        return ami

    return create_image


def copy_image_refusing_taken_names(original: Callable[..., Any]) -> Callable[..., Any]:
    """EC2 refuses a CopyImage whose name the account already uses in the target region (ami_copy
    relies on that answer); moto 5.2 makes a second image."""

    def copy_image(backend: Any, source_image_id: str, source_region: str, name: Any = None, description: Any = None) -> Any:
        from moto.ec2.exceptions import EC2ClientError

        for ami in backend.amis.values():
            if name and ami.name == name and ami.owner_id == backend.account_id and ami.state != "deregistered":
                raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")
        return original(backend, source_image_id, source_region, name, description)

    return copy_image


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Imported here: the connection suite also runs from a venv without moto (ansible-core 2.21).
    from moto.ec2.models.amis import AmiBackend
    from moto.server import ThreadedMotoServer

    monkeypatch.setattr(AmiBackend, "create_image", create_image_with_snapshot_tags(AmiBackend.create_image))
    monkeypatch.setattr(AmiBackend, "copy_image", copy_image_refusing_taken_names(AmiBackend.copy_image))
    # the tests start from moto's stock images, which importing the local cloud (another suite's
    # conftest, in the same session) switches off for the process
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
