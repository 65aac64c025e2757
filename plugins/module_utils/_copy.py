# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The concurrent copy engine behind ami_copy: one image to many regions at once.

Every region has its own client and its own thread. Copies are started in all regions first,
then waited for together, so the wall time is that of the slowest region, not the sum.
"""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

from ansible_collections.bakery.ami.plugins.module_utils._bake_tags import COPY_SOURCE_TAG
from ansible_collections.bakery.ami.plugins.module_utils._images import (
    IMAGE_NOT_FOUND,
    deregister_image,
    find_own_images,
    snapshot_ids,
)
from ansible_collections.bakery.ami.plugins.module_utils._launch_permissions import (
    apply_permissions,
    describe_launch_permissions,
    permission_changes,
)
from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, aws_error_message, is_aws_error_code
from ansible_collections.bakery.ami.plugins.module_utils._tags import tag_changes, tags_to_dict
from ansible_collections.bakery.ami.plugins.module_utils._waiter import COPY_AVAILABLE, WaitError, Waiter

T = TypeVar("T")

# Copies that can never become available; one that is found this way is not reused.
DEAD_STATES = frozenset(("failed", "error", "invalid", "deregistered", "disabled"))


class DeadCopy(Exception):
    """The copy's name is held by an earlier copy of the source that can never become available."""


@dataclass
class RegionPlan:
    """What one target region gets."""

    region: str
    name: str
    description: str | None
    encrypted: bool
    kms_key_id: str | None
    tags: dict[str, str]


@dataclass
class RegionOutcome:
    region: str
    image: dict[str, Any] | None = None
    created: bool = False
    changed: bool = False
    error: str | None = None
    launch_permissions: list[dict[str, str]] = field(default_factory=list)
    # A reused copy's deprecation time as found, for the diff.
    deprecation_before: str | None = None


def kms_key_problem(kms: Any, key_id: str) -> str | None:
    """Why KMS (DescribeKey, in the client's region) says `key_id` cannot encrypt a copy there, or None."""
    try:
        meta = kms.describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
    except AWS_ERRORS as e:  # mostly NotFoundException, for a key of another region
        return aws_error_message(e)
    if meta.get("KeyState") != "Enabled" or meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        return f"it is {meta.get('KeyState')} with usage {meta.get('KeyUsage')}"
    return None


def in_parallel(regions: list[str], work: Callable[[str], T]) -> dict[str, T]:
    """Runs work(region) for every region at once and returns the results by region."""
    if not regions:
        return {}
    with ThreadPoolExecutor(max_workers=len(regions), thread_name_prefix="ami-copy") as pool:
        futures = {region: pool.submit(work, region) for region in regions}
        return {region: future.result() for region, future in futures.items()}


