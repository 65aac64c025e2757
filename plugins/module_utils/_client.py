# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one client factory: boto3 clients from the module's AWS options, with the retry policy."""
from __future__ import annotations

from typing import Any

try:
    import boto3
    import botocore.config
except ImportError:  # AnsibleAWSModule reports a missing boto3 itself
    boto3 = None

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY


def aws_client(module: AnsibleAWSModule, service: str = "ec2", region: str | None = None) -> Any:
    """A client for `service` in `region` (the module's region by default).

    Calls made with `aws_retry=True` go through the retry policy.
    """
    extra: dict[str, Any] = {}
    if region:
        extra["region"] = region
    return module.client(service, retry_decorator=RETRY, **extra)


def aws_clients(module: AnsibleAWSModule, service: str, regions: list[str]) -> dict[str, Any]:
    """Clients for `service` in each of `regions`, made from one boto3 session.

    module.client() opens a new session each time, which reads the service model again (about a
    second for EC2); one session reads it once. Same options and retry policy as aws_client().
    """
    if boto3 is None or not regions:
        return {region: aws_client(module, service, region) for region in regions}
    dummy, endpoint_url, params = get_aws_connection_info(module)
    session = boto3.session.Session(profile_name=params.pop("profile_name", None))
    config = botocore.config.Config(user_agent_extra="bakery.ami")
    extra_config = params.pop("aws_config", None)
    if extra_config is not None:
        config = config.merge(extra_config)
    return {
        region: RetryingBotoClientWrapper(
            session.client(service, region_name=region, endpoint_url=endpoint_url, config=config, **params), RETRY
        )
        for region in regions
    }
