# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: test users, client keys, real sshd instances and an ansible-playbook runner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from _paramiko_sshd import NET, USER, Sshd, ensure_users, keygen, remove_users, stop_control_processes

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def _require(condition: bool, message: str) -> None:
    if not condition:
        pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def test_users() -> Iterator[None]:
    """System users for sshd logins and become; removed afterwards."""
    _require(os.geteuid() == 0, "the connection tests start sshd and create users: run them as root")
    for tool in ("/usr/sbin/sshd", "/usr/bin/sudo", "/usr/bin/ssh-keygen"):
        _require(os.path.exists(tool), f"{tool} is missing: run `make system-deps` (openssh-server, sudo)")
    created = ensure_users()
    yield
    remove_users(created)


@dataclass
class Keys:
    dir: Path
    client: Path
    stranger: Path
    authorized: Path


@pytest.fixture(scope="session")
def keys(test_users: None) -> Iterator[Keys]:
    base = Path(tempfile.mkdtemp(prefix="bkeys"))
    client = keygen(base / "client")
    stranger = keygen(base / "stranger")
    authorized = base / "authorized_keys"
    shutil.copy(f"{client}.pub", authorized)
    authorized.chmod(0o644)
    base.chmod(0o755)
    yield Keys(base, client, stranger, authorized)
    shutil.rmtree(base, ignore_errors=True)


_next_address = iter(range(2, 250))


def make_sshd(keys: Keys, name: str) -> Sshd:
    address = f"{NET}.0.{next(_next_address)}"
    return Sshd(keys.dir / f"{name}-{address}", address, keys.authorized)


@pytest.fixture
def sshd(keys: Keys) -> Iterator[Sshd]:
    server = make_sshd(keys, "sshd")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@dataclass
class Run:
    rc: int
    out: str

    def assert_ok(self) -> None:
        assert self.rc == 0, self.out


@dataclass
class Ansible:
    """Runs real ansible-playbook plays; each test gets private control, known_hosts and HOME dirs."""

    keys: Keys
    work: Path
    control_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def host_vars(self, server: Sshd, **extra: object) -> dict[str, object]:
        known_hosts = self.work / "known_hosts"
        if not known_hosts.exists():
            known_hosts.write_text(server.known_hosts_line())
        return {
            "ansible_connection": "bakery.ami.paramiko",
            "ansible_host": server.address,
            "ansible_port": server.port,
            "ansible_user": USER,
            "ansible_private_key_file": str(self.keys.client),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_paramiko_known_hosts_file": str(known_hosts),
            "ansible_paramiko_control_path_dir": str(self.control_dir),
            **extra,
        }

    def play(self, tasks: Sequence[Any], hostvars: dict[str, object], *, name: str = "play",
             gather_facts: bool = False, check: bool = False) -> Run:
        inventory = {"all": {"hosts": {"target": hostvars}}}
        (self.work / f"{name}-inventory.yml").write_text(yaml.safe_dump(inventory))
        play = [{"hosts": "target", "gather_facts": gather_facts, "tasks": tasks}]
        (self.work / f"{name}.yml").write_text(yaml.safe_dump(play, sort_keys=False))
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "HOME": str(self.work / "home"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}:{os.environ['PATH']}",
               **self.extra_env}
        (self.work / "home").mkdir(exist_ok=True)
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.work / f"{name}-inventory.yml"),
                               str(self.work / f"{name}.yml")], cwd=REPO, env=env, capture_output=True, text=True, check=False,
                              timeout=600)
        run = Run(proc.returncode, proc.stdout + proc.stderr)
        if check:
            run.assert_ok()
        return run


@pytest.fixture
def ansible(keys: Keys, tmp_path: Path) -> Iterator[Ansible]:
    control_dir = Path(tempfile.mkdtemp(prefix="bp"))  # short: Unix socket paths are limited to 107 bytes
    tmp_path.chmod(0o755)
    runner = Ansible(keys, tmp_path, control_dir / "cp")
    yield runner
    stop_control_processes(runner.control_dir)
    shutil.rmtree(control_dir, ignore_errors=True)
