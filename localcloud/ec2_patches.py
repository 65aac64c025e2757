# SPDX-License-Identifier: GPL-3.0-or-later
"""Hooks the local cloud's behaviours into moto's EC2 and SSM models (once, in the server process)."""
from __future__ import annotations

import datetime
import platform
from typing import Any

from moto.core.responses import ActionResult
from moto.core.types import Base64EncodedString
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import EC2Backend
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.general import General
from moto.ssm.models import Parameter, ParameterDict

from localcloud import images, instances
from localcloud.context import BASE_IMAGE_OWNER_ALIAS, BASE_IMAGE_OWNER_ID, BASE_IMAGE_PARAMETER, CloudContext

_installed: dict[str, Any] = {}


def _ctx() -> CloudContext:
    return _installed["ctx"]


def install(ctx: CloudContext) -> None:
    """Replaces the moto methods; a second call only swaps the context."""
    first = "ctx" not in _installed
    _installed["ctx"] = ctx
    if not first:
        return
    originals: dict[str, Any] = {
        "backend_init": EC2Backend.__init__,
        "run_instances": InstanceBackend.run_instances,
        "stop": Instance.stop,
        "start": Instance.start,
        "reboot": Instance.reboot,
        "terminate": Instance.terminate,
        "create_image": AmiBackend.create_image,
        "copy_image": AmiBackend.copy_image,
        "deregister_image": AmiBackend.deregister_image,
        "delete_snapshot": EBSBackend.delete_snapshot,
        "check_loading": ParameterDict._check_loading_status,
        "delete_security_group": SecurityGroupBackend.delete_security_group,
    }
    _installed.update(originals)

    def backend_init(self: Any, region_name: str, account_id: str) -> None:
        originals["backend_init"](self, region_name, account_id)
        _register_base_image(_ctx(), self)

    def run_instances(
        self: Any, image_id: str, count: int, user_data: Any, security_group_names: list[str], **kwargs: Any
    ) -> Any:
        ctx = _ctx()
        layers, keys = instances.validate_launch(ctx, self, image_id, security_group_names, kwargs)
        reservation = originals["run_instances"](self, image_id, count, user_data, security_group_names, **kwargs)
        instances.launch_reservation(ctx, self, reservation, layers, keys, user_data)
        return reservation

    def managed(name: str) -> Any:
        def call(self: Any) -> Any:
            ctx = _ctx()
            if ctx.book.instance(self.id) is None:
                return originals[name](self)
            if name == "terminate":
                return instances.terminate(ctx, self, originals["terminate"])
            return getattr(instances, name)(ctx, self)

        return call

    def create_image_response(self: Any) -> ActionResult:
        self.error_on_dryrun()
        image = images.create_image(
            _ctx(),
            self.ec2_backend,
            originals["create_image"],
            self._get_param("InstanceId"),
            self._get_param("Name"),
            self._get_param("Description", ""),
            self._get_param("TagSpecifications", []),
            no_reboot=str(self._get_param("NoReboot", "false")).lower() == "true",
        )
        return ActionResult({"ImageId": image.id})

    def copy_image_response(self: Any) -> ActionResult:
        params = {
            key: self._get_param(key)
            for key in ("SourceImageId", "SourceRegion", "Name", "Description", "Encrypted", "KmsKeyId",
                        "CopyImageTags", "ClientToken")
        }
        params["TagSpecifications"] = self._get_param("TagSpecifications", [])
        self.error_on_dryrun()
        image = images.copy_image(_ctx(), self.ec2_backend, originals["copy_image"], params)
        return ActionResult({"ImageId": image.id})

    def deregister_image(self: Any, ami_id: str) -> None:
        images.deregister_image(_ctx(), self, originals["deregister_image"], ami_id)

    def deregister_image_response(self: Any) -> ActionResult:
        self.error_on_dryrun()
        image_id = self._get_param("ImageId")
        with_snapshots = str(self._get_param("DeleteAssociatedSnapshots", "false")).lower() == "true"
        ami = self.ec2_backend.amis.get(image_id)
        self.ec2_backend.deregister_image(image_id)
        result: dict[str, Any] = {"Return": True}
        if with_snapshots and ami is not None:
            snapshot_id = ami.ebs_snapshot.id
            self.ec2_backend.delete_snapshot(snapshot_id)
            result["DeleteSnapshotResults"] = [{"SnapshotId": snapshot_id, "ReturnCode": "success"}]
        return ActionResult(result)

    def delete_snapshot(self: Any, snapshot_id: str) -> Any:
        return images.delete_snapshot(_ctx(), self, originals["delete_snapshot"], snapshot_id)

    def console_output(self: Any) -> ActionResult:
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        ctx = _ctx()
        text = ""
        if ctx.book.instance(instance.id) is not None:
            try:
                text = ctx.runtime.console_output(instance.id)
            except Exception:  # noqa: BLE001 - a terminated instance's console is gone; EC2 answers empty
                text = ""
        return ActionResult(
            {"InstanceId": instance.id, "Timestamp": utcnow(), "Output": Base64EncodedString.from_raw_string(text)}
        )

    def check_loading(self: Any, key: str) -> None:
        originals["check_loading"](self, key)
        _publish_base_parameter(_ctx(), self, str(key or ""))

    def delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> None:
        # As EC2 does: a group stays while an instance that has not ended yet holds it.
        holder = _instance_holding(self, group_id) if group_id else None
        if holder is not None:
            raise EC2ClientError("DependencyViolation", f"resource {group_id} has a dependent object ({holder})")
        originals["delete_security_group"](self, name=name, group_id=group_id)

    EC2Backend.__init__ = backend_init  # type: ignore[method-assign]
    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]
    for name in ("stop", "start", "reboot", "terminate"):
        setattr(Instance, name, managed(name))
    AmisResponse.create_image = create_image_response  # type: ignore[method-assign]
    AmisResponse.copy_image = copy_image_response  # type: ignore[method-assign]
    AmiBackend.deregister_image = deregister_image  # type: ignore[method-assign]
    AmisResponse.deregister_image = deregister_image_response  # type: ignore[method-assign]
    EBSBackend.delete_snapshot = delete_snapshot  # type: ignore[method-assign]
    General.get_console_output = console_output  # type: ignore[method-assign]
    ParameterDict._check_loading_status = check_loading  # type: ignore[method-assign]
    Ami.block_device_mappings = property(_block_device_mappings)  # type: ignore[method-assign,assignment]
    SecurityGroupBackend.delete_security_group = delete_security_group  # type: ignore[method-assign]


