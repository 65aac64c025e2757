# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one retry policy: jittered backoff on throttling and transient EC2 errors."""
from __future__ import annotations

import sys
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


class _NoSuchError(Exception):
    """Never raised: an except clause naming it catches nothing."""


# AWS_ERRORS: every error a botocore call raises, an answer of the service or a failure to get one.
try:
    from botocore.exceptions import BotoCoreError, ClientError

    AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)
except ImportError:  # AnsibleAWSModule reports a missing botocore itself
    # Without botocore no AWS error can happen, and the clauses naming one catch nothing.
    BotoCoreError = ClientError = _NoSuchError  # type: ignore[assignment,misc]
    AWS_ERRORS = (_NoSuchError,)

# AWSRetry already retries RequestLimitExceeded, Throttling, Unavailable, InternalError, ...
THROTTLING_CODES = frozenset(
    (
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
    )
)
TRANSIENT_CODES = frozenset(
    (
        "Unavailable",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    )
)

RETRY = AWSRetry.jittered_backoff(
    retries=10,
    delay=1,
    backoff=2.0,
    max_delay=20,
    catch_extra_error_codes=sorted(THROTTLING_CODES | TRANSIENT_CODES),
)


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response: Any = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def is_aws_error_code(*codes: str, error: BaseException | None = None) -> type[BaseException]:
    """For an except clause: catch a ClientError only when its code is one of `codes`.

        try:
            client.describe_images(ImageIds=[image_id])
        except is_aws_error_code("InvalidAMIID.NotFound"):
            return None

    Python evaluates the clause with the error being handled; any other error passes through.
    """
    if error is None:
        error = sys.exc_info()[1]
    if isinstance(error, ClientError) and error_code(error) in codes:
        return ClientError
    return _NoSuchError


def is_retryable(error: BaseException) -> bool:
    return error_code(error) in THROTTLING_CODES | TRANSIENT_CODES


def aws_error_message(error: BaseException) -> str:
    """One line for an AWS error: its code and EC2's message, without a traceback."""
    response: Any = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        err = response["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(error).splitlines()[0] if str(error) else type(error).__name__
