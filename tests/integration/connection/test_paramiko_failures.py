# SPDX-License-Identifier: GPL-3.0-or-later
"""Host keys, authentication, jump host, and servers that come late, go away or restart."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from typing import TYPE_CHECKING

import pytest
from _paramiko_sshd import NET, USER, Sshd, control_processes
from conftest import make_sshd

if TYPE_CHECKING:
    from conftest import Ansible, Keys, Run

pytestmark = pytest.mark.sshd

PING = [{"command": "echo reached", "register": "r"}, {"assert": {"that": "r.stdout == 'reached'"}}]


def _unreachable(run: Run) -> None:
    assert run.rc != 0
    assert "UNREACHABLE!" in run.out, run.out


def test_unknown_host_key_fails_with_fingerprint(ansible: Ansible, sshd: Sshd) -> None:
    (ansible.work / "known_hosts").write_text("")
    run = ansible.play(PING, ansible.host_vars(sshd))
    _unreachable(run)
    assert "is unknown" in run.out
    assert sshd.fingerprint(0) in run.out  # ed25519 is paramiko's first choice
    assert sshd.accepted() == 0


def test_changed_host_key_fails_as_man_in_the_middle(ansible: Ansible, sshd: Sshd, keys: Keys) -> None:
    other = make_sshd(keys, "other")  # only for its host keys; never started
    (ansible.work / "known_hosts").write_text(f"[{sshd.address}]:{sshd.port} {other.host_key_line(0)}\n")
    run = ansible.play(PING, ansible.host_vars(sshd))
    _unreachable(run)
    assert "has CHANGED" in run.out and "man-in-the-middle" in run.out
    assert sshd.accepted() == 0


def test_pinned_host_keys(ansible: Ansible, sshd: Sshd, keys: Keys) -> None:
    (ansible.work / "known_hosts").write_text("")
    # the RSA key alone, as "type base64": the connection must ask the server for RSA
    ansible.play(PING, ansible.host_vars(sshd, bakery_paramiko_host_keys=[sshd.host_key_line(1)]), check=True)
    block = ("-----BEGIN SSH HOST KEY KEYS-----\n" + f"{sshd.host_key_line(0)} root@builder\n"
             + "-----END SSH HOST KEY KEYS-----\n")
    ansible.play(PING, ansible.host_vars(sshd, ansible_paramiko_host_keys=block), name="block", check=True)
    other = make_sshd(keys, "other")
    run = ansible.play(PING, ansible.host_vars(sshd, bakery_paramiko_host_keys=[other.host_key_line(0)]), name="wrong")
    _unreachable(run)
    assert "does not match the pinned host keys" in run.out
    assert (ansible.work / "known_hosts").read_text() == ""  # pinning never writes known_hosts


def test_no_checking_records_only_when_asked(ansible: Ansible, sshd: Sshd) -> None:
    known = ansible.work / "known_hosts"
    known.write_text("")
    ansible.play(PING, ansible.host_vars(sshd, ansible_host_key_checking=False), check=True)
    assert known.read_text() == ""
    assert not (ansible.work / "home" / ".ssh" / "known_hosts").exists()
    hostvars = ansible.host_vars(sshd, ansible_host_key_checking=False, ansible_paramiko_record_host_keys=True,
                                 ansible_paramiko_control_path_dir=str(ansible.control_dir) + "-2")
    ansible.play(PING, hostvars, name="record", check=True)
    assert known.read_text() == sshd.known_hosts_line(0)
    ansible.play(PING, ansible.host_vars(sshd, ansible_paramiko_idle_timeout=1), name="checked", check=True)


def test_wrong_key_fails_authentication(ansible: Ansible, sshd: Sshd, keys: Keys) -> None:
    run = ansible.play(PING, ansible.host_vars(sshd, ansible_private_key_file=str(keys.stranger)))
    _unreachable(run)
    assert f"authentication failed for {USER}@" in run.out


def test_password_authentication(ansible: Ansible, sshd: Sshd, keys: Keys) -> None:
    from _paramiko_sshd import PASSWORD
    hostvars = ansible.host_vars(sshd, ansible_private_key_file=None, ansible_password=PASSWORD,
                                 ansible_paramiko_look_for_keys=False, ansible_paramiko_allow_agent=False)
    ansible.play(PING, hostvars, check=True)


def test_refused_fails_after_connect_timeout(ansible: Ansible, sshd: Sshd) -> None:
    sshd.stop()
    run = ansible.play(PING, ansible.host_vars(sshd, ansible_paramiko_connect_timeout=2))
    _unreachable(run)
    assert "Connection refused" in run.out and "gave up after connect_timeout 2s" in run.out


def test_jump_host(ansible: Ansible, sshd: Sshd, keys: Keys) -> None:
    jump = make_sshd(keys, "jump")
    jump.start()
    try:
        known = ansible.work / "known_hosts"
        known.write_text(sshd.known_hosts_line() + jump.known_hosts_line())
        hostvars = ansible.host_vars(sshd, bakery_paramiko_jump_host=f"{USER}@{jump.address}:{jump.port}")
        ansible.play(PING, hostvars, check=True)
        assert jump.accepted() == 1 and sshd.accepted() == 1
        # the jump host's key is checked too
        known.write_text(sshd.known_hosts_line())
        hostvars["ansible_paramiko_control_path_dir"] = str(ansible.control_dir) + "-2"
        run = ansible.play(PING, hostvars, name="unknown-jump")
        _unreachable(run)
        assert f"jump host {USER}@{jump.address}:{jump.port}" in run.out and "is unknown" in run.out
        assert jump.fingerprint(0) in run.out
    finally:
        jump.stop()
        shutil.rmtree(jump.workdir, ignore_errors=True)


def test_sshd_starting_late_is_waited_for(ansible: Ansible, keys: Keys) -> None:
    late = make_sshd(keys, "late")
    starter = threading.Timer(5.0, late.start)
    starter.start()
    try:
        tasks = [{"wait_for_connection": {"timeout": 60}}, *PING]
        ansible.play(tasks, ansible.host_vars(late, ansible_paramiko_connect_timeout=60), check=True)
        assert late.accepted() == 1
    finally:
        starter.join()
        late.stop()
        shutil.rmtree(late.workdir, ignore_errors=True)


def test_sshd_restarted_between_tasks_reconnects(ansible: Ansible, sshd: Sshd) -> None:
    marker = ansible.work / "first-task-done"
    go_on = ansible.work / "sshd-restarted"

    def restart_when_asked() -> None:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        sshd.stop()
        sshd.start()
        go_on.touch()

    restarter = threading.Thread(target=restart_when_asked)
    restarter.start()
    local = {"delegate_to": "localhost", "vars": {"ansible_connection": "local"}}
    tasks = [
        *PING,
        {"file": {"path": str(marker), "state": "touch"}, **local},
        {"wait_for": {"path": str(go_on), "timeout": 60}, **local},
        *PING,
    ]
    ansible.play(tasks, ansible.host_vars(sshd), check=True)
    restarter.join()
    assert sshd.accepted() == 2, sshd.log.read_text()
    assert len(control_processes(ansible.control_dir)) == 1  # the same control process reconnected


def test_control_process_leaves_after_idle_timeout(ansible: Ansible, sshd: Sshd) -> None:
    local = {"delegate_to": "localhost", "vars": {"ansible_connection": "local"}}
    tasks = [
        *PING,
        # checked inside the play, while the session is certainly still wanted
        {"find": {"paths": str(ansible.control_dir), "file_type": "any", "patterns": "bakery-paramiko-*"},
         "register": "sockets", **local},
        {"assert": {"that": "sockets.files | selectattr('issock') | list | length == 1"}},
    ]
    ansible.play(tasks, ansible.host_vars(sshd, ansible_paramiko_idle_timeout=10), check=True)
    assert oct(ansible.control_dir.stat().st_mode & 0o777) == "0o700"
    deadline = time.monotonic() + 120
    while control_processes(ansible.control_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert control_processes(ansible.control_dir) == []
    assert not any(p.is_socket() for p in ansible.control_dir.iterdir())
    # a socket left by a killed control process is stale: the next play replaces it
    ansible.play(PING, ansible.host_vars(sshd), name="again", check=True)
    pid = control_processes(ansible.control_dir)[0]
    subprocess.run(["kill", "-9", str(pid)], check=True)
    while control_processes(ansible.control_dir):
        time.sleep(0.05)
    assert any(p.is_socket() for p in ansible.control_dir.iterdir())
    ansible.play(PING, ansible.host_vars(sshd), name="after-kill", check=True)
    assert sshd.accepted() == 3


def test_silent_server_times_out(ansible: Ansible, sshd: Sshd) -> None:
    # accepts TCP connections but never speaks SSH, like a host whose sshd hangs
    silent = socket.socket()
    silent_address = f"{NET}.4.1"
    silent.bind((silent_address, 0))
    silent.listen(16)
    try:
        hostvars = ansible.host_vars(sshd, ansible_host=silent_address, ansible_port=silent.getsockname()[1],
                                     ansible_paramiko_banner_timeout=1, ansible_paramiko_connect_timeout=3)
        run = ansible.play(PING, hostvars)
        _unreachable(run)
        assert f"SSH handshake with {silent_address}" in run.out and "gave up after connect_timeout 3s" in run.out
    finally:
        silent.close()
