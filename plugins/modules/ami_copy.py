#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright: contributors to bakery.ami
from __future__ import annotations

DOCUMENTATION = r"""
module: ami_copy
short_description: Copy one AMI to many regions at once
version_added: 0.1.0
description:
  - Copies an Amazon Machine Image from its source region into every target region in one task.
  - All copies are started at once, so the task takes about as long as the slowest region. The waiting polls one
    region at a time (the next as soon as one is available), which spends about one call per region beyond the polls
    of the slowest copy; a copy that fails is seen when its region's turn comes.
  - Each copy is tagged with C(bakery:copy-source=<source region>:<source image id>). A copy the account already owns
    with that tag and the copy's name in a target region is reused, so a second identical run reports no change.
    CopyImage is called first and its answer that the name is taken is what finds that copy, so a new copy costs
    no look-up; a name held by another image, or by a copy that failed, fails that region.
  - When a region fails, the copies that did succeed are deregistered and their snapshots deleted (O(on_failure=rollback)),
    then the task fails naming each failed region and its AWS error.
  - Bad input (an unknown region, a source image that does not exist, a KMS key unusable in a target region, an invalid
    AMI name) is reported before anything is created.
author:
  - bakery.ami contributors (!UNKNOWN)
options:
  source_image_id:
    description: ID of the image to copy.
    type: str
    required: true
  source_region:
    description:
      - Region the source image lives in.
      - Defaults to O(region).
    type: str
  regions:
    description:
      - Target regions that get a copy with the module-wide settings.
      - At least one of O(regions) and O(region_settings) is required.
    type: list
    elements: str
  region_settings:
    description:
      - Target regions with settings of their own; they override the module-wide ones for that region.
      - A region may appear here and in O(regions); it gets one copy.
    type: list
    elements: dict
    suboptions:
      region:
        description: The target region.
        type: str
        required: true
      name:
        description: Name of the copy in this region.
        type: str
      kms_key_id:
        description: KMS key (ID, alias or ARN, valid in this region) that encrypts the copy's snapshots.
        type: str
      tags:
        description: Tags added to the module-wide O(tags) for this region's copy and its snapshots.
        type: dict
  name:
    description:
      - Name of the copies. Defaults to the source image's name.
      - Checked against EC2's AMI name rules (3 to 128 letters, digits, spaces, parentheses, square brackets and C(. / - ' @ _)) before any change.
    type: str
  description:
    description: Description of the copies. Defaults to the source image's description.
    type: str
  encrypted:
    description:
      - Encrypt the copies' snapshots. Implied by any KMS key.
      - Without a KMS key, the account's default EBS key of each region is used.
    type: bool
    default: false
  kms_key_id:
    description:
      - KMS key that encrypts the copies' snapshots in every region without a key of its own in O(region_settings).
      - The key is checked with KMS DescribeKey in each region before any copy starts.
    type: str
  copy_tags:
    description:
      - Copy the source image's tags onto the copies and their snapshots.
      - O(tags) and per-region tags win over source tags with the same key.
    type: bool
    default: false
  deprecate_at:
    description:
      - When the copies become deprecated, as an ISO 8601 date or date-time in the future (UTC unless a zone is given),
        such as C(2027-01-31T00:00:00Z). EC2 keeps it to the minute.
      - Set on every copy, new or reused, once it is available, when its deprecation time differs.
      - Mutually exclusive with O(deprecate_in).
    type: str
  deprecate_in:
    description:
      - Deprecate the copies this long after the run, such as C(90d); units C(m), C(h), C(d) or C(w).
      - Set when a copy is made, or on a reused copy that has no deprecation time yet,
        so a rerun does not move it. Every copy of one run gets the same time.
      - Mutually exclusive with O(deprecate_at).
      - With O(wait=false), a new copy is not yet deprecated (here or by O(deprecate_at)); a later run does it.
    type: str
  on_failure:
    description:
      - What to do with the copies that succeeded when another region failed.
      - V(rollback) deregisters them and deletes their snapshots; V(keep) leaves them and returns them.
      - Either way the task fails.
    type: str
    choices: [rollback, keep]
    default: rollback
attributes:
  check_mode:
    support: full
    details:
      - Reports which regions would get a new copy (RV(copied_regions)) and which copies would be reused.
      - A reused copy whose deprecation time would change makes the task changed.
  diff_mode:
    support: full
    details: Shows the copy of each region before and after the task.
  idempotent:
    support: full
    details: A copy the account already owns with the copy's name and source tag is reused.
notes:
  - The copies run at once, so O(wait_timeout) bounds the whole wait.
extends_documentation_fragment:
  - bakery.ami._attributes
  - bakery.ami._tags
  - bakery.ami._launch_permissions
  - bakery.ami._image_wait
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
---
- name: Copy the new image to three regions, encrypted, and share it
  bakery.ami.ami_copy:
    source_image_id: ami-0123456789abcdef0
    source_region: eu-west-1
    regions: [eu-central-1, us-east-1, us-west-2]
    encrypted: true
    copy_tags: true
    tags:
      release: "2026.11"
    launch_permissions:
      user_ids: ["111122223333"]
    deprecate_at: "2027-05-31T00:00:00Z"
  register: copies

- name: Per-region KMS keys and names
  bakery.ami.ami_copy:
    source_image_id: ami-0123456789abcdef0
    source_region: eu-west-1
    kms_key_id: alias/images
    region_settings:
      - region: us-east-1
        kms_key_id: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
      - region: ap-southeast-2
        name: base-2026.11-apse2
        tags:
          team: sydney
    on_failure: keep

- name: Which regions would get a copy
  bakery.ami.ami_copy:
    source_image_id: ami-0123456789abcdef0
    source_region: eu-west-1
    regions: [us-east-1, us-west-2]
  check_mode: true
"""

