# SPDX-License-Identifier: GPL-3.0-or-later
"""The one retry policy, and catching AWS errors by their code."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ansible_collections.bakery.ami.plugins.module_utils._retry import (
    AWS_ERRORS,
    RETRY,
    aws_error_message,
    error_code,
    is_aws_error_code,
    is_retryable,
)

ClientErrorFactory = Callable[..., ClientError]
Scripted = Callable[..., Callable[[], Any]]


def test_retry_policy_retries_throttling_then_succeeds(
    monkeypatch: pytest.MonkeyPatch, fake_time: Any, client_error: ClientErrorFactory, scripted: Scripted
) -> None:
    monkeypatch.setattr("time.sleep", fake_time.sleep)
    describe = scripted(client_error("RequestLimitExceeded"), client_error("InternalError"), "done")
    assert RETRY(describe)() == "done"
    assert len(fake_time.sleeps) == 2


def test_retry_policy_does_not_retry_client_mistakes(
    monkeypatch: pytest.MonkeyPatch, fake_time: Any, client_error: ClientErrorFactory, scripted: Scripted
) -> None:
    monkeypatch.setattr("time.sleep", fake_time.sleep)
    with pytest.raises(ClientError):
        RETRY(scripted(client_error("InvalidParameterValue")))()
    assert fake_time.sleeps == []


@pytest.mark.parametrize(("code", "retryable"), [("Throttling", True), ("RequestLimitExceeded", True), ("Unavailable", True), ("InvalidAMIID.NotFound", False)])
def test_is_retryable_by_code(client_error: ClientErrorFactory, code: str, retryable: bool) -> None:
    assert is_retryable(client_error(code)) is retryable


def test_error_code_of_anything_else_is_empty(client_error: ClientErrorFactory) -> None:
    assert error_code(client_error("InvalidAMIID.NotFound")) == "InvalidAMIID.NotFound"
    assert error_code(ValueError("InvalidAMIID.NotFound")) == ""
    assert is_retryable(ValueError("Throttling")) is False


def test_aws_error_message_is_one_line(client_error: ClientErrorFactory) -> None:
    assert aws_error_message(client_error("InvalidAMIID.NotFound", "The image id 'ami-1' does not exist")) == (
        "InvalidAMIID.NotFound: The image id 'ami-1' does not exist"
    )
    assert aws_error_message(EndpointConnectionError(endpoint_url="http://127.0.0.1:1")) == (
        'Could not connect to the endpoint URL: "http://127.0.0.1:1"'
    )
    assert aws_error_message(RuntimeError("first line\nsecond")) == "first line"
    assert aws_error_message(RuntimeError()) == "RuntimeError"


# ---- is_aws_error_code: an except clause that catches one AWS error code and lets the rest pass


def _lookup(error: BaseException) -> str:
    try:
        raise error
    except is_aws_error_code("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
        return "caught"


@pytest.mark.parametrize("code", ["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"])
def test_named_codes_are_caught(client_error: ClientErrorFactory, code: str) -> None:
    assert _lookup(client_error(code)) == "caught"


def test_other_codes_pass_through(client_error: ClientErrorFactory) -> None:
    with pytest.raises(ClientError) as raised:
        _lookup(client_error("UnauthorizedOperation"))
    assert raised.value.response["Error"]["Code"] == "UnauthorizedOperation"


def test_errors_that_are_not_client_errors_pass_through() -> None:
    with pytest.raises(ValueError):
        _lookup(ValueError("InvalidAMIID.NotFound"))


def test_clauses_in_turn_catch_each_their_code(client_error: ClientErrorFactory) -> None:
    def classify(code: str) -> str:
        try:
            raise client_error(code)
        except is_aws_error_code("InvalidSnapshot.NotFound"):
            return "gone"
        except is_aws_error_code("InvalidSnapshot.InUse"):  # pylint: disable=duplicate-except
            return "in use"
        except AWS_ERRORS:
            return "other AWS error"

    assert [classify(c) for c in ("InvalidSnapshot.NotFound", "InvalidSnapshot.InUse", "Throttling")] == ["gone", "in use", "other AWS error"]


def test_aws_errors_cover_answers_and_connection_failures(client_error: ClientErrorFactory) -> None:
    for error in (client_error("Throttling"), EndpointConnectionError(endpoint_url="http://127.0.0.1:1")):
        try:
            raise error
        except AWS_ERRORS as caught:
            assert caught is error
