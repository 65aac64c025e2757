# SPDX-License-Identifier: GPL-3.0-or-later
"""Instance behaviours: real launches and real pending/stopping/shutting-down states."""
from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import functools
import time
from typing import Any

from moto.core.utils import utcnow
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidAMIIdError,
    InvalidKeyPairNameError,
    InvalidSecurityGroupNotFoundError,
    UnvailableAMIIdError,
)

from localcloud.context import CloudContext
from localcloud.state import InstanceRecord

STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}
READY_TIMEOUT = 120.0


def set_state(instance: Any, name: str) -> None:
    instance._state.name = name
    instance._state.code = STATE_CODES[name]


def incorrect_state(instance: Any, action: str) -> EC2ClientError:
    return EC2ClientError(
        "IncorrectInstanceState",
        f"The instance '{instance.id}' is not in a state from which it can be {action}.",
    )


def _public_key_text(material: Any) -> str:
    """ImportKeyPair material arrives raw or base64-encoded, depending on the client."""
    raw = material if isinstance(material, bytes) else str(material).encode()
    text = raw.decode("utf-8", "replace").strip()
    if text.startswith(("ssh-", "ecdsa-", "sk-")):
        return text
    try:
        return base64.b64decode(raw, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return text


def validate_launch(
    ctx: CloudContext, backend: Any, image_id: str, security_group_names: list[str], kwargs: dict[str, Any]
) -> tuple[tuple[str, ...], list[str]]:
    """Checks what EC2 checks before anything is made; returns the image layers and keys."""
    region = backend.region_name
    if not image_id or image_id not in backend.amis:
        raise InvalidAMIIdError([image_id or ""])
    ami = backend.amis[image_id]
    layers = ctx.book.image_layers(region, image_id)
    if ami.state != "available" or layers is None:
        raise UnvailableAMIIdError(image_id)
    keys: list[str] = []
    key_name = kwargs.get("key_name")
    if key_name:
        pair = backend.key_pairs.get(key_name)
        if pair is None:
            raise InvalidKeyPairNameError([key_name])
        keys.append(_public_key_text(pair.material_public))
    for name in security_group_names:
        if backend.get_security_group_by_name_or_id(name) is None:
            raise InvalidSecurityGroupNotFoundError(name)
    for group_id in kwargs.get("security_group_ids", []) or []:
        if isinstance(group_id, str) and backend.get_security_group_from_id(group_id) is None:
            raise InvalidSecurityGroupNotFoundError(group_id)
    return layers, keys


def _user_data_bytes(user_data: Any) -> bytes | None:
    if user_data is None:
        return None
    return base64.b64decode(user_data.as_bytes())


def launch_reservation(
    ctx: CloudContext, backend: Any, reservation: Any, layers: tuple[str, ...], keys: list[str], user_data: Any
) -> None:
    """Starts every instance of a fresh reservation; on failure removes all of it."""
    launched: list[str] = []
    data = _user_data_bytes(user_data)
    for instance in reservation.instances:
        set_state(instance, "pending")
    try:
        for instance in reservation.instances:
            ip = ctx.runtime.launch(
                instance.id, list(layers), user="ec2-user", authorized_keys=keys, user_data=data
            )
            launched.append(instance.id)
            _assign_ip(instance, ip)
            record = InstanceRecord(instance.id, backend.region_name, layers, ip)
            ctx.book.add_instance(record)
    except Exception as error:
        for instance_id in launched:
            undone = ctx.book.instance(instance_id)
            if undone:
                undone.terminated = True
            with contextlib.suppress(Exception):  # best effort while undoing
                ctx.runtime.terminate(instance_id)
        for instance in reservation.instances:
            instance.teardown_defaults()
        backend.reservations.pop(reservation.id, None)
        raise EC2ClientError(
            "InsufficientInstanceCapacity", f"The local cloud could not start the instance: {error}"
        ) from error
    started = time.monotonic()
    for instance in reservation.instances:
        booting = ctx.book.instance(instance.id)
        assert booting is not None
        ctx.spawn(f"boot-{instance.id}", functools.partial(_finish_boot, ctx, instance, booting, started))


def _assign_ip(instance: Any, ip: str) -> None:
    nic = instance.nics[0]
    nic.private_ip_address = ip
    nic.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": ip}]
    nic.public_ip = ip


def _finish_boot(ctx: CloudContext, instance: Any, record: InstanceRecord, started: float) -> None:
    with record.lock:
        ready = ctx.runtime.wait_ready(instance.id, READY_TIMEOUT)
        ctx.wait_latency(lambda: ctx.settings.latency("instance_pending"), started)
        if instance.state != "pending":
            return
        if ready:
            set_state(instance, "running")
            return
        # An instance whose sshd never answers is given up on, as EC2 does with a failed boot.
        ctx.runtime.terminate(instance.id)
        record.terminated = True
        set_state(instance, "terminated")
        instance._reason = "Server.InternalError"
        instance.state_reason.code = "Server.InternalError"
        instance.state_reason.message = "Server.InternalError: the instance did not boot"


def _user_reason(instance: Any) -> None:
    instance._reason = f"User initiated ({utcnow().strftime('%Y-%m-%d %H:%M:%S UTC')})"
    instance.state_reason.code = "Client.UserInitiatedShutdown"
    instance.state_reason.message = "Client.UserInitiatedShutdown: User initiated shutdown"


def stop(ctx: CloudContext, instance: Any) -> Any:
    previous = copy.copy(instance._state)
    if instance.state in ("stopping", "stopped"):
        return previous
    if instance.state not in ("pending", "running"):
        raise incorrect_state(instance, "stopped")
    record = ctx.book.instance(instance.id)
    set_state(instance, "stopping")
    _user_reason(instance)
    started = time.monotonic()

    def work() -> None:
        assert record is not None
        with record.lock:
            ctx.runtime.stop(instance.id)
            ctx.wait_latency(lambda: ctx.settings.latency("instance_stopping"), started)
            if instance.state == "stopping":
                set_state(instance, "stopped")

    ctx.spawn(f"stop-{instance.id}", work)
    return previous


def start(ctx: CloudContext, instance: Any) -> Any:
    previous = copy.copy(instance._state)
    if instance.state in ("pending", "running"):
        return previous
    if instance.state != "stopped":
        raise incorrect_state(instance, "started")
    record = ctx.book.instance(instance.id)
    set_state(instance, "pending")
    instance._reason = ""
    instance.state_reason.code = ""
    instance.state_reason.message = ""
    started = time.monotonic()

    def work() -> None:
        assert record is not None
        with record.lock:
            ctx.runtime.start(instance.id)
        _finish_boot(ctx, instance, record, started)

    ctx.spawn(f"start-{instance.id}", work)
    return previous


def reboot(ctx: CloudContext, instance: Any) -> None:
    if instance.state != "running":
        raise incorrect_state(instance, "rebooted")
    record = ctx.book.instance(instance.id)

    def work() -> None:
        assert record is not None
        with record.lock:
            ctx.runtime.reboot(instance.id)

    ctx.spawn(f"reboot-{instance.id}", work)


def terminate(ctx: CloudContext, instance: Any, moto_terminate: Any) -> Any:
    previous = copy.copy(instance._state)
    if instance.state in ("shutting-down", "terminated"):
        return previous
    moto_terminate(instance)
    record = ctx.book.instance(instance.id)
    if record is None:
        return previous
    set_state(instance, "shutting-down")
    started = time.monotonic()

    def work() -> None:
        with record.lock:
            ctx.runtime.terminate(instance.id)
            record.terminated = True
            ctx.wait_latency(lambda: ctx.settings.latency("instance_shutting_down"), started)
            set_state(instance, "terminated")
        ctx.release_unreferenced()

    ctx.spawn(f"terminate-{instance.id}", work)
    return previous
