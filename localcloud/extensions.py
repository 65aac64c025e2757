# SPDX-License-Identifier: GPL-3.0-or-later
"""Calls moto does not serve at all, answered by the local cloud itself."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.exceptions import EC2ClientError

from localcloud import images
from localcloud.context import CloudContext
from localcloud.faults import Call, Reply, error_reply


def _form(body: bytes) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


def _ec2_backend(region: str) -> object:
    from moto.ec2.models import ec2_backends

    return ec2_backends[DEFAULT_ACCOUNT_ID][region]


def _ec2_return(action: str) -> Reply:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        f"<requestId>{uuid.uuid4()}</requestId><return>true</return></{action}Response>"
    )
    return Reply(200, [("Content-Type", "text/xml")], xml.encode())


def enable_image_deprecation(ctx: CloudContext, call: Call, body: bytes) -> Reply:
    form = _form(body)
    images.enable_deprecation(_ec2_backend(call.region), form.get("ImageId", ""), form.get("DeprecateAt"))
    return _ec2_return(call.action)


def disable_image_deprecation(ctx: CloudContext, call: Call, body: bytes) -> Reply:
    images.disable_deprecation(_ec2_backend(call.region), _form(body).get("ImageId", ""))
    return _ec2_return(call.action)


def send_ssh_public_key(ctx: CloudContext, call: Call, body: bytes) -> Reply:
    request = json.loads(body or b"{}")
    instance_id = str(request.get("InstanceId", ""))
    user = str(request.get("InstanceOSUser", ""))
    key = str(request.get("SSHPublicKey", ""))
    if not instance_id or not user or not key:
        return error_reply(call, 400, "InvalidArgsException", "InstanceId, InstanceOSUser and SSHPublicKey are required.")
    backend = _ec2_backend(call.region)
    instance = backend.get_instance_by_id(instance_id)  # type: ignore[attr-defined]
    record = ctx.book.instance(instance_id)
    if instance is None or record is None:
        return error_reply(call, 400, "EC2InstanceNotFoundException", f"Instance {instance_id} was not found.")
    if instance.state != "running":
        return error_reply(
            call, 400, "EC2InstanceStateInvalidException", f"Instance {instance_id} is not in a valid state."
        )
    ctx.runtime.add_temporary_key(instance_id, user, key, ttl=ctx.settings.latency("instance_connect_key_ttl"))
    answer = {"RequestId": str(uuid.uuid4()), "Success": True}
    return Reply(200, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(answer).encode())


Handler = Callable[[CloudContext, Call, bytes], Reply]
HANDLERS: dict[tuple[str, str], Handler] = {
    ("ec2", "EnableImageDeprecation"): enable_image_deprecation,
    ("ec2", "DisableImageDeprecation"): disable_image_deprecation,
    ("ec2-instance-connect", "SendSSHPublicKey"): send_ssh_public_key,
}


def handle(ctx: CloudContext, call: Call, body: bytes) -> Reply | None:
    """The local answer to the call, or None when moto serves it."""
    handler = HANDLERS.get((call.service, call.action))
    if handler is None:
        return None
    try:
        return handler(ctx, call, body)
    except EC2ClientError as error:
        return error_reply(call, 400, str(error.code), str(error.message))
