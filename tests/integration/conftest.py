# SPDX-License-Identifier: GPL-3.0-or-later
"""A moto server on loopback for playbook runs that need no real instances."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto_ec2_rules import patch_moto_like_ec2


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Imported here: the connection suite also runs from a venv without moto (ansible-core 2.21).
    from moto.server import ThreadedMotoServer

    patch_moto_like_ec2(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
