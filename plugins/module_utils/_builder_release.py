# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Removing a bake's temporary resources: by the ids the bake knows, and by what _builder_find finds.

The ids are enough after a bake that went well (no call to find anything); the tags find what
a bake that died half-way had made, since every resource carries them from its creation.
Everything here is safe to run twice: what is gone already is skipped and not reported.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from ansible_collections.bakery.ami.plugins.module_utils import _builder_find as find
from ansible_collections.bakery.ami.plugins.module_utils._builder_launch import (
    INSTANCE_NOT_FOUND,
    StepError,
    describe_instance,
    pause,
)
from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, aws_error_message, is_aws_error_code
from ansible_collections.bakery.ami.plugins.module_utils._waiter import (
    GROUP_RELEASED,
    INSTANCE_TERMINATED,
    WaitError,
    Waiter,
)

GROUP_GONE = frozenset(("InvalidGroup.NotFound", "InvalidGroupId.NotFound", "InvalidGroupId.Malformed"))
# An instance holds its security groups until it has ended; until then EC2 answers this.
GROUP_HELD = frozenset(("DependencyViolation",))
IAM_GONE = "NoSuchEntity"
IAM_DENIED = frozenset(("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"))


@dataclass
class Release:
    """What one removal is to remove, and what it removed."""

    instance_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    key_names: list[str] = field(default_factory=list)
    spot_request_ids: list[str] = field(default_factory=list)
    instance_profile_names: list[str] = field(default_factory=list)
    role_names: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    deleted_security_groups: list[str] = field(default_factory=list)
    deleted_key_pairs: list[str] = field(default_factory=list)
    cancelled_spot_requests: list[str] = field(default_factory=list)
    deleted_instance_profiles: list[str] = field(default_factory=list)
    deleted_roles: list[str] = field(default_factory=list)
    removed_key_dir: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.terminated or self.deleted_security_groups or self.deleted_key_pairs
                    or self.cancelled_spot_requests or self.deleted_instance_profiles or self.deleted_roles
                    or self.removed_key_dir)

    @property
    def needs_iam(self) -> bool:
        return bool(self.instance_profile_names or self.role_names)

    def plan(self, client: Any, iam: Any | None, key_dir: str) -> None:
        """Check mode: what exists of what was named or found is what would go. Named resources
        are looked up, as a real run would skip those that are gone or ending already."""
        states = _instance_states(client, self.instance_ids)
        self.terminated = [i for i in self.instance_ids if states.get(i) not in (None, *ENDING_STATES)]
        self.deleted_security_groups = _existing_groups(client, self.security_group_ids)
        self.deleted_key_pairs = list(self.key_names)
        self.cancelled_spot_requests = list(self.spot_request_ids)
        if self.needs_iam and iam is not None:
            self.deleted_instance_profiles = [n for n in self.instance_profile_names
                                              if _iam_exists(iam.get_instance_profile, InstanceProfileName=n)]
            self.deleted_roles = [n for n in self.role_names if _iam_exists(iam.get_role, RoleName=n)]
        self.removed_key_dir = bool(key_dir and os.path.lexists(key_dir))

    def result(self) -> dict[str, Any]:
        return {"changed": self.changed, "terminated": self.terminated,
                "deleted_security_groups": self.deleted_security_groups,
                "deleted_key_pairs": self.deleted_key_pairs, "cancelled_spot_requests": self.cancelled_spot_requests,
                "deleted_instance_profiles": self.deleted_instance_profiles, "deleted_roles": self.deleted_roles,
                "removed_key_dir": self.removed_key_dir}


# TerminateInstances on an instance in one of these changes nothing.
ENDING_STATES = ("shutting-down", "terminated")


def _instance_states(client: Any, instance_ids: list[str]) -> dict[str, str]:
    """The state of each instance that still exists (a filter, unlike InstanceIds, is not
    refused for an id that is gone)."""
    if not instance_ids:
        return {}
    reservations = client.describe_instances(Filters=[{"Name": "instance-id", "Values": instance_ids}],
                                             aws_retry=True)["Reservations"]
    return {i["InstanceId"]: i.get("State", {}).get("Name", "") for r in reservations for i in r["Instances"]}


