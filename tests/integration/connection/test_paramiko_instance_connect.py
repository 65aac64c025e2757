# SPDX-License-Identifier: GPL-3.0-or-later
"""EC2 Instance Connect: the key is pushed before connecting, and again on a reconnect.

The endpoint here plays the instance's side of the service: it writes each pushed key into the
sshd's (initially empty) authorized_keys, so a login only works if the push happened first.
"""
from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _paramiko_sshd import NET, USER, Sshd, free_port

if TYPE_CHECKING:  # pytest imports conftest itself; the names are only for the checker
    from conftest import Ansible, Keys

pytestmark = pytest.mark.sshd

PING = [{"command": "echo reached", "register": "r"}, {"assert": {"that": "r.stdout == 'reached'"}}]
INSTANCE = "i-0abc1234def567890"


class _Endpoint(ThreadingHTTPServer):
    authorized: Path
    requests: list[dict[str, object]]


class _Handler(BaseHTTPRequestHandler):
    server: _Endpoint

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"target": self.headers.get("X-Amz-Target"), **body})
        with open(self.server.authorized, "a") as keys:
            keys.write(body["SSHPublicKey"] + "\n")
        answer = json.dumps({"RequestId": "req-1", "Success": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ic_sshd(keys: Keys) -> Iterator[Sshd]:
    (keys.dir / "ic-sshd").mkdir(exist_ok=True)
    authorized = keys.dir / "ic-sshd" / "authorized_keys"  # readable by the login user, unlike tmp_path
    authorized.write_text("")
    authorized.chmod(0o644)
    server = Sshd(keys.dir / "ic-sshd", f"{NET}.3.1", authorized)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def endpoint(ic_sshd: Sshd) -> Iterator[_Endpoint]:
    server = _Endpoint(("127.0.0.1", free_port("127.0.0.1")), _Handler)
    server.authorized = ic_sshd.authorized_keys
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_key_pushed_before_connect_and_on_reconnect(ansible: Ansible, ic_sshd: Sshd, endpoint: _Endpoint, keys: Keys) -> None:
    hostvars = ansible.host_vars(
        ic_sshd, ansible_paramiko_look_for_keys=False, ansible_paramiko_allow_agent=False,
        bakery_paramiko_instance_connect=True, bakery_paramiko_instance_id=INSTANCE,
        bakery_paramiko_region="eu-west-1", bakery_paramiko_endpoint_url=f"http://127.0.0.1:{endpoint.server_port}",
        bakery_paramiko_access_key="AKIDEXAMPLE", bakery_paramiko_secret_key="secret")
    ansible.play(PING, hostvars, check=True)
    public = " ".join(Path(f"{keys.client}.pub").read_text().split()[:2])
    assert endpoint.requests == [{"target": "AWSEC2InstanceConnectService.SendSSHPublicKey", "InstanceId": INSTANCE,
                                  "InstanceOSUser": USER, "SSHPublicKey": public}]
    # the instance forgets the key (it only lives 60 s) and its sshd restarts: the reconnect pushes again
    ic_sshd.authorized_keys.write_text("")
    ic_sshd.stop()
    ic_sshd.start()
    ansible.play(PING, hostvars, name="again", check=True)
    assert len(endpoint.requests) == 2 and ic_sshd.accepted() == 2


def test_push_failure_is_reported(ansible: Ansible, ic_sshd: Sshd) -> None:
    dead = free_port("127.0.0.1")
    hostvars = ansible.host_vars(
        ic_sshd, bakery_paramiko_instance_connect=True, bakery_paramiko_instance_id=INSTANCE,
        bakery_paramiko_region="eu-west-1", bakery_paramiko_endpoint_url=f"http://127.0.0.1:{dead}",
        bakery_paramiko_access_key="AKIDEXAMPLE", bakery_paramiko_secret_key="secret")
    run = ansible.play(PING, hostvars)
    assert run.rc != 0 and "UNREACHABLE!" in run.out
    assert f"EC2 Instance Connect could not push the key to {INSTANCE}" in run.out
