# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Removing a bake's builder resources: by the ids the bake knows, and by the bake tag.

The ids are enough after a bake that went well (no call to find anything); the tag finds what
a bake that died half-way had made, since every resource carries it from its creation.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.bakery.ami.plugins.module_utils._bake_tags import BAKE_ID_TAG
from ansible_collections.bakery.ami.plugins.module_utils._builder_launch import (
    FIRST_INSTANCE_POLL,
    INSTANCE_NOT_FOUND,
    StepError,
    describe_instance,
    pause,
)
from ansible_collections.bakery.ami.plugins.module_utils._retry import aws_error_message, error_code
from ansible_collections.bakery.ami.plugins.module_utils._waiter import WaitError, Waiter

LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
GROUP_GONE = frozenset(("InvalidGroup.NotFound", "InvalidGroupId.NotFound", "InvalidGroupId.Malformed"))
# An instance's network interface holds its group for a while after it ends.
GROUP_RETRY_DELAY = 5.0


@dataclass
class Release:
    """What one removal found and did."""

    instance_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    key_names: list[str] = field(default_factory=list)
    spot_request_ids: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    deleted_security_groups: list[str] = field(default_factory=list)
    deleted_key_pairs: list[str] = field(default_factory=list)
    cancelled_spot_requests: list[str] = field(default_factory=list)
    removed_key_dir: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.terminated or self.deleted_security_groups or self.deleted_key_pairs
                    or self.cancelled_spot_requests or self.removed_key_dir)

    def plan(self, key_dir: str) -> None:
        """Check mode: what was found is what would go."""
        self.terminated = list(self.instance_ids)
        self.deleted_security_groups = list(self.security_group_ids)
        self.deleted_key_pairs = list(self.key_names)
        self.cancelled_spot_requests = list(self.spot_request_ids)
        self.removed_key_dir = bool(key_dir and os.path.lexists(key_dir))

    def result(self) -> dict[str, Any]:
        return {"changed": self.changed, "terminated": self.terminated,
                "deleted_security_groups": self.deleted_security_groups,
                "deleted_key_pairs": self.deleted_key_pairs, "cancelled_spot_requests": self.cancelled_spot_requests}


def _tag_filter(bake_id: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{BAKE_ID_TAG}", "Values": [bake_id]}]


def _merge(known: list[str], found: list[str]) -> list[str]:
    return list(dict.fromkeys([*known, *found]))


def find_tagged(client: Any, bake_id: str, release: Release, spot_requests: bool) -> None:
    """Adds the bake's live instances, groups, key pairs (and open spot requests) to `release`."""
    tag = _tag_filter(bake_id)
    if spot_requests:
        requests = client.describe_spot_instance_requests(
            Filters=tag + [{"Name": "state", "Values": ["open", "active"]}], aws_retry=True
        )["SpotInstanceRequests"]
        release.spot_request_ids = _merge(release.spot_request_ids, [r["SpotInstanceRequestId"] for r in requests])
    reservations = client.describe_instances(
        Filters=tag + [{"Name": "instance-state-name", "Values": LIVE_STATES}], aws_retry=True
    )["Reservations"]
    release.instance_ids = _merge(release.instance_ids, [i["InstanceId"] for r in reservations for i in r["Instances"]])
    groups = client.describe_security_groups(Filters=tag, aws_retry=True)["SecurityGroups"]
    release.security_group_ids = _merge(release.security_group_ids, [g["GroupId"] for g in groups])
    pairs = client.describe_key_pairs(Filters=tag, aws_retry=True)["KeyPairs"]
    release.key_names = _merge(release.key_names, [p["KeyName"] for p in pairs])


def cancel_spot_requests(client: Any, release: Release) -> None:
    """Cancelled before their instances end, so none can start a new instance behind the cleanup."""
    if release.spot_request_ids:
        client.cancel_spot_instance_requests(SpotInstanceRequestIds=release.spot_request_ids, aws_retry=True)
        release.cancelled_spot_requests = list(release.spot_request_ids)


def terminate(client: Any, release: Release) -> None:
    for instance_id in release.instance_ids:
        try:
            answer = client.terminate_instances(InstanceIds=[instance_id], aws_retry=True)["TerminatingInstances"]
        except Exception as e:  # botocore's ClientError
            if error_code(e) in INSTANCE_NOT_FOUND:
                continue
            raise
        if any(change["PreviousState"]["Name"] not in ("shutting-down", "terminated") for change in answer):
            release.terminated.append(instance_id)


def wait_terminated(client: Any, instance_ids: list[str], timeout: float, sleep: Callable[[float], None] = pause) -> None:
    for instance_id in instance_ids:
        Waiter(
            lambda: describe_instance(client, instance_id),
            lambda instance: instance.get("State", {}).get("Name", "terminated") == "terminated",
            what=f"instance {instance_id} to be terminated",
            timeout=timeout,
            missing_codes=INSTANCE_NOT_FOUND,
            delay=2.5,
            max_delay=10.0,
            backoff=1.3,
            jitter=0.2,
            sleep=sleep,
        ).wait()


def delete_key_pairs(client: Any, release: Release) -> None:
    for name in release.key_names:
        client.delete_key_pair(KeyName=name, aws_retry=True)
        release.deleted_key_pairs.append(name)


def delete_security_groups(
    client: Any, release: Release, timeout: float, sleep: Callable[[float], None] = pause
) -> None:
    """Deletes each group, waiting out DependencyViolation (an ending instance still holds it)."""
    deadline = time.monotonic() + timeout
    for group_id in release.security_group_ids:
        while True:
            try:
                client.delete_security_group(GroupId=group_id, aws_retry=True)
            except Exception as e:  # botocore's ClientError
                code = error_code(e)
                if code in GROUP_GONE:
                    break
                if code == "DependencyViolation" and time.monotonic() < deadline:
                    sleep(GROUP_RETRY_DELAY)
                    continue
                raise
            release.deleted_security_groups.append(group_id)
            break


def remove_key_dir(key_dir: str, release: Release) -> None:
    if key_dir and os.path.lexists(key_dir):
        shutil.rmtree(key_dir)
        release.removed_key_dir = True


def remove(
    client: Any,
    release: Release,
    *,
    wait: bool,
    timeout: float,
    key_dir: str,
    sleep: Callable[[float], None] = pause,
) -> None:
    """Ends the instances, removes the key pairs and the key directory, then (with `wait`) the
    security groups once EC2 lets them go, and waits until the instances are terminated."""
    cancel_spot_requests(client, release)
    terminate(client, release)
    delete_key_pairs(client, release)
    remove_key_dir(key_dir, release)
    if release.instance_ids and not wait:
        return
    if release.security_group_ids and release.instance_ids:
        # An instance holds its groups until it has ended, which never takes less than this;
        # deleting them answers DependencyViolation until then (no call spent on looking).
        sleep(FIRST_INSTANCE_POLL)
    try:
        delete_security_groups(client, release, timeout, sleep)
    except Exception as e:  # botocore's ClientError
        raise StepError("cleanup", f"DeleteSecurityGroup failed: {aws_error_message(e)}") from e
    try:
        wait_terminated(client, release.instance_ids, timeout, sleep)
    except WaitError as e:
        raise StepError("cleanup", str(e)) from e
