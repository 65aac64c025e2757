# SPDX-License-Identifier: GPL-3.0-or-later
"""bakery.ami.ami_copy against moto (behaviour) and botocore's Stubber (exact requests).

moto makes copies `available` at once and ignores Encrypted, KmsKeyId and TagSpecifications on
CopyImage, so the encrypted/KMS request and waiting through throttling are tested with Stubber.
"""
from __future__ import annotations

import datetime
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import ANY, Stubber
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.amis import AmiBackend

from ansible_collections.bakery.ami.plugins.module_utils import _copy
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY
from ansible_collections.bakery.ami.plugins.module_utils._waiter import WaitSettings
from ansible_collections.bakery.ami.plugins.modules import ami_copy

SOURCE_REGION = "us-east-1"
TARGETS = ["us-west-2", "eu-west-1", "ap-southeast-2"]
COPY_TAG = "bakery:copy-source"

RunModule = Callable[..., dict[str, Any]]


@pytest.fixture(autouse=True)
def no_poll_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # Polling cadence is for AWS; here it would only slow the tests down.
    monkeypatch.setattr(_copy, "COPY_AVAILABLE", WaitSettings(first_delay=0.0, delay=0.01, backoff=1.2, max_delay=0.02))


@pytest.fixture
def source_image(ec2: Any, make_instance: Callable[..., str]) -> str:
    """An image of our own in us-east-1, tagged, to copy from."""
    instance = make_instance(ec2)
    image_id = str(ec2.create_image(InstanceId=instance, Name="base-2026.11", Description="base image")["ImageId"])
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": "team", "Value": "platform"}, {"Key": "release", "Value": "11"}])
    return image_id


def client(region: str) -> Any:
    return boto3.client("ec2", region_name=region)


def own_images(region: str) -> list[dict[str, Any]]:
    return list(client(region).describe_images(Owners=["self"])["Images"])


def tags_of(region: str, resource_id: str) -> dict[str, str]:
    found = client(region).describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def copy_args(source: str, **extra: Any) -> dict[str, Any]:
    return {"source_image_id": source, "source_region": SOURCE_REGION, "regions": TARGETS, **extra}


def test_copies_to_every_region_with_tags_on_images_and_snapshots(source_image: str, run_module: RunModule) -> None:
    result = run_module(ami_copy.main, copy_args(source_image, tags={"purpose": "test"}, copy_tags=True))

    assert not result["failed"], result.get("msg", result)
    assert result["changed"] is True
    assert sorted(result["image_ids"]) == sorted(TARGETS)
    assert sorted(result["copied_regions"]) == sorted(TARGETS)
    for region in TARGETS:
        image_id = result["image_ids"][region]
        [image] = own_images(region)
        assert image["ImageId"] == image_id
        assert image["Name"] == "base-2026.11"
        expected = {"purpose": "test", "team": "platform", "release": "11", COPY_TAG: f"{SOURCE_REGION}:{source_image}"}
        assert tags_of(region, image_id) == expected
        snapshots = result["images"][region]["snapshot_ids"]
        assert snapshots
        for snap in snapshots:
            assert tags_of(region, snap) == expected
        assert result["images"][region]["tags"] == expected
        assert result["images"][region]["state"] == "available"


def test_second_run_reuses_the_copies(source_image: str, run_module: RunModule) -> None:
    first = run_module(ami_copy.main, copy_args(source_image))
    second = run_module(ami_copy.main, copy_args(source_image))

    assert not second["failed"], second
    assert second["changed"] is False
    assert second["image_ids"] == first["image_ids"]
    assert second["copied_regions"] == []
    for region in TARGETS:
        assert len(own_images(region)) == 1


def test_someone_elses_tagged_copy_is_not_reused(source_image: str, run_module: RunModule, ec2: Any) -> None:
    region = "us-west-2"
    foreign = run_module(ami_copy.main, copy_args(source_image, regions=[region]))["image_ids"][region]
    # Hand that copy to another account: it still carries the source tag, but it is not ours.
    backend = _backend(region)
    backend.amis[foreign].owner_id = "999999999999"

    result = run_module(ami_copy.main, copy_args(source_image, regions=[region]))

    assert not result["failed"], result
    assert result["changed"] is True
    assert result["image_ids"][region] != foreign


