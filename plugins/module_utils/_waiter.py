# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one waiter helper.

Unlike botocore's waiters (and helpers built on them), a throttled describe call is retried
with backoff and never taken as the end of the wait, and the progress seen so far is kept so a
timeout can say how far the resource got.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Generic, Optional, TypeVar

from ansible_collections.bakery.ami.plugins.module_utils._retry import error_code, is_retryable

T = TypeVar("T")


class WaitError(Exception):
    """A wait that ended without the resource reaching the wanted state."""

    def __init__(self, message: str, last: object = None, progress: Optional[str] = None) -> None:
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
    `first_delay` is slept before the first poll, for a resource that is never ready sooner.
    Each later sleep is drawn between `delay * (1 - jitter)` and `delay`.
    """

    def __init__(
        self,
        describe: Callable[[], T],
        is_done: Callable[[T], bool],
        *,
        what: str,
        timeout: float,
        failed: Optional[Callable[[T], Optional[str]]] = None,
        progress: Optional[Callable[[T], Optional[str]]] = None,
        missing_codes: frozenset[str] = frozenset(),
        delay: float = 2.0,
        max_delay: float = 15.0,
        backoff: float = 1.5,
        first_delay: float = 0.0,
        jitter: float = 0.5,
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
        self.delay = delay
        self.max_delay = max_delay
        self.backoff = backoff
        self.first_delay = first_delay
        self.jitter = jitter
        self.clock = clock
        self.sleep = sleep
        self.progress: Optional[str] = None
        self.polls = 0
        self.throttled = 0

    def wait(self) -> T:
        deadline = self.clock() + self.timeout
        delay = self.delay
        last: Optional[T] = None
        if self.first_delay > 0:
            self.sleep(min(self.first_delay, self.timeout))
        while True:
            self.polls += 1
            try:
                last = self.describe()
            except Exception as e:  # botocore's ClientError; its class is not importable without boto3
                code = error_code(e)
                if is_retryable(e):
                    self.throttled += 1
                elif code not in self.missing_codes:
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
            self.sleep(min(remaining, random.uniform(delay * (1 - self.jitter), delay)))
            delay = min(delay * self.backoff, self.max_delay)
