# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared private helpers: waiter, retry policy, tags, AMI name rule, snapshots, durations."""
from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._durations import parse_duration, parse_time, to_minute
from ansible_collections.bakery.ami.plugins.module_utils._images import ami_name_problem, delete_snapshot, snapshot_used_elsewhere
from ansible_collections.bakery.ami.plugins.module_utils._launch_permissions import permission_changes, wanted_permissions
from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY, aws_error_message
from ansible_collections.bakery.ami.plugins.module_utils._snapshots import snapshots_progress
from ansible_collections.bakery.ami.plugins.module_utils._tags import tag_changes, tag_specifications
from ansible_collections.bakery.ami.plugins.module_utils._waiter import WaitFailed, WaitTimeout, Waiter


def client_error(code: str, message: str = "stubbed") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeImages")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*steps: Any) -> Any:
    """A describe function answering each call with the next step (raising it if an exception); the last repeats."""
    calls = {"n": 0}

    def describe() -> Any:
        step = steps[min(calls["n"], len(steps) - 1)]
        calls["n"] += 1
        if isinstance(step, BaseException):
            raise step
        return step

    return describe


# ---- waiter


def test_waiter_backs_off_and_retries_throttling() -> None:
    fake = FakeTime()
    describe = scripted(client_error("RequestLimitExceeded"), {"state": "pending"}, client_error("Throttling"), {"state": "available"})
    waiter = Waiter(
        describe, lambda s: s["state"] == "available", what="image", timeout=600, delay=2, backoff=2, max_delay=8, clock=fake.clock, sleep=fake.sleep
    )
    assert waiter.wait() == {"state": "available"}
    assert waiter.throttled == 2 and waiter.polls == 4
    # Full jitter within a growing ceiling: 2, 4, 8.
    for seconds, ceiling in zip(fake.sleeps, [2, 4, 8]):
        assert ceiling / 2 <= seconds <= ceiling


def test_waiter_first_delay_and_narrow_jitter() -> None:
    # The schedule ami_create uses: nothing before 4 s, then steps of 2.5 s growing by 1.2, jitter 20 %.
    fake = FakeTime()
    describe = scripted({"state": "pending"}, {"state": "pending"}, {"state": "pending"}, {"state": "available"})
    waiter = Waiter(
        describe, lambda s: s["state"] == "available", what="image", timeout=600,
        first_delay=4, delay=2.5, backoff=1.2, max_delay=15, jitter=0.2, clock=fake.clock, sleep=fake.sleep,
    )
    assert waiter.wait() == {"state": "available"}
    assert waiter.polls == 4
    assert fake.sleeps[0] == 4
    for seconds, ceiling in zip(fake.sleeps[1:], [2.5, 3.0, 3.6]):
        assert ceiling * 0.8 <= seconds <= ceiling


