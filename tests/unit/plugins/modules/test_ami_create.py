# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY
from ansible_collections.bakery.ami.plugins.module_utils._waiter import IMAGE_AVAILABLE
from ansible_collections.bakery.ami.plugins.modules import ami_create

RunModule = Callable[..., dict[str, Any]]
ACCOUNT = "111122223333"


def images_named(ec2: Any, name: str) -> list[dict[str, Any]]:
    return list(ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"])


def own_images(ec2: Any) -> list[dict[str, Any]]:
    return list(ec2.describe_images(Owners=["self"])["Images"])


def snapshot_tags(ec2: Any, snapshot_id: str) -> dict[str, str]:
    snap = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    return {t["Key"]: t["Value"] for t in snap.get("Tags", [])}


def volume_permissions(ec2: Any, snapshot_id: str) -> list[str]:
    attr = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    return sorted(p["UserId"] for p in attr["CreateVolumePermissions"] if "UserId" in p)


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Waiter's first delay is for AWS; moto's images are available at once. Tests that look
    # at the sleeps replace this with a recorder of their own.
    monkeypatch.setattr(ami_create, "_sleep", lambda seconds: None)


# ---- behaviour against moto


def test_creates_tagged_image_and_second_run_is_unchanged(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    args = {"instance_id": instance_id, "name": "web-20270101", "description": "web", "tags": {"role": "web"}}
    first = run_module(ami_create.main, args)
    assert first["changed"] is True and not first["failed"], first
    image = first["image"]
    assert first["image_id"] == image["image_id"]
    assert image["state"] == "available"
    assert image["name"] == "web-20270101"
    assert image["tags"] == {"role": "web"}
    assert image["snapshot_ids"]
    assert snapshot_tags(ec2, image["snapshot_ids"][0]) == {"role": "web"}
    assert first["replaced_image_id"] is None

    second = run_module(ami_create.main, args)
    assert second["changed"] is False, second
    assert second["image_id"] == first["image_id"]
    assert len(images_named(ec2, "web-20270101")) == 1


def test_existing_image_tags_brought_to_requested_state(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    first = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-1", "tags": {"role": "web", "old": "x"}})
    snap = first["image"]["snapshot_ids"][0]

    kept = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-1", "tags": {"role": "db"}, "purge_tags": False})
    assert kept["changed"] is True
    assert kept["image"]["tags"] == {"role": "db", "old": "x"}
    assert snapshot_tags(ec2, snap) == {"role": "db", "old": "x"}

    purged = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-1", "tags": {"role": "db"}}, diff=True)
    assert purged["changed"] is True
    assert purged["image"]["tags"] == {"role": "db"}
    assert snapshot_tags(ec2, snap) == {"role": "db"}
    assert purged["diff"]["before"]["tags"] == {"role": "db", "old": "x"}
    assert purged["diff"]["after"]["tags"] == {"role": "db"}
    assert len(own_images(ec2)) == 1


def test_snapshot_tags_override_image_tags(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    args = {"instance_id": instance_id, "name": "web-2", "tags": {"role": "web"}, "snapshot_tags": {"kind": "root"}}
    result = run_module(ami_create.main, args)
    assert result["image"]["tags"] == {"role": "web"}
    assert snapshot_tags(ec2, result["image"]["snapshot_ids"][0]) == {"kind": "root"}
    assert run_module(ami_create.main, args)["changed"] is False


def test_launch_permissions_and_snapshot_permissions_follow(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    args = {"instance_id": instance_id, "name": "shared-1", "launch_permissions": {"user_ids": [ACCOUNT]}}
    result = run_module(ami_create.main, args)
    assert result["image"]["launch_permissions"] == [{"UserId": ACCOUNT}]
    snap = result["image"]["snapshot_ids"][0]
    assert volume_permissions(ec2, snap) == [ACCOUNT]
    assert run_module(ami_create.main, args)["changed"] is False

    other = "444455556666"
    moved = run_module(ami_create.main, {**args, "launch_permissions": {"user_ids": [other]}, "snapshot_create_volume_permissions": []})
    assert moved["changed"] is True
    assert moved["image"]["launch_permissions"] == [{"UserId": other}]
    assert volume_permissions(ec2, snap) == []


def test_public_image_needs_allow_public_and_then_works(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    args = {"instance_id": instance_id, "name": "public-1", "launch_permissions": {"group_names": ["all"]}, "allow_public": True}
    result = run_module(ami_create.main, args)
    assert not result["failed"], result
    assert result["image"]["public"] is True
    assert {"Group": "all"} in result["image"]["launch_permissions"]


def test_check_mode_creates_nothing_and_diff_shows_plan(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    before = len(own_images(ec2))
    args = {"instance_id": instance_id, "name": "web-check", "tags": {"role": "web"}}
    result = run_module(ami_create.main, args, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["image_id"] is None and result["image"] is None
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["name"] == "web-check"
    assert result["diff"]["after"]["tags"] == {"role": "web"}
    assert len(own_images(ec2)) == before


def test_check_mode_on_existing_image_changes_nothing(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    created = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-3", "tags": {"role": "web"}})
    args = {"instance_id": instance_id, "name": "web-3", "tags": {"role": "db"}, "launch_permissions": {"user_ids": [ACCOUNT]}}
    result = run_module(ami_create.main, args, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["image_id"] == created["image_id"]
    assert result["diff"]["after"]["tags"] == {"role": "db"}
    assert result["diff"]["after"]["launch_permissions"] == [{"UserId": ACCOUNT}]
    image = ec2.describe_images(ImageIds=[created["image_id"]])["Images"][0]
    assert {t["Key"]: t["Value"] for t in image["Tags"]} == {"role": "web"}
    attr = ec2.describe_image_attribute(ImageId=created["image_id"], Attribute="launchPermission")
    assert attr["LaunchPermissions"] == []
    unchanged = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-3", "tags": {"role": "web"}}, check_mode=True)
    assert unchanged["changed"] is False


def test_check_mode_predicts_exactly_what_the_run_then_does(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    created = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-plan", "tags": {"role": "web", "old": "x"}})
    args = {
        "instance_id": instance_id,
        "name": "web-plan",
        "tags": {"role": "db"},
        "snapshot_tags": {"kind": "root"},
        "launch_permissions": {"user_ids": [ACCOUNT]},
    }
    planned = run_module(ami_create.main, args, check_mode=True, diff=True)
    applied = run_module(ami_create.main, args, diff=True)
    assert planned["changed"] is True and applied["changed"] is True
    assert planned["diff"] == applied["diff"]
    snap = created["image"]["snapshot_ids"][0]
    assert applied["diff"]["after"]["snapshot_tags"] == {snap: {"kind": "root"}}
    assert applied["diff"]["after"]["snapshot_create_volume_permissions"] == {snap: [ACCOUNT]}
    again_planned = run_module(ami_create.main, args, check_mode=True, diff=True)
    again = run_module(ami_create.main, args)
    assert again_planned["changed"] is False and again["changed"] is False
    assert again_planned["diff"]["before"] == again_planned["diff"]["after"] == applied["diff"]["after"]


def test_force_replaces_image_and_deletes_its_snapshots(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    old = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-latest"})
    old_snap = old["image"]["snapshot_ids"][0]

    planned = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-latest", "force": True}, check_mode=True)
    assert planned["changed"] is True and planned["replaced_image_id"] == old["image_id"]
    assert planned["deleted_snapshots"] == [old_snap]
    assert [i["ImageId"] for i in images_named(ec2, "web-latest")] == [old["image_id"]]

    new = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-latest", "force": True})
    assert new["changed"] is True
    assert new["replaced_image_id"] == old["image_id"]
    assert new["image_id"] != old["image_id"]
    assert new["deleted_snapshots"] == [old_snap]
    assert [i["ImageId"] for i in images_named(ec2, "web-latest")] == [new["image_id"]]
    assert old_snap not in [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]]


def test_existing_image_returned_even_after_instance_terminated(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    first = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-4"})
    ec2.terminate_instances(InstanceIds=[instance_id])
    again = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-4"})
    assert again["changed"] is False and again["image_id"] == first["image_id"]


# ---- bad input: one sentence, nothing created

BAD_INPUT = [
    pytest.param({"name": "ab"}, "too short", id="name-too-short"),
    pytest.param({"name": "x" * 129}, "at most 128", id="name-too-long"),
    pytest.param({"name": "web#1!"}, "'!#'", id="name-bad-characters"),
    pytest.param({"region": "moon-central-1"}, "Unknown region 'moon-central-1'", id="unknown-region"),
    pytest.param({"launch_permissions": {"group_names": ["all"]}}, "allow_public: true", id="public-without-allow-public"),
    pytest.param({"launch_permissions": {"group_names": ["friends"]}}, "'friends'", id="unknown-group"),
    pytest.param({"launch_permissions": {"user_ids": ["12345"]}}, "12 digits", id="bad-account-id"),
    pytest.param({"deprecate_at": "next tuesday"}, "ISO 8601", id="deprecate-at-unreadable"),
    pytest.param({"deprecate_at": "2001-01-01T00:00:00Z"}, "in the past", id="deprecate-at-past"),
    pytest.param({"deprecate_in": "30 days"}, "such as 30d", id="deprecate-in-unreadable"),
    pytest.param({"deprecate_in": "30d", "deprecate_at": "2099-01-01"}, "mutually exclusive", id="both-deprecations"),
    pytest.param({"wait_timeout": 0}, "greater than 0", id="wait-timeout-zero"),
]


@pytest.mark.parametrize(("override", "message"), BAD_INPUT)
def test_bad_input_fails_before_any_call(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule, override: dict[str, Any], message: str
) -> None:
    # A client with no responses queued: any AWS call would fail the test with a Stubber error.
    client = boto3.client("ec2", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(ami_create, "aws_client", lambda module, service="ec2", region=None: RetryingBotoClientWrapper(client, RETRY))
    result = run_module(ami_create.main, {"instance_id": "i-0123456789abcdef0", "name": "web-1", **override})
    assert result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert "\n" not in result["msg"] and "Traceback" not in result["msg"]
    assert "exception" not in result
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("state", ["terminated", "missing"])
def test_instance_not_found_or_terminated_creates_nothing(
    ec2: Any, make_instance: Callable[..., str], run_module: RunModule, state: str
) -> None:
    instance_id = make_instance(ec2, "terminated") if state == "terminated" else "i-0123456789abcdef0"
    before = len(own_images(ec2))
    result = run_module(ami_create.main, {"instance_id": instance_id, "name": "web-1"})
    assert result["failed"] is True
    assert instance_id in result["msg"]
    assert ("terminated" if state == "terminated" else "not found") in result["msg"]
    assert "exception" not in result
    assert len(own_images(ec2)) == before


def test_tpm_support_needs_a_tpm_instance(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    result = run_module(ami_create.main, {"instance_id": instance_id, "name": "tpm-1", "tpm_support": "v2.0"})
    assert result["failed"] is True and "NitroTPM" in result["msg"]
    assert own_images(ec2) == []


# ---- exact requests (botocore Stubber)


class StubbedEC2:
    """A Stubber-backed client handed to the module instead of the real factory's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = boto3.client("ec2", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.sleeps: list[float] = []
        self.now = 0.0
        wrapped = RetryingBotoClientWrapper(self.client, RETRY)
        monkeypatch.setattr(ami_create, "aws_client", lambda module, service="ec2", region=None: wrapped)
        monkeypatch.setattr(ami_create, "_sleep", self.sleep)
        monkeypatch.setattr(ami_create, "_clock", lambda: self.now)
        # The retry policy sleeps through time.sleep.
        monkeypatch.setattr("time.sleep", self.sleep)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def add(self, method: str, response: dict[str, Any], expected: Any = None) -> None:
        self.stubber.add_response(method, response, expected)

    def error(self, method: str, code: str, expected: Any = None) -> None:
        self.stubber.add_client_error(method, service_error_code=code, service_message=f"stubbed {code}", http_status_code=400, expected_params=expected)

    def __enter__(self) -> StubbedEC2:
        self.stubber.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stubber.deactivate()


IMAGE_ID = "ami-0123456789abcdef0"
SNAP_ID = "snap-0123456789abcdef0"
INSTANCE_ID = "i-0123456789abcdef0"


def image(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "ImageId": IMAGE_ID,
        "Name": "web-1",
        "State": state,
        "CreationDate": "2027-01-01T00:00:00.000Z",
        "OwnerId": "123456789012",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": SNAP_ID}}],
        **extra,
    }


def snapshot(progress: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {"SnapshotId": SNAP_ID, "Progress": progress, "State": "pending", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}


NAME_FILTER = {"Owners": ["self"], "Filters": [{"Name": "name", "Values": ["web-1"]}]}


def queue_lookup_and_instance(ec2: StubbedEC2) -> None:
    """The look-up by name and the instance check that check mode, diff, force, tpm_support and boot_mode need first."""
    ec2.add("describe_images", {"Images": []}, NAME_FILTER)
    ec2.add("describe_instances", {"Reservations": [{"Instances": [{"InstanceId": INSTANCE_ID, "State": {"Name": "stopped", "Code": 80}}]}]})


def queue_name_taken(ec2: StubbedEC2, held_by: dict[str, Any]) -> None:
    """CreateImage answers that the name is taken; the image holding it is then looked up."""
    ec2.error("create_image", "InvalidAMIName.Duplicate")
    ec2.add("describe_images", {"Images": [held_by]}, NAME_FILTER)


def queue_converge_existing(ec2: StubbedEC2, tags: dict[str, str] | None = None) -> None:
    # An image this run did not create: its snapshots and launch permissions are read once each.
    ec2.add("describe_snapshots", {"Snapshots": [snapshot("100%", tags)]})
    ec2.add("describe_image_attribute", {"ImageId": IMAGE_ID, "LaunchPermissions": []})


def test_create_request_tags_image_and_snapshots(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    # moto cannot take snapshot TagSpecifications in CreateImage; the request itself is checked here.
    # A new image needs no look-up first, no snapshot or launch permission read-back: two calls in all.
    with StubbedEC2(monkeypatch) as ec2:
        ec2.add(
            "create_image",
            {"ImageId": IMAGE_ID},
            {
                "InstanceId": INSTANCE_ID,
                "Name": "web-1",
                "NoReboot": True,
                "TagSpecifications": [
                    {"ResourceType": "image", "Tags": [{"Key": "role", "Value": "web"}]},
                    {"ResourceType": "snapshot", "Tags": [{"Key": "kind", "Value": "root"}]},
                ],
            },
        )
        ec2.add("describe_images", {"Images": [image("available", Tags=[{"Key": "role", "Value": "web"}])]}, {"ImageIds": [IMAGE_ID]})
        args = {"instance_id": INSTANCE_ID, "name": "web-1", "no_reboot": True, "tags": {"role": "web"}, "snapshot_tags": {"kind": "root"}}
        result = run_module(ami_create.main, args)
        ec2.stubber.assert_no_pending_responses()
    assert result["changed"] is True and result["image_id"] == IMAGE_ID, result
    assert result["image"]["launch_permissions"] == [] and result["image"]["tags"] == {"role": "web"}
    assert ec2.sleeps == [IMAGE_AVAILABLE.first_delay]


def test_retried_create_never_makes_two_images(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    # CreateImage has no ClientToken: the first attempt went through but its answer was lost; the
    # retry meets the name already taken and the module returns that image instead of failing.
    with StubbedEC2(monkeypatch) as ec2:
        ec2.error("create_image", "InternalError")
        queue_name_taken(ec2, image("pending"))
        ec2.add("describe_images", {"Images": [image("pending")]}, {"ImageIds": [IMAGE_ID]})
        queue_converge_existing(ec2)
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "wait": False})
        ec2.stubber.assert_no_pending_responses()
    assert result["changed"] is True and result["image_id"] == IMAGE_ID, result
    assert result["image"]["state"] == "pending"
    assert len(ec2.sleeps) == 1  # one backoff before the retry


def test_name_taken_on_first_attempt_returns_that_image_unchanged(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule
) -> None:
    with StubbedEC2(monkeypatch) as ec2:
        queue_name_taken(ec2, image("available", Tags=[{"Key": "role", "Value": "web"}]))
        queue_converge_existing(ec2, {"role": "web"})
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "tags": {"role": "web"}})
        ec2.stubber.assert_no_pending_responses()
    assert result["changed"] is False and result["image_id"] == IMAGE_ID, result


def test_name_taken_by_a_failed_image_asks_for_force(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    with StubbedEC2(monkeypatch) as ec2:
        queue_name_taken(ec2, image("failed"))
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1"})
        ec2.stubber.assert_no_pending_responses()
    assert result["failed"] is True and "is in state failed: use force: true" in result["msg"], result


def test_terminated_instance_named_from_createimage_refusal(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    # CreateImage refuses; no image holds the name, so the instance is described to say why.
    with StubbedEC2(monkeypatch) as ec2:
        ec2.error("create_image", "IncorrectInstanceState")
        ec2.add("describe_images", {"Images": []}, NAME_FILTER)
        ec2.add(
            "describe_instances",
            {"Reservations": [{"Instances": [{"InstanceId": INSTANCE_ID, "State": {"Name": "terminated", "Code": 48}}]}]},
            {"InstanceIds": [INSTANCE_ID]},
        )
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1"})
        ec2.stubber.assert_no_pending_responses()
    assert result["failed"] is True
    assert result["msg"] == (
        f"Instance {INSTANCE_ID} is terminated: only a pending, running, stopping or stopped instance can be imaged."
    ), result["msg"]


def test_wait_retries_throttling_and_reports_available(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    # moto's images are born available, so the pending phase is played by Stubber. A short wait
    # reads no snapshot progress.
    with StubbedEC2(monkeypatch) as ec2:
        ec2.add("create_image", {"ImageId": IMAGE_ID})
        ec2.error("describe_images", "InvalidAMIID.NotFound")  # not visible yet
        ec2.add("describe_images", {"Images": [image("pending")]})
        ec2.error("describe_images", "RequestLimitExceeded")
        ec2.error("describe_images", "RequestLimitExceeded")
        ec2.add("describe_images", {"Images": [image("available")]})
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1"})
        ec2.stubber.assert_no_pending_responses()
    assert not result["failed"], result
    assert result["image"]["state"] == "available"
    # The first poll comes after FIRST_POLL_AFTER, then one sleep after each poll that was not the last.
    assert len(ec2.sleeps) == 5 and ec2.sleeps[0] == IMAGE_AVAILABLE.first_delay
    assert all(s <= IMAGE_AVAILABLE.max_delay for s in ec2.sleeps)


class SlowImageEC2:
    """An EC2 whose new image stays pending, with snapshot progress; records each call with the time it came."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.calls: list[tuple[str, float]] = []
        monkeypatch.setattr(ami_create, "aws_client", lambda module, service="ec2", region=None: self)
        monkeypatch.setattr(ami_create, "_sleep", self.sleep)
        monkeypatch.setattr(ami_create, "_clock", lambda: self.now)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def create_image(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("CreateImage", self.now))
        return {"ImageId": IMAGE_ID}

    def describe_images(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("DescribeImages", self.now))
        return {"Images": [image("pending")]}

    def describe_snapshots(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("DescribeSnapshots", self.now))
        return {"Snapshots": [snapshot("40%")]}


def test_wait_timeout_reports_snapshot_progress_read_once_the_wait_is_long(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule
) -> None:
    ec2 = SlowImageEC2(monkeypatch)
    result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "wait_timeout": 120})
    assert result["failed"] is True
    assert "Timed out after 120s" in result["msg"] and "snapshot 40%" in result["msg"], result["msg"]
    assert result["image_id"] == IMAGE_ID
    assert ec2.now <= 120
    snapshot_reads = [t for call, t in ec2.calls if call == "DescribeSnapshots"]
    image_reads = [t for call, t in ec2.calls if call == "DescribeImages"]
    # Only in the last PROGRESS_WINDOW seconds: the progress is for the timeout message.
    assert snapshot_reads and min(snapshot_reads) >= 120 - ami_create.PROGRESS_WINDOW
    assert any(t < ami_create.PROGRESS_AFTER for t in image_reads)
    assert min(image_reads) == IMAGE_AVAILABLE.first_delay


def test_throttling_until_timeout_is_never_success(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    with StubbedEC2(monkeypatch) as ec2:
        ec2.add("create_image", {"ImageId": IMAGE_ID})
        for _poll in range(30):
            ec2.error("describe_images", "RequestLimitExceeded")
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "wait_timeout": 60})
    assert result["failed"] is True and "Timed out" in result["msg"], result


def test_failed_image_is_reported(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    with StubbedEC2(monkeypatch) as ec2:
        ec2.add("create_image", {"ImageId": IMAGE_ID})
        ec2.add("describe_images", {"Images": [image("failed", StateReason={"Code": "x", "Message": "snapshot copy failed"})]})
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1"})
        ec2.stubber.assert_no_pending_responses()
    assert result["failed"] is True
    assert "state failed: snapshot copy failed" in result["msg"]


def test_deprecation_request(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    # moto lacks EnableImageDeprecation.
    with StubbedEC2(monkeypatch) as ec2:
        queue_name_taken(ec2, image("available"))
        # The image's state is read in full (the plan) before anything changes.
        queue_converge_existing(ec2)
        ec2.add("enable_image_deprecation", {"Return": True}, {"ImageId": IMAGE_ID, "DeprecateAt": "2099-01-31T12:01:00Z"})
        ec2.add("describe_images", {"Images": [image("available", DeprecationTime="2099-01-31T12:01:00.000Z")]}, {"ImageIds": [IMAGE_ID]})
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "deprecate_at": "2099-01-31T12:00:40Z"})
        ec2.stubber.assert_no_pending_responses()
    assert result["changed"] is True, result
    assert result["image"]["deprecation_time"] == "2099-01-31T12:01:00.000Z"


def test_deprecation_already_set_is_unchanged(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    with StubbedEC2(monkeypatch) as ec2:
        for deprecate in ({"deprecate_at": "2099-01-31T12:01:00Z"}, {"deprecate_in": "30d"}):
            queue_name_taken(ec2, image("available", DeprecationTime="2099-01-31T12:01:00.000Z"))
            queue_converge_existing(ec2)
            result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", **deprecate})
            assert result["changed"] is False, result
        ec2.stubber.assert_no_pending_responses()


def test_deprecate_in_on_new_image(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    sent: list[str] = []
    with StubbedEC2(monkeypatch) as ec2:
        ec2.add("create_image", {"ImageId": IMAGE_ID})
        ec2.add("describe_images", {"Images": [image("available")]})
        ec2.add("enable_image_deprecation", {"Return": True})
        ec2.add("describe_images", {"Images": [image("available")]})
        ec2.client.meta.events.register(
            "provide-client-params.ec2.EnableImageDeprecation", lambda params, **kw: sent.append(params["DeprecateAt"])
        )
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "deprecate_in": "30d"})
        ec2.stubber.assert_no_pending_responses()
    assert not result["failed"], result
    when = datetime.datetime.strptime(sent[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    delta = when - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29, hours=23) < delta <= datetime.timedelta(days=30, minutes=1)


def test_imds_support_set_on_existing_image(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    # moto accepts ModifyImageAttribute(ImdsSupport) but does not keep it.
    with StubbedEC2(monkeypatch) as ec2:
        queue_name_taken(ec2, image("available"))
        queue_converge_existing(ec2)
        ec2.add("modify_image_attribute", {}, {"ImageId": IMAGE_ID, "ImdsSupport": {"Value": "v2.0"}})
        ec2.add("describe_images", {"Images": [image("available", ImdsSupport="v2.0")]}, {"ImageIds": [IMAGE_ID]})
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "imds_support": "v2.0"})
        assert result["changed"] is True, result
        queue_name_taken(ec2, image("available", ImdsSupport="v2.0"))
        queue_converge_existing(ec2)
        again = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "imds_support": "v2.0"})
        assert again["changed"] is False, again
        ec2.stubber.assert_no_pending_responses()


def test_create_request_block_devices_and_boot_mode(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    # boot_mode checks the instance first, so the image is looked up by name before it.
    with StubbedEC2(monkeypatch) as ec2:
        queue_lookup_and_instance(ec2)
        ec2.add(
            "create_image",
            {"ImageId": IMAGE_ID},
            {
                "InstanceId": INSTANCE_ID,
                "Name": "web-1",
                "Description": "web server",
                "NoReboot": False,
                "BootModeOverride": "uefi",
                "BlockDeviceMappings": [
                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 16, "VolumeType": "gp3", "Throughput": 250, "DeleteOnTermination": True}},
                    {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
                    {"DeviceName": "/dev/sdc", "NoDevice": ""},
                ],
            },
        )
        ec2.add("describe_images", {"Images": [image("pending")]}, {"ImageIds": [IMAGE_ID]})
        args = {
            "instance_id": INSTANCE_ID,
            "name": "web-1",
            "description": "web server",
            "boot_mode": "uefi",
            "wait": False,
            "block_device_mappings": [
                {"device_name": "/dev/xvda", "volume_size": 16, "volume_type": "gp3", "throughput": 250, "delete_on_termination": True},
                {"device_name": "/dev/sdb", "virtual_name": "ephemeral0"},
                {"device_name": "/dev/sdc", "no_device": True},
            ],
        }
        result = run_module(ami_create.main, args)
        ec2.stubber.assert_no_pending_responses()
    assert result["changed"] is True and result["image"]["state"] == "pending", result


def test_no_wait_returns_the_id_of_an_image_not_listed_yet(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    with StubbedEC2(monkeypatch) as ec2:
        ec2.add("create_image", {"ImageId": IMAGE_ID})
        ec2.error("describe_images", "InvalidAMIID.NotFound")
        result = run_module(ami_create.main, {"instance_id": INSTANCE_ID, "name": "web-1", "wait": False})
        ec2.stubber.assert_no_pending_responses()
    assert result["changed"] is True and result["image_id"] == IMAGE_ID and result["image"] is None, result
