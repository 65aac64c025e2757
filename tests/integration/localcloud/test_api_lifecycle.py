# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole lifecycle through boto3 and real SSH: launch, customise, image, copy, free."""
from __future__ import annotations

import contextlib
import os
import socket
import textwrap
import uuid
from pathlib import Path
from typing import Any

import paramiko

from localcloud.testing import SSH_PORT, RunningCloud, launch, new_ed25519, rsa_from_pem, ssh, ssh_refused, wait_until, waiter


def _disk_usage(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _snapshot_of(ec2: Any, image_id: str) -> dict[str, Any]:
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def _image(ec2: Any, instance_id: str, name: str, **kwargs: Any) -> str:
    image_id = ec2.create_image(InstanceId=instance_id, Name=name, **kwargs)["ImageId"]
    waiter(ec2, "image_available", ImageIds=[image_id])
    return str(image_id)


def _terminate(ec2: Any, ids: list[str]) -> None:
    ec2.terminate_instances(InstanceIds=ids)
    waiter(ec2, "instance_terminated", InstanceIds=ids)


def test_bake_lifecycle_end_to_end(cloud: RunningCloud) -> None:
    ec2 = cloud.client("ec2")
    tag = uuid.uuid4().hex[:8]
    created = ec2.create_key_pair(KeyName=f"created-{tag}")
    created_key = rsa_from_pem(created["KeyMaterial"])
    imported_key, imported_public = new_ed25519()
    ec2.import_key_pair(KeyName=f"imported-{tag}", PublicKeyMaterial=imported_public.encode())
    group = ec2.create_security_group(GroupName=f"bake-{tag}", Description="bake")["GroupId"]

    # Launch with a created key and with an imported key; both reach a real sshd as ec2-user.
    (builder,) = launch(cloud, ec2, KeyName=f"created-{tag}", SecurityGroupIds=[group])
    (other,) = launch(cloud, ec2, KeyName=f"imported-{tag}")
    assert builder["PrivateIpAddress"] == builder["PublicIpAddress"]
    assert builder["PrivateIpAddress"].startswith("127.")
    assert ssh(builder["PublicIpAddress"], created_key, "id -un") == (0, "ec2-user\n", "")
    assert ssh(other["PublicIpAddress"], imported_key, "sudo -n id -u")[:2] == (0, "0\n")
    assert ssh_refused(other["PublicIpAddress"], created_key)
    assert ssh_refused(builder["PublicIpAddress"], created_key, user="root")
    _terminate(ec2, [other["InstanceId"]])

    # Customise /etc and /usr; the host's own files stay as they were.
    marker = f"/etc/bakery-marker-{tag}"
    status, _out, err = ssh(
        builder["PublicIpAddress"], created_key,
        f"echo first > {marker} 2>/dev/null || sudo sh -c 'echo first > {marker}'; sudo touch /usr/bakery-{tag}",
    )
    assert status == 0, err
    assert not Path(marker).exists() and not Path(f"/usr/bakery-{tag}").exists()

    # Stop, image with snapshot tags, launch from it and find the change.
    ec2.stop_instances(InstanceIds=[builder["InstanceId"]])
    waiter(ec2, "instance_stopped", InstanceIds=[builder["InstanceId"]])
    first_image = _image(
        ec2, builder["InstanceId"], f"first-{tag}",
        TagSpecifications=[
            {"ResourceType": "image", "Tags": [{"Key": "bake", "Value": tag}]},
            {"ResourceType": "snapshot", "Tags": [{"Key": "bake", "Value": tag}, {"Key": "kind", "Value": "root"}]},
        ],
    )
    snapshot = _snapshot_of(ec2, first_image)
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == {"bake": tag, "kind": "root"}
    (second,) = launch(cloud, ec2, image_id=first_image, KeyName=f"created-{tag}")
    assert ssh(second["PublicIpAddress"], created_key, f"cat {marker}")[1] == "first\n"

    # The same again from that image, captured live (NoReboot).
    assert ssh(second["PublicIpAddress"], created_key, f"sudo sh -c 'echo second >> {marker}'")[0] == 0
    second_image = _image(ec2, second["InstanceId"], f"second-{tag}", NoReboot=True)
    (third,) = launch(cloud, ec2, image_id=second_image, KeyName=f"created-{tag}")
    assert ssh(third["PublicIpAddress"], created_key, f"cat {marker}; ls /usr/bakery-{tag}")[1] == (
        f"first\nsecond\n/usr/bakery-{tag}\n"
    )

    # Copy to another region, encrypted with a key of that region, and launch there.
    west = cloud.client("ec2", "eu-west-1")
    kms_key = cloud.client("kms", "eu-west-1").create_key()["KeyMetadata"]
    copy_id = west.copy_image(
        SourceImageId=second_image, SourceRegion="us-east-1", Name=f"second-{tag}",
        Encrypted=True, KmsKeyId=kms_key["KeyId"],
    )["ImageId"]
    waiter(west, "image_available", ImageIds=[copy_id])
    copied_snapshot = _snapshot_of(west, copy_id)
    assert copied_snapshot["Encrypted"] is True
    assert copied_snapshot["KmsKeyId"] == kms_key["Arn"]
    west.import_key_pair(KeyName=f"imported-{tag}", PublicKeyMaterial=imported_public.encode())
    (remote,) = launch(cloud, west, image_id=copy_id, KeyName=f"imported-{tag}")
    assert ssh(remote["PublicIpAddress"], imported_key, f"cat {marker}")[1] == "first\nsecond\n"

    # Stopped instances start again with their changes.
    ec2.start_instances(InstanceIds=[builder["InstanceId"]])
    waiter(ec2, "instance_running", InstanceIds=[builder["InstanceId"]])
    assert ssh(builder["PublicIpAddress"], created_key, f"cat {marker}")[1] == "first\n"

    # Deregister and delete: the captured layers are freed once nothing refers to them.
    layers_before = cloud.control.layers()
    own_layers = set(layers_before["layers"]) - {layer for layer in layers_before["layers"] if layer.startswith("base")}
    usage_before = _disk_usage(cloud.state_dir)
    _terminate(ec2, [builder["InstanceId"], second["InstanceId"], third["InstanceId"]])
    _terminate(west, [remote["InstanceId"]])
    for client, image in ((ec2, first_image), (ec2, second_image), (west, copy_id)):
        snapshot_id = _snapshot_of(client, image)["SnapshotId"]
        client.deregister_image(ImageId=image)
        client.delete_snapshot(SnapshotId=snapshot_id)
    layers_after = cloud.control.layers()
    captured = own_layers - set(cloud.control.layers()["layers"])
    assert len(captured) >= 2
    assert layers_after["freed_bytes"] > layers_before["freed_bytes"]
    assert _disk_usage(cloud.state_dir) < usage_before


def test_instance_connect_key_accepted_then_expired(cloud: RunningCloud, localcloud_settings: Any) -> None:
    ec2 = cloud.client("ec2")
    (instance,) = launch(cloud, ec2)
    key, public = new_ed25519()
    assert ssh_refused(instance["PublicIpAddress"], key)
    localcloud_settings.update_settings({"latency": {"instance_connect_key_ttl": 5}})
    connect = cloud.client("ec2-instance-connect")
    assert connect.send_ssh_public_key(
        InstanceId=instance["InstanceId"], InstanceOSUser="ec2-user", SSHPublicKey=public
    )["Success"] is True
    assert ssh(instance["PublicIpAddress"], key, "id -un")[1] == "ec2-user\n"
    wait_until(lambda: ssh_refused(instance["PublicIpAddress"], key), timeout=90, what="the pushed key to expire")
    _terminate(ec2, [instance["InstanceId"]])


def test_console_host_keys_match_what_sshd_presents(cloud: RunningCloud) -> None:
    ec2 = cloud.client("ec2")
    (instance,) = launch(cloud, ec2)
    output = wait_until(
        lambda: "-----END SSH HOST KEY KEYS-----" in (ec2.get_console_output(InstanceId=instance["InstanceId"]).get("Output") or "")
        and ec2.get_console_output(InstanceId=instance["InstanceId"])["Output"],
        what="the host key block",
    )
    block = output.split("-----BEGIN SSH HOST KEY KEYS-----", 1)[1].split("-----END SSH HOST KEY KEYS-----", 1)[0]
    console_keys = {tuple(line.split()[:2]) for line in block.strip().splitlines()}
    with socket.create_connection((instance["PublicIpAddress"], SSH_PORT), timeout=10) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=10)
            presented = transport.get_remote_server_key()
        finally:
            transport.close()
    assert (presented.get_name(), presented.get_base64()) in console_keys
    _terminate(ec2, [instance["InstanceId"]])