class CopyEngine:
    """Copies `source_image_id` from `source_region` into every planned region."""

    def __init__(
        self,
        clients: dict[str, Any],
        source_region: str,
        source_image_id: str,
        wanted_permissions: set[tuple[str, str]] | None,
        wait_timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        deprecation: Callable[[str | None], str | None] = lambda current: None,
    ) -> None:
        self.clients = clients
        self.source_region = source_region
        self.source_image_id = source_image_id
        self.source_value = f"{source_region}:{source_image_id}"
        self.wanted_permissions = wanted_permissions
        self.wait_timeout = wait_timeout
        self.sleep = sleep
        # Maps a copy's current DeprecationTime to the one to set, or None when it is right.
        self.deprecation = deprecation
        # One token per run: a copy call retried after a lost response never makes two copies.
        self.run_token = uuid.uuid4().hex[:24]

    def find_existing(self, plan: RegionPlan) -> dict[str, Any] | None:
        """The account's own live copy of the source image in the plan's region, found by its source tag and name."""
        images = find_own_images(self.clients[plan.region], {f"tag:{COPY_SOURCE_TAG}": [self.source_value], "name": [plan.name]})
        live = [i for i in images if i.get("State") not in DEAD_STATES]
        return live[0] if live else None

    def copy_or_reusable(self, plan: RegionPlan) -> tuple[str | None, dict[str, Any] | None]:
        """CopyImage; when EC2 answers that the name is taken, the copy holding it, if it is ours to reuse.

        Returns (new image id, None) or (None, the existing copy); raises EC2's error when the name is
        held by an image that is not a live copy of this source.
        """
        try:
            return self.copy(plan), None
        except is_aws_error_code("InvalidAMIName.Duplicate"):
            images = find_own_images(self.clients[plan.region], {"name": [plan.name]})
            holder = next((i for i in images if i.get("State") != "deregistered"), None)
            if holder is None or tags_to_dict(holder.get("Tags")).get(COPY_SOURCE_TAG) != self.source_value:
                raise
            if holder.get("State") in DEAD_STATES:
                raise DeadCopy(
                    f"the name {plan.name!r} is held by the copy {holder['ImageId']}, which is {holder.get('State')}: "
                    "deregister it to copy again"
                ) from None
            return None, holder

    def start(self, plan: RegionPlan, check_mode: bool) -> RegionOutcome:
        """Reuses the region's existing copy or starts a new one (in check mode: only looks).

        Outside check mode CopyImage comes first: a taken name is how EC2 says the copy exists, so a
        new copy needs no look-up.
        """
        outcome = RegionOutcome(plan.region)
        try:
            existing = self.find_existing(plan) if check_mode else None
            image_id: str | None = None
            if not check_mode:
                image_id, existing = self.copy_or_reusable(plan)
            if existing is not None:
                outcome.image = existing
                outcome.deprecation_before = existing.get("DeprecationTime")
                outcome.changed = self.converge_existing(plan, existing, check_mode, outcome)
                if check_mode:
                    # Outside check mode this is done in finish(), like on a new copy.
                    outcome.changed |= self.ensure_deprecation(self.clients[plan.region], existing, check_mode)
                return outcome
            outcome.created = outcome.changed = True
            if image_id is not None:
                outcome.image = {"ImageId": image_id, "State": "pending"}
        except DeadCopy as e:
            outcome.error = str(e)
        except Exception as e:  # whatever fails here is this region's failure, so the others are rolled back
            outcome.error = aws_error_message(e)
        return outcome

    def copy(self, plan: RegionPlan) -> str:
        params: dict[str, Any] = {
            "SourceRegion": self.source_region,
            "SourceImageId": self.source_image_id,
            "Name": plan.name,
            "Encrypted": plan.encrypted,
            "ClientToken": f"{self.run_token}-{plan.region}",
            # Tags the new image and its snapshots in the same call, so a rerun finds it at once.
            "TagSpecifications": [
                {"ResourceType": rtype, "Tags": ansible_dict_to_boto3_tag_list(plan.tags)} for rtype in ("image", "snapshot")
            ],
        }
        if plan.description is not None:
            params["Description"] = plan.description
        if plan.kms_key_id:
            params["KmsKeyId"] = plan.kms_key_id
        return str(self.clients[plan.region].copy_image(aws_retry=True, **params)["ImageId"])

    def converge_existing(self, plan: RegionPlan, image: dict[str, Any], check_mode: bool, outcome: RegionOutcome) -> bool:
        """Brings a reused copy's tags and launch permissions to the requested state."""
        client = self.clients[plan.region]
        changed = self.ensure_tags(client, image, plan.tags, check_mode)
        current = describe_launch_permissions(client, image["ImageId"])
        add, remove = permission_changes(current, self.wanted_permissions)
        if (add or remove) and not check_mode:
            apply_permissions(client, image["ImageId"], add, remove)
        outcome.launch_permissions = self.permission_list() if self.wanted_permissions is not None else current
        return changed or bool(add or remove)

    def ensure_tags(self, client: Any, image: dict[str, Any], wanted: dict[str, str], check_mode: bool) -> bool:
        """Adds missing tags to the image and its snapshots (where EC2 did not apply the TagSpecifications)."""
        to_set, dummy = tag_changes(tags_to_dict(image.get("Tags")), wanted, purge=False)
        if not to_set:
            return False
        if not check_mode:
            client.create_tags(
                Resources=[image["ImageId"]] + snapshot_ids(image), Tags=ansible_dict_to_boto3_tag_list(to_set), aws_retry=True
            )
            image["Tags"] = ansible_dict_to_boto3_tag_list({**tags_to_dict(image.get("Tags")), **to_set})
        return True

    def ensure_deprecation(self, client: Any, image: dict[str, Any], check_mode: bool) -> bool:
        """Gives an available copy the requested deprecation time, when it has another one."""
        wanted = self.deprecation(image.get("DeprecationTime"))
        # A pending copy is left alone (wait=false): the next run sets it.
        if wanted is None or image.get("State") != "available":
            return False
        if not check_mode:
            client.enable_image_deprecation(ImageId=image["ImageId"], DeprecateAt=wanted, aws_retry=True)
            image["DeprecationTime"] = wanted
        return True

    def permission_list(self) -> list[dict[str, str]]:
        return [{k: v} for k, v in sorted(self.wanted_permissions or set())]

    def describe(self, region: str, image_id: str) -> dict[str, Any]:
        # No aws_retry here: the waiter retries throttling itself, within its deadline.
        images = self.clients[region].describe_images(ImageIds=[image_id])["Images"]
        # Right after the copy call the image may not be listed yet.
        return dict(images[0]) if images else {"ImageId": image_id, "State": "pending"}

    def wait_available(self, region: str, image_id: str, deadline: float) -> dict[str, Any]:
        waiter: Waiter[dict[str, Any]] = Waiter(
            lambda: self.describe(region, image_id),
            lambda image: image.get("State") == "available",
            what=f"the copy {image_id} in {region}",
            timeout=max(0.0, deadline - time.monotonic()),
            failed=lambda image: (
                f"it is {image.get('State')} ({image.get('StateReason', {}).get('Message', 'no reason given')})"
                if image.get("State") in DEAD_STATES
                else None
            ),
            missing_codes=IMAGE_NOT_FOUND,
            # The first delay is slept once for all regions, before the first of these waits.
            settings=COPY_AVAILABLE,
            first_delay=0.0,
            sleep=self.sleep,
        )
        return waiter.wait()

    def finish(self, outcome: RegionOutcome, plan: RegionPlan, deadline: float | None) -> RegionOutcome:
        """Waits for a new copy (until `deadline`, when given) and makes sure of its tags and launch
        permissions; then of any copy's deprecation."""
        if outcome.error or outcome.image is None:
            return outcome
        image_id = outcome.image["ImageId"]
        client = self.clients[plan.region]
        try:
            if outcome.created:
                image = self.wait_available(plan.region, image_id, deadline) if deadline else self.describe(plan.region, image_id)
                outcome.image = image
                self.ensure_tags(client, image, plan.tags, check_mode=False)
                if self.wanted_permissions:
                    # A new copy has no launch permissions: EC2 never copies them.
                    apply_permissions(client, image_id, self.permission_list(), [])
                outcome.launch_permissions = self.permission_list()
            outcome.changed |= self.ensure_deprecation(client, outcome.image, check_mode=False)
        except WaitError as e:
            outcome.error = str(e)
        except Exception as e:  # whatever fails here is this region's failure, so the others are rolled back
            outcome.error = aws_error_message(e)
        return outcome

    def run(self, plans: list[RegionPlan], wait: bool, check_mode: bool) -> dict[str, RegionOutcome]:
        by_region = {plan.region: plan for plan in plans}
        regions = list(by_region)
        started = in_parallel(regions, lambda r: self.start(by_region[r], check_mode))
        if check_mode:
            return started
        if not wait:
            return in_parallel(regions, lambda r: self.finish(started[r], by_region[r], None))
        # The copies run at once, so the task ends with the slowest; polling every pending region
        # each round would spend calls on answers that cannot end it sooner. One region is polled
        # at a time instead: once it is done the next is asked at once (it has been copying all
        # along), so the calls are about the polls of the slowest plus one per other region.
        deadline = time.monotonic() + self.wait_timeout
        if any(outcome.created and not outcome.error for outcome in started.values()):
            self.sleep(min(COPY_AVAILABLE.first_delay, self.wait_timeout))
        return {r: self.finish(started[r], by_region[r], deadline) for r in regions}

    def rollback(self, outcome: RegionOutcome) -> str | None:
        """Deregisters a copy this run made and deletes its snapshots; returns an error text or None.

        Deregistering a copy that is still pending also cancels it.
        """
        if not outcome.created or outcome.image is None:
            return None
        client = self.clients[outcome.region]
        image_id = outcome.image["ImageId"]
        try:
            try:
                image = self.describe(outcome.region, image_id)
            except is_aws_error_code(*IMAGE_NOT_FOUND):
                image = outcome.image
            deregister_image(client, image, delete_snapshots=True)
        except Exception as e:  # reported with the regions not rolled back, while the others roll back
            return aws_error_message(e)
        return None

    def rollback_all(self, outcomes: list[RegionOutcome]) -> dict[str, str | None]:
        created = [o for o in outcomes if o.created and o.image is not None]
        by_region = {o.region: o for o in created}
        return in_parallel(list(by_region), lambda r: self.rollback(by_region[r]))
