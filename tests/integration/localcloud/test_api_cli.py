# SPDX-License-Identifier: GPL-3.0-or-later
"""Lifecycle of the cloud itself: CLI start/stop/status/env, start twice, stop leaves nothing, refusal, Ansible."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from localcloud import cli
from localcloud.testing import SSH_PORT, launch, local_cloud, new_ed25519, ssh

REPO = Path(__file__).resolve().parents[3]


def _cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcloud", "--state-dir", str(state_dir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )


def _traces_of(state_dir: Path) -> list[str]:
    """Processes and mounts that still refer to the state directory."""
    marker = str(state_dir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            links = [os.readlink(entry / "cwd"), os.readlink(entry / "root")]
        except OSError:
            continue
        if marker in cmdline or any(link.startswith(marker) for link in links):
            found.append(f"process {entry.name}: {cmdline.strip()}")
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines() if marker in line]
    return found


def _accepts(ip: str) -> bool:
    try:
        socket.create_connection((ip, SSH_PORT), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory whose cloud is stopped after the test, whatever happened."""
    path = tmp_path / "cloud"
    try:
        yield path
    finally:
        cli.stop(path)


def test_cli_start_twice_status_env_and_stop_leaves_nothing(state_dir: Path) -> None:
    started = _cli(state_dir, "start")
    assert started.returncode == 0, started.stderr
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in started.stdout
    info = json.loads((state_dir / "endpoint.json").read_text())
    assert (state_dir / "env").read_text() == _cli(state_dir, "env").stdout
    again = _cli(state_dir, "start")
    assert again.returncode == 0 and again.stdout == started.stdout
    assert json.loads((state_dir / "endpoint.json").read_text())["pid"] == info["pid"]
    assert _cli(state_dir, "status").returncode == 0

    env = info["env"]
    ec2 = boto3.client(
        "ec2", region_name=env["AWS_DEFAULT_REGION"], endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    key, public = new_ed25519()
    ec2.import_key_pair(KeyName="cli", PublicKeyMaterial=public.encode())
    with local_cloud(state_dir) as cloud:  # finds the running daemon rather than starting another
        assert cloud.pid == info["pid"]
        running = launch(cloud, ec2, count=2, KeyName="cli")
        stopped = running[1]
        ec2.stop_instances(InstanceIds=[stopped["InstanceId"]])
        assert ssh(running[0]["PublicIpAddress"], key, "echo up")[1] == "up\n"
        assert _traces_of(state_dir)
    # local_cloud stopped it on the way out; the CLI agrees, and nothing is left.
    assert _cli(state_dir, "status").returncode == 3
    assert _cli(state_dir, "stop").stdout.strip() == "local cloud was not running"
    assert _traces_of(state_dir) == []
    assert not any(_accepts(i["PublicIpAddress"]) for i in running)
    assert not (state_dir / "endpoint.json").exists() and not (state_dir / "server.pid").exists()
    assert not list((state_dir / "runtime" / "instances").iterdir())


def test_cli_stop_command_stops_a_running_cloud(state_dir: Path) -> None:
    assert _cli(state_dir, "start").returncode == 0
    pid = json.loads((state_dir / "endpoint.json").read_text())["pid"]
    stopped = _cli(state_dir, "stop")
    assert stopped.stdout.strip() == "local cloud stopped"
    assert not cli.pid_alive(pid)  # gone, or a zombie its new parent has not reaped
    assert _traces_of(state_dir) == []


def test_refuses_to_start_with_one_sentence_when_the_host_check_fails(tmp_path: Path) -> None:
    state_dir = tmp_path / "bad:name"
    result = _cli(state_dir, "start")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("localcloud: ") and "':'" in lines[0]
    assert _traces_of(state_dir) == []
    assert not (state_dir / "server.pid").exists()


def test_ansible_module_starts_uses_and_stops_the_cloud(tmp_path: Path, state_dir: Path) -> None:
    playbook = tmp_path / "cloud.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - name: Local cloud from Ansible
          hosts: localhost
          gather_facts: false
          vars:
            ansible_connection: local
            ansible_python_interpreter: {sys.executable}
          tasks:
            - name: Start
              local_cloud:
                state: started
                state_dir: {state_dir}
                source: {REPO}
                settings:
                  latency:
                    image_pending: 1
              register: first
            - name: Start again
              local_cloud:
                state_dir: {state_dir}
                source: {REPO}
              register: second
            - name: Find the base image through the endpoint
              amazon.aws.ec2_ami_info:
                owners: [amazon]
                filters:
                  name: "{{{{ first.base_image_name }}}}"
              environment: "{{{{ first.env }}}}"
              register: images
            - name: Check
              ansible.builtin.assert:
                that:
                  - first is changed
                  - second is not changed
                  - second.endpoint_url == first.endpoint_url
                  - images.images | length == 1
            - name: Stop
              local_cloud:
                state: stopped
                state_dir: {state_dir}
                source: {REPO}
              register: stopped
            - name: Stop again
              local_cloud:
                state: stopped
                state_dir: {state_dir}
                source: {REPO}
              register: stopped_again
            - name: Check stop
              ansible.builtin.assert:
                that:
                  - stopped is changed
                  - stopped_again is not changed
        """))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _traces_of(state_dir) == []


def test_concurrent_starts_make_one_daemon(state_dir: Path) -> None:
    starts = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "localcloud", "--state-dir", str(state_dir), "start"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _index in range(3)
    ]
    outputs = [process.communicate(timeout=600) for process in starts]
    assert [process.returncode for process in starts] == [0, 0, 0], outputs
    assert len({stdout for stdout, _err in outputs}) == 1
    daemons = [
        entry.name for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and b"serve" in _cmdline(entry) and str(state_dir).encode() in _cmdline(entry)
    ]
    assert len(daemons) == 1


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


def test_refuses_a_port_in_use_with_one_sentence(state_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _cli(state_dir, "start", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be served" in lines[0], result.stderr
    assert _traces_of(state_dir) == []
