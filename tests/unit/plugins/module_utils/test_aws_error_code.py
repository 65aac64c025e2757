# SPDX-License-Identifier: GPL-3.0-or-later
"""is_aws_error_code: an except clause that catches one AWS error code and lets the rest pass."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, is_aws_error_code


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "DescribeImages")


def _lookup(error: BaseException) -> str:
    try:
        raise error
    except is_aws_error_code("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
        return "caught"


@pytest.mark.parametrize("code", ["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"])
def test_named_codes_are_caught(code: str) -> None:
    assert _lookup(_client_error(code)) == "caught"


def test_other_codes_pass_through() -> None:
    with pytest.raises(ClientError) as raised:
        _lookup(_client_error("UnauthorizedOperation"))
    assert raised.value.response["Error"]["Code"] == "UnauthorizedOperation"


def test_errors_that_are_not_client_errors_pass_through() -> None:
    with pytest.raises(ValueError):
        _lookup(ValueError("InvalidAMIID.NotFound"))


def test_aws_errors_cover_answers_and_connection_failures() -> None:
    for error in (_client_error("Throttling"), EndpointConnectionError(endpoint_url="http://127.0.0.1:1")):
        try:
            raise error
        except AWS_ERRORS as caught:
            assert caught is error