RETURN = r"""
image_ids:
  description: The copy in each target region (reused or new); on failure with O(on_failure=keep), the copies that succeeded.
  returned: always
  type: dict
  sample: {"us-east-1": "ami-0a1b2c3d4e5f60718", "us-west-2": "ami-0f1e2d3c4b5a69788"}
images:
  description: Each copy by region, described the way every bakery.ami module returns images.
  returned: always
  type: dict
  sample:
    us-east-1:
      image_id: ami-0a1b2c3d4e5f60718
      name: base-2026.11
      description: Base image
      state: available
      creation_date: "2026-11-26T09:00:00.000Z"
      owner_id: "111122223333"
      architecture: x86_64
      root_device_name: /dev/xvda
      block_device_mappings: []
      snapshot_ids: [snap-0123456789abcdef0]
      tags: {"bakery:copy-source": "eu-west-1:ami-0123456789abcdef0"}
      public: false
      launch_permissions: [{"UserId": "111122223333"}]
      deprecation_time: null
  contains:
    image_id:
      description: Image ID.
      type: str
    name:
      description: Image name.
      type: str
    description:
      description: Image description.
      type: str
    state:
      description: Image state (V(available) once waited for; V(pending) with O(wait=false)).
      type: str
    creation_date:
      description: When the copy was made.
      type: str
    owner_id:
      description: Account that owns the copy.
      type: str
    architecture:
      description: Architecture.
      type: str
    root_device_name:
      description: Root device name.
      type: str
    block_device_mappings:
      description: Block device mappings, snake_case.
      type: list
      elements: dict
    snapshot_ids:
      description: IDs of the copy's EBS snapshots.
      type: list
      elements: str
    tags:
      description: Tags of the copy.
      type: dict
    public:
      description: Whether the copy is public.
      type: bool
    launch_permissions:
      description: Launch permissions of the copy, in EC2's shape.
      type: list
      elements: dict
    deprecation_time:
      description: When the copy is deprecated, if ever.
      type: str
copied_regions:
  description: Regions where a new copy was made (in check mode, would be made); the others reused their copy.
  returned: always
  type: list
  elements: str
  sample: ["us-west-2"]
"""

from typing import Any, Callable

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.bakery.ami.plugins.module_utils._bake_tags import COPY_SOURCE_TAG, copy_source_value
from ansible_collections.bakery.ami.plugins.module_utils._client import aws_clients
from ansible_collections.bakery.ami.plugins.module_utils._copy import CopyEngine, RegionOutcome, RegionPlan, kms_key_problem
from ansible_collections.bakery.ami.plugins.module_utils._deprecation import deprecation_problem, wanted_deprecation
from ansible_collections.bakery.ami.plugins.module_utils._durations import utcnow
from ansible_collections.bakery.ami.plugins.module_utils._images import ami_name_problem, describe_image, image_result
from ansible_collections.bakery.ami.plugins.module_utils._launch_permissions import (
    LAUNCH_PERMISSIONS_SPEC,
    public_requested,
    wanted_permissions,
)
from ansible_collections.bakery.ami.plugins.module_utils._regions import unknown_regions
from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS
from ansible_collections.bakery.ami.plugins.module_utils._tags import tags_to_dict


class BadInput(Exception):
    """Input that is refused before anything changes."""