def test_region_settings_override_name_and_add_tags(source_image: str, run_module: RunModule) -> None:
    result = run_module(
        ami_copy.main,
        {
            "source_image_id": source_image,
            "source_region": SOURCE_REGION,
            "name": "copied-base",
            "tags": {"purpose": "test"},
            "regions": ["us-west-2"],
            "region_settings": [{"region": "eu-west-1", "name": "copied-base-eu", "tags": {"site": "dublin"}}],
        },
    )

    assert not result["failed"], result
    assert result["images"]["us-west-2"]["name"] == "copied-base"
    assert result["images"]["eu-west-1"]["name"] == "copied-base-eu"
    assert tags_of("eu-west-1", result["image_ids"]["eu-west-1"])["site"] == "dublin"
    assert "site" not in tags_of("us-west-2", result["image_ids"]["us-west-2"])


def test_launch_permissions_on_every_copy(source_image: str, run_module: RunModule) -> None:
    perms = {"user_ids": ["111122223333"]}
    result = run_module(ami_copy.main, copy_args(source_image, launch_permissions=perms))

    assert not result["failed"], result
    for region in TARGETS:
        attr = client(region).describe_image_attribute(ImageId=result["image_ids"][region], Attribute="launchPermission")
        assert attr["LaunchPermissions"] == [{"UserId": "111122223333"}]
        assert result["images"][region]["launch_permissions"] == [{"UserId": "111122223333"}]

    again = run_module(ami_copy.main, copy_args(source_image, launch_permissions=perms))
    assert again["changed"] is False


def test_check_mode_reports_regions_and_creates_nothing(source_image: str, run_module: RunModule) -> None:
    run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2"]))

    result = run_module(ami_copy.main, copy_args(source_image), check_mode=True)

    assert not result["failed"], result
    assert result["changed"] is True
    assert sorted(result["copied_regions"]) == ["ap-southeast-2", "eu-west-1"]
    assert list(result["image_ids"]) == ["us-west-2"]
    assert own_images("eu-west-1") == [] and own_images("ap-southeast-2") == []


