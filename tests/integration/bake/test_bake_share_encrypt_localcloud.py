# SPDX-License-Identifier: GPL-3.0-or-later
"""One full bake with every image option a release bake uses: a spot builder, sharing with an account,
deprecation, and copies encrypted with a KMS key of each region; then nothing temporary is left."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_bake_localcloud import REGIONS, _bake, _left_by, _tags

from localcloud.testing import RunningCloud

pytestmark = pytest.mark.localcloud
ACCOUNT = "111122223333"


def test_release_bake_shares_deprecates_encrypts_copies_on_a_spot_builder(
    localcloud_session: RunningCloud, tmp_path: Path
) -> None:
    cloud = localcloud_session
    keys = {region: cloud.client("kms", region).create_key(Description=f"bake copies in {region}")["KeyMetadata"]["Arn"]
            for region in REGIONS[1:]}
    bake_id = "release-bake-1"
    manifest = tmp_path / "manifest.json"
    asked = datetime.now(UTC)
    run = _bake(cloud, {
        "bake_id": bake_id, "bake_copy_regions": REGIONS[1:], "image_manifest_path": str(manifest),
        "image_share_user_ids": [ACCOUNT], "image_deprecate_in": "30d", "image_copy_kms_key_ids": keys,
        "builder_spot": True,
    })
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr

    build = json.loads(manifest.read_text())["builds"][-1]
    images = dict(pair.split(":", 1) for pair in build["artifact_id"].split(","))
    assert sorted(images) == sorted(REGIONS)
    assert build["packer_run_uuid"] == bake_id and build["custom_data"]["bake_id"] == bake_id

    for region, image_id in images.items():
        ec2 = cloud.client("ec2", region)
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        assert image["State"] == "available" and _tags(image)["bakery:bake-id"] == bake_id
        permissions = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]
        assert permissions == [{"UserId": ACCOUNT}], (region, permissions)
        snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
        assert snapshots
        for snapshot in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
            if region in keys:
                assert snapshot["Encrypted"] is True and snapshot["KmsKeyId"] == keys[region], (region, snapshot)
            assert _tags(snapshot)["bakery:bake-id"] == bake_id

    # deprecation is set on the bake's image, 30 days on (EC2 keeps it to the minute)
    source = cloud.client("ec2", REGIONS[0]).describe_images(ImageIds=[images[REGIONS[0]]])["Images"][0]
    deprecation = datetime.fromisoformat(source["DeprecationTime"].replace("Z", "+00:00"))
    assert asked + timedelta(days=30, minutes=-2) <= deprecation <= datetime.now(UTC) + timedelta(days=30, minutes=2)
    # and every copy is deprecated at exactly the same time
    copies = {region: cloud.client("ec2", region).describe_images(ImageIds=[images[region]])["Images"][0] for region in REGIONS[1:]}
    assert {region: image.get("DeprecationTime") for region, image in copies.items()} == {
        region: source["DeprecationTime"] for region in REGIONS[1:]
    }

    # the builder was a spot instance, and it is gone with every other temporary resource
    ec2 = cloud.client("ec2", REGIONS[0])
    builders = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:bakery:bake-id", "Values": [bake_id]}])["Reservations"]
                for i in r["Instances"]]
    assert builders and all(i.get("InstanceLifecycle") == "spot" for i in builders), builders
    assert all(i["State"]["Name"] in ("shutting-down", "terminated") for i in builders)
    open_requests = ec2.describe_spot_instance_requests(Filters=[
        {"Name": "tag:bakery:bake-id", "Values": [bake_id]}, {"Name": "state", "Values": ["open", "active"]}])
    assert open_requests["SpotInstanceRequests"] == []
    left = _left_by(cloud, bake_id)
    assert {region: [r for r in found if not r.startswith(("ami-", "snap-"))] for region, found in left.items()} == {
        region: [] for region in left
    }
    assert not list(Path("/tmp").glob(f"bakery-{bake_id}-*"))
