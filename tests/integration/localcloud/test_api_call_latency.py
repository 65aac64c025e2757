# SPDX-License-Identifier: GPL-3.0-or-later
"""latency.api_call: every API call answers no sooner than the configured delay."""
from __future__ import annotations

import time
from typing import Any

import pytest

from localcloud.settings import Settings, SettingsError
from localcloud.testing import RunningCloud


def test_api_call_latency_must_be_seconds() -> None:
    with pytest.raises(SettingsError, match="latency.api_call"):
        Settings({"latency": {"api_call": -1}})
    assert Settings({"latency": {"api_call": 0.25}}).latency("api_call") == 0.25


def test_every_api_call_waits_the_configured_latency(cloud: RunningCloud, localcloud_settings: Any) -> None:
    ec2 = cloud.client("ec2")
    localcloud_settings.update_settings({"latency": {"api_call": 0.6}})
    mark = cloud.mark()
    for call in (ec2.describe_key_pairs, ec2.describe_regions, cloud.base_image_id):
        began = time.monotonic()
        call()
        # a lower bound only: the call cannot answer before the injected delay has passed
        assert time.monotonic() - began >= 0.6
    # the calls are served as usual and logged once each
    assert cloud.count(since=mark) == 3
    assert localcloud_settings.settings()["latency"]["api_call"] == 0.6
    assert localcloud_settings.reset()["latency"]["api_call"] == 0