def _instance_holding(backend: Any, group_id: str) -> str | None:
    for instance in backend.all_instances():
        if instance.state != "terminated" and any(group.id == group_id for group in instance.security_groups):
            return str(instance.id)
    return None


def _block_device_mappings(ami: Any) -> list[dict[str, Any]]:
    snapshot = ami.ebs_snapshot
    ebs: dict[str, Any] = {
        "SnapshotId": snapshot.id,
        "VolumeSize": 8,
        "DeleteOnTermination": True,
        "VolumeType": "gp3",
        "Encrypted": bool(snapshot.encrypted),
    }
    if snapshot.kms_key_id:
        ebs["KmsKeyId"] = snapshot.kms_key_id
    return [{"DeviceName": ami.root_device_name, "Ebs": ebs}]


def _host_architecture() -> str:
    machine = platform.machine()
    return {"aarch64": "arm64", "arm64": "arm64"}.get(machine, "x86_64")


def _register_base_image(ctx: CloudContext, backend: Any) -> None:
    region = backend.region_name
    image_id = ctx.base_image_id(region)
    if image_id in backend.amis:
        return
    ami: Any = Ami(  # ena_support below is an attribute moto's Ami does not declare
        backend,
        image_id,
        name=ctx.base_image_name,
        description="bakery local cloud base image (Debian userland with python3, sudo and sshd)",
        owner_id=BASE_IMAGE_OWNER_ID,
        owner_alias=BASE_IMAGE_OWNER_ALIAS,
        public=True,
        virtualization_type="hvm",
        architecture=_host_architecture(),
        hypervisor="xen",
        root_device_type="ebs",
        root_device_name="/dev/xvda",
        region_name=f"{region}a",
        creation_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        boot_mode="uefi-preferred",
    )
    ami.ena_support = True
    backend.amis[image_id] = ami
    ctx.book.set_image(region, image_id, (ctx.base_layer,))
    ctx.book.set_snapshot(region, ami.ebs_snapshot.id, (ctx.base_layer,))


def _publish_base_parameter(ctx: CloudContext, parameters: Any, key: str) -> None:
    if not BASE_IMAGE_PARAMETER.startswith(key.rstrip("/") or "/") and not key.startswith(BASE_IMAGE_PARAMETER):
        return
    if getattr(parameters, "bakery_base_loaded", False):
        return
    parameters.bakery_base_loaded = True
    from moto.ec2.models import ec2_backends

    # Creating the region's EC2 backend registers the image the parameter names.
    ec2_backends[parameters.account_id][parameters.region_name]
    super(ParameterDict, parameters).setdefault(BASE_IMAGE_PARAMETER, []).append(
        Parameter(  # type: ignore[abstract]  # as moto makes them: its CloudFormation hooks are left abstract
            account_id=parameters.account_id,
            name=BASE_IMAGE_PARAMETER,
            value=ctx.base_image_id(parameters.region_name),
            parameter_type="String",
            description="The local cloud's base image",
            allowed_pattern=None,
            keyid=None,
            last_modified_date=utcnow(),
            version=1,
            data_type="aws:ec2:image",
        )
    )
