# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from localcloud.testing import RunningCloud, localcloud_session, localcloud_settings  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/localcloud" in str(item.fspath):
            item.add_marker(pytest.mark.localcloud)


@pytest.fixture
def cloud(localcloud_session: RunningCloud) -> RunningCloud:  # noqa: F811
    return localcloud_session
