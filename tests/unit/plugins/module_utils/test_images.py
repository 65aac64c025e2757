# SPDX-License-Identifier: GPL-3.0-or-later
"""Image look-ups, the AMI name rule, the image result shape, and deregistration with its snapshots."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._images import (
    ami_name_problem,
    delete_snapshot,
    deregister_image,
    describe_image,
    find_own_image_by_name,
    image_result,
    snapshot_ids,
    snapshot_used_elsewhere,
)


def image(image_id: str, *snaps: str, **extra: Any) -> dict[str, Any]:
    return {
        "ImageId": image_id,
        "Name": f"name-{image_id}",
        "State": "available",
        "BlockDeviceMappings": [{"DeviceName": f"/dev/sd{chr(97 + n)}", "Ebs": {"SnapshotId": s}} for n, s in enumerate(snaps)],
        **extra,
    }


# ---- the AMI name rule


@pytest.mark.parametrize("name", ["abc", "web-2027.01.01 (x86_64) [gp3] it's@home/v_1", "x" * 128])
def test_valid_ami_names(name: str) -> None:
    assert ami_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"), [("ab", "too short"), ("", "too short"), ("x" * 129, "129 characters"), ("web:1", "':'"), ("wéb-1", "'é'"), ("a*b", "'*'")]
)
def test_invalid_ami_names(name: str, why: str) -> None:
    problem = ami_name_problem(name)
    assert problem is not None and why in problem


# ---- shape


def test_snapshot_ids_skip_devices_without_a_snapshot() -> None:
    img = image("ami-1", "snap-1")
    img["BlockDeviceMappings"].append({"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"})
    assert snapshot_ids(img) == ["snap-1"]


def test_image_result_is_snake_case_with_tags_as_a_dict() -> None:
    img = image("ami-1", "snap-1", Tags=[{"Key": "role", "Value": "web"}], Public=True, DeprecationTime="2027-06-30T00:00:00.000Z")
    result = image_result(img, [{"UserId": "111122223333"}])
    assert result["image_id"] == "ami-1" and result["state"] == "available"
    assert result["snapshot_ids"] == ["snap-1"] and result["tags"] == {"role": "web"} and result["public"] is True
    assert result["block_device_mappings"] == [{"device_name": "/dev/sda", "ebs": {"snapshot_id": "snap-1"}}]
    assert result["launch_permissions"] == [{"UserId": "111122223333"}]
    assert result["deprecation_time"] == "2027-06-30T00:00:00.000Z"
    assert image_result(img)["launch_permissions"] == []


# ---- look-ups


def test_describe_image_of_a_missing_image_is_none(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("describe_images", "InvalidAMIID.NotFound", expected_params={"ImageIds": ["ami-1"]})
    stubber.add_response("describe_images", {"Images": [image("ami-2")]}, {"ImageIds": ["ami-2"]})
    stubber.add_client_error("describe_images", "UnauthorizedOperation")
    with stubber:
        assert describe_image(client, "ami-1") is None
        assert describe_image(client, "ami-2") == image("ami-2")
        with pytest.raises(ClientError):
            describe_image(client, "ami-3")


def test_find_own_image_by_name_skips_deregistered_images(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    wanted = {"Owners": ["self"], "Filters": [{"Name": "name", "Values": ["web"]}]}
    stubber.add_response("describe_images", {"Images": [image("ami-old", State="deregistered"), image("ami-1")]}, wanted)
    stubber.add_response("describe_images", {"Images": []}, wanted)
    with stubber:
        found = find_own_image_by_name(client, "web")
        assert found is not None and found["ImageId"] == "ami-1"
        assert find_own_image_by_name(client, "web") is None


def test_snapshot_used_elsewhere_counts_planned_removals() -> None:
    images = [
        image("ami-1", "snap-1"),
        image("ami-2", "snap-1"),
        image("ami-3", "snap-3", State="deregistered"),
    ]
    assert snapshot_used_elsewhere(None, "snap-1", "ami-1", images=images) is True
    assert snapshot_used_elsewhere(None, "snap-1", "ami-1", images=images, also_gone=["ami-2"]) is False
    assert snapshot_used_elsewhere(None, "snap-3", "ami-9", images=images) is False


def test_snapshot_used_elsewhere_lists_the_accounts_images_when_not_given(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response("describe_images", {"Images": [image("ami-1", "snap-1"), image("ami-2", "snap-1")]}, {"Owners": ["self"], "Filters": []})
    with stubber:
        assert snapshot_used_elsewhere(client, "snap-1", "ami-1") is True


# ---- snapshot deletion right after a deregistration (exact requests)


def test_delete_snapshot_retries_in_use(stubbed_ec2: tuple[Any, Stubber], fake_time: Any) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", expected_params={"SnapshotId": "snap-1"})
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", expected_params={"SnapshotId": "snap-1"})
    stubber.add_response("delete_snapshot", {}, {"SnapshotId": "snap-1"})
    with stubber:
        assert delete_snapshot(client, "snap-1", sleep=fake_time.sleep) is True
    assert fake_time.sleeps == [1, 2]


def test_delete_snapshot_gives_up_after_attempts(stubbed_ec2: tuple[Any, Stubber], fake_time: Any) -> None:
    client, stubber = stubbed_ec2
    for _attempt in range(3):
        stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse")
    with stubber, pytest.raises(ClientError):
        delete_snapshot(client, "snap-1", attempts=3, sleep=fake_time.sleep)
    assert len(fake_time.sleeps) == 2


def test_delete_snapshot_already_gone(stubbed_ec2: tuple[Any, Stubber], fake_time: Any) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.NotFound")
    with stubber:
        assert delete_snapshot(client, "snap-1", sleep=fake_time.sleep) is False
    assert fake_time.sleeps == []


def test_delete_snapshot_other_errors_are_raised_at_once(stubbed_ec2: tuple[Any, Stubber], fake_time: Any) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("delete_snapshot", "UnauthorizedOperation")
    with stubber, pytest.raises(ClientError):
        delete_snapshot(client, "snap-1", sleep=fake_time.sleep)
    assert fake_time.sleeps == []


# ---- deregistration


def test_deregister_image_deletes_its_own_snapshots_and_keeps_shared_ones(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    gone = image("ami-1", "snap-own", "snap-shared")
    others = [gone, image("ami-2", "snap-shared")]
    stubber.add_response("deregister_image", {}, {"ImageId": "ami-1"})
    stubber.add_response("delete_snapshot", {}, {"SnapshotId": "snap-own"})
    with stubber:
        assert deregister_image(client, gone, images=others) == (["snap-own"], ["snap-shared"])
        stubber.assert_no_pending_responses()


def test_deregister_image_already_gone_still_frees_its_snapshots(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    gone = image("ami-1", "snap-1", "snap-2")
    stubber.add_client_error("deregister_image", "InvalidAMIID.NotFound")
    stubber.add_response("delete_snapshot", {}, {"SnapshotId": "snap-1"})
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.NotFound")
    with stubber:
        # A snapshot that is already gone is neither deleted nor kept.
        assert deregister_image(client, gone, images=[gone]) == (["snap-1"], [])


def test_deregister_image_without_deleting_snapshots_keeps_them(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response("deregister_image", {}, {"ImageId": "ami-1"})
    with stubber:
        assert deregister_image(client, image("ami-1", "snap-1"), delete_snapshots=False) == ([], ["snap-1"])
