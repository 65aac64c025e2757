# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from localcloud import testing
from localcloud.testing import RunningCloud

# The local cloud's shared fixtures: one cloud for the session, settings reset around a test.
localcloud_session = testing.localcloud_session
localcloud_settings = testing.localcloud_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/modules" in str(item.fspath):
            item.add_marker(pytest.mark.localcloud)


@pytest.fixture
def cloud(localcloud_session: RunningCloud) -> RunningCloud:  # pylint: disable=redefined-outer-name
    return localcloud_session