def test_copies_start_together_and_are_polled_one_region_at_a_time(
    source_image: str, run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each region's CopyImage blocks until every region has called CopyImage: a module that
    # copied one region after another would break the barrier and fail. The polls then go to one
    # region at a time, in order (the task ends with the slowest copy, whichever is polled first).
    copies = threading.Barrier(len(TARGETS), timeout=20)
    copy_ids: dict[str, str] = {}
    polls: list[str] = []
    in_flight: list[int] = [0, 0]  # now, most seen
    lock = threading.Lock()
    real_copy, real_describe = AmiBackend.copy_image, AmiBackend.describe_images

    def copy_image(self: Any, *args: Any, **kwargs: Any) -> Any:
        copies.wait()
        ami = real_copy(self, *args, **kwargs)
        copy_ids[ami.id] = self.region_name
        return ami

    def describe_images(self: Any, ami_ids: Any = None, *args: Any, **kwargs: Any) -> Any:
        ours = [i for i in ami_ids or [] if i in copy_ids]
        if not ours:
            return real_describe(self, ami_ids, *args, **kwargs)
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            polls.append(copy_ids[ours[0]])
        try:
            time.sleep(0.05)  # a poll that overlapped another would be seen
            return real_describe(self, ami_ids, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(AmiBackend, "copy_image", copy_image)
    monkeypatch.setattr(AmiBackend, "describe_images", describe_images)

    result = run_module(ami_copy.main, copy_args(source_image))

    assert not result["failed"], result
    assert sorted(copy_ids.values()) == sorted(TARGETS)
    # each region's calls come together, in order: none is polled while another is waited for
    assert [region for region, _calls in itertools.groupby(polls)] == list(TARGETS), polls
    assert in_flight[1] == 1


def fail_copy_in(monkeypatch: pytest.MonkeyPatch, failing_region: str) -> None:
    real_copy = AmiBackend.copy_image

    def copy_image(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.region_name == failing_region:
            raise EC2ClientError("ResourceLimitExceeded", "You have reached the AMI quota of this region")
        return real_copy(self, *args, **kwargs)

    monkeypatch.setattr(AmiBackend, "copy_image", copy_image)


def test_partial_failure_rolls_back_the_other_copies(
    source_image: str, run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_copy_in(monkeypatch, "eu-west-1")
    snapshots_before = {r: _snapshot_ids(r) for r in TARGETS}

    result = run_module(ami_copy.main, copy_args(source_image))

    assert result["failed"] is True
    assert "eu-west-1: ResourceLimitExceeded: You have reached the AMI quota" in result["msg"]
    assert "rolled back the new copies in ap-southeast-2, us-west-2" in result["msg"]
    assert "\n" not in result["msg"]
    assert result["image_ids"] == {}
    for region in TARGETS:
        assert own_images(region) == []
        assert _snapshot_ids(region) == snapshots_before[region]


def test_partial_failure_with_keep_returns_the_copies(
    source_image: str, run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_copy_in(monkeypatch, "eu-west-1")

    result = run_module(ami_copy.main, copy_args(source_image, on_failure="keep"))

    assert result["failed"] is True
    assert "eu-west-1: ResourceLimitExceeded" in result["msg"]
    assert sorted(result["image_ids"]) == ["ap-southeast-2", "us-west-2"]
    for region in ("ap-southeast-2", "us-west-2"):
        assert [i["ImageId"] for i in own_images(region)] == [result["image_ids"][region]]


def test_kms_key_of_the_target_region_is_accepted(source_image: str, run_module: RunModule) -> None:
    key = boto3.client("kms", region_name="us-west-2").create_key()["KeyMetadata"]["Arn"]

    result = run_module(ami_copy.main, copy_args(source_image, regions=[], region_settings=[{"region": "us-west-2", "kms_key_id": key}]))

    assert not result["failed"], result
    assert list(result["image_ids"]) == ["us-west-2"]


def _bad_input_cases(source: str) -> list[tuple[dict[str, Any], str]]:
    return [
        (copy_args(source, regions=["us-west-2", "mars-north-1"]), "Unknown region mars-north-1"),
        (copy_args(source, source_region="nowhere-9"), "Unknown region nowhere-9"),
        (copy_args("ami-0123456789abcdef0"), "The source image ami-0123456789abcdef0 was not found in us-east-1"),
        (copy_args(source, name="no"), "is too short"),
        (copy_args(source, name="x" * 129), "at most 128"),
        (copy_args(source, name="bad|name"), "contains '|'"),
        (copy_args(source, region_settings=[{"region": "eu-west-1", "name": "bad*name"}]), "contains '*'"),
        (copy_args(source, kms_key_id="alias/does-not-exist"), "The KMS key alias/does-not-exist is not usable in"),
        (copy_args(source, launch_permissions={"group_names": ["all"]}), "set allow_public: true"),
        (copy_args(source, deprecate_at="soon"), "Invalid deprecate_at 'soon': give an ISO 8601 date or date-time"),
        (copy_args(source, deprecate_at="2001-01-01"), "deprecate_at '2001-01-01' is in the past: give a time in the future"),
        (copy_args(source, deprecate_in="3 months"), "Invalid deprecate_in '3 months': give a whole number followed by m"),
        (copy_args(source, deprecate_at="2030-01-01", deprecate_in="30d"), "mutually exclusive: deprecate_at|deprecate_in"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_input_cases("ami-x"))))
def test_bad_input_fails_in_one_sentence_and_creates_nothing(source_image: str, run_module: RunModule, case: int) -> None:
    args, expected = _bad_input_cases(source_image)[case]

    result = run_module(ami_copy.main, args)

    assert result["failed"] is True
    assert expected in result["msg"]
    assert "\n" not in result["msg"] and "Traceback" not in result["msg"]
    for region in TARGETS:
        assert own_images(region) == []


def test_kms_key_of_another_region_is_refused(source_image: str, run_module: RunModule) -> None:
    key = boto3.client("kms", region_name="us-west-2").create_key()["KeyMetadata"]["Arn"]

    result = run_module(ami_copy.main, copy_args(source_image, kms_key_id=key))

    assert result["failed"] is True
    # TARGETS is checked in order; us-west-2 holds the key, eu-west-1 does not.
    assert f"The KMS key {key} is not usable in eu-west-1" in result["msg"]
    assert all(own_images(region) == [] for region in TARGETS)


def test_disabled_kms_key_is_refused(source_image: str, run_module: RunModule) -> None:
    kms = boto3.client("kms", region_name="us-west-2")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)

    result = run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2"], kms_key_id=key))

    assert result["failed"] is True
    assert f"The KMS key {key} is not usable in us-west-2: it is Disabled" in result["msg"]
    assert own_images("us-west-2") == []


def test_a_name_held_by_another_image_fails_that_region(source_image: str, run_module: RunModule, make_instance: Callable[..., str]) -> None:
    west = client("us-west-2")
    other = west.create_image(InstanceId=make_instance(west), Name="base-2026.11")["ImageId"]

    result = run_module(ami_copy.main, copy_args(source_image, on_failure="keep"))

    assert result["failed"] is True
    assert "failed in 1 of 3 regions (us-west-2: InvalidAMIName.Duplicate" in result["msg"], result["msg"]
    assert [i["ImageId"] for i in own_images("us-west-2")] == [other]
    assert sorted(result["image_ids"]) == ["ap-southeast-2", "eu-west-1"]


def test_a_name_held_by_a_failed_copy_fails_that_region(source_image: str, run_module: RunModule) -> None:
    first = run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2"]))
    _backend("us-west-2").amis[first["image_ids"]["us-west-2"]].state = "failed"

    result = run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2"]))

    assert result["failed"] is True
    assert f"is held by the copy {first['image_ids']['us-west-2']}, which is failed: deregister it" in result["msg"], result["msg"]


def test_a_copy_under_another_name_is_not_reused(source_image: str, run_module: RunModule) -> None:
    first = run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2"]))

    renamed = run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2"], name="base-renamed"))

    assert renamed["changed"] is True and renamed["copied_regions"] == ["us-west-2"]
    assert renamed["image_ids"]["us-west-2"] != first["image_ids"]["us-west-2"]
    assert renamed["images"]["us-west-2"]["name"] == "base-renamed"


def _backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    return ec2_backends[DEFAULT_ACCOUNT_ID][region]


def _snapshot_ids(region: str) -> set[str]:
    return {s["SnapshotId"] for s in client(region).describe_snapshots(OwnerIds=["self"])["Snapshots"]}


# --- Exact requests (Stubber) -------------------------------------------------------------------


@pytest.fixture
def stubbed(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[tuple[str, str], Stubber]]:
    """Stubbed clients by (service, region), handed to the module in place of real ones."""
    stubs: dict[tuple[str, str], Stubber] = {}
    clients: dict[tuple[str, str], Any] = {}
    for service, region in [("ec2", SOURCE_REGION), ("ec2", "us-west-2"), ("ec2", "eu-west-1"), ("kms", "us-west-2"), ("kms", "eu-west-1")]:
        raw = boto3.client(service, region_name=region)
        stubs[(service, region)] = Stubber(raw)
        clients[(service, region)] = RetryingBotoClientWrapper(raw, RETRY)

    def fake_clients(module: Any, service: str, regions: list[str]) -> dict[str, Any]:
        return {region: clients[(service, region)] for region in regions}

    monkeypatch.setattr(ami_copy, "aws_clients", fake_clients)
    for stub in stubs.values():
        stub.activate()
    yield stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def _image(image_id: str, state: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ImageId": image_id,
        "Name": "base-2026.11",
        "State": state,
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": f"snap-{image_id[4:]}"}}],
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    }


def test_encrypted_copies_use_each_regions_key_and_survive_throttled_waits(
    stubbed: dict[tuple[str, str], Stubber], run_module: RunModule
) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    keys = {"us-west-2": "arn:aws:kms:us-west-2:123456789012:key/k-west", "eu-west-1": "arn:aws:kms:eu-west-1:123456789012:key/k-eu"}
    wanted_tags = {"purpose": "test", COPY_TAG: f"{SOURCE_REGION}:{source}"}
    tag_list = [{"Key": k, "Value": v} for k, v in wanted_tags.items()]
    stubbed[("ec2", SOURCE_REGION)].add_response("describe_images", {"Images": [_image(source, "available")]}, {"ImageIds": [source]})
    for n, (region, key) in enumerate(keys.items()):
        copy_id = f"ami-0{n}bbbbbbbbbbbbbbb"
        stubbed[("kms", region)].add_response(
            "describe_key", {"KeyMetadata": {"KeyId": key, "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT"}}, {"KeyId": key}
        )
        ec2 = stubbed[("ec2", region)]
        # No look-up first: CopyImage itself would say the copy exists (its name taken).
        ec2.add_response(
            "copy_image",
            {"ImageId": copy_id},
            {
                "SourceRegion": SOURCE_REGION,
                "SourceImageId": source,
                "Name": "base-2026.11",
                "Encrypted": True,
                "KmsKeyId": key,
                "ClientToken": ANY,
                "TagSpecifications": [{"ResourceType": "image", "Tags": tag_list}, {"ResourceType": "snapshot", "Tags": tag_list}],
            },
        )
        # Throttled polls are retried, never read as "done"; a pending poll keeps the wait going.
        ec2.add_client_error("describe_images", "RequestLimitExceeded", "Request limit exceeded.", 503)
        ec2.add_response("describe_images", {"Images": [_image(copy_id, "pending", wanted_tags)]}, {"ImageIds": [copy_id]})
        ec2.add_client_error("describe_images", "Throttling", "Rate exceeded", 400)
        ec2.add_response("describe_images", {"Images": [_image(copy_id, "available", wanted_tags)]}, {"ImageIds": [copy_id]})

    result = run_module(
        ami_copy.main,
        {
            "source_image_id": source,
            "source_region": SOURCE_REGION,
            "region_settings": [{"region": r, "kms_key_id": k} for r, k in keys.items()],
            "tags": {"purpose": "test"},
        },
    )

    assert not result["failed"], result
    assert result["image_ids"] == {"us-west-2": "ami-00bbbbbbbbbbbbbbb", "eu-west-1": "ami-01bbbbbbbbbbbbbbb"}
    assert all(image["state"] == "available" for image in result["images"].values())


def test_a_copy_that_fails_while_waited_for_is_rolled_back(stubbed: dict[tuple[str, str], Stubber], run_module: RunModule) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    stubbed[("ec2", SOURCE_REGION)].add_response("describe_images", {"Images": [_image(source, "available")]}, {"ImageIds": [source]})
    ec2 = stubbed[("ec2", "us-west-2")]
    ec2.add_response("copy_image", {"ImageId": "ami-0ccccccccccccccc0"})
    failed = _image("ami-0ccccccccccccccc0", "failed")
    failed["StateReason"] = {"Code": "Client.InternalError", "Message": "Snapshot copy failed"}
    ec2.add_response("describe_images", {"Images": [failed]})
    # Rollback: read the image again, deregister it, delete its snapshot (not used by another image).
    ec2.add_response("describe_images", {"Images": [failed]}, {"ImageIds": ["ami-0ccccccccccccccc0"]})
    ec2.add_response("deregister_image", {}, {"ImageId": "ami-0ccccccccccccccc0"})
    ec2.add_response("describe_images", {"Images": []})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": "snap-0ccccccccccccccc0"})

    result = run_module(ami_copy.main, {"source_image_id": source, "source_region": SOURCE_REGION, "regions": ["us-west-2"]})

    assert result["failed"] is True
    assert "us-west-2: the copy ami-0ccccccccccccccc0 in us-west-2 failed: it is failed (Snapshot copy failed)" in result["msg"]
    assert "rolled back the new copies in us-west-2" in result["msg"]


def _stub_new_copy_start(stubbed: dict[tuple[str, str], Stubber], source: str, region: str, check_mode: bool = False) -> Stubber:
    stubbed[("ec2", SOURCE_REGION)].add_response("describe_images", {"Images": [_image(source, "available")]}, {"ImageIds": [source]})
    ec2 = stubbed[("ec2", region)]
    if check_mode:
        # Check mode looks the copy up (nothing found); otherwise CopyImage comes first.
        ec2.add_response("describe_images", {"Images": []}, _by_tag_and_name(source))
    return ec2


def _by_tag_and_name(source: str, name: str = "base-2026.11") -> dict[str, Any]:
    return {
        "Owners": ["self"],
        "Filters": [{"Name": f"tag:{COPY_TAG}", "Values": [f"{SOURCE_REGION}:{source}"]}, {"Name": "name", "Values": [name]}],
    }


def test_a_retried_copy_call_reuses_its_client_token(stubbed: dict[tuple[str, str], Stubber], run_module: RunModule) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    ec2 = _stub_new_copy_start(stubbed, source, "us-west-2")
    tokens: list[str] = []
    ec2.client.meta.events.register("before-parameter-build.ec2.CopyImage", lambda params, **kw: tokens.append(params["ClientToken"]))
    # The first answer is lost to throttling; EC2 may have made the copy, and the same token makes
    # the retry return that copy instead of a second one.
    ec2.add_client_error("copy_image", "RequestLimitExceeded", "Request limit exceeded.", 503)
    ec2.add_response("copy_image", {"ImageId": "ami-0dddddddddddddddd"})
    ec2.add_response("describe_images", {"Images": [_image("ami-0dddddddddddddddd", "pending", {COPY_TAG: f"{SOURCE_REGION}:{source}"})]})

    result = run_module(
        ami_copy.main, {"source_image_id": source, "source_region": SOURCE_REGION, "regions": ["us-west-2"], "wait": False}
    )

    assert not result["failed"], result
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    # wait: false returns the copy as EC2 first reports it, with no further polling.
    assert result["images"]["us-west-2"]["state"] == "pending"
    assert result["image_ids"] == {"us-west-2": "ami-0dddddddddddddddd"}


def test_a_copy_that_never_becomes_available_times_out_and_is_rolled_back(
    stubbed: dict[tuple[str, str], Stubber], run_module: RunModule
) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    ec2 = _stub_new_copy_start(stubbed, source, "us-west-2")
    ec2.add_response("copy_image", {"ImageId": "ami-0eeeeeeeeeeeeeeee"})
    pending = {"Images": [_image("ami-0eeeeeeeeeeeeeeee", "pending")]}
    # One poll (still pending when the time is up), then the rollback reads the image again.
    ec2.add_response("describe_images", pending)
    ec2.add_response("describe_images", pending)
    ec2.add_response("deregister_image", {}, {"ImageId": "ami-0eeeeeeeeeeeeeeee"})
    ec2.add_response("describe_images", {"Images": []})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": "snap-0eeeeeeeeeeeeeeee"})

    result = run_module(
        ami_copy.main,
        {"source_image_id": source, "source_region": SOURCE_REGION, "regions": ["us-west-2"], "wait_timeout": 0},
    )

    assert result["failed"] is True
    assert "us-west-2: Timed out after 0s waiting for the copy ami-0eeeeeeeeeeeeeeee in us-west-2" in result["msg"]
    assert "rolled back the new copies in us-west-2" in result["msg"]


def test_diff_shows_reused_and_new_copies(source_image: str, run_module: RunModule) -> None:
    first = run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2"]))

    result = run_module(ami_copy.main, copy_args(source_image, regions=["us-west-2", "eu-west-1"]), check_mode=True, diff=True)

    assert result["diff"] == {
        "before": {"image_ids": {"us-west-2": first["image_ids"]["us-west-2"]}},
        "after": {"image_ids": {"us-west-2": first["image_ids"]["us-west-2"], "eu-west-1": "(new copy)"}},
    }


# --- Deprecation (moto has no EnableImageDeprecation: Stubber) ----------------------------------

DEPRECATE_AT = "2030-01-31T10:00:20Z"
# EC2 keeps the minute; 20 s round down.
DEPRECATE_AT_MINUTE = "2030-01-31T10:00:00Z"


def _reused(
    stubbed: dict[tuple[str, str], Stubber], source: str, region: str, image_id: str, deprecation: str | None, check_mode: bool = False
) -> Stubber:
    """A copy of the source in `region`, with `deprecation` as its DeprecationTime: looked up by its
    source tag and name in check mode, otherwise found when CopyImage answers that its name is taken."""
    ec2 = stubbed[("ec2", region)]
    image = _image(image_id, "available", {COPY_TAG: f"{SOURCE_REGION}:{source}"})
    if deprecation:
        image["DeprecationTime"] = deprecation
    if check_mode:
        ec2.add_response("describe_images", {"Images": [image]}, _by_tag_and_name(source))
    else:
        ec2.add_client_error("copy_image", "InvalidAMIName.Duplicate", "AMI name base-2026.11 is already in use", 400)
        ec2.add_response("describe_images", {"Images": [image]}, {"Owners": ["self"], "Filters": [{"Name": "name", "Values": ["base-2026.11"]}]})
    ec2.add_response("describe_image_attribute", {"ImageId": image_id, "LaunchPermissions": []})
    return ec2


def test_new_and_reused_copies_get_the_requested_deprecation_time(
    stubbed: dict[tuple[str, str], Stubber], run_module: RunModule
) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    # us-west-2: a new copy, deprecated once available.
    west = _stub_new_copy_start(stubbed, source, "us-west-2")
    west.add_response("copy_image", {"ImageId": "ami-0f0000000000000f1"})
    west.add_response(
        "describe_images", {"Images": [_image("ami-0f0000000000000f1", "available", {COPY_TAG: f"{SOURCE_REGION}:{source}"})]}
    )
    west.add_response("enable_image_deprecation", {"Return": True}, {"ImageId": "ami-0f0000000000000f1", "DeprecateAt": DEPRECATE_AT_MINUTE})
    # eu-west-1: a reused copy deprecated at another time is moved to the requested one.
    eu = _reused(stubbed, source, "eu-west-1", "ami-0f0000000000000f2", "2029-06-01T00:00:00.000Z")
    eu.add_response("enable_image_deprecation", {"Return": True}, {"ImageId": "ami-0f0000000000000f2", "DeprecateAt": DEPRECATE_AT_MINUTE})

    result = run_module(ami_copy.main, copy_args(source, regions=["us-west-2", "eu-west-1"], deprecate_at=DEPRECATE_AT), diff=True)

    assert not result["failed"], result
    assert result["changed"] is True
    assert result["copied_regions"] == ["us-west-2"]
    assert {r: i["deprecation_time"] for r, i in result["images"].items()} == {
        "us-west-2": DEPRECATE_AT_MINUTE,
        "eu-west-1": DEPRECATE_AT_MINUTE,
    }
    assert result["diff"]["before"]["deprecation_times"] == {"eu-west-1": "2029-06-01T00:00:00.000Z"}
    assert result["diff"]["after"]["deprecation_times"] == {"us-west-2": DEPRECATE_AT_MINUTE, "eu-west-1": DEPRECATE_AT_MINUTE}


def test_deprecate_in_gives_every_new_copy_one_time(stubbed: dict[tuple[str, str], Stubber], run_module: RunModule) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    requests: list[dict[str, Any]] = []
    stubbed[("ec2", SOURCE_REGION)].add_response("describe_images", {"Images": [_image(source, "available")]}, {"ImageIds": [source]})
    for n, region in enumerate(["us-west-2", "eu-west-1"]):
        copy_id = f"ami-0f00000000000001{n}"
        ec2 = stubbed[("ec2", region)]
        ec2.client.meta.events.register("before-parameter-build.ec2.EnableImageDeprecation", lambda params, **kw: requests.append(params))
        ec2.add_response("copy_image", {"ImageId": copy_id})
        ec2.add_response("describe_images", {"Images": [_image(copy_id, "available", {COPY_TAG: f"{SOURCE_REGION}:{source}"})]})
        ec2.add_response("enable_image_deprecation", {"Return": True}, {"ImageId": copy_id, "DeprecateAt": ANY})
    before = datetime.datetime.now(datetime.UTC)

    result = run_module(ami_copy.main, copy_args(source, regions=["us-west-2", "eu-west-1"], deprecate_in="30d"))

    assert not result["failed"], result
    times = {r["DeprecateAt"] for r in requests}
    assert len(requests) == 2 and len(times) == 1
    when = datetime.datetime.fromisoformat(times.pop().replace("Z", "+00:00"))
    expected = before + datetime.timedelta(days=30)
    assert abs(when - expected) <= datetime.timedelta(minutes=2)


@pytest.mark.parametrize(
    "options, current",
    [
        ({"deprecate_at": DEPRECATE_AT}, "2030-01-31T10:00:00.000Z"),
        # deprecate_in never moves a time a copy already has.
        ({"deprecate_in": "30d"}, "2029-06-01T00:00:00.000Z"),
    ],
)
def test_no_deprecation_call_when_the_copy_already_has_its_time(
    stubbed: dict[tuple[str, str], Stubber], run_module: RunModule, options: dict[str, str], current: str
) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    stubbed[("ec2", SOURCE_REGION)].add_response("describe_images", {"Images": [_image(source, "available")]}, {"ImageIds": [source]})
    _reused(stubbed, source, "us-west-2", "ami-0f0000000000000f3", current)

    # An unexpected EnableImageDeprecation would meet an empty Stubber and fail the region.
    result = run_module(ami_copy.main, copy_args(source, regions=["us-west-2"], **options))

    assert not result["failed"], result
    assert result["changed"] is False
    assert result["images"]["us-west-2"]["deprecation_time"] == current


def test_check_mode_reports_the_deprecation_change_and_makes_no_call(
    stubbed: dict[tuple[str, str], Stubber], run_module: RunModule
) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    _stub_new_copy_start(stubbed, source, "us-west-2", check_mode=True)
    _reused(stubbed, source, "eu-west-1", "ami-0f0000000000000f4", None, check_mode=True)

    result = run_module(
        ami_copy.main, copy_args(source, regions=["us-west-2", "eu-west-1"], deprecate_at=DEPRECATE_AT), check_mode=True, diff=True
    )

    assert not result["failed"], result
    assert result["changed"] is True
    assert result["copied_regions"] == ["us-west-2"]
    # Unchanged: check mode made no EnableImageDeprecation (nor CopyImage) call, which the Stubber would refuse.
    assert result["images"]["eu-west-1"]["deprecation_time"] is None
    assert result["diff"]["before"]["deprecation_times"] == {"eu-west-1": None}
    assert result["diff"]["after"]["deprecation_times"] == {"us-west-2": DEPRECATE_AT_MINUTE, "eu-west-1": DEPRECATE_AT_MINUTE}


def test_check_mode_with_the_time_already_set_changes_nothing(stubbed: dict[tuple[str, str], Stubber], run_module: RunModule) -> None:
    source = "ami-0aaaaaaaaaaaaaaaa"
    stubbed[("ec2", SOURCE_REGION)].add_response("describe_images", {"Images": [_image(source, "available")]}, {"ImageIds": [source]})
    _reused(stubbed, source, "us-west-2", "ami-0f0000000000000f5", "2030-01-31T10:00:00.000Z", check_mode=True)

    result = run_module(ami_copy.main, copy_args(source, regions=["us-west-2"], deprecate_at=DEPRECATE_AT), check_mode=True)

    assert not result["failed"], result
    assert result["changed"] is False
