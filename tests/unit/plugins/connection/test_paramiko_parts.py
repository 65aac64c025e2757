# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.connection import paramiko as plugin
from ansible_collections.bakery.ami.plugins.plugin_utils import _ssh_instance_connect
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_client import ControlError, control_name, private_dir
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_hostkeys import HostKeyVerifier
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_protocol import (
    RESULT,
    STDOUT,
    decode_json,
    recv_frame,
    send_frame,
    send_json,
)


def _settings(**target: object) -> dict[str, object]:
    return {"target": {"host": "10.0.0.1", "port": 22, "user": "admin", "password": None, **target},
            "jump": None, "timeout": 10, "connect_timeout": 30, "host_key_checking": True,
            "known_hosts_file": "/k", "record_host_keys": False, "instance_connect": None, "idle_timeout": 60}


def test_control_name_ignores_secrets_and_timeouts() -> None:
    base = control_name(_settings())
    assert control_name(_settings(password="secret")) == base
    assert control_name({**_settings(), "timeout": 0, "idle_timeout": 5}) == base
    assert control_name(_settings(port=2222)) != base
    assert control_name(_settings(host_keys=["ssh-ed25519 AAAA"])) != base
    assert len(os.path.join("/root/.ansible/cp", base)) < 100  # Unix socket paths are short


def test_private_dir(tmp_path: Path) -> None:
    created = private_dir(str(tmp_path / "cp"))
    assert oct(os.stat(created).st_mode & 0o777) == "0o700"
    os.chmod(created, 0o755)
    with pytest.raises(ControlError, match="mode 0700"):
        private_dir(created)


def test_frames_round_trip_large_payloads() -> None:
    left, right = socket.socketpair()
    payload = os.urandom(3 * 1024 * 1024)

    def send() -> None:
        send_frame(left, STDOUT, payload)
        send_json(left, RESULT, {"rc": 3})
        left.close()

    sender = threading.Thread(target=send)
    sender.start()
    assert recv_frame(right) == (STDOUT, payload)
    frame = recv_frame(right)
    assert frame is not None
    kind, data = frame
    assert kind == RESULT and decode_json(data) == {"rc": 3}
    assert recv_frame(right) is None
    sender.join()


PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDw2jvXN6jB3d5bWTGj0pB0Q2Xn7aWwE0mH1d6cQ2Wq9"


def test_instance_connect_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    client = boto3.client("ec2-instance-connect", region_name="eu-west-1", aws_access_key_id="a",
                          aws_secret_access_key="b")
    stubber = Stubber(client)
    stubber.add_response("send_ssh_public_key", {"RequestId": "r", "Success": True},
                         {"InstanceId": "i-0123456789abcdef0", "InstanceOSUser": "admin",
                          "SSHPublicKey": PUBLIC_KEY})

    class _Session:
        def __init__(self, **kwargs: object) -> None:
            assert kwargs["profile_name"] == "bake"

        def client(self, service: str, region_name: str | None, endpoint_url: str | None) -> object:
            assert (service, region_name, endpoint_url) == ("ec2-instance-connect", "eu-west-1", "http://127.0.0.1:5000")
            return client

    monkeypatch.setattr(boto3.session, "Session", _Session)
    with stubber:
        _ssh_instance_connect.push_public_key(
            {"instance_id": "i-0123456789abcdef0", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000",
             "profile": "bake"}, "admin", PUBLIC_KEY)
        stubber.assert_no_pending_responses()


def test_plugin_declares_its_interface() -> None:
    assert plugin.Connection.transport == "bakery.ami.paramiko"
    assert plugin.Connection.has_pipelining is True
    options = yaml.safe_load(plugin.DOCUMENTATION)["options"]
    assert [v["name"] for v in options["host_keys"]["vars"]] == ["ansible_paramiko_host_keys", "bakery_paramiko_host_keys"]
    for name in ("instance_connect", "instance_id", "region", "endpoint_url", "jump_host", "idle_timeout",
                 "known_hosts_file", "connect_timeout", "banner_timeout", "auth_timeout", "keepalive"):
        assert name in options


def test_task_side_does_not_import_paramiko() -> None:
    # Every task runs in a fresh worker that loads the plugin; only the control process needs
    # paramiko, so the worker must not pay for importing it (ansible-core 2.21 no longer does).
    collections = Path(os.path.abspath(plugin.__file__)).parents[5]  # .../ansible_collections/bakery/ami/plugins/connection
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from ansible_collections.bakery.ami.plugins.connection import paramiko as plugin; "
        "from ansible_collections.bakery.ami.plugins.plugin_utils import _ssh_client, _ssh_hostkeys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'paramiko'))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(collections)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_paramiko_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = plugin.importlib.util.find_spec
    monkeypatch.setattr(plugin.importlib.util, "find_spec",
                        lambda name, *args: None if name == "paramiko" else real_find_spec(name, *args))
    connection = plugin.Connection.__new__(plugin.Connection)
    with pytest.raises(plugin.AnsibleError, match="needs the paramiko Python library"):
        connection._make_client()


def test_pinned_host_keys_still_verify_against_known_hosts(tmp_path: Path) -> None:
    # HostKeyVerifier now imports paramiko when it reads known_hosts; that path must still work.
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))
    known = tmp_path / "known_hosts"
    known.write_text(f"[10.0.0.1]:2222 ssh-ed25519 {base64.b64encode(blob).decode()}\n")
    verifier = HostKeyVerifier("10.0.0.1", 2222, True, str(known), [], False)
    assert verifier.trusted_keys() == {"ssh-ed25519": [blob]}
