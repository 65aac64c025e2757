# SPDX-License-Identifier: GPL-3.0-or-later
"""The one Waiter: paces from the presets table, throttling never taken as done, progress kept for the timeout."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ansible_collections.bakery.ami.plugins.module_utils import _waiter
from ansible_collections.bakery.ami.plugins.module_utils._waiter import (
    DEFAULT_PACE,
    WAIT_PRESETS,
    WaitFailed,
    WaitSettings,
    WaitTimeout,
    Waiter,
)

ClientErrorFactory = Callable[..., ClientError]
Scripted = Callable[..., Callable[[], Any]]


def is_available(seen: dict[str, Any]) -> bool:
    return seen["state"] == "available"


def test_waiter_backs_off_and_retries_throttling(fake_time: Any, client_error: ClientErrorFactory, scripted: Scripted) -> None:
    describe = scripted(client_error("RequestLimitExceeded"), {"state": "pending"}, client_error("Throttling"), {"state": "available"})
    waiter = Waiter(
        describe, is_available, what="image", timeout=600, delay=2, backoff=2, max_delay=8, clock=fake_time.clock, sleep=fake_time.sleep
    )
    assert waiter.wait() == {"state": "available"}
    assert waiter.throttled == 2 and waiter.polls == 4
    # Jitter of one half within a growing ceiling: 2, 4, 8.
    for seconds, ceiling in zip(fake_time.sleeps, [2, 4, 8], strict=False):
        assert ceiling / 2 <= seconds <= ceiling


def test_waiter_first_delay_and_narrow_jitter(fake_time: Any, scripted: Scripted) -> None:
    # Nothing before 4 s, then steps of 2.5 s growing by 1.2, jitter 20 %.
    describe = scripted({"state": "pending"}, {"state": "pending"}, {"state": "pending"}, {"state": "available"})
    pace = WaitSettings(first_delay=4, delay=2.5, backoff=1.2, max_delay=15, jitter=0.2)
    waiter = Waiter(describe, is_available, what="image", timeout=600, settings=pace, clock=fake_time.clock, sleep=fake_time.sleep)
    assert waiter.wait() == {"state": "available"}
    assert waiter.polls == 4
    assert fake_time.sleeps[0] == 4
    for seconds, ceiling in zip(fake_time.sleeps[1:], [2.5, 3.0, 3.6], strict=False):
        assert ceiling * 0.8 <= seconds <= ceiling


def test_waiter_delay_never_grows_past_max_delay(fake_time: Any, scripted: Scripted) -> None:
    pace = WaitSettings(delay=4, backoff=3, max_delay=5, jitter=0)
    waiter = Waiter(scripted({"state": "pending"}), is_available, what="image", timeout=30, settings=pace, clock=fake_time.clock, sleep=fake_time.sleep)
    with pytest.raises(WaitTimeout):
        waiter.wait()
    assert fake_time.sleeps[:3] == [4, 5, 5]


def test_waiter_first_delay_never_passes_the_timeout(fake_time: Any, scripted: Scripted) -> None:
    waiter = Waiter(
        scripted({"state": "pending"}), lambda s: False, what="image", timeout=3, first_delay=4, clock=fake_time.clock, sleep=fake_time.sleep
    )
    with pytest.raises(WaitTimeout):
        waiter.wait()
    assert fake_time.sleeps[0] == 3 and waiter.polls == 1


def test_waiter_never_takes_throttling_as_success(fake_time: Any, client_error: ClientErrorFactory, scripted: Scripted) -> None:
    waiter = Waiter(
        scripted(client_error("RequestLimitExceeded")), lambda s: True, what="image ami-1", timeout=60, clock=fake_time.clock, sleep=fake_time.sleep
    )
    with pytest.raises(WaitTimeout) as info:
        waiter.wait()
    assert "Timed out after 60s waiting for image ami-1" in str(info.value)
    assert waiter.throttled == waiter.polls > 1


def test_waiter_timeout_keeps_last_progress(fake_time: Any, client_error: ClientErrorFactory, scripted: Scripted) -> None:
    describe = scripted({"progress": "10%"}, {"progress": "55%"}, client_error("RequestLimitExceeded"), {"progress": None})
    waiter = Waiter(
        describe,
        lambda s: False,
        what="image",
        timeout=30,
        progress=lambda s: s["progress"] and f"snapshot {s['progress']}",
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    with pytest.raises(WaitTimeout) as info:
        waiter.wait()
    assert info.value.progress == "snapshot 55%"
    assert "(last progress: snapshot 55%)" in str(info.value)
    assert fake_time.now <= 30


def test_waiter_missing_then_failed(fake_time: Any, client_error: ClientErrorFactory, scripted: Scripted) -> None:
    describe = scripted(client_error("InvalidAMIID.NotFound"), {"state": "failed"})
    waiter = Waiter(
        describe, lambda s: False, what="image", timeout=60, failed=lambda s: s["state"] == "failed" and "broken",
        missing_codes=frozenset({"InvalidAMIID.NotFound"}), clock=fake_time.clock, sleep=fake_time.sleep,
    )
    with pytest.raises(WaitFailed, match="image failed: broken") as info:
        waiter.wait()
    assert info.value.last == {"state": "failed"}


def test_waiter_raises_other_errors(fake_time: Any, client_error: ClientErrorFactory, scripted: Scripted) -> None:
    waiter = Waiter(
        scripted(client_error("UnauthorizedOperation")), lambda s: True, what="image", timeout=60, clock=fake_time.clock, sleep=fake_time.sleep
    )
    with pytest.raises(ClientError):
        waiter.wait()
    assert waiter.polls == 1


@pytest.mark.parametrize("error", [EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), KeyError("State")])
def test_waiter_raises_errors_that_are_not_aws_answers(fake_time: Any, scripted: Scripted, error: Exception) -> None:
    waiter = Waiter(scripted(error), lambda s: True, what="image", timeout=60, clock=fake_time.clock, sleep=fake_time.sleep)
    with pytest.raises(type(error)):
        waiter.wait()
    assert waiter.polls == 1 and fake_time.sleeps == []


# ---- the presets table


def test_every_preset_has_a_constant_of_its_name() -> None:
    for name, settings in WAIT_PRESETS.items():
        assert getattr(_waiter, name.upper()) is settings


@pytest.mark.parametrize("name", sorted(WAIT_PRESETS))
def test_presets_are_sane(name: str) -> None:
    pace = WAIT_PRESETS[name]
    assert pace.first_delay >= 0 and 0 < pace.delay <= pace.max_delay and pace.backoff >= 1 and 0 <= pace.jitter < 1


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        WAIT_PRESETS["image_available"].delay = 0  # type: ignore[misc]


def test_waiter_takes_its_pace_from_a_preset(fake_time: Any, scripted: Scripted) -> None:
    describe = scripted({"state": "pending"}, {"state": "available"})
    waiter = Waiter(describe, is_available, what="image", timeout=600, settings=_waiter.IMAGE_AVAILABLE, clock=fake_time.clock, sleep=fake_time.sleep)
    waiter.wait()
    assert waiter.settings == _waiter.IMAGE_AVAILABLE
    assert fake_time.sleeps[0] == _waiter.IMAGE_AVAILABLE.first_delay


def test_a_setting_given_by_name_replaces_the_presets(fake_time: Any, scripted: Scripted) -> None:
    # ami_copy sleeps the first delay once for all regions, then waits for each without it.
    describe = scripted({"state": "available"})
    waiter = Waiter(
        describe, is_available, what="copy", timeout=600, settings=_waiter.COPY_AVAILABLE, first_delay=0, clock=fake_time.clock, sleep=fake_time.sleep
    )
    waiter.wait()
    assert waiter.settings == dataclasses.replace(_waiter.COPY_AVAILABLE, first_delay=0)
    assert fake_time.sleeps == []


def test_without_a_preset_the_default_pace() -> None:
    waiter: Waiter[None] = Waiter(lambda: None, lambda s: True, what="x", timeout=1)
    assert waiter.settings == DEFAULT_PACE == WaitSettings()
