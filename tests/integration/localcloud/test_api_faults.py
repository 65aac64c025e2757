# SPDX-License-Identifier: GPL-3.0-or-later
"""Latency and fault injection, set through the control endpoint while the cloud runs."""
from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.testing import SSH_PORT, RunningCloud, launch, wait_until, waiter


def _code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_throttling_share_answers_request_limit_exceeded(cloud: RunningCloud, localcloud_settings: Any) -> None:
    ec2 = cloud.client("ec2")
    ec2.describe_images(Owners=["self"])
    localcloud_settings.update_settings({"faults": {"throttle_rate": 1.0, "throttle_actions": ["DescribeImages"]}})
    mark = cloud.mark()
    with pytest.raises(ClientError) as caught:
        ec2.describe_images(Owners=["self"])
    assert _code(caught) == ("RequestLimitExceeded", 503)
    ec2.describe_key_pairs()  # other actions are untouched
    assert cloud.count(action="DescribeImages", outcome="injected", since=mark) == 1
    localcloud_settings.update_settings({"faults": {"throttle_rate": 0.0}})
    ec2.describe_images(Owners=["self"])


def test_throttled_calls_are_retried_by_a_standard_client(cloud: RunningCloud, localcloud_settings: Any) -> None:
    import boto3
    from botocore.config import Config

    localcloud_settings.update_settings({"faults": {"throttle_rate": 0.5, "throttle_actions": ["DescribeKeyPairs"]}})
    ec2 = boto3.client(
        "ec2", region_name="us-east-1", endpoint_url=cloud.endpoint_url,
        aws_access_key_id=cloud.env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=cloud.env["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 30, "mode": "standard"}),
    )
    mark = cloud.mark()
    for _attempt in range(10):
        ec2.describe_key_pairs()
    assert cloud.count(action="DescribeKeyPairs", outcome="ok", since=mark) == 10
    assert cloud.count(action="DescribeKeyPairs", outcome="injected", since=mark) > 0


def test_named_action_fails_once_then_succeeds(cloud: RunningCloud, localcloud_settings: Any) -> None:
    ec2 = cloud.client("ec2")
    localcloud_settings.update_settings(
        {"faults": {"action_errors": [{"action": "DescribeSecurityGroups", "code": "InternalError", "status": 500, "times": 1}]}}
    )
    with pytest.raises(ClientError) as caught:
        ec2.describe_security_groups()
    assert _code(caught) == ("InternalError", 500)
    ec2.describe_security_groups()


def test_named_action_fails_always_until_cleared(cloud: RunningCloud, localcloud_settings: Any) -> None:
    ssm = cloud.client("ssm")
    localcloud_settings.update_settings(
        {"faults": {"action_errors": [{"action": "GetParameter", "code": "AccessDeniedException", "times": None}]}}
    )
    for _attempt in range(3):
        with pytest.raises(ClientError) as caught:
            ssm.get_parameter(Name=cloud.base_image_parameter)
        assert _code(caught) == ("AccessDeniedException", 400)
    localcloud_settings.update_settings({"faults": {"action_errors": []}})
    assert ssm.get_parameter(Name=cloud.base_image_parameter)["Parameter"]["Value"].startswith("ami-")


def test_copy_into_one_region_fails_by_api_or_by_state(cloud: RunningCloud, localcloud_settings: Any) -> None:
    source = cloud.base_image_id("us-east-1")
    localcloud_settings.update_settings(
        {"faults": {"copy_image_fail_regions": {"eu-central-1": "api", "ap-south-1": "state"}}}
    )
    with pytest.raises(ClientError) as caught:
        cloud.client("ec2", "eu-central-1").copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="fails-api")
    assert _code(caught)[0] == "Unsupported"
    failing = cloud.client("ec2", "ap-south-1")
    copy_id = failing.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="fails-state")["ImageId"]
    with pytest.raises(Exception, match="failed"):
        waiter(failing, "image_available", ImageIds=[copy_id])
    assert failing.describe_images(ImageIds=[copy_id])["Images"][0]["State"] == "failed"
    fine = cloud.client("ec2", "eu-north-1")
    good = fine.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="works")["ImageId"]
    waiter(fine, "image_available", ImageIds=[good])
    for client, image in ((failing, copy_id), (fine, good)):
        snapshot = client.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        client.deregister_image(ImageId=image)
        client.delete_snapshot(SnapshotId=snapshot)


def test_copy_latency_changed_mid_run_takes_effect(cloud: RunningCloud, localcloud_settings: Any) -> None:
    localcloud_settings.update_settings({"latency": {"copy_pending_regions": {"sa-east-1": 3600}}})
    ec2 = cloud.client("ec2", "sa-east-1")
    image = ec2.copy_image(SourceImageId=cloud.base_image_id(), SourceRegion="us-east-1", Name="slow-copy")["ImageId"]
    for _attempt in range(3):
        assert ec2.describe_images(ImageIds=[image])["Images"][0]["State"] == "pending"
    localcloud_settings.update_settings({"latency": {"copy_pending_regions": {}}})
    waiter(ec2, "image_available", ImageIds=[image])
    snapshot = ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    ec2.deregister_image(ImageId=image)
    ec2.delete_snapshot(SnapshotId=snapshot)


def test_instance_pending_and_stopping_latency(cloud: RunningCloud, localcloud_settings: Any) -> None:
    ec2 = cloud.client("ec2")
    localcloud_settings.update_settings({"latency": {"instance_pending": 3600}})
    reservation = ec2.run_instances(ImageId=cloud.base_image_id(), MinCount=1, MaxCount=1)
    instance_id = reservation["Instances"][0]["InstanceId"]
    ip = reservation["Instances"][0]["PrivateIpAddress"]

    def sshd_accepts() -> bool:
        try:
            socket.create_connection((ip, SSH_PORT), timeout=1).close()
        except OSError:
            return False
        return True

    wait_until(sshd_accepts, what="sshd to accept")
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "pending"  # sshd is up, but the configured launch latency has not passed
    localcloud_settings.update_settings({"latency": {"instance_pending": 0, "instance_stopping": 3600}})
    waiter(ec2, "instance_running", InstanceIds=[instance_id])
    ec2.stop_instances(InstanceIds=[instance_id])
    for _attempt in range(3):
        state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
        assert state == "stopping"
    localcloud_settings.update_settings({"latency": {"instance_stopping": 0}})
    waiter(ec2, "instance_stopped", InstanceIds=[instance_id])
    ec2.terminate_instances(InstanceIds=[instance_id])
    waiter(ec2, "instance_terminated", InstanceIds=[instance_id])


def test_fault_injected_mid_run_hits_a_running_workflow(cloud: RunningCloud, localcloud_settings: Any) -> None:
    ec2 = cloud.client("ec2")
    (instance,) = launch(cloud, ec2)
    localcloud_settings.update_settings(
        {"faults": {"action_errors": [{"action": "StopInstances", "code": "UnauthorizedOperation", "times": 1}]}}
    )
    with pytest.raises(ClientError) as caught:
        ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    assert _code(caught) == ("UnauthorizedOperation", 400)
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    waiter(ec2, "instance_terminated", InstanceIds=[instance["InstanceId"]])