def test_a_group_held_by_an_instance_is_refused_until_it_ends(cloud: RunningCloud) -> None:
    from botocore.exceptions import ClientError

    ec2 = cloud.client("ec2")
    group_id = ec2.create_security_group(GroupName=f"held-{uuid.uuid4().hex[:8]}", Description="held")["GroupId"]
    (instance,) = launch(cloud, ec2, SecurityGroupIds=[group_id])
    try:
        ec2.delete_security_group(GroupId=group_id)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "DependencyViolation"
        assert instance["InstanceId"] in error.response["Error"]["Message"]
    else:
        raise AssertionError("a group held by a running instance was deleted")
    _terminate(ec2, [instance["InstanceId"]])
    ec2.delete_security_group(GroupId=group_id)
    assert group_id not in [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]]


def test_eight_instances_at_once(cloud: RunningCloud) -> None:
    ec2 = cloud.client("ec2")
    key, public = new_ed25519()
    name = f"eight-{uuid.uuid4().hex[:8]}"
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public.encode())
    instances = launch(cloud, ec2, count=8, KeyName=name)
    addresses = {i["PublicIpAddress"] for i in instances}
    assert len(addresses) == 8
    for address in addresses:
        assert ssh(address, key, "echo ok")[1] == "ok\n"
    _terminate(ec2, [i["InstanceId"] for i in instances])


