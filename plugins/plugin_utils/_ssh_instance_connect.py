# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""EC2 Instance Connect: push a public key that sshd accepts for the next 60 seconds."""
from __future__ import annotations

import typing as t


class InstanceConnectError(Exception):
    """SendSSHPublicKey failed."""


def push_public_key(aws: dict[str, t.Any], os_user: str, public_key: str) -> None:
    """Send `public_key` for `os_user` to the instance named in `aws` (instance_id, region, ...)."""
    # imported here: boto3 takes longer to import than the rest of the control process
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise InstanceConnectError("instance_connect needs the boto3 Python library on the controller") from None
    instance_id = aws.get("instance_id")
    if not instance_id:
        raise InstanceConnectError("instance_connect needs instance_id")
    try:
        session = boto3.session.Session(
            profile_name=aws.get("profile") or None,
            aws_access_key_id=aws.get("access_key") or None,
            aws_secret_access_key=aws.get("secret_key") or None,
            aws_session_token=aws.get("session_token") or None,
        )
        client = session.client("ec2-instance-connect", region_name=aws.get("region") or None,
                                endpoint_url=aws.get("endpoint_url") or None)
        answer = client.send_ssh_public_key(InstanceId=instance_id, InstanceOSUser=os_user, SSHPublicKey=public_key)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise InstanceConnectError(f"EC2 Instance Connect could not push the key to {instance_id}: {exc}") from exc
    if not answer.get("Success"):
        raise InstanceConnectError(f"EC2 Instance Connect did not accept the key for {instance_id}")
