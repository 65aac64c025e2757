# SPDX-License-Identifier: GPL-3.0-or-later
"""The endpoint itself: base image, SSM, STS, EC2's own errors on bad launches, request log, control."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from localcloud.control import ControlClient, ControlError
from localcloud.testing import RunningCloud

REGIONS = ["us-east-1", "eu-west-1"]


@pytest.mark.parametrize("region", REGIONS)
def test_base_image_found_by_name_and_by_parameter(cloud: RunningCloud, region: str) -> None:
    ec2 = cloud.client("ec2", region)
    by_name = ec2.describe_images(Filters=[{"Name": "name", "Values": ["bakery-local-base-debian-12-*"]}])["Images"]
    assert [image["Name"] for image in by_name] == [cloud.base_image_name]
    image = by_name[0]
    assert image["State"] == "available"
    assert image["ImageOwnerAlias"] == "amazon"
    assert cloud.base_image_id(region) == image["ImageId"]
    assert [i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]] == [image["ImageId"]]


def test_sts_answers_the_account(cloud: RunningCloud) -> None:
    assert cloud.client("sts").get_caller_identity()["Account"].isdigit()


def _error_code(call: Callable[..., object], **kwargs: object) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def test_bad_launches_fail_with_ec2_codes_and_leave_nothing(cloud: RunningCloud) -> None:
    ec2 = cloud.client("ec2")
    base = cloud.base_image_id()
    before = ec2.describe_instances()["Reservations"]
    assert _error_code(ec2.run_instances, ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1) == "InvalidAMIID.NotFound"
    assert _error_code(ec2.run_instances, ImageId=base, MinCount=1, MaxCount=1, KeyName="no-such-key") == "InvalidKeyPair.NotFound"
    assert _error_code(
        ec2.run_instances, ImageId=base, MinCount=1, MaxCount=1, SecurityGroupIds=["sg-0123456789abcdef0"]
    ) == "InvalidGroup.NotFound"
    assert _error_code(ec2.run_instances, ImageId=base, MinCount=1, MaxCount=1, SecurityGroups=["no-such-group"]) == "InvalidGroup.NotFound"
    assert ec2.describe_instances()["Reservations"] == before


def test_request_log_counts_calls_with_outcome(cloud: RunningCloud) -> None:
    ec2 = cloud.client("ec2", "eu-west-1")
    mark = cloud.mark()
    ec2.describe_images(Owners=["self"])
    ec2.describe_images(Owners=["self"])
    _error_code(ec2.describe_images, ImageIds=["ami-0000000000000dead"])
    entries = [e for e in cloud.requests(since=mark) if e["action"] == "DescribeImages"]
    assert [(e["region"], e["service"], e["outcome"], e["error_code"]) for e in entries] == [
        ("eu-west-1", "ec2", "ok", None),
        ("eu-west-1", "ec2", "ok", None),
        ("eu-west-1", "ec2", "error", "InvalidAMIID.NotFound"),
    ]
    assert cloud.count(action="DescribeImages", region="eu-west-1", since=mark) == 3
    assert cloud.count(action="DescribeImages", outcome="error", since=mark) == 1


def test_control_endpoint_validates_and_reports_settings(cloud: RunningCloud, localcloud_settings: ControlClient) -> None:
    with pytest.raises(ControlError, match="throttle_rate"):
        localcloud_settings.update_settings({"faults": {"throttle_rate": 3}})
    with pytest.raises(ControlError, match="unknown setting"):
        localcloud_settings.update_settings({"latency": {"warp": 1}})
    changed = localcloud_settings.update_settings({"latency": {"image_pending": 5}})
    assert changed["latency"]["image_pending"] == 5
    assert localcloud_settings.settings()["latency"]["image_pending"] == 5
    assert localcloud_settings.reset()["latency"]["image_pending"] == 0
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(cloud.endpoint_url + "/_localcloud/nothing", timeout=5)  # noqa: S310
    health = json.loads(urllib.request.urlopen(cloud.endpoint_url + "/_localcloud/health", timeout=5).read())  # noqa: S310
    assert health["pid"] == cloud.pid


def test_copy_tags_deprecation_and_encryption_defaults(cloud: RunningCloud) -> None:
    from localcloud.testing import waiter

    ec2 = cloud.client("ec2", "us-west-2")
    copy_id = ec2.copy_image(
        SourceImageId=cloud.base_image_id(), SourceRegion="us-east-1", Name="tagged-copy", Encrypted=True,
        TagSpecifications=[
            {"ResourceType": "image", "Tags": [{"Key": "team", "Value": "bakery"}]},
            {"ResourceType": "snapshot", "Tags": [{"Key": "team", "Value": "bakery-snap"}]},
        ],
    )["ImageId"]
    waiter(ec2, "image_available", ImageIds=[copy_id])
    image = ec2.describe_images(ImageIds=[copy_id])["Images"][0]
    assert image["Tags"] == [{"Key": "team", "Value": "bakery"}]
    ebs = image["BlockDeviceMappings"][0]["Ebs"]
    snapshot = ec2.describe_snapshots(SnapshotIds=[ebs["SnapshotId"]])["Snapshots"][0]
    assert snapshot["Tags"] == [{"Key": "team", "Value": "bakery-snap"}]
    assert snapshot["Encrypted"] is True and ":us-west-2:" in snapshot["KmsKeyId"]
    assert ebs["Encrypted"] is True

    assert "DeprecationTime" not in image
    ec2.enable_image_deprecation(ImageId=copy_id, DeprecateAt="2031-05-06T07:08:40Z")
    assert ec2.describe_images(ImageIds=[copy_id])["Images"][0]["DeprecationTime"] == "2031-05-06T07:09:00.000Z"
    ec2.disable_image_deprecation(ImageId=copy_id)
    assert "DeprecationTime" not in ec2.describe_images(ImageIds=[copy_id])["Images"][0]
    assert _error_code(ec2.enable_image_deprecation, ImageId="ami-0000000000000dead", DeprecateAt="2031-01-01T00:00:00Z") == (
        "InvalidAMIID.NotFound"
    )
    assert _error_code(ec2.copy_image, SourceImageId=copy_id, SourceRegion="us-west-2", Name="tagged-copy") == (
        "InvalidAMIName.Duplicate"
    )
    assert _error_code(ec2.deregister_image, ImageId=cloud.base_image_id("us-west-2")) == "AuthFailure"
    ec2.deregister_image(ImageId=copy_id)
    ec2.delete_snapshot(SnapshotId=ebs["SnapshotId"])
    assert _error_code(ec2.describe_snapshots, SnapshotIds=[ebs["SnapshotId"]]) == "InvalidSnapshot.NotFound"


def test_copy_image_client_token_and_deregister_with_snapshots(cloud: RunningCloud) -> None:
    from localcloud.testing import waiter

    ec2 = cloud.client("ec2", "ca-central-1")
    request = {"SourceImageId": cloud.base_image_id(), "SourceRegion": "us-east-1", "Name": "token-copy",
               "ClientToken": "bake-1234"}
    first = ec2.copy_image(**request)["ImageId"]
    assert ec2.copy_image(**request)["ImageId"] == first
    assert len(ec2.describe_images(Filters=[{"Name": "name", "Values": ["token-copy"]}])["Images"]) == 1
    waiter(ec2, "image_available", ImageIds=[first])
    snapshot = ec2.describe_images(ImageIds=[first])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    answer = ec2.deregister_image(ImageId=first, DeleteAssociatedSnapshots=True)
    assert answer["DeleteSnapshotResults"] == [{"SnapshotId": snapshot, "ReturnCode": "success"}]
    assert _error_code(ec2.describe_snapshots, SnapshotIds=[snapshot]) == "InvalidSnapshot.NotFound"
