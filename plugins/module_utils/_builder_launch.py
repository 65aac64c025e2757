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
from typing import Any, Callable, Optional

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:  # reported by the module before any use
    Ed25519PrivateKey = None

from ansible_collections.amazon.aws.plugins.module_utils.transformation import ansible_dict_to_boto3_filter_list

from ansible_collections.bakery.ami.plugins.module_utils._console_keys import host_keys_from_console
from ansible_collections.bakery.ami.plugins.module_utils._images import IMAGE_NOT_FOUND
from ansible_collections.bakery.ami.plugins.module_utils._retry import aws_error_message, error_code
from ansible_collections.bakery.ami.plugins.module_utils._tags import tag_specifications
from ansible_collections.bakery.ami.plugins.module_utils._waiter import WaitError, Waiter

INSTANCE_NOT_FOUND = frozenset(("InvalidInstanceID.NotFound",))
# An instance is never running this soon after RunInstances, nor stopped after StopInstances:
# an earlier poll would only spend a call.
FIRST_INSTANCE_POLL = 3.0
INSTANCE_POLL = 2.5


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
        return f"bakery-{self.bake_id}"


def image_id_from_parameter(ssm: Any, name: str) -> str:
    """The image id an SSM parameter holds (AWS publishes its current images this way)."""
    try:
        return str(ssm.get_parameter(Name=name, aws_retry=True)["Parameter"]["Value"])
    except Exception as e:  # botocore's ClientError
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
    except Exception as e:  # botocore's ClientError
        if error_code(e) not in IMAGE_NOT_FOUND:
            raise StepError("source lookup", f"DescribeImages failed: {aws_error_message(e)}") from e
        images = []
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
    except Exception as e:  # botocore's ClientError
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
    except Exception as e:  # botocore's ClientError
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
    except Exception as e:  # botocore's ClientError
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
    except Exception as e:  # botocore's ClientError
        raise StepError("launch", f"RunInstances {market}failed: {aws_error_message(e)}") from e


def describe_instance(client: Any, instance_id: str) -> dict[str, Any]:
    reservations = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    return instances[0] if instances else {}


def wait_for_state(
    client: Any,
    instance_id: str,
    wanted: str,
    passing: frozenset[str],
    timeout: float,
    sleep: Callable[[float], None] = pause,
) -> dict[str, Any]:
    """Polls the instance until it is `wanted`; a state outside `passing` ends the wait."""

    def failed(instance: dict[str, Any]) -> Optional[str]:
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
        first_delay=FIRST_INSTANCE_POLL,
        delay=INSTANCE_POLL,
        max_delay=INSTANCE_POLL * 2,
        backoff=1.2,
        # one builder's waits: a little jitter is enough to keep many bakes apart
        jitter=0.2,
        sleep=sleep,
    )
    return waiter.wait()


def wait_running(client: Any, instance_id: str, timeout: float, sleep: Callable[[float], None] = pause) -> dict[str, Any]:
    try:
        return wait_for_state(client, instance_id, "running", frozenset(("pending", "")), timeout, sleep)
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
        delay=2.0,
        max_delay=10.0,
        backoff=1.5,
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
    except Exception as e:  # botocore's ClientError
        raise StepError("stop", f"StopInstances {instance_id} failed: {aws_error_message(e)}") from e
    changed = any(change["PreviousState"]["Name"] != "stopped" for change in changes)
    if all(change["CurrentState"]["Name"] == "stopped" for change in changes):
        return changed
    try:
        wait_for_state(client, instance_id, "stopped", frozenset(("stopping", "running", "pending")), timeout, sleep)
    except WaitError as e:
        raise StepError("stop", f"Instance {instance_id}: {e}") from e
    return changed