def test_user_data_and_reboot(cloud: RunningCloud) -> None:
    ec2 = cloud.client("ec2")
    key, public = new_ed25519()
    user_data = textwrap.dedent(f"""\
        #cloud-config
        ssh_authorized_keys:
          - {public}
        """)
    (instance,) = launch(cloud, ec2, UserData=user_data)
    ip = instance["PublicIpAddress"]
    assert ssh(ip, key, "id -un")[1] == "ec2-user\n"
    script_key, script_public = new_ed25519()
    (scripted,) = launch(
        cloud, ec2, UserData=f"#!/bin/sh\necho '{script_public}' >> /home/ec2-user/.ssh/authorized_keys\ntouch /etc/ran-user-data\n"
    )
    assert wait_until(
        lambda: _ssh_or_none(scripted["PublicIpAddress"], script_key, "ls /etc/ran-user-data"), what="the user-data script"
    ) == "/etc/ran-user-data\n"
    ec2.reboot_instances(InstanceIds=[instance["InstanceId"]])
    state = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "running"
    assert wait_until(lambda: _ssh_or_none(ip, key, "uptime -s"), what="ssh after reboot")

    # CreateImage without NoReboot reboots a running instance around the capture, then it serves again.
    assert ssh(ip, key, "sudo sh -c 'echo kept > /etc/kept-through-reboot'")[0] == 0
    image = _image(ec2, instance["InstanceId"], f"rebooted-{uuid.uuid4().hex[:8]}")
    assert wait_until(lambda: _ssh_or_none(ip, key, "cat /etc/kept-through-reboot"), what="ssh after imaging") == "kept\n"
    (child,) = launch(cloud, ec2, image_id=image, UserData=user_data)
    assert ssh(child["PublicIpAddress"], key, "cat /etc/kept-through-reboot")[1] == "kept\n"
    _terminate(ec2, [instance["InstanceId"], scripted["InstanceId"], child["InstanceId"]])


def _ssh_or_none(ip: str, key: Any, command: str) -> str | None:
    try:
        status, out, _err = ssh(ip, key, command)
    except (OSError, paramiko.SSHException):
        return None
    return out if status == 0 else None
