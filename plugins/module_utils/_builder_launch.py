# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Launching a bake's builder: source image, key pair, security group, instance, host keys.

Each step makes the fewest EC2 calls it can, tags what it creates in the create call itself, and
raises StepError naming the bake step, so a failure reads the same as in the bake playbook.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:  # reported by the module before any use
    Ed25519PrivateKey = None  # type: ignore[assignment,misc]

from ansible_collections.amazon.aws.plugins.module_utils.transformation import ansible_dict_to_boto3_filter_list

from ansible_collections.bakery.ami.plugins.module_utils._bake_tags import BAKE_ID_TAG, temporary_name
from ansible_collections.bakery.ami.plugins.module_utils._console_keys import host_keys_from_console
from ansible_collections.bakery.ami.plugins.module_utils._images import IMAGE_NOT_FOUND
from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, aws_error_message, is_aws_error_code
from ansible_collections.bakery.ami.plugins.module_utils._tags import tag_specifications
from ansible_collections.bakery.ami.plugins.module_utils._waiter import (
    HOST_KEYS,
    INSTANCE_RUNNING,
    INSTANCE_STOPPED,
    WaitError,
    WaitSettings,
    Waiter,
)

INSTANCE_NOT_FOUND = frozenset(("InvalidInstanceID.NotFound",))


def pause(seconds: float) -> None:
    """time.sleep, looked up when called (tests replace it)."""
    time.sleep(seconds)