class AmiCopy:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.deprecation = self.deprecation_for()

    def target_regions(self) -> list[str]:
        ordered = list(self.params["regions"] or []) + [s["region"] for s in self.params["region_settings"] or []]
        return list(dict.fromkeys(ordered))

    def settings_for(self, region: str) -> dict[str, Any]:
        for settings in self.params["region_settings"] or []:
            if settings["region"] == region:
                return settings
        return {}

    def check_input(self, source_region: str | None, regions: list[str]) -> None:
        if not source_region:
            raise BadInput("No source region: set source_region (or region).")
        unknown = unknown_regions([source_region] + regions)
        if unknown:
            raise BadInput(f"Unknown region {', '.join(sorted(set(unknown)))}: use EC2 region names such as us-east-1.")
        names = [self.params["name"]] + [self.settings_for(r).get("name") for r in regions]
        for name in names:
            problem = name is not None and ami_name_problem(name)
            if problem:
                raise BadInput(f"Cannot copy: {problem}.")
        if public_requested(self.params["launch_permissions"]) and not self.params["allow_public"]:
            raise BadInput("launch_permissions.group_names [all] makes every copy public: set allow_public: true to allow it.")
        problem = deprecation_problem(self.params["deprecate_at"], self.params["deprecate_in"])
        if problem:
            raise BadInput(problem)

    def source_image(self, client: Any, source_region: str) -> dict[str, Any]:
        image_id = self.params["source_image_id"]
        image = describe_image(client, image_id)
        if image is None or image.get("State") == "deregistered":
            raise BadInput(f"The source image {image_id} was not found in {source_region}: check source_image_id and source_region.")
        if image.get("State") != "available":
            raise BadInput(f"The source image {image_id} in {source_region} is {image.get('State')}: only an available image can be copied.")
        return image

    def check_kms_keys(self, plans: list[RegionPlan]) -> None:
        """Each region's key must exist there, be enabled and encrypt, before any copy starts."""
        with_keys = [plan for plan in plans if plan.kms_key_id]
        kms = aws_clients(self.module, "kms", [plan.region for plan in with_keys])
        for plan in with_keys:
            problem = kms_key_problem(kms[plan.region], str(plan.kms_key_id))
            if problem:
                raise BadInput(f"The KMS key {plan.kms_key_id} is not usable in {plan.region}: {problem}; give an enabled key of that region.")

    def plans(self, source: dict[str, Any], source_region: str, regions: list[str]) -> list[RegionPlan]:
        base_tags = {k: v for k, v in tags_to_dict(source.get("Tags")).items() if not k.startswith("aws:")} if self.params["copy_tags"] else {}
        base_tags.update(self.params["tags"] or {})
        plans = []
        for region in regions:
            settings = self.settings_for(region)
            kms_key_id = settings.get("kms_key_id") or self.params["kms_key_id"]
            name = settings.get("name") or self.params["name"] or source.get("Name") or ""
            problem = ami_name_problem(name)
            if problem:
                raise BadInput(f"Cannot copy {source['ImageId']} to {region}: {problem}; set name.")
            tags = {**base_tags, **(settings.get("tags") or {})}
            tags[COPY_SOURCE_TAG] = copy_source_value(source_region, source["ImageId"])
            plans.append(
                RegionPlan(
                    region=region,
                    name=name,
                    description=self.params["description"] if self.params["description"] is not None else source.get("Description"),
                    encrypted=bool(self.params["encrypted"] or kms_key_id),
                    kms_key_id=kms_key_id,
                    tags=tags,
                )
            )
        return plans

    def result_of(self, outcomes: list[RegionOutcome]) -> dict[str, Any]:
        done = [o for o in outcomes if o.image is not None and not o.error]
        return {
            "image_ids": {o.region: o.image["ImageId"] for o in done if o.image},
            "images": {o.region: image_result(o.image, o.launch_permissions) for o in done if o.image},
            "copied_regions": [o.region for o in outcomes if o.created and not o.error],
        }

    def diff(self, outcomes: list[RegionOutcome]) -> dict[str, Any]:
        """The copy in each region before and after (a new copy in check mode shows as "(new copy)")."""
        before = {o.region: o.image["ImageId"] for o in outcomes if o.image and not o.created}
        after = {o.region: o.image["ImageId"] if o.image else "(new copy)" for o in outcomes}
        diff: dict[str, Any] = {"before": {"image_ids": before}, "after": {"image_ids": after}}
        if self.params["deprecate_at"] or self.params["deprecate_in"]:
            diff["before"]["deprecation_times"] = {o.region: o.deprecation_before for o in outcomes if o.image and not o.created}
            diff["after"]["deprecation_times"] = {o.region: self.deprecation_after(o) for o in outcomes}
        return diff

    def deprecation_after(self, outcome: RegionOutcome) -> str | None:
        if not self.check_mode:
            return outcome.image.get("DeprecationTime") if outcome.image else None
        # Check mode changed nothing: what the run would set, or what the copy keeps.
        current = outcome.image.get("DeprecationTime") if outcome.image else None
        return self.deprecation(current) or current

    def deprecation_for(self) -> Callable[[str | None], str | None]:
        """current DeprecationTime -> the one to set; one start time, so deprecate_in gives every copy the same time."""
        now = utcnow()
        at, within = self.params["deprecate_at"], self.params["deprecate_in"]
        return lambda current: wanted_deprecation(at, within, current, now)

    def run(self) -> None:
        source_region = self.params["source_region"] or self.module.region
        regions = self.target_regions()
        try:
            self.check_input(source_region, regions)
            clients = aws_clients(self.module, "ec2", list(dict.fromkeys([source_region] + regions)))
            source = self.source_image(clients[source_region], source_region)
            plans = self.plans(source, source_region, regions)
            self.check_kms_keys(plans)
        except BadInput as e:
            self.module.fail_json(msg=str(e))
        except AWS_ERRORS as e:  # while reading the source image or the target regions
            self.module.fail_json_aws(e, msg=f"Could not prepare the copy of {self.params['source_image_id']} from {source_region}")
        engine = CopyEngine(
            # Clients are made here, one per region, because making them is not thread-safe.
            {region: clients[region] for region in regions},
            source_region,
            self.params["source_image_id"],
            wanted_permissions(self.params["launch_permissions"]),
            self.params["wait_timeout"],
            deprecation=self.deprecation,
        )
        outcomes = list(engine.run(plans, self.params["wait"], self.check_mode).values())
        changed = any(o.changed for o in outcomes)
        failed = [o for o in outcomes if o.error]
        if not failed:
            extra = {"diff": self.diff(outcomes)} if self.module._diff else {}
            self.module.exit_json(changed=changed, **extra, **self.result_of(outcomes))
        errors = "; ".join(f"{o.region}: {o.error}" for o in failed)
        msg = f"Copying {source['ImageId']} from {source_region} failed in {len(failed)} of {len(outcomes)} regions ({errors})"
        if self.params["on_failure"] == "rollback":
            rollback_errors = engine.rollback_all(outcomes)
            undone = sorted(r for r, err in rollback_errors.items() if err is None)
            left = {r: err for r, err in rollback_errors.items() if err is not None}
            msg += f"; rolled back the new copies in {', '.join(undone)}" if undone else "; no new copy needed rolling back"
            if left:
                msg += "; could NOT roll back " + ", ".join(f"{r} ({err})" for r, err in sorted(left.items()))
            kept = [o for o in outcomes if not o.created and not o.error]
            self.module.fail_json(msg=msg + ".", changed=bool(undone or left), **self.result_of(kept))
        self.module.fail_json(msg=msg + "; the copies that succeeded were kept.", changed=changed, **self.result_of(outcomes))


