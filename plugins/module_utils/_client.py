# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The one client factory: boto3 clients from the module's AWS options, with the retry policy."""
from __future__ import annotations

from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY


def aws_client(module: AnsibleAWSModule, service: str = "ec2", region: str | None = None) -> Any:
    """A client for `service` in `region` (the module's region by default).

    Calls made with `aws_retry=True` go through the retry policy.
    """
    extra: dict[str, Any] = {}
    if region:
        extra["region"] = region
    return module.client(service, retry_decorator=RETRY, **extra)
