# SPDX-License-Identifier: GPL-3.0-or-later
"""Image behaviours: capture into layers, pending images, copies, deprecation, freeing content."""
from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError, UnvailableAMIIdError

from localcloud.context import CloudContext
from localcloud.instances import incorrect_state


def _split_tag_specifications(specs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Image specs go to moto; snapshot tags moto cannot take are applied here."""
    image_specs: list[dict[str, Any]] = []
    snapshot_tags: dict[str, str] = {}
    for spec in specs:
        if spec.get("ResourceType") == "snapshot":
            snapshot_tags.update({tag["Key"]: tag.get("Value", "") for tag in spec.get("Tags", [])})
        else:
            image_specs.append(spec)
    return image_specs, snapshot_tags


def _check_name_free(backend: Any, name: str) -> None:
    for ami in backend.amis.values():
        if ami.name == name and ami.owner_id == backend.account_id:
            raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")


def _finish_image(ctx: CloudContext, ami: Any, latency: Callable[[], float], fail: bool = False) -> None:
    started = time.monotonic()

    def work() -> None:
        ctx.wait_latency(latency, started)
        if ami.state != "pending":
            return
        if fail:
            ami.state = "failed"
            ami.state_reason = {"Code": "Server.InternalError", "Message": "Server.InternalError: the copy failed"}
        else:
            ami.state = "available"

    ctx.spawn(f"image-{ami.id}", work)


def create_image(
    ctx: CloudContext,
    backend: Any,
    moto_create_image: Any,
    instance_id: str,
    name: str,
    description: str,
    tag_specifications: list[dict[str, Any]],
    *,
    no_reboot: bool = False,
) -> Any:
    instance = backend.get_instance(instance_id)
    if instance.state not in ("running", "stopped"):
        raise incorrect_state(instance, "imaged")
    record = ctx.book.instance(instance_id)
    if record is None:
        raise incorrect_state(instance, "imaged")
    if not name:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter name")
    _check_name_free(backend, name)
    image_specs, snapshot_tags = _split_tag_specifications(tag_specifications)
    region = backend.region_name
    with record.lock, ctx.layers_lock:
        try:
            layer = _capture(ctx, instance_id, reboot=instance.state == "running" and not no_reboot)
        except Exception as error:  # noqa: BLE001 - the runtime's failure becomes EC2's error shape
            raise EC2ClientError("InternalError", f"Capturing {instance_id} failed: {error}") from error
        layers = (*record.layers, layer)
        ami = moto_create_image(backend, instance_id, name, description, tag_specifications=image_specs)
        ctx.book.set_image(region, ami.id, layers)
        ctx.book.set_snapshot(region, ami.ebs_snapshot.id, layers)
    ami.state = "pending"
    ami.root_device_type = "ebs"
    ami.ebs_snapshot.add_tags(snapshot_tags)
    _finish_image(ctx, ami, lambda: ctx.settings.latency("image_pending"))
    return ami


def _capture(ctx: CloudContext, instance_id: str, *, reboot: bool) -> str:
    """Without NoReboot EC2 shuts a running instance down for a consistent image, then boots it again."""
    if not reboot:
        return str(ctx.runtime.capture(instance_id))
    ctx.runtime.stop(instance_id)
    try:
        return str(ctx.runtime.capture(instance_id))
    finally:
        ctx.runtime.start(instance_id)


def _resolve_kms_key(account: str, region: str, kms_key_id: str | None) -> str:
    from moto.kms.models import kms_backends

    kms = kms_backends[account][region]
    wanted = kms_key_id or "alias/aws/ebs"
    try:
        key = kms.describe_key(wanted)
    except Exception as error:  # noqa: BLE001 - moto raises several types for an unknown key
        raise EC2ClientError(
            "InvalidParameterValue", f"The KMS key '{wanted}' does not exist in region {region}."
        ) from error
    return str(key.arn)


def copy_image(
    ctx: CloudContext,
    backend: Any,
    moto_copy_image: Any,
    params: dict[str, Any],
) -> Any:
    from moto.ec2.models import ec2_backends

    source_id = params["SourceImageId"]
    source_region = params["SourceRegion"]
    target_region = backend.region_name
    token = params.get("ClientToken")
    if token:
        earlier = ctx.copy_tokens.get((target_region, token))
        if earlier is not None and earlier in backend.amis:
            return backend.amis[earlier]
    source_backend = ec2_backends[backend.account_id][source_region]
    source = source_backend.amis.get(source_id)
    if source is None:
        raise InvalidAMIIdError([source_id])
    layers = ctx.book.image_layers(source_region, source_id)
    if source.state != "available" or layers is None:
        raise UnvailableAMIIdError(source_id)
    encrypted = str(params.get("Encrypted", "false")).lower() == "true"
    kms_key_id = params.get("KmsKeyId")
    if kms_key_id and not encrypted:
        raise EC2ClientError(
            "InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be true."
        )
    key_arn = _resolve_kms_key(backend.account_id, target_region, kms_key_id) if encrypted else None
    name: str = params.get("Name") or source.name or ""
    _check_name_free(backend, name)
    failure = ctx.settings.copy_failure(target_region)
    if failure == "api":
        raise EC2ClientError("Unsupported", f"Copying images into {target_region} is failing (injected fault).")
    with ctx.layers_lock:
        ami = moto_copy_image(backend, source_id, source_region, name, params.get("Description"))
        ctx.book.set_image(target_region, ami.id, layers)
        ctx.book.set_snapshot(target_region, ami.ebs_snapshot.id, layers)
    ami.state = "pending"
    ami.root_device_type = "ebs"
    ami.root_device_name = source.root_device_name
    if encrypted:
        ami.ebs_snapshot.encrypted = True
        ami.ebs_snapshot.kms_key_id = key_arn
    image_specs, snapshot_tags = _split_tag_specifications(params.get("TagSpecifications") or [])
    if str(params.get("CopyImageTags", "false")).lower() == "true":
        ami.add_tags({tag["key"]: tag["value"] for tag in source.get_tags()})
    for spec in image_specs:
        if spec.get("ResourceType") != "image":
            raise EC2ClientError("InvalidParameterValue", f"CopyImage cannot tag a {spec.get('ResourceType')}.")
        ami.add_tags({tag["Key"]: tag.get("Value", "") for tag in spec.get("Tags", [])})
    ami.ebs_snapshot.add_tags(snapshot_tags)
    if token:
        ctx.copy_tokens[(target_region, token)] = ami.id
    _finish_image(ctx, ami, lambda: ctx.settings.copy_latency(target_region), fail=failure == "state")
    return ami


def deregister_image(ctx: CloudContext, backend: Any, moto_deregister: Any, image_id: str) -> None:
    if image_id == ctx.base_image_id(backend.region_name):
        raise EC2ClientError("AuthFailure", f"Not authorized for image: {image_id}")
    moto_deregister(backend, image_id)
    ctx.book.drop_image(backend.region_name, image_id)
    ctx.release_unreferenced()


def delete_snapshot(ctx: CloudContext, backend: Any, moto_delete: Any, snapshot_id: str) -> Any:
    snapshot = moto_delete(backend, snapshot_id)
    ctx.book.drop_snapshot(backend.region_name, snapshot_id)
    ctx.release_unreferenced()
    return snapshot


def _parse_time(value: str) -> datetime.datetime:
    text = value.strip().replace("Z", "+00:00")
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def enable_deprecation(backend: Any, image_id: str, deprecate_at: str | None) -> None:
    ami = _own_image(backend, image_id)
    if not deprecate_at:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter DeprecateAt")
    try:
        moment = _parse_time(deprecate_at)
    except ValueError as error:
        raise EC2ClientError("InvalidParameterValue", f"Invalid DeprecateAt: {deprecate_at}") from error
    # EC2 keeps deprecation times to the minute.
    moment = (moment + datetime.timedelta(seconds=30)).replace(second=0, microsecond=0)
    ami.deprecation_time = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def disable_deprecation(backend: Any, image_id: str) -> None:
    ami = _own_image(backend, image_id)
    ami.deprecation_time = None


def _own_image(backend: Any, image_id: str) -> Any:
    if not image_id:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter ImageId")
    ami = backend.amis.get(image_id)
    if ami is None:
        raise InvalidAMIIdError([image_id])
    return ami
