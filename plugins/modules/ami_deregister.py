#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright: contributors to bakery.ami
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ami_deregister
short_description: Deregister AMIs by id, name or filters, with retention, and delete their snapshots
version_added: 0.1.0
description:
  - Selects images by O(image_ids), by O(name) or by O(filters), in one or several O(regions),
    among the images of O(owners) (the account itself by default).
  - A retention policy decides which selected images go. O(keep_latest) keeps the newest N by creation date,
    per region and per group (O(group_by)); O(older_than) only lets older images go. Without either, every selected image goes.
  - After an image is deregistered its own snapshots are deleted; a snapshot still used by another image of the account is kept.
    EC2 may call a snapshot in use for a moment after the deregistration; that is retried briefly.
  - An image used by an instance (pending, running, stopping or stopped) is skipped and reported, unless O(include_in_use=true).
  - In check mode the result lists exactly the images and snapshots that would go.
author:
  - bakery.ami contributors (!UNKNOWN)
options:
  image_ids:
    description:
      - Ids of the images to deregister, looked up in every region of O(regions).
      - Mutually exclusive with O(name) and O(filters).
    type: list
    elements: str
  name:
    description:
      - Select images by name. EC2's wildcards C(*) and C(?) may be used, such as C(web-*).
      - May be combined with O(filters).
    type: str
  filters:
    description:
      - EC2 DescribeImages filters, a dict such as C(tag:role) with value C(web). A value may be a string or a list of strings.
    type: dict
  owners:
    description:
      - Whose images to select. Only the account's own images can be deregistered.
    type: list
    elements: str
    default: ['self']
  regions:
    description:
      - The regions to select images in. By default O(region).
    type: list
    elements: str
  keep_latest:
    description:
      - Keep the newest N selected images (by creation date) of each group in each region; the others may go.
      - V(0) keeps none.
    type: int
  group_by:
    description:
      - How O(keep_latest) groups the images. C(tag:KEY) groups them by the value of tag KEY (images without it form one group).
      - C(name_prefix) groups them by name with its trailing version removed (the final run of digits, with any of the
        characters C(-), C(_), C(.), C(:), C(T) and C(Z) among them), so C(web-2027-01-31) and C(web-2027-02-28) are one group C(web).
      - By default all the selected images of a region form one group.
    type: str
  older_than:
    description:
      - Only images created longer ago than this may go, such as C(30d); units C(m), C(h), C(d) or C(w).
    type: str
  delete_snapshots:
    description:
      - Delete each deregistered image's snapshots, except those another image still uses.
    type: bool
    default: true
  include_in_use:
    description:
      - Also deregister images that instances (pending, running, stopping or stopped) were launched from.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Lists exactly the images that would be deregistered and the snapshots that would be deleted, and changes nothing.
  diff_mode:
    support: full
    details: Shows the selected images of each region before and after.
  idempotent:
    support: full
    details: A second run finds no image left to deregister.
notes:
  - Throttled and transient EC2 errors are retried with jittered backoff.
extends_documentation_fragment:
  - bakery.ami._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
---
- name: Keep the three newest web images in each region, per role tag
  bakery.ami.ami_deregister:
    name: "web-*"
    regions: [us-east-1, eu-west-1]
    keep_latest: 3
    group_by: tag:role

- name: Deregister bake images older than 90 days, keeping the newest of each name prefix
  bakery.ami.ami_deregister:
    filters:
      tag-key: bakery:bake-id
    keep_latest: 1
    group_by: name_prefix
    older_than: 90d

- name: Deregister one image and keep its snapshots
  bakery.ami.ami_deregister:
    image_ids:
      - ami-0123456789abcdef0
    delete_snapshots: false
"""

RETURN = r"""
deregistered:
  description: The ids of the images deregistered (in check mode, that would be), per region.
  returned: always
  type: dict
  sample: {us-east-1: [ami-0123456789abcdef0]}
deleted_snapshots:
  description: The ids of the snapshots deleted (in check mode, that would be), per region.
  returned: always
  type: dict
  sample: {us-east-1: [snap-0123456789abcdef0]}
kept_snapshots:
  description: Snapshots of deregistered images that were kept, per region, because another image uses them or O(delete_snapshots=false).
  returned: always
  type: dict
  sample: {us-east-1: []}
skipped:
  description: Selected images left in place, and image ids that were not found, each with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    image_id:
      description: The image id.
      type: str
    region:
      description: The region, or null for an id found in none of the regions.
      type: str
    reason:
      description: Why the image was not deregistered.
      type: str
  sample: [{image_id: ami-0123456789abcdef0, region: us-east-1, reason: "in use by instance i-0123456789abcdef0 (running)"}]
