# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/prune.yml with ansible-playbook against a moto server: retention by count and by age."""
from __future__ import annotations

import time
from typing import Any

from bake_helpers import REPO, Moto, run_playbook

REGIONS = ["us-east-1", "us-west-2"]
# older_than is given in minutes at the finest, so the "old" images must really be a minute old
AGE = 61.0


def _image(moto: Moto, region: str, source: str, name: str) -> tuple[str, list[str]]:
    """An image of an instance, with its snapshots; EC2 orders creation dates to the second."""
    ec2 = moto.client("ec2", region)
    image_id = source
    if region != "us-east-1":
        image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    made = ec2.create_image(InstanceId=instance, Name=name)["ImageId"]
    ec2.terminate_instances(InstanceIds=[instance])
    image = ec2.describe_images(ImageIds=[made])["Images"][0]
    time.sleep(1.1)
    return made, [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]


def _present(moto: Moto, region: str, images: list[tuple[str, list[str]]]) -> tuple[set[str], set[str]]:
    ec2 = moto.client("ec2", region)
    ids = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    snaps = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    return ids & {image_id for image_id, dummy in images}, snaps & {s for dummy, ss in images for s in ss}


def _prune(moto: Moto, *args: str, **policy: Any) -> Any:
    extra = {"bake_endpoint_url": moto.endpoint_url, "bake_region": REGIONS[0], "bake_copy_regions": REGIONS[1:],
             **policy}
    run = run_playbook(REPO / "playbooks/prune.yml", extra, *args)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr
    return run


def _going(run: Any) -> str:
    """The report's deleted_snapshots and deregistered (the callback prints keys sorted, skipped last)."""
    report = run.stdout.split("TASK [Prune | report]", 1)[1]
    return str(report.split('"deleted_snapshots"', 1)[1].split('"skipped"', 1)[0])


def _ids(images: list[tuple[str, list[str]]]) -> tuple[set[str], set[str]]:
    return {image_id for image_id, dummy in images}, {s for dummy, ss in images for s in ss}


def test_prune_keeps_by_age_and_count_in_every_region_and_check_mode_changes_nothing(
    moto_server: Moto, source_ami: str
) -> None:
    # the age check needs images a minute old: made first, the count checks run while they age
    old = {r: [_image(moto_server, r, source_ami, f"prune-web-2026010{n}") for n in (1, 2)] for r in REGIONS}
    old_made = time.monotonic()
    app = {r: [_image(moto_server, r, source_ami, f"prune-app-2026010{n}") for n in (1, 2, 3)] for r in REGIONS}
    before = {r: _present(moto_server, r, old[r] + app[r]) for r in REGIONS}
    assert all(before[r] == _ids(old[r] + app[r]) for r in REGIONS), before

    # check mode: reports what would go, removes nothing
    check = _prune(moto_server, "--check", bake_name="prune-app", prune_keep_latest=1)
    assert {r: _present(moto_server, r, old[r] + app[r]) for r in REGIONS} == before
    going = _going(check)
    for region in REGIONS:
        for image_id, snapshots in app[region][:2]:
            assert image_id in going and all(s in going for s in snapshots), (image_id, going)
        for image_id, snapshots in app[region][2:] + old[region]:
            assert image_id not in going and not any(s in going for s in snapshots), (image_id, going)

    # count: the newest of the group stays, the others go with their snapshots; other names are untouched
    _prune(moto_server, bake_name="prune-app", prune_keep_latest=1)
    for region in REGIONS:
        assert _present(moto_server, region, old[region] + app[region]) == _ids(old[region] + app[region][2:])

    # age: nothing is an hour old, so nothing goes even with keep_latest 0
    _prune(moto_server, bake_name="prune-web", prune_keep_latest=0, prune_older_than="1h")
    for region in REGIONS:
        assert _present(moto_server, region, old[region]) == _ids(old[region])

    time.sleep(max(0.0, AGE - (time.monotonic() - old_made)))
    new = {r: [_image(moto_server, r, source_ami, f"prune-web-2026020{n}") for n in (1, 2)] for r in REGIONS}
    _prune(moto_server, bake_name="prune-web", prune_keep_latest=0, prune_older_than="1m")
    for region in REGIONS:
        everything = old[region] + new[region] + app[region]
        assert _present(moto_server, region, everything) == _ids(new[region] + app[region][2:]), region