class StepError(Exception):
    """A failure of one bake step (its name as the bake playbook reports it)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class LaunchSettings:
    bake_id: str
    tags: dict[str, str]
    instance_type: str
    ssh_cidr: str
    vpc_id: str = ""
    subnet_id: str = ""
    assign_public_ip: bool = False
    instance_profile: str = ""
    user_data: str = ""
    volumes: list[dict[str, Any]] = field(default_factory=list)
    spot: bool = False
    spot_max_price: str = ""

    @property
    def resource_name(self) -> str:
        return temporary_name(self.bake_id)


def image_id_from_parameter(ssm: Any, name: str) -> str:
    """The image id an SSM parameter holds (AWS publishes its current images this way)."""
    try:
        return str(ssm.get_parameter(Name=name, aws_retry=True)["Parameter"]["Value"])
    except AWS_ERRORS as e:
        raise StepError("source lookup", f"GetParameter {name} failed: {aws_error_message(e)}; nothing was created") from e


def source_image(
    client: Any, region: str, image_id: str, filters: dict[str, Any], owners: list[str], most_recent: bool
) -> dict[str, Any]:
    """The one available image the bake starts from."""
    try:
        if image_id:
            images = client.describe_images(ImageIds=[image_id], aws_retry=True)["Images"]
        else:
            request: dict[str, Any] = {"Filters": ansible_dict_to_boto3_filter_list(filters)}
            if owners:
                request["Owners"] = owners
            images = client.describe_images(aws_retry=True, **request)["Images"]
    except is_aws_error_code(*IMAGE_NOT_FOUND):
        images = []
    except AWS_ERRORS as e:
        raise StepError("source lookup", f"DescribeImages failed: {aws_error_message(e)}") from e
    available = [i for i in images if i.get("State") == "available"]
    if not available:
        what = image_id or str(filters)
        raise StepError(
            "source lookup",
            f"No source AMI found in {region} for {what} (owners: {', '.join(owners) or 'any'}); nothing was created",
        )
    if not most_recent and len(images) > 1:
        raise StepError(
            "source lookup",
            f"{len(images)} images match the source filters; narrow the filters or set most_recent to true",
        )
    return max(available, key=lambda i: i.get("CreationDate", ""))


def write_key_pair(key_dir: str, bake_id: str) -> tuple[str, str, str]:
    """A new ed25519 key in a private directory: (directory, private key file, public key line)."""
    if Ed25519PrivateKey is None:
        raise StepError("key pair", "the Python library cryptography is needed to make the builder's key")
    directory = key_dir or tempfile.mkdtemp(prefix=f"bakery-{bake_id}-")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public_line = f"{public.decode()} bakery-{bake_id}"
    private_file = os.path.join(directory, "id_ed25519")
    if os.path.exists(private_file):
        os.unlink(private_file)
    # created owner-only: the key is never readable by anyone else, not even for a moment
    descriptor = os.open(private_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    with open(f"{private_file}.pub", "w", encoding="utf-8") as handle:
        handle.write(public_line + "\n")
    return directory, private_file, public_line


def import_key_pair(client: Any, name: str, public_line: str, tags: dict[str, str]) -> None:
    try:
        client.import_key_pair(
            KeyName=name,
            PublicKeyMaterial=public_line.encode(),
            TagSpecifications=tag_specifications([("key-pair", tags)]),
            aws_retry=True,
        )
    except AWS_ERRORS as e:
        raise StepError("key pair", f"ImportKeyPair {name} failed: {aws_error_message(e)}") from e


def create_security_group(client: Any, settings: LaunchSettings) -> str:
    """A group named after the bake that lets in SSH from `ssh_cidr` only."""
    name = settings.resource_name
    try:
        vpc_id = settings.vpc_id
        if settings.subnet_id and not vpc_id:
            vpc_id = client.describe_subnets(SubnetIds=[settings.subnet_id], aws_retry=True)["Subnets"][0]["VpcId"]
        request: dict[str, Any] = {
            "GroupName": name,
            "Description": f"bakery.ami temporary builder access for bake {settings.bake_id}",
            "TagSpecifications": tag_specifications([("security-group", settings.tags)]),
        }
        if vpc_id:
            request["VpcId"] = vpc_id
        group_id = str(client.create_security_group(aws_retry=True, **request)["GroupId"])
    except AWS_ERRORS as e:
        raise StepError("security group", f"CreateSecurityGroup {name} failed: {aws_error_message(e)}") from e
    try:
        client.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                "IpRanges": [{"CidrIp": settings.ssh_cidr, "Description": "SSH from the bake runner"}],
            }],
            aws_retry=True,
        )
    except AWS_ERRORS as e:
        raise StepError("security group", f"AuthorizeSecurityGroupIngress on {group_id} failed: {aws_error_message(e)}") from e
    return group_id


def root_volume_mapping(device_name: str, volume: dict[str, Any]) -> list[dict[str, Any]]:
    """BlockDeviceMappings for a root volume that differs from the image's, or none."""
    if not volume.get("size") and not volume.get("encrypted"):
        return []
    ebs: dict[str, Any] = {"VolumeType": volume.get("type") or "gp3", "Encrypted": bool(volume.get("encrypted")),
                           "DeleteOnTermination": True}
    if volume.get("size"):
        ebs["VolumeSize"] = int(volume["size"])
    if volume.get("kms_key_id"):
        ebs["KmsKeyId"] = volume["kms_key_id"]
    return [{"DeviceName": device_name or "/dev/xvda", "Ebs": ebs}]


