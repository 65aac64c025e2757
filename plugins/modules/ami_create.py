#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright: contributors to bakery.ami
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ami_create
short_description: Create an AMI from an instance, idempotently by name
version_added: 0.1.0
description:
  - Images an EC2 instance into an Amazon Machine Image (AMI) and waits until it is available, reporting snapshot progress on a timeout.
  - Idempotent by name in the account and region. When the account already owns an image with O(name),
    that image is returned with C(changed=false), and its tags, snapshot tags, launch permissions, snapshot
    create-volume permissions, IMDS support and deprecation are brought to the requested state.
  - Tags are given to the image and to its snapshots in the CreateImage call itself, so nothing is ever left untagged.
  - CreateImage takes no client token; a CreateImage call retried after a lost response meets the name already
    taken and the module then returns the image that call created, so a retry never makes two images.
  - The AMI name is checked against EC2's rules before any AWS call. An instance that does not exist or is terminated
    is refused (by CreateImage itself, or before anything changes with O(force), O(tpm_support) or O(boot_mode)),
    naming the instance and its state.
author:
  - bakery.ami contributors (!UNKNOWN)
options:
  instance_id:
    description:
      - The instance to image. It must exist in O(region) and not be terminated.
      - Only needed to create an image; an existing image of the same name is returned whatever the instance's state.
    type: str
    required: true
  name:
    description:
      - The AMI name, unique in the account and region.
      - 3 to 128 characters among letters, digits, spaces, parentheses, square brackets and C(. / - ' @ _).
    type: str
    required: true
  description:
    description:
      - The AMI description. Only used when the image is created.
    type: str
  snapshot_tags:
    description:
      - Tags for the image's snapshots, instead of O(tags), with the same rules (and O(purge_tags)).
    type: dict
  no_reboot:
    description:
      - Do not shut the instance down before imaging it. The file systems may then be inconsistent.
    type: bool
    default: false
  block_device_mappings:
    description:
      - Block device mappings of the new image, overriding or adding to the instance's.
    type: list
    elements: dict
    suboptions:
      device_name:
        description: The device name, such as C(/dev/xvda).
        type: str
        required: true
      no_device:
        description: Leave this device out of the image.
        type: bool
      virtual_name:
        description: An instance store volume name, such as C(ephemeral0).
        type: str
      volume_size:
        description: Size of the EBS volume in GiB.
        type: int
      volume_type:
        description: The EBS volume type.
        type: str
        choices: ['standard', 'io1', 'io2', 'gp2', 'gp3', 'sc1', 'st1']
      iops:
        description: Provisioned IOPS (io1, io2, gp3).
        type: int
      throughput:
        description: Throughput in MiB/s (gp3).
        type: int
      delete_on_termination:
        description: Delete the volume when an instance launched from the image terminates.
        type: bool
      encrypted:
        description: Encrypt the volume.
        type: bool
  boot_mode:
    description:
      - Override the boot mode the image inherits from the instance. EC2 accepts only C(uefi),
        and only from an instance that currently boots in UEFI mode.
    type: str
    choices: ['uefi']
  imds_support:
    description:
      - C(v2.0) makes instances launched from the image require IMDSv2. EC2 cannot turn this off again once set.
    type: str
    choices: ['v2.0']
  tpm_support:
    description:
      - C(v2.0) requires the image to support NitroTPM. An image gets it from an instance with NitroTPM enabled,
        so the module fails, before creating anything, when the instance has it not.
    type: str
    choices: ['v2.0']
  deprecate_at:
    description:
      - When the image becomes deprecated, as an ISO 8601 date or date-time in the future (UTC unless a zone is given),
        such as C(2027-01-31T00:00:00Z). EC2 keeps it to the minute.
      - Mutually exclusive with O(deprecate_in).
    type: str
  deprecate_in:
    description:
      - Deprecate the image this long after the run, such as C(90d); units C(m), C(h), C(d) or C(w).
      - Set when the image is created, or on an existing image that has no deprecation time yet,
        so a rerun does not move it.
      - Mutually exclusive with O(deprecate_at).
    type: str
  snapshot_create_volume_permissions:
    description:
      - AWS account ids allowed to create volumes from the image's snapshots, made exactly these.
      - By default the account ids in O(launch_permissions.user_ids) when O(launch_permissions) is given,
        so accounts the image is shared with can launch it when its snapshots are encrypted with a shared key.
        Otherwise left as they are.
    type: list
    elements: str
  force:
    description:
      - Replace an existing image of the same name. It is deregistered and its snapshots deleted
        (those not used by another image) before the new image is created, so the task always changes something.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reports whether an image would be created, replaced or updated, and changes nothing.
  diff_mode:
    support: full
    details: Shows the image's name, tags, snapshot tags, launch permissions, IMDS support and deprecation time before and after.
  idempotent:
    support: partial
    details: With O(force=true) the image is replaced on every run.
notes:
  - Throttled and transient EC2 errors are retried with jittered backoff, also while waiting.
  - On a timeout of the wait the task fails with the snapshot progress read in the last minute of the wait.
  - With O(wait=false) the tags, launch permissions and deprecation are set on the image while it is still pending.
extends_documentation_fragment:
  - bakery.ami._attributes
  - bakery.ami._tags
  - bakery.ami._tags.purge
  - bakery.ami._launch_permissions
  - bakery.ami._image_wait
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
---
- name: Image the builder, tag the image and its snapshots, share it with one account
  bakery.ami.ami_create:
    instance_id: "{{ builder_instance_id }}"
    name: "web-{{ bake_id }}"
    description: Web server image
    tags:
      Name: web
      bakery:bake-id: "{{ bake_id }}"
    launch_permissions:
      user_ids:
        - "111122223333"
    deprecate_in: 180d
    imds_support: v2.0
    wait_timeout: 3600
  register: web_image

- name: Rebuild an image under the same name
  bakery.ami.ami_create:
    instance_id: "{{ builder_instance_id }}"
    name: web-latest
    force: true

- name: Make an image public
  bakery.ami.ami_create:
    instance_id: "{{ builder_instance_id }}"
    name: community-base-2027-01
    launch_permissions:
      group_names:
        - all
    allow_public: true
"""

RETURN = r"""
image_id:
  description: The image's id; null in check mode when the image would be created.
  returned: always
  type: str
  sample: ami-0123456789abcdef0
image:
  description:
    - The image; null in check mode when the image would be created, and with O(wait=false) when EC2 does not list the new image yet.
  returned: always
  type: dict
  contains:
    image_id:
      description: The image id.
      type: str
    name:
      description: The image name.
      type: str
    description:
      description: The image description.
      type: str
    state:
      description: The image state, such as C(available) or C(pending).
      type: str
    creation_date:
      description: When the image was created (ISO 8601).
      type: str
    owner_id:
      description: The owning account.
      type: str
    architecture:
      description: The image architecture.
      type: str
    root_device_name:
      description: The root device name.
      type: str
    block_device_mappings:
      description: The block device mappings (snake_case keys).
      type: list
      elements: dict
    snapshot_ids:
      description: The ids of the image's EBS snapshots.
      type: list
      elements: str
    tags:
      description: The image tags.
      type: dict
    public:
      description: Whether anyone may launch the image.
      type: bool
    launch_permissions:
      description: The launch permissions, as EC2 returns them (C(UserId), C(Group), C(OrganizationArn), C(OrganizationalUnitArn)).
      type: list
      elements: dict
    deprecation_time:
      description: When the image becomes deprecated, or null.
      type: str
  sample:
    image_id: ami-0123456789abcdef0
    name: web-20270101
    state: available
    snapshot_ids: [snap-0123456789abcdef0]
    tags: {Name: web}
    launch_permissions: [{UserId: "111122223333"}]
    deprecation_time: "2027-06-30T00:00:00.000Z"
replaced_image_id:
  description: With O(force), the id of the image of the same name that was (or in check mode would be) deregistered; otherwise null.
  returned: always
  type: str
  sample: ami-0fedcba9876543210
deleted_snapshots:
  description: With O(force), the snapshots of the replaced image that were deleted (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [snap-0fedcba9876543210]
"""

import time
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.bakery.ami.plugins.module_utils._client import aws_client
from ansible_collections.bakery.ami.plugins.module_utils._deprecation import deprecation_problem, wanted_deprecation
from ansible_collections.bakery.ami.plugins.module_utils._images import (
    IMAGE_NOT_FOUND,
    ami_name_problem,
    deregister_image,
    find_own_image_by_name,
    image_result,
    snapshot_ids,
    snapshot_used_elsewhere,
)
from ansible_collections.bakery.ami.plugins.module_utils._launch_permissions import (
    LAUNCH_PERMISSIONS_SPEC,
    apply_permissions,
    as_set,
    describe_launch_permissions,
    permission_changes,
    public_requested,
    user_ids,
    wanted_permissions,
)
from ansible_collections.bakery.ami.plugins.module_utils._regions import unknown_regions
from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, RETRY, aws_error_message, is_aws_error_code
from ansible_collections.bakery.ami.plugins.module_utils._snapshots import (
    change_volume_permissions,
    describe_snapshots,
    snapshots_progress,
    volume_permission_changes,
    volume_permission_user_ids,
)
from ansible_collections.bakery.ami.plugins.module_utils._tags import change_tags, tag_changes, tag_specifications, tags_after, tags_to_dict
from ansible_collections.bakery.ami.plugins.module_utils._waiter import IMAGE_AVAILABLE, WaitError, Waiter

IMAGE_FAILED_STATES = frozenset(("failed", "error", "invalid", "deregistered"))
GONE_INSTANCE_STATES = frozenset(("shutting-down", "terminated"))
# CreateImage's own answers for an instance that cannot be imaged.
INSTANCE_PROBLEM_CODES = frozenset(("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed", "IncorrectState", "IncorrectInstanceState"))

# Snapshot progress only goes into the timeout message, so it is read in the last PROGRESS_WINDOW
# seconds before the deadline, and never in the first PROGRESS_AFTER seconds of a wait.
PROGRESS_AFTER = 30.0
PROGRESS_WINDOW = 60.0

BDM_KEYS = {
    "volume_size": "VolumeSize",
    "volume_type": "VolumeType",
    "iops": "Iops",
    "throughput": "Throughput",
    "delete_on_termination": "DeleteOnTermination",
    "encrypted": "Encrypted",
}


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _clock() -> float:
    return time.monotonic()


def argument_spec() -> dict[str, Any]:
    return dict(
        instance_id=dict(type="str", required=True),
        name=dict(type="str", required=True),
        description=dict(type="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        snapshot_tags=dict(type="dict"),
        no_reboot=dict(type="bool", default=False),
        block_device_mappings=dict(
            type="list",
            elements="dict",
            options=dict(
                device_name=dict(type="str", required=True),
                no_device=dict(type="bool"),
                virtual_name=dict(type="str"),
                volume_size=dict(type="int"),
                volume_type=dict(type="str", choices=["standard", "io1", "io2", "gp2", "gp3", "sc1", "st1"]),
                iops=dict(type="int"),
                throughput=dict(type="int"),
                delete_on_termination=dict(type="bool"),
                encrypted=dict(type="bool"),
            ),
        ),
        boot_mode=dict(type="str", choices=["uefi"]),
        imds_support=dict(type="str", choices=["v2.0"]),
        tpm_support=dict(type="str", choices=["v2.0"]),
        deprecate_at=dict(type="str"),
        deprecate_in=dict(type="str"),
        launch_permissions=LAUNCH_PERMISSIONS_SPEC,
        allow_public=dict(type="bool", default=False),
        snapshot_create_volume_permissions=dict(type="list", elements="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
        force=dict(type="bool", default=False),
    )


def block_device_mappings(option: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    mappings = []
    for item in option or []:
        mapping: dict[str, Any] = {"DeviceName": item["device_name"]}
        if item.get("no_device"):
            mapping["NoDevice"] = ""
        elif item.get("virtual_name"):
            mapping["VirtualName"] = item["virtual_name"]
        else:
            ebs = {BDM_KEYS[k]: item[k] for k in BDM_KEYS if item.get(k) is not None}
            if ebs:
                mapping["Ebs"] = ebs
        mappings.append(mapping)
    return mappings


@dataclass
class ImageState:
    """The parts of an image this module manages, as read from EC2.

    `snapshot_tags` is None when not read: an image this run's CreateImage made got them in that
    call. `volume_permissions` is None when nothing asked about them.
    """

    image: dict[str, Any]
    snapshot_ids: list[str]
    snapshot_tags: dict[str, dict[str, str]] | None
    launch_permissions: list[dict[str, str]]
    volume_permissions: dict[str, list[str]] | None

    @property
    def image_id(self) -> str:
        return str(self.image["ImageId"])

    @property
    def tags(self) -> dict[str, str]:
        return tags_to_dict(self.image.get("Tags"))

    def view(self) -> dict[str, Any]:
        """What the diff shows of the image."""
        return {
            "image_id": self.image_id,
            "name": self.image.get("Name"),
            "tags": self.tags,
            "snapshot_tags": dict(self.snapshot_tags or {}),
            "launch_permissions": [{k: v} for k, v in sorted(as_set(self.launch_permissions))],
            "snapshot_create_volume_permissions": dict(self.volume_permissions or {}),
            "imds_support": self.image.get("ImdsSupport"),
            "deprecation_time": self.image.get("DeprecationTime"),
        }


@dataclass
class ImageChanges:
    """What bringing an existing image to the requested state changes, planned once from its state.

    Check mode reports it; a real run applies it.
    """

    state: ImageState
    tags_to_set: dict[str, str] = field(default_factory=dict)
    tags_to_remove: list[str] = field(default_factory=list)
    # Only the snapshots whose tags or create-volume permissions change: id -> (to set/add, to remove).
    snapshot_tags: dict[str, tuple[dict[str, str], list[str]]] = field(default_factory=dict)
    volume_permissions: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    imds_support: str | None = None
    deprecate_at: str | None = None
    launch_to_add: list[dict[str, str]] = field(default_factory=list)
    launch_to_remove: list[dict[str, str]] = field(default_factory=list)

    def changes_anything(self) -> bool:
        return bool(
            self.tags_to_set
            or self.tags_to_remove
            or self.snapshot_tags
            or self.volume_permissions
            or self.imds_support
            or self.deprecate_at
            or self.launch_to_add
            or self.launch_to_remove
        )

    def view_after(self) -> dict[str, Any]:
        """What the diff shows of the image once the changes are applied."""
        after = self.state.view()
        after["tags"] = tags_after(after["tags"], self.tags_to_set, self.tags_to_remove)
        for snap, (to_set, to_remove) in self.snapshot_tags.items():
            after["snapshot_tags"][snap] = tags_after(after["snapshot_tags"].get(snap, {}), to_set, to_remove)
        launch = (as_set(self.state.launch_permissions) - as_set(self.launch_to_remove)) | as_set(self.launch_to_add)
        after["launch_permissions"] = [{k: v} for k, v in sorted(launch)]
        volume = after["snapshot_create_volume_permissions"]
        for snap, (add, remove) in self.volume_permissions.items():
            volume[snap] = sorted((set(volume.get(snap, [])) - set(remove)) | set(add))
        if self.imds_support:
            after["imds_support"] = self.imds_support
        if self.deprecate_at:
            after["deprecation_time"] = self.deprecate_at
        return after


@dataclass
class Plan:
    """What a run does, decided before anything changes.

    With `keep`, the account's image of that name is brought to the requested state. Otherwise an
    image is created, once `replace` (the image of that name, with force) is deregistered.
    `looked_up`: the name was looked up first. Without that look-up CreateImage itself says
    whether the name is taken, which saves a call on a new image.
    """

    looked_up: bool
    keep: ImageChanges | None = None
    replace: dict[str, Any] | None = None


class ImageCreator:
    """Makes sure an image called `name` exists in the module's region, in the requested state."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.name: str = module.params["name"]
        self.region = module.region
        self.client: Any = None
        self.changed = False
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.replaced_image_id: str | None = None
        self.deleted_snapshots: list[str] = []
        self.wanted_launch = wanted_permissions(self.params["launch_permissions"])
        # The image's launch permissions once they are known, so result() need not ask again.
        self.launch_permissions: list[dict[str, str]] | None = None

    # ---- input checks: no AWS call before these pass
    def fail(self, msg: str, **extra: Any) -> None:
        self.module.fail_json(msg=msg, **extra)

    def check_input(self) -> None:
        params = self.params
        problem = ami_name_problem(self.name)
        if problem:
            self.fail(f"Invalid name: {problem}.")
        if not self.region:
            self.fail("No region given: set region (or AWS_REGION) to one of the EC2 regions, such as us-east-1.")
        if unknown_regions([self.region]):
            self.fail(f"Unknown region {self.region!r}: give an EC2 region name such as us-east-1.")
        problem = deprecation_problem(params["deprecate_at"], params["deprecate_in"])
        if problem:
            self.fail(problem)
        launch = params["launch_permissions"] or {}
        groups = launch.get("group_names") or []
        others = [g for g in groups if g != "all"]
        if others:
            self.fail(f"Invalid launch_permissions.group_names {others!r}: the only group EC2 knows is 'all'.")
        if public_requested(launch) and not params["allow_public"]:
            self.fail("launch_permissions.group_names 'all' would make the image public: set allow_public: true to allow it.")
        account_lists = (
            ("launch_permissions.user_ids", launch.get("user_ids")),
            ("snapshot_create_volume_permissions", params["snapshot_create_volume_permissions"]),
        )
        for key, ids in account_lists:
            bad = [i for i in ids or [] if not (str(i).isdigit() and len(str(i)) == 12)]
            if bad:
                self.fail(f"Invalid {key} {bad!r}: AWS account ids are 12 digits.")
        if params["wait_timeout"] <= 0:
            self.fail(f"Invalid wait_timeout {params['wait_timeout']}: give a number of seconds greater than 0.")

    # ---- the requested state
    def wanted_snapshot_tags(self) -> dict[str, str] | None:
        if self.params["snapshot_tags"] is not None:
            return self.params["snapshot_tags"]
        return self.params["tags"]

    def wanted_volume_permissions(self) -> list[str] | None:
        if self.params["snapshot_create_volume_permissions"] is not None:
            return [str(i) for i in self.params["snapshot_create_volume_permissions"]]
        if self.wanted_launch is not None:
            return user_ids(self.wanted_launch)
        return None

    def wanted_deprecation(self, current: str | None) -> str | None:
        """The deprecation time to set (ISO, to the minute), or None when nothing is to change."""
        return wanted_deprecation(self.params["deprecate_at"], self.params["deprecate_in"], current)

    def planned_new_state(self) -> dict[str, Any]:
        """What the diff shows of an image check mode would create."""
        return {
            "image_id": None,
            "name": self.name,
            "tags": self.params["tags"] or {},
            "snapshot_tags": self.wanted_snapshot_tags() or {},
            "launch_permissions": [{k: v} for k, v in sorted(self.wanted_launch or set())],
            "snapshot_create_volume_permissions": self.wanted_volume_permissions() or [],
            "imds_support": self.params["imds_support"],
            "deprecation_time": self.wanted_deprecation(None),
        }

    # ---- one run: plan, then report the plan (check mode) or carry it out
    def run(self) -> dict[str, Any]:
        self.check_input()
        self.client = aws_client(self.module)
        plan = self.plan()
        if self.module.check_mode:
            return self.report(plan)
        return self.carry_out(plan)

    def needs_lookup_first(self) -> bool:
        """Whether the image of that name must be looked up before CreateImage.

        Check mode and diff must see it without changing anything, force replaces it first, and
        tpm_support / boot_mode check the instance first, which an existing image does not need.
        Otherwise CreateImage itself tells whether the name is taken, saving a call on a new image.
        """
        params = self.params
        return bool(self.module.check_mode or self.module._diff or params["force"] or params["tpm_support"] or params["boot_mode"])

    def plan(self) -> Plan:
        if not self.needs_lookup_first():
            return Plan(looked_up=False)
        existing = find_own_image_by_name(self.client, self.name)
        if existing and not self.params["force"]:
            return Plan(looked_up=True, keep=self.plan_keep(existing))
        self.check_instance()
        if existing and self.module._diff:
            self.before = self.read_state(existing).view()
        return Plan(looked_up=True, replace=existing)

    def plan_keep(self, existing: dict[str, Any]) -> ImageChanges:
        """The account already has an image of that name: what bringing it to the requested state changes."""
        if existing.get("State") in IMAGE_FAILED_STATES:
            self.fail(f"Image {existing['ImageId']} named {self.name!r} is in state {existing['State']}: use force: true to replace it.")
        diff = self.module._diff
        changes = self.plan_changes(self.read_state(existing, volume=diff or self.wanted_volume_permissions() is not None))
        if diff:
            self.before = changes.state.view()
        return changes

    def report(self, plan: Plan) -> dict[str, Any]:
        """Check mode: what carry_out() would change, changing nothing."""
        if plan.keep is not None:
            self.changed = plan.keep.changes_anything()
            self.launch_permissions = plan.keep.state.launch_permissions
            if self.module._diff:
                self.after = plan.keep.view_after()
            return self.result(plan.keep.state.image)
        self.changed = True
        if plan.replace:
            replaced = plan.replace["ImageId"]
            self.replaced_image_id = replaced
            self.deleted_snapshots = [snap for snap in snapshot_ids(plan.replace) if not snapshot_used_elsewhere(self.client, snap, replaced)]
        self.after = self.planned_new_state() if self.module._diff else {}
        return self.result(None)

    def carry_out(self, plan: Plan) -> dict[str, Any]:
        if plan.keep is not None:
            return self.keep(plan.keep)
        if plan.replace:
            self.replaced_image_id = plan.replace["ImageId"]
            self.deleted_snapshots, _kept = deregister_image(self.client, plan.replace, delete_snapshots=True)
        try:
            image_id, holder, attempts = self.attempt_create()
        except is_aws_error_code(*INSTANCE_PROBLEM_CODES):
            if plan.looked_up:
                raise
            # An existing image of that name is returned whatever the instance's state.
            holder = find_own_image_by_name(self.client, self.name)
            if holder is not None:
                return self.keep(self.plan_keep(holder))
            self.check_instance()  # fails naming the instance and its state
            raise
        if holder is not None and attempts == 1 and not plan.looked_up:
            # The name was taken before this run: that image is the one to keep.
            return self.keep(self.plan_keep(holder))
        self.changed = True
        if holder is not None:
            # A retried call whose first attempt went through: the name is ours now.
            return self.finish_new(str(holder["ImageId"]), made_here=False)
        return self.finish_new(str(image_id), made_here=True)

    def keep(self, changes: ImageChanges) -> dict[str, Any]:
        """Brings the existing image to the requested state, once it is available when waiting."""
        image = changes.state.image
        if image.get("State") == "pending" and self.params["wait"]:
            image = self.wait_available(image["ImageId"])
        image = self.apply_changes(changes, image)
        if self.module._diff:
            self.after = self.read_state(image).view()
        return self.result(image)

    def finish_new(self, image_id: str, made_here: bool) -> dict[str, Any]:
        """Waits for (or describes) the image this run created, brings it to the requested state and returns the result.

        `made_here`: CreateImage answered with its id, so the image is exactly what the request asked.
        """
        image = self.wait_available(image_id) if self.params["wait"] else self.describe_pending(image_id)
        if image:
            state = self.read_state(image, made_here=made_here, volume=self.wanted_volume_permissions() is not None)
            image = self.apply_changes(self.plan_changes(state), image)
        if self.module._diff:
            self.after = self.read_state(image).view() if image else self.planned_new_state()
        return self.result(image, image_id)

    # ---- the image's managed parts: read, planned, applied
    def read_state(self, image: dict[str, Any], made_here: bool = False, volume: bool = True) -> ImageState:
        """`made_here`: an image this run's CreateImage made; its snapshots got their tags in that call
        and it has no launch permissions yet, so neither is read. `volume`: read the snapshots'
        create-volume permissions."""
        if made_here:
            snap_ids = snapshot_ids(image)
            snapshot_tags = None
            launch: list[dict[str, str]] = []
        else:
            snaps = describe_snapshots(self.client, snapshot_ids(image))
            snap_ids = [s["SnapshotId"] for s in snaps]
            snapshot_tags = {s["SnapshotId"]: tags_to_dict(s.get("Tags")) for s in snaps}
            launch = describe_launch_permissions(self.client, image["ImageId"])
        volume_permissions = {s: volume_permission_user_ids(self.client, s) for s in snap_ids} if volume else None
        return ImageState(image, snap_ids, snapshot_tags, launch, volume_permissions)

    def plan_changes(self, state: ImageState) -> ImageChanges:
        params = self.params
        changes = ImageChanges(state)
        changes.tags_to_set, changes.tags_to_remove = tag_changes(state.tags, params["tags"], params["purge_tags"])
        for snap, tags in (state.snapshot_tags or {}).items():
            to_set, to_remove = tag_changes(tags, self.wanted_snapshot_tags(), params["purge_tags"])
            if to_set or to_remove:
                changes.snapshot_tags[snap] = (to_set, to_remove)
        wanted_volume = self.wanted_volume_permissions()
        for snap, have in (state.volume_permissions or {}).items():
            add, remove = volume_permission_changes(have, wanted_volume)
            if add or remove:
                changes.volume_permissions[snap] = (add, remove)
        if params["imds_support"] and state.image.get("ImdsSupport") != params["imds_support"]:
            changes.imds_support = params["imds_support"]
        changes.deprecate_at = self.wanted_deprecation(state.image.get("DeprecationTime"))
        changes.launch_to_add, changes.launch_to_remove = permission_changes(state.launch_permissions, self.wanted_launch)
        return changes

    def apply_changes(self, changes: ImageChanges, image: dict[str, Any]) -> dict[str, Any]:
        """Applies the planned changes to `image`; returns it, re-read when anything changed."""
        image_id = changes.state.image_id
        change_tags(self.client, [image_id], changes.tags_to_set, changes.tags_to_remove)
        for snap, (to_set, to_remove) in changes.snapshot_tags.items():
            change_tags(self.client, [snap], to_set, to_remove)
        if changes.imds_support:
            self.client.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": changes.imds_support}, aws_retry=True)
        if changes.deprecate_at:
            self.client.enable_image_deprecation(ImageId=image_id, DeprecateAt=changes.deprecate_at, aws_retry=True)
        apply_permissions(self.client, image_id, changes.launch_to_add, changes.launch_to_remove)
        for snap, (add, remove) in changes.volume_permissions.items():
            change_volume_permissions(self.client, snap, add, remove)
        if self.wanted_launch is not None:
            self.launch_permissions = [{k: v} for k, v in sorted(self.wanted_launch)]
        else:
            self.launch_permissions = changes.state.launch_permissions
        if not changes.changes_anything():
            return image
        self.changed = True
        return self.describe(image_id)

    # ---- AWS
    def check_instance(self) -> None:
        instance_id = self.params["instance_id"]
        try:
            reservations = self.client.describe_instances(InstanceIds=[instance_id], aws_retry=True)["Reservations"]
        except is_aws_error_code("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            self.fail(f"Instance {instance_id!r} not found in {self.region}: give the id of an existing instance to image.")
            raise  # not reached
        instances = [i for r in reservations for i in r.get("Instances", [])]
        if not instances:
            self.fail(f"Instance {instance_id!r} not found in {self.region}: give the id of an existing instance to image.")
        instance = instances[0]
        state = instance.get("State", {}).get("Name")
        if state in GONE_INSTANCE_STATES:
            self.fail(f"Instance {instance_id} is {state}: only a pending, running, stopping or stopped instance can be imaged.")
        if self.params["tpm_support"] and instance.get("TpmSupport") != self.params["tpm_support"]:
            self.fail(
                f"tpm_support {self.params['tpm_support']} needs an instance with NitroTPM enabled, and {instance_id} has it not: "
                "launch the builder from an image with TPM support."
            )
        boot = instance.get("CurrentInstanceBootMode")
        if self.params["boot_mode"] and boot and boot != self.params["boot_mode"]:
            self.fail(f"boot_mode {self.params['boot_mode']} needs an instance booted in that mode, and {instance_id} boots in {boot} mode.")

    def create_request(self) -> dict[str, Any]:
        params = self.params
        request: dict[str, Any] = {"InstanceId": params["instance_id"], "Name": self.name, "NoReboot": params["no_reboot"]}
        if params["description"] is not None:
            request["Description"] = params["description"]
        mappings = block_device_mappings(params["block_device_mappings"])
        if mappings:
            request["BlockDeviceMappings"] = mappings
        if params["boot_mode"]:
            request["BootModeOverride"] = params["boot_mode"]
        specs = tag_specifications([("image", params["tags"]), ("snapshot", self.wanted_snapshot_tags())])
        if specs:
            request["TagSpecifications"] = specs
        return request

    def attempt_create(self) -> tuple[str | None, dict[str, Any] | None, int]:
        """CreateImage, retried on throttling: (new image id, None, attempts) or, when the name is taken,
        (None, the image holding it, attempts)."""
        request = self.create_request()
        attempts = 0

        @RETRY
        def create_once() -> str:
            nonlocal attempts
            attempts += 1
            return str(self.client.create_image(**request)["ImageId"])

        try:
            return create_once(), None, attempts
        except is_aws_error_code("InvalidAMIName.Duplicate"):
            pass  # the image holding the name is looked up below
        image = find_own_image_by_name(self.client, self.name)
        if image is None:
            raise RuntimeError(
                f"EC2 says the AMI name {self.name!r} is taken in {self.region}, yet the account lists no image of that name: "
                "a disabled image keeps its name, so re-enable or deregister it"
            )
        return None, image, attempts

    def describe_for_wait(self, image_id: str, progress_from: float) -> dict[str, Any]:
        # Throttling is left to the Waiter here (no aws_retry), which retries it and never takes it as done.
        images = self.client.describe_images(ImageIds=[image_id])["Images"]
        if not images:
            return {}
        image = images[0]
        if image.get("State") != "pending" or _clock() < progress_from:
            return {"image": image}
        return {"image": image, "snapshots": describe_snapshots(self.client, snapshot_ids(image))}

    def wait_available(self, image_id: str) -> dict[str, Any]:
        progress_from = _clock() + max(PROGRESS_AFTER, self.params["wait_timeout"] - PROGRESS_WINDOW)

        def failed(seen: dict[str, Any]) -> str | None:
            image = seen.get("image") or {}
            if image.get("State") in IMAGE_FAILED_STATES:
                reason = image.get("StateReason", {}).get("Message") or "no reason given"
                return f"state {image['State']}: {reason}"
            return None

        waiter: Waiter[dict[str, Any]] = Waiter(
            lambda: self.describe_for_wait(image_id, progress_from),
            lambda seen: (seen.get("image") or {}).get("State") == "available",
            what=f"image {image_id} ({self.name}) to become available",
            timeout=self.params["wait_timeout"],
            failed=failed,
            progress=lambda seen: snapshots_progress(seen.get("snapshots") or []),
            missing_codes=IMAGE_NOT_FOUND,
            settings=IMAGE_AVAILABLE,
            sleep=_sleep,
            clock=_clock,
        )
        try:
            return dict(waiter.wait()["image"])
        except WaitError as e:
            self.fail(str(e), image_id=image_id, progress=e.progress)
            raise  # not reached

    def describe(self, image_id: str) -> dict[str, Any]:
        images = self.client.describe_images(ImageIds=[image_id], aws_retry=True)["Images"]
        return dict(images[0])

    def result(self, image: dict[str, Any] | None, image_id: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "changed": self.changed,
            "image_id": image["ImageId"] if image else image_id,
            "image": image_result(image, self.known_launch_permissions(image)) if image else None,
            "replaced_image_id": self.replaced_image_id,
            "deleted_snapshots": self.deleted_snapshots,
        }
        if self.module._diff:
            result["diff"] = {"before": self.before, "after": self.after}
        return result

    def known_launch_permissions(self, image: dict[str, Any]) -> list[dict[str, str]]:
        if self.launch_permissions is not None:
            return self.launch_permissions
        return describe_launch_permissions(self.client, image["ImageId"])

    def describe_pending(self, image_id: str) -> dict[str, Any] | None:
        try:
            return self.describe(image_id)
        except is_aws_error_code(*IMAGE_NOT_FOUND):
            # Just created and not visible yet: report the id alone.
            return None


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("deprecate_at", "deprecate_in")],
        supports_check_mode=True,
    )
    creator = ImageCreator(module)
    try:
        module.exit_json(**creator.run())
    except AWS_ERRORS as e:
        module.fail_json(msg=f"Could not create or update the AMI {creator.name!r} in {creator.region}: {aws_error_message(e).rstrip('.')}.")
    except RuntimeError as e:
        module.fail_json(msg=f"{e}.")


if __name__ == "__main__":
    main()
