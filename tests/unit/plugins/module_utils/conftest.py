# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared doubles for the module_utils tests.

Test files are not a package, so they take these as fixtures rather than importing them:
- `fake_time`: a FakeTime whose `sleep` advances its `clock` and records each sleep (no real wait).
- `client_error`: the function `client_error(code, message="stubbed") -> ClientError`.
- `scripted`: the function `scripted(*steps)` -> a call answering each time with the next step
  (raising it when it is an exception); the last step repeats.
- `stubbed_ec2`: (client wrapped with the retry policy as the client factory wraps it, its Stubber).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY


@pytest.fixture(autouse=True, scope="session")
def _shared_botocore_loader() -> Iterator[None]:
    """Each AnsibleAWSModule client builds a new boto3 session, which would parse botocore's large
    EC2 model again; one loader (and its cache) shared by all sessions keeps the tests fast.
    The same as the module tests' fixture of this name."""
    import botocore.session

    loaders: dict[Any, Any] = {}
    original = botocore.session.create_loader

    def create_loader(search_path_string: Any = None) -> Any:
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = create_loader
    yield
    botocore.session.create_loader = original


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def _client_error(code: str, message: str = "stubbed") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeImages")


@pytest.fixture
def client_error() -> Callable[..., ClientError]:
    return _client_error


def _scripted(*steps: Any) -> Callable[[], Any]:
    calls = {"n": 0}

    def answer() -> Any:
        step = steps[min(calls["n"], len(steps) - 1)]
        calls["n"] += 1
        if isinstance(step, BaseException):
            raise step
        return step

    return answer


@pytest.fixture
def scripted() -> Callable[..., Callable[[], Any]]:
    return _scripted


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_URL", "EC2_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Never read the real user's files.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture
def stubbed_ec2(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Stubber]:
    # The retry policy sleeps through time.sleep; a retried call here must not wait.
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    client = boto3.client("ec2", region_name="us-east-1")
    # Wrapped as the client factory wraps it, so calls may pass aws_retry.
    return RetryingBotoClientWrapper(client, RETRY), Stubber(client)
