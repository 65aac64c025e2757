# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for tests and benchmarks: a local cloud in a temporary state dir, its clients and request log.

    from localcloud.testing import local_cloud

    with local_cloud(tmp_path / "cloud") as cloud:
        ec2 = cloud.client("ec2")
        mark = cloud.mark()
        ...
        assert cloud.count(action="RunInstances", since=mark) == 1

pytest: `from localcloud.testing import localcloud_session  # noqa: F401` in a conftest gives a
session-wide cloud fixture (`localcloud_session`), and `localcloud_settings` resets latency and faults
around a test that changes them.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud import cli
from localcloud.control import ControlClient
from localcloud.requestlog import count_requests, read_requests
from localcloud.server import DEFAULT_REGION


@dataclass
class RunningCloud:
    """A started local cloud, as a test sees it."""

    state_dir: Path
    endpoint_url: str
    env: dict[str, str]
    base_image_name: str
    base_image_parameter: str
    pid: int
    control: ControlClient = field(init=False)

    def __post_init__(self) -> None:
        self.control = ControlClient(self.endpoint_url)

    @property
    def request_log(self) -> Path:
        return self.state_dir / "requests.jsonl"

    def client(self, service: str, region: str = DEFAULT_REGION) -> Any:
        """A boto3 client for this cloud (retries kept low so faults show)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    def base_image_id(self, region: str = DEFAULT_REGION) -> str:
        ssm = self.client("ssm", region)
        return str(ssm.get_parameter(Name=self.base_image_parameter)["Parameter"]["Value"])

    @staticmethod
    def mark() -> float:
        """A point in time to count requests from."""
        return time.time()

    def requests(self, since: float | None = None) -> list[dict[str, Any]]:
        return list(read_requests(self.request_log, since))

    def count(self, **criteria: Any) -> int:
        """Logged calls matching action=, service=, region=, outcome=, since=."""
        return count_requests(self.request_log, **criteria)


SSH_USER = "ec2-user"
SSH_PORT = 22


def new_ed25519() -> tuple[Any, str]:
    """A fresh key: paramiko's private key and the OpenSSH public line."""
    import paramiko
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), public.decode()


def rsa_from_pem(pem: str) -> Any:
    import paramiko

    return paramiko.RSAKey.from_private_key(io.StringIO(pem))


def ssh(ip: str, key: Any, command: str, user: str = SSH_USER) -> tuple[int, str, str]:
    """Runs a command over real SSH; returns status, stdout, stderr."""
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(ip, port=SSH_PORT, username=user, pkey=key, timeout=15, allow_agent=False, look_for_keys=False)
    try:
        _, stdout, stderr = client.exec_command(command, timeout=60)
        status = stdout.channel.recv_exit_status()
        return status, stdout.read().decode(), stderr.read().decode()
    finally:
        client.close()


def ssh_refused(ip: str, key: Any, user: str = SSH_USER) -> bool:
    """True when sshd refuses the key for the user."""
    import paramiko

    try:
        ssh(ip, key, "true", user)
    except paramiko.AuthenticationException:
        return True
    return False


def wait_until(check: Callable[[], Any], timeout: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def waiter(client: Any, name: str, **kwargs: Any) -> None:
    client.get_waiter(name).wait(WaiterConfig={"Delay": 1, "MaxAttempts": 300}, **kwargs)


def launch(
    cloud: RunningCloud, ec2: Any, *, image_id: str | None = None, count: int = 1, **kwargs: Any
) -> list[dict[str, Any]]:
    """RunInstances and wait until every instance runs; returns the described instances."""
    image = image_id or cloud.base_image_id(ec2.meta.region_name)
    reservation = ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count, **kwargs)
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    waiter(ec2, "instance_running", InstanceIds=ids)
    described = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    return [i for r in described for i in r["Instances"]]


def _running(info: dict[str, Any]) -> RunningCloud:
    return RunningCloud(
        state_dir=Path(info["state_dir"]),
        endpoint_url=info["endpoint_url"],
        env=dict(info["env"]),
        base_image_name=info["base_image_name"],
        base_image_parameter=info["base_image_parameter"],
        pid=int(info["pid"]),
    )


@contextlib.contextmanager
def local_cloud(
    state_dir: Path, settings: dict[str, Any] | None = None, port: int = 0
) -> Iterator[RunningCloud]:
    """Starts a local cloud with its state in `state_dir` and stops it (and every instance) afterwards."""
    import json

    state_dir.mkdir(parents=True, exist_ok=True)
    settings_file = None
    if settings:
        settings_file = state_dir / "settings.json"
        settings_file.write_text(json.dumps(settings), encoding="utf-8")
    info = cli.start(state_dir, port=port, settings_file=settings_file)
    try:
        yield _running(info)
    finally:
        cli.stop(state_dir)


def _session_state_dir(factory: Any) -> Path:
    # A fixed place lets a cached base layer serve every test session; pytest-xdist workers each
    # run a cloud of their own, so each gets its own place under it.
    configured = os.environ.get("LOCALCLOUD_TEST_STATE_DIR")
    if not configured:
        return Path(factory.mktemp("localcloud"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return Path(configured) / worker if worker else Path(configured)


try:
    import pytest
except ImportError:  # pragma: no cover - only tests use the fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def localcloud_session(tmp_path_factory: Any) -> Iterator[RunningCloud]:
        """One local cloud for the whole test session."""
        with local_cloud(_session_state_dir(tmp_path_factory)) as cloud:
            yield cloud

    @pytest.fixture
    def localcloud_settings(localcloud_session: RunningCloud) -> Iterator[ControlClient]:
        """The control client, with latency and faults reset before and after the test."""
        localcloud_session.control.reset()
        try:
            yield localcloud_session.control
        finally:
            localcloud_session.control.reset()
