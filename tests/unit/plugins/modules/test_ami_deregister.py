# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY
from ansible_collections.bakery.ami.plugins.modules import ami_deregister

RunModule = Callable[..., dict[str, Any]]
NOW = datetime.datetime.now(datetime.UTC)


def moto_image(region: str, image_id: str) -> Any:
    return ec2_backends[DEFAULT_ACCOUNT_ID][region].amis[image_id]


def make_image(client: Any, instance_id: str, name: str, age_days: float, tags: dict[str, str] | None = None) -> str:
    """An image of the account created `age_days` ago (moto stamps them all 'now', so the date is set here)."""
    spec = [{"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    image_id = str(client.create_image(InstanceId=instance_id, Name=name, TagSpecifications=spec)["ImageId"])
    moto_image(client.meta.region_name, image_id).creation_date = NOW - datetime.timedelta(days=age_days)
    return image_id


def image_snapshot(client: Any, image_id: str) -> str:
    image = client.describe_images(ImageIds=[image_id])["Images"][0]
    return str(image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"])


def own_image_ids(client: Any) -> set[str]:
    return {i["ImageId"] for i in client.describe_images(Owners=["self"])["Images"]}


def own_snapshot_ids(client: Any) -> set[str]:
    return {s["SnapshotId"] for s in client.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def test_by_ids_deregisters_and_deletes_snapshots(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    doomed = make_image(ec2, instance_id, "web-1", 3)
    other = make_image(ec2, instance_id, "web-2", 2)
    snap = image_snapshot(ec2, doomed)
    result = run_module(ami_deregister.main, {"image_ids": [doomed]})
    assert result["changed"] is True, result
    assert result["deregistered"] == {"us-east-1": [doomed]}
    assert result["deleted_snapshots"] == {"us-east-1": [snap]}
    assert result["skipped"] == []
    assert own_image_ids(ec2) == {other}
    assert snap not in own_snapshot_ids(ec2)

    again = run_module(ami_deregister.main, {"image_ids": [doomed]})
    assert again["changed"] is False
    assert again["skipped"] == [{"image_id": doomed, "region": None, "reason": "not found among the images of self in us-east-1"}]


def test_keep_latest_by_name(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    ages = {make_image(ec2, instance_id, f"web-{n}", age): age for n, age in enumerate([5, 1, 3, 2, 4])}
    unrelated = make_image(ec2, instance_id, "db-1", 10)
    result = run_module(ami_deregister.main, {"name": "web-*", "keep_latest": 2})
    oldest_first = sorted(ages, key=lambda i: -ages[i])
    assert result["deregistered"]["us-east-1"] == oldest_first[:3]
    assert own_image_ids(ec2) == set(oldest_first[3:]) | {unrelated}
    assert run_module(ami_deregister.main, {"name": "web-*", "keep_latest": 2})["changed"] is False


def test_keep_latest_per_tag_group(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    web_old = make_image(ec2, instance_id, "a-1", 3, {"role": "web", "bakery:bake-id": "1"})
    web_new = make_image(ec2, instance_id, "a-2", 1, {"role": "web", "bakery:bake-id": "2"})
    db_only = make_image(ec2, instance_id, "a-3", 9, {"role": "db", "bakery:bake-id": "3"})
    result = run_module(ami_deregister.main, {"filters": {"tag-key": "bakery:bake-id"}, "keep_latest": 1, "group_by": "tag:role"})
    assert result["deregistered"] == {"us-east-1": [web_old]}
    assert own_image_ids(ec2) == {web_new, db_only}


def test_keep_latest_per_name_prefix(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    web_old = make_image(ec2, instance_id, "web-2027-01-01", 40)
    web_new = make_image(ec2, instance_id, "web-2027-02-01", 10)
    db = make_image(ec2, instance_id, "db-2027-01-01", 40)
    result = run_module(ami_deregister.main, {"name": "*-2027-*", "keep_latest": 1, "group_by": "name_prefix"})
    assert result["deregistered"] == {"us-east-1": [web_old]}
    assert own_image_ids(ec2) == {web_new, db}


def test_older_than_with_keep_latest(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    ancient = make_image(ec2, instance_id, "web-1", 100)
    old = make_image(ec2, instance_id, "web-2", 60)
    recent = make_image(ec2, instance_id, "web-3", 5)
    fresh = make_image(ec2, instance_id, "web-4", 1)
    result = run_module(ami_deregister.main, {"name": "web-*", "older_than": "30d", "keep_latest": 1})
    assert result["deregistered"] == {"us-east-1": [ancient, old]}
    assert own_image_ids(ec2) == {recent, fresh}


def test_images_in_use_are_skipped_unless_included(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    running = make_image(ec2, instance_id, "web-1", 3)
    stopped = make_image(ec2, instance_id, "web-2", 2)
    free = make_image(ec2, instance_id, "web-3", 1)
    run_id = ec2.run_instances(ImageId=running, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    stop_id = ec2.run_instances(ImageId=stopped, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[stop_id])

    result = run_module(ami_deregister.main, {"name": "web-*"})
    assert result["deregistered"] == {"us-east-1": [free]}
    assert sorted(result["skipped"], key=lambda s: s["image_id"]) == sorted(
        [
            {"image_id": running, "region": "us-east-1", "reason": f"in use by instance {run_id} (running)"},
            {"image_id": stopped, "region": "us-east-1", "reason": f"in use by instance {stop_id} (stopped)"},
        ],
        key=lambda s: s["image_id"],
    )
    assert {running, stopped} <= own_image_ids(ec2)

    forced = run_module(ami_deregister.main, {"name": "web-*", "include_in_use": True})
    assert sorted(forced["deregistered"]["us-east-1"]) == sorted([running, stopped])
    assert forced["skipped"] == []


def test_snapshot_used_by_another_image_is_kept(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    first = make_image(ec2, instance_id, "web-1", 3)
    second = make_image(ec2, instance_id, "web-2", 1)
    shared = image_snapshot(ec2, first)
    # moto cannot register an image on an existing snapshot; point the second image at the first's.
    moto_image("us-east-1", second).ebs_snapshot = moto_image("us-east-1", first).ebs_snapshot
    result = run_module(ami_deregister.main, {"image_ids": [first]})
    assert result["deregistered"] == {"us-east-1": [first]}
    assert result["deleted_snapshots"] == {"us-east-1": []}
    assert result["kept_snapshots"] == {"us-east-1": [shared]}
    assert shared in own_snapshot_ids(ec2)


def test_delete_snapshots_false_keeps_them(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    image = make_image(ec2, instance_id, "web-1", 3)
    snap = image_snapshot(ec2, image)
    result = run_module(ami_deregister.main, {"image_ids": [image], "delete_snapshots": False})
    assert result["deregistered"] == {"us-east-1": [image]}
    assert result["kept_snapshots"] == {"us-east-1": [snap]}
    assert snap in own_snapshot_ids(ec2)


def test_check_mode_lists_exactly_what_goes(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    images = [make_image(ec2, instance_id, f"web-{n}", 10 - n) for n in range(4)]
    moto_image("us-east-1", images[1]).ebs_snapshot = moto_image("us-east-1", images[0]).ebs_snapshot
    in_use = make_image(ec2, instance_id, "web-9", 20)
    ec2.run_instances(ImageId=in_use, MinCount=1, MaxCount=1)
    args = {"name": "web-*", "keep_latest": 1}
    images_before, snaps_before = own_image_ids(ec2), own_snapshot_ids(ec2)

    planned = run_module(ami_deregister.main, args, check_mode=True, diff=True)
    assert planned["changed"] is True
    assert own_image_ids(ec2) == images_before and own_snapshot_ids(ec2) == snaps_before
    assert planned["diff"]["after"]["images"]["us-east-1"] == sorted([images[3], in_use])

    done = run_module(ami_deregister.main, args)
    for key in ("deregistered", "deleted_snapshots", "kept_snapshots", "skipped"):
        assert planned[key] == done[key], key
    assert done["deregistered"]["us-east-1"] == images[:3]
    # images 0 and 1 shared a snapshot: it goes once both are gone.
    assert len(done["deleted_snapshots"]["us-east-1"]) == 2
    assert own_image_ids(ec2) == {images[3], in_use}


def test_several_regions(ec2: Any, instance_id: str, make_instance: Callable[..., str], run_module: RunModule) -> None:
    west = boto3.client("ec2", region_name="eu-west-1")
    east_image = make_image(ec2, instance_id, "web-1", 3)
    west_image = make_image(west, make_instance(west), "web-1", 3)
    result = run_module(ami_deregister.main, {"name": "web-1", "regions": ["us-east-1", "eu-west-1"]})
    assert result["deregistered"] == {"us-east-1": [east_image], "eu-west-1": [west_image]}
    assert own_image_ids(ec2) == set() and own_image_ids(west) == set()


def test_filters_only_reach_own_images(ec2: Any, instance_id: str, run_module: RunModule) -> None:
    public = set(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])
    result = run_module(ami_deregister.main, {"filters": {"name": "amzn2-ami-hvm-*"}})
    assert result["changed"] is False and result["deregistered"] == {"us-east-1": []}
    assert set(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]) == public


BAD_INPUT = [
    pytest.param({"keep_latest": -1}, "Invalid keep_latest -1", id="keep-latest-negative"),
    pytest.param({"image_ids": ["ami-1"], "filters": {"name": "x"}, "name": None}, "image_ids and filters are mutually exclusive", id="ids-and-filters"),
    pytest.param({"image_ids": ["ami-1"]}, "image_ids and name are mutually exclusive", id="ids-and-name"),
    pytest.param({"name": None}, "give image_ids, name or filters", id="no-selection"),
    pytest.param({"regions": ["us-east-1", "mars-north-2"]}, "Unknown region 'mars-north-2'", id="unknown-region"),
    pytest.param({"older_than": "a month"}, "Invalid older_than 'a month'", id="older-than-unreadable"),
    pytest.param({"keep_latest": 1, "group_by": "owner"}, "Invalid group_by 'owner'", id="group-by-unknown"),
    pytest.param({"group_by": "name_prefix"}, "group_by only applies with keep_latest", id="group-by-without-keep"),
]


@pytest.mark.parametrize(("override", "message"), BAD_INPUT)
def test_bad_input_fails_before_any_call(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule, override: dict[str, Any], message: str
) -> None:
    # A client with no responses queued: any AWS call would fail the test with a Stubber error.
    client = boto3.client("ec2", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(ami_deregister, "aws_client", lambda module, service="ec2", region=None: RetryingBotoClientWrapper(client, RETRY))
    args = {k: v for k, v in {"name": "web-*", **override}.items() if v is not None}
    result = run_module(ami_deregister.main, args)
    assert result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert "\n" not in result["msg"] and "exception" not in result
    assert result["deregistered"] == {} and result["deleted_snapshots"] == {}
    stubber.assert_no_pending_responses()


def test_aws_error_is_one_sentence(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    client = boto3.client("ec2", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("describe_images", service_error_code="UnauthorizedOperation", service_message="You are not authorized.")
    stubber.activate()
    monkeypatch.setattr(ami_deregister, "aws_client", lambda module, service="ec2", region=None: RetryingBotoClientWrapper(client, RETRY))
    result = run_module(ami_deregister.main, {"name": "web-*"})
    assert result["failed"] is True
    assert result["msg"] == "Could not deregister images in us-east-1: UnauthorizedOperation: You are not authorized."


def test_throttled_listing_is_retried(aws_env: None, monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    client = boto3.client("ec2", region_name="us-east-1")
    stubber = Stubber(client)
    image = {"ImageId": "ami-0123456789abcdef0", "Name": "web-1", "State": "available", "CreationDate": "2020-01-01T00:00:00.000Z"}
    stubber.add_client_error("describe_images", service_error_code="RequestLimitExceeded", http_status_code=400)
    stubber.add_response("describe_images", {"Images": [image]}, {"Owners": ["self"], "Filters": [{"Name": "name", "Values": ["web-*"]}]})
    stubber.add_client_error("describe_instances", service_error_code="Throttling", http_status_code=400)
    stubber.add_response("describe_instances", {"Reservations": []})
    stubber.add_response("describe_images", {"Images": [image]}, {"Owners": ["self"], "Filters": []})
    stubber.activate()
    monkeypatch.setattr(ami_deregister, "aws_client", lambda module, service="ec2", region=None: RetryingBotoClientWrapper(client, RETRY))
    result = run_module(ami_deregister.main, {"name": "web-*"}, check_mode=True)
    stubber.assert_no_pending_responses()
    assert result["deregistered"] == {"us-east-1": ["ami-0123456789abcdef0"]}, result.get("msg")
    assert len(sleeps) == 2