"""

import datetime
import re
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.bakery.ami.plugins.module_utils._client import aws_client
from ansible_collections.bakery.ami.plugins.module_utils._durations import DURATION_HELP, parse_duration, parse_time, utcnow
from ansible_collections.bakery.ami.plugins.module_utils._images import (
    deregister_image,
    find_own_images,
    snapshot_ids,
    snapshot_used_elsewhere,
)
from ansible_collections.bakery.ami.plugins.module_utils._regions import unknown_regions
from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, RETRY, aws_error_message
from ansible_collections.bakery.ami.plugins.module_utils._tags import tags_to_dict

IN_USE_STATES = ["pending", "running", "stopping", "stopped"]
# The trailing version of a name: a run of digits with separators among them.
NAME_VERSION_RE = re.compile(r"[-_.: ]*[0-9][0-9TZ:._-]*$")
# DescribeInstances takes at most 200 values per filter.
FILTER_CHUNK = 200


def argument_spec() -> dict[str, Any]:
    return dict(
        image_ids=dict(type="list", elements="str"),
        name=dict(type="str"),
        filters=dict(type="dict"),
        owners=dict(type="list", elements="str", default=["self"]),
        regions=dict(type="list", elements="str"),
        keep_latest=dict(type="int"),
        group_by=dict(type="str"),
        older_than=dict(type="str"),
        delete_snapshots=dict(type="bool", default=True),
        include_in_use=dict(type="bool", default=False),
    )


def name_prefix(name: str) -> str:
    return NAME_VERSION_RE.sub("", name) or name


def creation_time(image: dict[str, Any]) -> datetime.datetime:
    when = parse_time(image.get("CreationDate") or "")
    return when or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


@RETRY
def instances_launched_from(client: Any, image_ids: list[str]) -> list[dict[str, Any]]:
    """Instances not terminated that were launched from one of `image_ids`; the listing is retried as a whole."""
    paginator = client.get_paginator("describe_instances")
    pages = paginator.paginate(Filters=[{"Name": "image-id", "Values": image_ids}, {"Name": "instance-state-name", "Values": IN_USE_STATES}])
    return [instance for page in pages for reservation in page.get("Reservations", []) for instance in reservation.get("Instances", [])]


class ImagePruner:
    """Selects images in each region, applies the retention policy and deregisters what goes."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.regions: list[str] = list(module.params["regions"] or ([module.region] if module.region else []))
        self.deregistered: dict[str, list[str]] = {}
        self.deleted_snapshots: dict[str, list[str]] = {}
        self.kept_snapshots: dict[str, list[str]] = {}
        self.skipped: list[dict[str, str | None]] = []
        self.before: dict[str, list[str]] = {}
        self.after: dict[str, list[str]] = {}
        self.current_region: str | None = None
        self.found_ids: set[str] = set()

    def fail(self, msg: str) -> None:
        self.module.fail_json(msg=msg, **self.summary())

    def check_input(self) -> None:
        params = self.params
        if not (params["image_ids"] or params["name"] or params["filters"]):
            self.fail("Nothing selects the images: give image_ids, name or filters.")
        if params["image_ids"] and params["filters"]:
            self.fail("image_ids and filters are mutually exclusive: select images by ids, or by filters (and name).")
        if params["image_ids"] and params["name"]:
            self.fail("image_ids and name are mutually exclusive: select images by ids, or by name (and filters).")
        if not self.regions:
            self.fail("No region given: set regions, or region (or AWS_REGION), to EC2 regions such as us-east-1.")
        unknown = unknown_regions(self.regions)
        if unknown:
            self.fail(f"Unknown region {', '.join(map(repr, unknown))}: give EC2 region names such as us-east-1.")
        if params["keep_latest"] is not None and params["keep_latest"] < 0:
            self.fail(f"Invalid keep_latest {params['keep_latest']}: give 0 or a greater number of images to keep.")
        if params["older_than"] is not None and parse_duration(params["older_than"]) is None:
            self.fail(f"Invalid older_than {params['older_than']!r}: give {DURATION_HELP}.")
        group_by = params["group_by"]
        if group_by is not None:
            if group_by != "name_prefix" and not (group_by.startswith("tag:") and len(group_by) > 4):
                self.fail(f"Invalid group_by {group_by!r}: give tag:KEY or name_prefix.")
            if params["keep_latest"] is None:
                self.fail("group_by only applies with keep_latest: give keep_latest too.")

    def selection_filters(self) -> dict[str, list[str]]:
        params = self.params
        filters: dict[str, list[str]] = {}
        for key, value in (params["filters"] or {}).items():
            filters[str(key)] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if params["name"]:
            filters["name"] = [params["name"]]
        if params["image_ids"]:
            # A filter rather than ImageIds: an id absent from one region is not an error there.
            filters["image-id"] = list(params["image_ids"])
        return filters

    def group_key(self, image: dict[str, Any]) -> str:
        group_by = self.params["group_by"]
        if group_by is None:
            return ""
        if group_by == "name_prefix":
            return name_prefix(image.get("Name") or "")
        return tags_to_dict(image.get("Tags")).get(group_by[4:], "")

    def to_go(self, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The images the retention policy lets go, oldest first."""
        keep_latest = self.params["keep_latest"]
        candidates = list(images)
        if keep_latest is not None:
            groups: dict[str, list[dict[str, Any]]] = {}
            for image in images:
                groups.setdefault(self.group_key(image), []).append(image)
            candidates = []
            for members in groups.values():
                members.sort(key=lambda i: (creation_time(i), i["ImageId"]), reverse=True)
                candidates.extend(members[keep_latest:])
        if self.params["older_than"] is not None:
            cutoff = utcnow() - parse_duration(self.params["older_than"])  # type: ignore[operator]
            candidates = [i for i in candidates if creation_time(i) < cutoff]
        return sorted(candidates, key=lambda i: (creation_time(i), i["ImageId"]))

    def instances_using(self, client: Any, image_ids: list[str]) -> dict[str, tuple[str, str]]:
        """image id -> (instance id, state) of one instance launched from it."""
        users: dict[str, tuple[str, str]] = {}
        for start in range(0, len(image_ids), FILTER_CHUNK):
            for instance in instances_launched_from(client, image_ids[start:start + FILTER_CHUNK]):
                users.setdefault(instance["ImageId"], (instance["InstanceId"], instance.get("State", {}).get("Name", "")))
        return users

    def prune_region(self, region: str) -> None:
        self.current_region = region
        client = aws_client(self.module, region=region)
        check = self.module.check_mode
        selected = [i for i in find_own_images(client, self.selection_filters(), self.params["owners"]) if i.get("State") != "deregistered"]
        self.found_ids.update(i["ImageId"] for i in selected)
        going = self.to_go(selected)
        if going and not self.params["include_in_use"]:
            users = self.instances_using(client, [i["ImageId"] for i in going])
            for image in going:
                if image["ImageId"] in users:
                    instance_id, state = users[image["ImageId"]]
                    self.skipped.append({"image_id": image["ImageId"], "region": region, "reason": f"in use by instance {instance_id} ({state})"})
            going = [i for i in going if i["ImageId"] not in users]
        own_images = find_own_images(client, {}) if going and self.params["delete_snapshots"] else []
        gone: list[str] = []
        deleted = self.deleted_snapshots.setdefault(region, [])
        kept = self.kept_snapshots.setdefault(region, [])
        deregistered = self.deregistered.setdefault(region, [])
        for image in going:
            image_id = image["ImageId"]
            if check:
                snaps = snapshot_ids(image)
                if not self.params["delete_snapshots"]:
                    kept.extend(snaps)
                else:
                    for snap in snaps:
                        used = snapshot_used_elsewhere(client, snap, image_id, images=own_images, also_gone=gone)
                        (kept if used else deleted).append(snap)
            else:
                snaps_deleted, snaps_kept = deregister_image(
                    client, image, delete_snapshots=self.params["delete_snapshots"], images=own_images, also_gone=gone
                )
                deleted.extend(snaps_deleted)
                kept.extend(snaps_kept)
            gone.append(image_id)
            deregistered.append(image_id)
        self.before[region] = sorted(i["ImageId"] for i in selected)
        self.after[region] = sorted(i["ImageId"] for i in selected if i["ImageId"] not in gone)

    def summary(self) -> dict[str, Any]:
        return {
            "deregistered": self.deregistered,
            "deleted_snapshots": self.deleted_snapshots,
            "kept_snapshots": self.kept_snapshots,
            "skipped": self.skipped,
        }

    def run(self) -> dict[str, Any]:
        self.check_input()
        for region in self.regions:
            self.prune_region(region)
        for image_id in self.params["image_ids"] or []:
            if image_id not in self.found_ids:
                owners, regions = ", ".join(self.params["owners"]), ", ".join(self.regions)
                self.skipped.append({"image_id": image_id, "region": None, "reason": f"not found among the images of {owners} in {regions}"})
        result = {"changed": any(self.deregistered.values()), **self.summary()}
        if self.module._diff:
            result["diff"] = {"before": {"images": self.before}, "after": {"images": self.after}}
        return result


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    pruner = ImagePruner(module)
    try:
        module.exit_json(**pruner.run())
    except AWS_ERRORS as e:
        module.fail_json(
            msg=f"Could not deregister images in {pruner.current_region}: {aws_error_message(e).rstrip('.')}.",
            changed=any(pruner.deregistered.values()),
            **pruner.summary(),
        )


if __name__ == "__main__":
    main()
