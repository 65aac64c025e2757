# SPDX-License-Identifier: GPL-3.0-or-later
"""The copy engine's helpers: KMS key checks, the per-region work in parallel, tags, deprecation, rollback."""
from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._copy import CopyEngine, RegionOutcome, RegionPlan, in_parallel, kms_key_problem
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY

REGION = "us-west-2"


def engine(client: Any, deprecation: str | None = None) -> CopyEngine:
    return CopyEngine(
        {REGION: client}, "us-east-1", "ami-src", None, wait_timeout=60, sleep=lambda s: None, deprecation=lambda current: deprecation
    )


def copy(state: str = "available", **extra: Any) -> dict[str, Any]:
    return {"ImageId": "ami-copy", "State": state, "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-1"}}], **extra}


# ---- KMS keys


@pytest.fixture
def stubbed_kms(aws_env: None) -> tuple[Any, Stubber]:
    client = boto3.client("kms", region_name=REGION)
    return RetryingBotoClientWrapper(client, RETRY), Stubber(client)


def key(state: str, usage: str = "ENCRYPT_DECRYPT") -> dict[str, Any]:
    return {"KeyMetadata": {"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "KeyState": state, "KeyUsage": usage}}


def test_kms_key_problem(stubbed_kms: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_kms
    stubber.add_response("describe_key", key("Enabled"), {"KeyId": "alias/images"})
    stubber.add_response("describe_key", key("Disabled"))
    stubber.add_response("describe_key", key("Enabled", "SIGN_VERIFY"))
    stubber.add_client_error("describe_key", "NotFoundException", service_message="Alias alias/images is not found.")
    with stubber:
        assert kms_key_problem(client, "alias/images") is None
        assert kms_key_problem(client, "alias/images") == "it is Disabled with usage ENCRYPT_DECRYPT"
        assert kms_key_problem(client, "alias/images") == "it is Enabled with usage SIGN_VERIFY"
        assert kms_key_problem(client, "alias/images") == "NotFoundException: Alias alias/images is not found."


# ---- regions in parallel


def test_in_parallel_runs_every_region_at_once_and_keeps_their_order() -> None:
    regions = ["us-west-2", "eu-west-1", "ap-southeast-2"]
    everyone_started = threading.Barrier(len(regions), timeout=10)

    def work(region: str) -> str:
        everyone_started.wait()  # only passes when all regions run at the same time
        return region.upper()

    result = in_parallel(regions, work)
    assert list(result) == regions and result["eu-west-1"] == "EU-WEST-1"
    assert in_parallel([], work) == {}


# ---- tags and deprecation of a copy


def test_ensure_tags_adds_only_missing_tags_to_the_copy_and_its_snapshots(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    image = copy(Tags=[{"Key": "team", "Value": "web"}, {"Key": "extra", "Value": "kept"}])
    stubber.add_response("create_tags", {}, {"Resources": ["ami-copy", "snap-1"], "Tags": [{"Key": "release", "Value": "1"}]})
    with stubber:
        assert engine(client).ensure_tags(client, image, {"team": "web", "release": "1"}, check_mode=True) is True
        assert engine(client).ensure_tags(client, image, {"team": "web", "release": "1"}, check_mode=False) is True
        assert engine(client).ensure_tags(client, image, {"team": "web", "release": "1"}, check_mode=False) is False
        stubber.assert_no_pending_responses()


def test_ensure_deprecation_only_on_an_available_copy(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response("enable_image_deprecation", {"Return": True}, {"ImageId": "ami-copy", "DeprecateAt": "2099-01-31T00:00:00Z"})
    wanted = engine(client, deprecation="2099-01-31T00:00:00Z")
    with stubber:
        assert wanted.ensure_deprecation(client, copy("pending"), check_mode=False) is False
        assert wanted.ensure_deprecation(client, copy(), check_mode=True) is True
        available = copy()
        assert wanted.ensure_deprecation(client, available, check_mode=False) is True
        assert available["DeprecationTime"] == "2099-01-31T00:00:00Z"
        assert engine(client, deprecation=None).ensure_deprecation(client, copy(), check_mode=False) is False
        stubber.assert_no_pending_responses()


def test_describe_of_a_copy_not_listed_yet_is_pending(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response("describe_images", {"Images": []}, {"ImageIds": ["ami-copy"]})
    with stubber:
        assert engine(client).describe(REGION, "ami-copy") == {"ImageId": "ami-copy", "State": "pending"}


# ---- rollback


def test_rollback_deregisters_a_new_copy_and_deletes_its_snapshots(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response("describe_images", {"Images": [copy("pending")]}, {"ImageIds": ["ami-copy"]})
    stubber.add_response("deregister_image", {}, {"ImageId": "ami-copy"})
    stubber.add_response("describe_images", {"Images": []}, {"Owners": ["self"], "Filters": []})
    stubber.add_response("delete_snapshot", {}, {"SnapshotId": "snap-1"})
    with stubber:
        assert engine(client).rollback(RegionOutcome(REGION, image=copy("pending"), created=True)) is None
        stubber.assert_no_pending_responses()


def test_rollback_of_a_copy_ec2_no_longer_lists_uses_what_the_run_saw(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("describe_images", "InvalidAMIID.NotFound")
    stubber.add_client_error("deregister_image", "InvalidAMIID.NotFound")
    stubber.add_response("describe_images", {"Images": []})
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.NotFound")
    with stubber:
        assert engine(client).rollback(RegionOutcome(REGION, image=copy("pending"), created=True)) is None
        stubber.assert_no_pending_responses()


def test_rollback_reports_an_aws_error_as_text_and_leaves_reused_copies(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("describe_images", "UnauthorizedOperation", service_message="You are not authorized.")
    with stubber:
        assert engine(client).rollback(RegionOutcome(REGION, image=copy(), created=True)) == "UnauthorizedOperation: You are not authorized."
        # A copy this run did not make is never rolled back: no call.
        assert engine(client).rollback(RegionOutcome(REGION, image=copy(), created=False)) is None


def test_any_failure_of_one_region_is_that_regions_error() -> None:
    # Not only AWS errors: the region fails, and the module rolls the other regions back.
    class Broken:
        def copy_image(self, **params: Any) -> dict[str, Any]:
            raise RuntimeError("unexpected answer\nwith detail")

    plan = RegionPlan(REGION, "web-1", None, False, None, {})
    outcome = engine(Broken()).start(plan, check_mode=False)
    assert outcome.error == "unexpected answer" and not outcome.created