def test_waiter_first_delay_never_passes_the_timeout() -> None:
    fake = FakeTime()
    waiter = Waiter(scripted({"state": "pending"}), lambda s: False, what="image", timeout=3, first_delay=4, clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(WaitTimeout):
        waiter.wait()
    assert fake.sleeps[0] == 3 and waiter.polls == 1


def test_waiter_never_takes_throttling_as_success() -> None:
    fake = FakeTime()
    waiter = Waiter(scripted(client_error("RequestLimitExceeded")), lambda s: True, what="image ami-1", timeout=60, clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(WaitTimeout) as info:
        waiter.wait()
    assert "Timed out after 60s waiting for image ami-1" in str(info.value)
    assert waiter.throttled == waiter.polls > 1


def test_waiter_timeout_keeps_last_progress() -> None:
    fake = FakeTime()
    describe = scripted({"progress": "10%"}, {"progress": "55%"}, client_error("RequestLimitExceeded"), {"progress": None})
    waiter = Waiter(
        describe,
        lambda s: False,
        what="image",
        timeout=30,
        progress=lambda s: s["progress"] and f"snapshot {s['progress']}",
        clock=fake.clock,
        sleep=fake.sleep,
    )
    with pytest.raises(WaitTimeout) as info:
        waiter.wait()
    assert info.value.progress == "snapshot 55%"
    assert "(last progress: snapshot 55%)" in str(info.value)
    assert fake.now <= 30


def test_waiter_missing_then_failed() -> None:
    fake = FakeTime()
    describe = scripted(client_error("InvalidAMIID.NotFound"), {"state": "failed"})
    waiter = Waiter(
        describe, lambda s: False, what="image", timeout=60, failed=lambda s: s["state"] == "failed" and "broken",
        missing_codes=frozenset({"InvalidAMIID.NotFound"}), clock=fake.clock, sleep=fake.sleep,
    )
    with pytest.raises(WaitFailed, match="image failed: broken"):
        waiter.wait()


def test_waiter_raises_other_errors() -> None:
    fake = FakeTime()
    waiter = Waiter(scripted(client_error("UnauthorizedOperation")), lambda s: True, what="image", timeout=60, clock=fake.clock, sleep=fake.sleep)
    with pytest.raises(ClientError):
        waiter.wait()


# ---- retry policy


def test_retry_policy_retries_throttling_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr("time.sleep", fake.sleep)
    describe = scripted(client_error("RequestLimitExceeded"), client_error("InternalError"), "done")
    assert RETRY(describe)() == "done"
    assert len(fake.sleeps) == 2


def test_retry_policy_does_not_retry_client_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr("time.sleep", fake.sleep)
    with pytest.raises(ClientError):
        RETRY(scripted(client_error("InvalidParameterValue")))()
    assert fake.sleeps == []


def test_aws_error_message_is_one_line() -> None:
    assert aws_error_message(client_error("InvalidAMIID.NotFound", "The image id 'ami-1' does not exist")) == (
        "InvalidAMIID.NotFound: The image id 'ami-1' does not exist"
    )


# ---- tags


def test_tag_changes() -> None:
    current = {"a": "1", "b": "2", "aws:cloudformation:stack": "x"}
    assert tag_changes(current, {"a": "1", "c": "3"}, purge=True) == ({"c": "3"}, ["b"])
    assert tag_changes(current, {"a": "9"}, purge=False) == ({"a": "9"}, [])
    assert tag_changes(current, None, purge=True) == ({}, [])


def test_tag_specifications_skip_empty() -> None:
    specs = tag_specifications([("image", {"a": "1"}), ("snapshot", {}), ("volume", None)])
    assert specs == [{"ResourceType": "image", "Tags": [{"Key": "a", "Value": "1"}]}]


# ---- AMI name rule


@pytest.mark.parametrize("name", ["abc", "web-2027.01.01 (x86_64) [gp3] it's@home/v_1", "x" * 128])
def test_valid_ami_names(name: str) -> None:
    assert ami_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"), [("ab", "too short"), ("", "too short"), ("x" * 129, "129 characters"), ("web:1", "':'"), ("wéb-1", "'é'"), ("a*b", "'*'")]
)
def test_invalid_ami_names(name: str, why: str) -> None:
    problem = ami_name_problem(name)
    assert problem is not None and why in problem


# ---- launch permissions, snapshots, durations


def test_permission_changes_make_exact_state() -> None:
    wanted = wanted_permissions({"user_ids": ["111122223333"], "group_names": None})
    add, remove = permission_changes([{"UserId": "444455556666"}, {"Group": "all"}], wanted)
    assert add == [{"UserId": "111122223333"}]
    assert remove == [{"Group": "all"}, {"UserId": "444455556666"}]
    assert permission_changes([{"Group": "all"}], None) == ([], [])


def test_snapshots_progress_reports_least_advanced() -> None:
    assert snapshots_progress([{"Progress": "80%"}, {"Progress": "35%"}]) == "snapshot 35%"
    assert snapshots_progress([{"Progress": ""}]) is None


def test_durations_and_times() -> None:
    assert parse_duration("30d") == datetime.timedelta(days=30)
    assert parse_duration("2w") == datetime.timedelta(weeks=2)
    assert parse_duration("30") is None and parse_duration("-1d") is None
    assert parse_time("2027-01-31") == datetime.datetime(2027, 1, 31, tzinfo=datetime.timezone.utc)
    assert parse_time("2027-01-31T10:00:00+02:00") == datetime.datetime(2027, 1, 31, 8, tzinfo=datetime.timezone.utc)
    assert parse_time("soon") is None
    assert to_minute(datetime.datetime(2027, 1, 1, 0, 0, 31)) == datetime.datetime(2027, 1, 1, 0, 1)


def test_snapshot_used_elsewhere_counts_planned_removals() -> None:
    images = [
        {"ImageId": "ami-1", "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-1"}}]},
        {"ImageId": "ami-2", "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-1"}}]},
        {"ImageId": "ami-3", "State": "deregistered", "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-3"}}]},
    ]
    assert snapshot_used_elsewhere(None, "snap-1", "ami-1", images=images) is True
    assert snapshot_used_elsewhere(None, "snap-1", "ami-1", images=images, also_gone=["ami-2"]) is False
    assert snapshot_used_elsewhere(None, "snap-3", "ami-9", images=images) is False


# ---- snapshot deletion right after a deregistration (exact requests)


@pytest.fixture
def stubbed_ec2(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Stubber]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("ec2", region_name="us-east-1")
    # Wrapped as the client factory wraps it, so calls may pass aws_retry.
    return RetryingBotoClientWrapper(client, RETRY), Stubber(client)


def test_delete_snapshot_retries_in_use(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", expected_params={"SnapshotId": "snap-1"})
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", expected_params={"SnapshotId": "snap-1"})
    stubber.add_response("delete_snapshot", {}, {"SnapshotId": "snap-1"})
    fake = FakeTime()
    with stubber:
        assert delete_snapshot(client, "snap-1", sleep=fake.sleep) is True
    assert fake.sleeps == [1, 2]


def test_delete_snapshot_gives_up_after_attempts(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    for _attempt in range(3):
        stubber.add_client_error("delete_snapshot", "InvalidSnapshot.InUse")
    fake = FakeTime()
    with stubber, pytest.raises(ClientError):
        delete_snapshot(client, "snap-1", attempts=3, sleep=fake.sleep)
    assert len(fake.sleeps) == 2


def test_delete_snapshot_already_gone(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.NotFound")
    with stubber:
        assert delete_snapshot(client, "snap-1", sleep=FakeTime().sleep) is False
