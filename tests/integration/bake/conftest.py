# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the bake tests: real ansible-playbook runs against a moto server on loopback."""
from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest
from bake_helpers import BIN, Moto, free_port

from localcloud import testing as localcloud_testing


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    """A plain moto server (no real instances): enough for every step before SSH."""
    server = BIN / "moto_server"
    if not server.exists():
        pytest.fail(f"{server} is missing: run `make venv` (requirements-test.txt installs moto[server])")
    port = free_port()
    # importing the local cloud turns moto's stock images off for this process; a plain moto has them
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "true"}
    process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)  # noqa: S310 - loopback only
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"moto server did not start on {endpoint}")
            time.sleep(0.2)
    try:
        yield Moto(endpoint)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def source_ami(moto_server: Moto) -> str:
    """One of moto's stock images, found the way a user would (by filters)."""
    images = moto_server.client("ec2").describe_images(Owners=["amazon"])["Images"]
    if not images:
        pytest.fail("moto lists no stock images")
    return str(sorted(images, key=lambda i: i["ImageId"])[0]["ImageId"])


# The local cloud (real instances): one for the session, settings reset around a test.
localcloud_session = localcloud_testing.localcloud_session
localcloud_settings = localcloud_testing.localcloud_settings