def run_request(settings: LaunchSettings, image_id: str, key_name: str, group_id: str) -> dict[str, Any]:
    """RunInstances' request for the builder: IMDSv2 required, tagged at creation."""
    instance_tags = {**settings.tags, "Name": f"bakery-builder-{settings.bake_id}"}
    kinds = ["instance", "volume"] + (["spot-instances-request"] if settings.spot else [])
    request: dict[str, Any] = {
        "ImageId": image_id,
        "InstanceType": settings.instance_type,
        "KeyName": key_name,
        "MinCount": 1,
        "MaxCount": 1,
        "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required"},
        "TagSpecifications": tag_specifications([(kind, instance_tags) for kind in kinds]),
        # a retried call answers the first instance instead of starting a second one
        "ClientToken": f"bakery-{settings.bake_id}"[:64],
    }
    if settings.subnet_id:
        request["NetworkInterfaces"] = [{
            "DeviceIndex": 0, "SubnetId": settings.subnet_id, "Groups": [group_id],
            "AssociatePublicIpAddress": settings.assign_public_ip,
        }]
    else:
        request["SecurityGroupIds"] = [group_id]
    if settings.instance_profile:
        key = "Arn" if settings.instance_profile.startswith("arn:") else "Name"
        request["IamInstanceProfile"] = {key: settings.instance_profile}
    if settings.user_data:
        request["UserData"] = settings.user_data
    if settings.volumes:
        request["BlockDeviceMappings"] = settings.volumes
    if settings.spot:
        # one-time and ended on interruption: a builder cannot resume a half-done bake
        spot: dict[str, Any] = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
        if settings.spot_max_price:
            spot["MaxPrice"] = settings.spot_max_price
        request["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
    return request


def run_instance(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    market = "on the spot market " if "InstanceMarketOptions" in request else ""
    try:
        return dict(client.run_instances(aws_retry=True, **request)["Instances"][0])
    except AWS_ERRORS as e:
        raise StepError("launch", f"RunInstances {market}failed: {aws_error_message(e)}") from e


def describe_instance(client: Any, instance_id: str) -> dict[str, Any]:
    reservations = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    return instances[0] if instances else {}


def instance_states(client: Any, instance_ids: list[str]) -> dict[str, str]:
    """The state of each instance, in one call."""
    try:
        reservations = client.describe_instances(InstanceIds=instance_ids, aws_retry=True)["Reservations"]
    except AWS_ERRORS as e:
        raise StepError("stop", f"DescribeInstances {', '.join(instance_ids)} failed: {aws_error_message(e)}") from e
    return {i["InstanceId"]: i.get("State", {}).get("Name", "") for r in reservations for i in r["Instances"]}


def wait_for_state(
    client: Any,
    instance_id: str,
    wanted: str,
    passing: frozenset[str],
    timeout: float,
    settings: WaitSettings,
    sleep: Callable[[float], None] = pause,
) -> dict[str, Any]:
    """Polls the instance until it is `wanted`; a state outside `passing` ends the wait."""

    def failed(instance: dict[str, Any]) -> str | None:
        state = instance.get("State", {}).get("Name", "")
        if state and state != wanted and state not in passing:
            reason = instance.get("StateReason", {}).get("Message") or "no reason given"
            return f"it is {state} instead of {wanted} ({reason})"
        return None

    waiter = Waiter(
        lambda: describe_instance(client, instance_id),
        lambda instance: instance.get("State", {}).get("Name") == wanted,
        what=f"instance {instance_id} to be {wanted}",
        timeout=timeout,
        failed=failed,
        missing_codes=INSTANCE_NOT_FOUND,
        settings=settings,
        sleep=sleep,
    )
    return waiter.wait()


def wait_running(client: Any, instance_id: str, timeout: float, sleep: Callable[[float], None] = pause) -> dict[str, Any]:
    try:
        return wait_for_state(client, instance_id, "running", frozenset(("pending", "")), timeout, INSTANCE_RUNNING, sleep)
    except WaitError as e:
        raise StepError("launch", f"Instance {instance_id}: {e}") from e


def read_host_keys(client: Any, instance_id: str, timeout: float, sleep: Callable[[float], None] = pause) -> list[str]:
    """The host keys from the console: fetched through the EC2 API, not over SSH, so the first
    connection to the builder already checks them (nothing is trusted on first use)."""
    waiter = Waiter(
        lambda: host_keys_from_console(client.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""),
        bool,
        what=f"the SSH host keys on the console of {instance_id}",
        timeout=timeout,
        missing_codes=INSTANCE_NOT_FOUND,
        settings=HOST_KEYS,
        sleep=sleep,
    )
    try:
        return list(waiter.wait())
    except WaitError as e:
        raise StepError(
            "host keys",
            f"No SSH host key block in the console output of {instance_id} after {timeout:g} s; the image must run"
            " cloud-init (or print the block the way it does)",
        ) from e


def stop(client: Any, instance_id: str, timeout: float, sleep: Callable[[float], None] = pause) -> bool:
    """Stops the instance and waits until it is stopped; True when it was not stopped already."""
    try:
        changes = client.stop_instances(InstanceIds=[instance_id], aws_retry=True)["StoppingInstances"]
    except AWS_ERRORS as e:
        raise StepError("stop", f"StopInstances {instance_id} failed: {aws_error_message(e)}") from e
    changed = any(change["PreviousState"]["Name"] != "stopped" for change in changes)
    if all(change["CurrentState"]["Name"] == "stopped" for change in changes):
        return changed
    try:
        wait_for_state(client, instance_id, "stopped", frozenset(("stopping", "running", "pending")), timeout, INSTANCE_STOPPED, sleep)
    except WaitError as e:
        raise StepError("stop", f"Instance {instance_id}: {e}") from e
    return changed


@dataclass
class ExistingBuilder:
    """The bake's builder from an earlier run, complete: running, with its key pair and group."""

    instance: dict[str, Any]
    key_name: str
    group_id: str
    private_key_file: str
    public_line: str


def bake_builders(client: Any, bake_id: str, states: tuple[str, ...]) -> list[dict[str, Any]]:
    reservations = client.describe_instances(
        Filters=[{"Name": f"tag:{BAKE_ID_TAG}", "Values": [bake_id]}, {"Name": "instance-state-name", "Values": list(states)}],
        aws_retry=True,
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def _public_key(client: Any, key_name: str) -> str | None:
    """The public key EC2 holds for `key_name` ('' when it does not say), None when there is no such pair."""
    try:
        pairs = client.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True, aws_retry=True)["KeyPairs"]
    except is_aws_error_code("InvalidKeyPair.NotFound"):
        return None
    return str(pairs[0].get("PublicKey") or "") if pairs else None


def existing_builder(client: Any, bake_id: str, states: tuple[str, ...], key_dir: str) -> ExistingBuilder | None:
    """The builder an earlier run of the same bake launched, or None when there is none.

    One that cannot be used again (stopped, incomplete, or its private key not in `key_dir`) is a
    StepError: launching a second builder for the bake would leave two, and EC2 refuses the
    bake's key pair and group names a second time anyway.
    """
    builders = bake_builders(client, bake_id, states)
    if not builders:
        return None
    again = "remove it with state=absent or use another bake_id"
    if len(builders) > 1:
        ids = ", ".join(sorted(b["InstanceId"] for b in builders))
        raise StepError("launch", f"Bake {bake_id} already has {len(builders)} builders ({ids}); {again}")
    instance = builders[0]
    instance_id = instance["InstanceId"]
    state = instance.get("State", {}).get("Name", "")
    if state not in ("pending", "running"):
        raise StepError("launch", f"Bake {bake_id} already has builder {instance_id} and it is {state}; {again}")
    name = temporary_name(bake_id)
    groups = [g["GroupId"] for g in instance.get("SecurityGroups", []) if g.get("GroupName") == name]
    ec2_public = _public_key(client, name) if groups and instance.get("KeyName") == name else None
    if not groups or ec2_public is None:
        raise StepError(
            "launch",
            f"Bake {bake_id} already has builder {instance_id} without its key pair or security group {name}; {again}",
        )
    private_file = os.path.join(key_dir, "id_ed25519") if key_dir else ""
    public_line = ""
    if private_file and os.path.exists(private_file) and os.path.exists(f"{private_file}.pub"):
        with open(f"{private_file}.pub", encoding="utf-8") as handle:
            public_line = handle.read().strip()
    if not public_line or (ec2_public and ec2_public.split()[:2] != public_line.split()[:2]):
        where = f"in key_dir {key_dir}" if key_dir else "known (no key_dir given)"
        raise StepError(
            "key pair",
            f"Bake {bake_id} already has builder {instance_id}, but the private key of its key pair {name} is not"
            f" {where}; give the key_dir of the run that launched it, or {again}",
        )
    return ExistingBuilder(instance, name, groups[0], private_file, public_line)