def _existing_groups(client: Any, group_ids: list[str]) -> list[str]:
    if not group_ids:
        return []
    groups = client.describe_security_groups(Filters=[{"Name": "group-id", "Values": group_ids}],
                                             aws_retry=True)["SecurityGroups"]
    present = {g["GroupId"] for g in groups}
    return [group_id for group_id in group_ids if group_id in present]


def _iam_exists(call: Callable[..., Any], **name: str) -> bool:
    try:
        call(aws_retry=True, **name)
    except is_aws_error_code(IAM_GONE):
        return False
    return True


def _merge(known: list[str], found: list[str]) -> list[str]:
    return list(dict.fromkeys([*known, *found]))


def find_selected(client: Any, selector: find.Selector, release: Release, spot_requests: bool) -> None:
    """Adds the EC2 resources `selector` selects to `release`: open spot requests (with
    `spot_requests`), instances, security groups and key pairs."""
    if spot_requests:
        release.spot_request_ids = _merge(release.spot_request_ids, find.spot_requests(client, selector))
    release.instance_ids = _merge(release.instance_ids, find.instances(client, selector))
    release.security_group_ids = _merge(release.security_group_ids, find.security_groups(client, selector))
    release.key_names = _merge(release.key_names, find.key_pairs(client, selector))


def find_selected_iam(iam: Any, selector: find.Selector, release: Release) -> str | None:
    """Adds the instance profiles and roles `selector` selects to `release`.

    Credentials that may work with EC2 but not list IAM cannot have made a role either: the
    search is skipped, and the warning returned says so.
    """
    try:
        profiles = find.instance_profiles(iam, selector)
        roles = find.roles(iam, selector)
    except is_aws_error_code(*IAM_DENIED) as e:
        return f"Temporary IAM roles and instance profiles were not looked for: {aws_error_message(e)}"
    release.instance_profile_names = _merge(release.instance_profile_names, profiles)
    release.role_names = _merge(release.role_names, roles)
    return None


def cancel_spot_requests(client: Any, release: Release) -> None:
    """Cancelled before their instances end, so none can start a new instance behind the cleanup."""
    if release.spot_request_ids:
        client.cancel_spot_instance_requests(SpotInstanceRequestIds=release.spot_request_ids, aws_retry=True)
        release.cancelled_spot_requests = list(release.spot_request_ids)


def terminate(client: Any, release: Release) -> None:
    for instance_id in release.instance_ids:
        try:
            answer = client.terminate_instances(InstanceIds=[instance_id], aws_retry=True)["TerminatingInstances"]
        except is_aws_error_code(*INSTANCE_NOT_FOUND):
            continue
        if any(change["PreviousState"]["Name"] not in ENDING_STATES for change in answer):
            release.terminated.append(instance_id)


def wait_terminated(client: Any, instance_ids: list[str], timeout: float, sleep: Callable[[float], None] = pause) -> None:
    for instance_id in instance_ids:
        Waiter(
            partial(describe_instance, client, instance_id),
            lambda instance: instance.get("State", {}).get("Name", "terminated") == "terminated",
            what=f"instance {instance_id} to be terminated",
            timeout=timeout,
            missing_codes=INSTANCE_NOT_FOUND,
            settings=INSTANCE_TERMINATED,
            sleep=sleep,
        ).wait()


def delete_key_pairs(client: Any, release: Release) -> None:
    for name in release.key_names:
        client.delete_key_pair(KeyName=name, aws_retry=True)
        release.deleted_key_pairs.append(name)