def main() -> None:
    argument_spec: dict[str, Any] = {
        "source_image_id": {"type": "str", "required": True},
        "source_region": {"type": "str"},
        "regions": {"type": "list", "elements": "str"},
        "region_settings": {
            "type": "list",
            "elements": "dict",
            "options": {
                "region": {"type": "str", "required": True},
                "name": {"type": "str"},
                "kms_key_id": {"type": "str"},
                "tags": {"type": "dict"},
            },
        },
        "name": {"type": "str"},
        "description": {"type": "str"},
        "encrypted": {"type": "bool", "default": False},
        "kms_key_id": {"type": "str"},
        "tags": {"type": "dict", "aliases": ["resource_tags"]},
        "copy_tags": {"type": "bool", "default": False},
        "launch_permissions": dict(LAUNCH_PERMISSIONS_SPEC),
        "allow_public": {"type": "bool", "default": False},
        "deprecate_at": {"type": "str"},
        "deprecate_in": {"type": "str"},
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 1800},
        "on_failure": {"type": "str", "choices": ["rollback", "keep"], "default": "rollback"},
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_one_of=[("regions", "region_settings")],
        mutually_exclusive=[("deprecate_at", "deprecate_in")],
        supports_check_mode=True,
    )
    AmiCopy(module).run()


if __name__ == "__main__":
    main()
