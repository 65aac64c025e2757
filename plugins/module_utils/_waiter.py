# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one waiter helper.

Unlike botocore's waiters (and helpers built on them), a throttled describe call is retried
with backoff and never taken as the end of the wait, and the progress seen so far is kept so a
timeout can say how far the resource got.
"""
from __future__ import annotations

import dataclasses
import random
import time
from typing import Callable, Generic, TypeVar

from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, error_code, is_retryable

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class WaitSettings:
    """How a Waiter paces its polls.

    `first_delay` is slept before the first poll, for a resource that is never ready sooner.
    Each later sleep is drawn between `delay * (1 - jitter)` and `delay`; `delay` grows by
    `backoff` after each poll, up to `max_delay`.
    """

    first_delay: float = 0.0
    delay: float = 2.0
    backoff: float = 1.5
    max_delay: float = 15.0
    jitter: float = 0.5


# The one table of wait paces. Little jitter where one bake waits for its own resource (the
# bakes' own start times keep them apart); more where many waits may start in step.
WAIT_PRESETS: dict[str, WaitSettings] = {
    # An image is never available within a few seconds of CreateImage; after that, short steps
    # that grow slowly see a quick image soon after it is ready, and a slow one (minutes on
    # AWS) every 15 s.
    "image_available": WaitSettings(first_delay=4.0, delay=2.0, backoff=1.2, max_delay=15.0, jitter=0.2),
    # Even a small copy takes a few seconds; copies on AWS usually take minutes, so the steps
    # grow slowly up to 30 s. Each region has its own endpoint and the regions' polls are few.
    "copy_available": WaitSettings(first_delay=5.0, delay=4.0, backoff=1.2, max_delay=30.0, jitter=0.2),
    # An instance is never running this soon after RunInstances, nor stopped after
    # StopInstances: an earlier poll would only spend a call.
    "instance_running": WaitSettings(first_delay=3.0, delay=2.5, backoff=1.2, max_delay=5.0, jitter=0.2),
    "instance_stopped": WaitSettings(first_delay=3.0, delay=2.5, backoff=1.2, max_delay=5.0, jitter=0.2),
    "instance_terminated": WaitSettings(first_delay=0.0, delay=2.5, backoff=1.3, max_delay=10.0, jitter=0.2),
    # cloud-init prints the host key block early in the boot.
    "host_keys": WaitSettings(first_delay=0.0, delay=2.0, backoff=1.5, max_delay=10.0, jitter=0.5),
    # A security group is held by its instance until the instance has ended, which never takes
    # less than the first delay; DeleteSecurityGroup is then retried at a steady pace.
    "group_released": WaitSettings(first_delay=3.0, delay=5.0, backoff=1.0, max_delay=5.0, jitter=0.0),
}
IMAGE_AVAILABLE = WAIT_PRESETS["image_available"]
COPY_AVAILABLE = WAIT_PRESETS["copy_available"]
INSTANCE_RUNNING = WAIT_PRESETS["instance_running"]
INSTANCE_STOPPED = WAIT_PRESETS["instance_stopped"]
INSTANCE_TERMINATED = WAIT_PRESETS["instance_terminated"]
HOST_KEYS = WAIT_PRESETS["host_keys"]
GROUP_RELEASED = WAIT_PRESETS["group_released"]
# The pace of a Waiter given no preset.
DEFAULT_PACE = WaitSettings()


class WaitError(Exception):
    """A wait that ended without the resource reaching the wanted state."""

    def __init__(self, message: str, last: object = None, progress: str | None = None) -> None:
        super().__init__(message)
        self.last = last
        self.progress = progress


class WaitTimeout(WaitError):
    pass


class WaitFailed(WaitError):
    pass


class Waiter(Generic[T]):
    """Polls `describe` until `is_done` says so, within `timeout` seconds.

    `failed` returns a reason when the resource reached a state it cannot leave (e.g. an image
    in state `failed`). `progress` returns a short text (e.g. "snapshot 40%") kept across polls.
    Errors whose code is in `missing_codes` mean "not visible yet" (eventual consistency) and
    keep the wait going; other non-retryable errors are raised as they are.
    `settings` paces the polls (a preset of WAIT_PRESETS); `first_delay`, `delay`, `backoff`,
    `max_delay` and `jitter`, when given, replace the setting of that name.
    """

    def __init__(
        self,
        describe: Callable[[], T],
        is_done: Callable[[T], bool],
        *,
        what: str,
        timeout: float,
        failed: Callable[[T], str | None] | None = None,
        progress: Callable[[T], str | None] | None = None,
        missing_codes: frozenset[str] = frozenset(),
        settings: WaitSettings = DEFAULT_PACE,
        delay: float | None = None,
        max_delay: float | None = None,
        backoff: float | None = None,
        first_delay: float | None = None,
        jitter: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.describe = describe
        self.is_done = is_done
        self.what = what
        self.timeout = timeout
        self.failed = failed
        self.progress_of = progress
        self.missing_codes = missing_codes
        given = {"delay": delay, "max_delay": max_delay, "backoff": backoff, "first_delay": first_delay, "jitter": jitter}
        self.settings = dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})
        self.clock = clock
        self.sleep = sleep
        self.progress: str | None = None
        self.polls = 0
        self.throttled = 0

    def wait(self) -> T:
        deadline = self.clock() + self.timeout
        pace = self.settings
        delay = pace.delay
        last: T | None = None
        if pace.first_delay > 0:
            self.sleep(min(pace.first_delay, self.timeout))
        while True:
            self.polls += 1
            try:
                last = self.describe()
            except AWS_ERRORS as e:
                if is_retryable(e):
                    self.throttled += 1
                elif error_code(e) not in self.missing_codes:
                    raise
            else:
                if self.progress_of is not None:
                    self.progress = self.progress_of(last) or self.progress
                reason = self.failed(last) if self.failed is not None else None
                if reason:
                    raise WaitFailed(f"{self.what} failed: {reason}", last, self.progress)
                if self.is_done(last):
                    return last
            remaining = deadline - self.clock()
            if remaining <= 0:
                seen = f" (last progress: {self.progress})" if self.progress else ""
                raise WaitTimeout(f"Timed out after {self.timeout:g}s waiting for {self.what}{seen}.", last, self.progress)
            # Jitter keeps many concurrent waiters from polling in step.
            self.sleep(min(remaining, random.uniform(delay * (1 - pace.jitter), delay)))
            delay = min(delay * pace.backoff, pace.max_delay)