def delete_security_groups(
    client: Any, release: Release, timeout: float, held: bool = False, sleep: Callable[[float], None] = pause
) -> None:
    """Deletes each group, waiting out DependencyViolation (an ending instance still holds it).

    With `held` (instances were just ended), the first try waits for the shortest time an
    instance takes to end: deleting sooner would only be refused.
    """

    def delete(group_id: str) -> bool:
        try:
            client.delete_security_group(GroupId=group_id, aws_retry=True)
        except is_aws_error_code(*GROUP_GONE):
            return False
        return True

    first_delay = GROUP_RELEASED.first_delay if held else 0.0
    for group_id in release.security_group_ids:
        deleted = Waiter(
            partial(delete, group_id),
            lambda answer: True,
            what=f"security group {group_id} to be let go by its instances",
            timeout=timeout,
            missing_codes=GROUP_HELD,
            settings=GROUP_RELEASED,
            first_delay=first_delay,
            sleep=sleep,
        ).wait()
        first_delay = 0.0
        if deleted:
            release.deleted_security_groups.append(group_id)


def _remove_role_from_profile(iam: Any, profile: str, role: str) -> None:
    try:
        iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=role, aws_retry=True)
    except is_aws_error_code(IAM_GONE):
        pass


def delete_instance_profile(iam: Any, name: str) -> bool:
    """Takes its roles out, then deletes it; False when it was gone already."""
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name, aws_retry=True)["InstanceProfile"]
        for role in profile.get("Roles", []):
            _remove_role_from_profile(iam, name, role["RoleName"])
        iam.delete_instance_profile(InstanceProfileName=name, aws_retry=True)
    except is_aws_error_code(IAM_GONE):
        return False
    return True


def delete_role(iam: Any, name: str) -> bool:
    """Takes it out of its instance profiles, detaches its managed policies, deletes its inline
    ones, then deletes it (IAM refuses a role with any of these); False when it was gone already."""
    try:
        for profile in iam.list_instance_profiles_for_role(RoleName=name, aws_retry=True)["InstanceProfiles"]:
            _remove_role_from_profile(iam, profile["InstanceProfileName"], name)
        for policy in iam.list_attached_role_policies(RoleName=name, aws_retry=True)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"], aws_retry=True)
        for policy_name in iam.list_role_policies(RoleName=name, aws_retry=True)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name, aws_retry=True)
        iam.delete_role(RoleName=name, aws_retry=True)
    except is_aws_error_code(IAM_GONE):
        return False
    return True


def delete_iam(iam: Any, release: Release) -> None:
    """The instance profiles first (they hold the roles), then the roles."""
    for name in release.instance_profile_names:
        if delete_instance_profile(iam, name):
            release.deleted_instance_profiles.append(name)
    for name in release.role_names:
        if delete_role(iam, name):
            release.deleted_roles.append(name)


def remove_key_dir(key_dir: str, release: Release) -> None:
    if key_dir and os.path.lexists(key_dir):
        shutil.rmtree(key_dir)
        release.removed_key_dir = True


def remove(
    client: Any,
    release: Release,
    *,
    iam: Any | None = None,
    wait: bool,
    timeout: float,
    key_dir: str,
    sleep: Callable[[float], None] = pause,
) -> None:
    """Ends the instances, removes the key pairs and the key directory, then (with `wait`) the
    security groups once EC2 lets them go, waits until the instances are terminated, and
    removes the instance profiles and roles (an instance keeps using its profile until it ends).
    Without `wait`, groups and IAM resources of instances still ending are left for a later run."""
    cancel_spot_requests(client, release)
    terminate(client, release)
    delete_key_pairs(client, release)
    remove_key_dir(key_dir, release)
    if release.instance_ids and not wait:
        return
    try:
        delete_security_groups(client, release, timeout, held=bool(release.instance_ids), sleep=sleep)
    except WaitError as e:
        raise StepError("cleanup", f"DeleteSecurityGroup failed: {e}") from e
    except AWS_ERRORS as e:
        raise StepError("cleanup", f"DeleteSecurityGroup failed: {aws_error_message(e)}") from e
    try:
        wait_terminated(client, release.instance_ids, timeout, sleep)
    except WaitError as e:
        raise StepError("cleanup", str(e)) from e
    if release.needs_iam:
        if iam is None:
            raise ValueError("removing instance profiles or roles needs an IAM client")
        delete_iam(iam, release)
