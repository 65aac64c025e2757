# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Finding a bake's temporary resources: by its bake id, or by the temporary tag and their age.

The cleanup of one bake selects by its id; a sweep after killed bakes selects what is tagged
temporary and older than a limit (optionally of one bake id too). Ages come from the time each
kind records: an instance's LaunchTime, a spot request's or key pair's CreateTime, a role's or
instance profile's CreateDate, and the created-at tag on a security group (EC2 records none).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from ansible_collections.bakery.ami.plugins.module_utils._bake_tags import (
    BAKE_ID_TAG,
    TEMPORARY_NAME_PREFIX,
    TEMPORARY_TAG,
    created_at,
)
from ansible_collections.bakery.ami.plugins.module_utils._tags import tags_to_dict

# The one list of instance states a removal ends (shutting-down ones are ending already).
INSTANCE_STATES_TO_TERMINATE = ("pending", "running", "stopping", "stopped")
SPOT_REQUEST_STATES_TO_CANCEL = ("open", "active")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Selector:
    """Which resources a removal looks for: one bake's, or the temporary ones older than a limit."""

    bake_id: str = ""
    older_than_minutes: int = 0
    now: datetime = field(default_factory=_utc_now)

    @property
    def by_age(self) -> bool:
        return self.older_than_minutes > 0

    @property
    def cutoff(self) -> datetime:
        return self.now - timedelta(minutes=self.older_than_minutes)

    def wanted_tags(self) -> dict[str, str]:
        tags = {TEMPORARY_TAG: "true"} if self.by_age else {}
        if self.bake_id:
            tags[BAKE_ID_TAG] = self.bake_id
        return tags

    def ec2_filters(self) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{key}", "Values": [value]} for key, value in self.wanted_tags().items()]

    def tagged(self, tags: dict[str, str]) -> bool:
        return all(tags.get(key) == value for key, value in self.wanted_tags().items())

    def old_enough(self, created: datetime | None) -> bool:
        """Without an age limit everything is; with one, what has no known time is not."""
        if not self.by_age:
            return True
        if created is None:
            return False
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        return created < self.cutoff


def spot_requests(client: Any, selector: Selector) -> list[str]:
    """Open and active spot requests (an open one could still start a builder)."""
    answer = client.describe_spot_instance_requests(
        Filters=selector.ec2_filters() + [{"Name": "state", "Values": list(SPOT_REQUEST_STATES_TO_CANCEL)}],
        aws_retry=True,
    )["SpotInstanceRequests"]
    return [r["SpotInstanceRequestId"] for r in answer if selector.old_enough(r.get("CreateTime"))]


def instances(client: Any, selector: Selector) -> list[str]:
    reservations = client.describe_instances(
        Filters=selector.ec2_filters() + [{"Name": "instance-state-name", "Values": list(INSTANCE_STATES_TO_TERMINATE)}],
        aws_retry=True,
    )["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"] if selector.old_enough(i.get("LaunchTime"))]


def security_groups(client: Any, selector: Selector) -> list[str]:
    groups = client.describe_security_groups(Filters=selector.ec2_filters(), aws_retry=True)["SecurityGroups"]
    return [g["GroupId"] for g in groups if selector.old_enough(created_at(tags_to_dict(g.get("Tags"))))]


def key_pairs(client: Any, selector: Selector) -> list[str]:
    pairs = client.describe_key_pairs(Filters=selector.ec2_filters(), aws_retry=True)["KeyPairs"]
    return [p["KeyName"] for p in pairs if selector.old_enough(p.get("CreateTime"))]


def key_pairs_named(client: Any, names: list[str]) -> list[str]:
    """Those of `names` that exist: EC2 answers DeleteKeyPair alike for a pair that is gone, so a
    second removal would report it deleted again. (A filter, unlike KeyNames, is not refused
    for a missing name.)"""
    if not names:
        return []
    pairs = client.describe_key_pairs(Filters=[{"Name": "key-name", "Values": names}], aws_retry=True)["KeyPairs"]
    present = {p["KeyName"] for p in pairs}
    return [name for name in names if name in present]


def _iam_list(call: Callable[..., dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    """Every item of a paged IAM listing (IAM pages with Marker and IsTruncated)."""
    request: dict[str, Any] = {}
    while True:
        page = call(aws_retry=True, **request)
        yield from page.get(key, [])
        if not page.get("IsTruncated"):
            return
        request = {"Marker": page["Marker"]}


def _candidates(items: Iterator[dict[str, Any]], name_key: str, selector: Selector) -> Iterator[dict[str, Any]]:
    """Temporary names old enough: only their tags are worth a call."""
    for item in items:
        if item[name_key].startswith(TEMPORARY_NAME_PREFIX) and selector.old_enough(item.get("CreateDate")):
            yield item


def roles(iam: Any, selector: Selector) -> list[str]:
    found = []
    for role in _candidates(_iam_list(iam.list_roles, "Roles"), "RoleName", selector):
        # ListRoles answers without tags (moto with them); ListRoleTags has them
        tag_list = role["Tags"] if "Tags" in role else iam.list_role_tags(RoleName=role["RoleName"], aws_retry=True)["Tags"]
        if selector.tagged(tags_to_dict(tag_list)):
            found.append(role["RoleName"])
    return found


def instance_profiles(iam: Any, selector: Selector) -> list[str]:
    found = []
    for profile in _candidates(_iam_list(iam.list_instance_profiles, "InstanceProfiles"), "InstanceProfileName", selector):
        name = profile["InstanceProfileName"]
        tag_list = profile.get("Tags")
        if tag_list is None:
            # ListInstanceProfiles answers without tags; GetInstanceProfile has them
            tag_list = iam.get_instance_profile(InstanceProfileName=name, aws_retry=True)["InstanceProfile"].get("Tags")
        if selector.tagged(tags_to_dict(tag_list)):
            found.append(name)
    return found
