# SPDX-License-Identifier: GPL-3.0-or-later
"""The endpoint itself: base image, SSM, STS, EC2's own errors on bad launches, request log, control."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from localcloud.control import ControlError
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


def _error_code(call, **kwargs) -> str:  # type: ignore[no-untyped-def]
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


def test_control_endpoint_validates_and_reports_settings(cloud: RunningCloud, localcloud_settings) -> None:  # type: ignore[no-untyped-def]
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
