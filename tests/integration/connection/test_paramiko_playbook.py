# SPDX-License-Identifier: GPL-3.0-or-later
"""The everyday work of a connection, through real ansible-playbook runs against a real sshd."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _paramiko_sshd import OTHER_USER, PASSWORD, Sshd

if TYPE_CHECKING:  # pytest imports conftest itself; the names are only for the checker
    from conftest import Ansible

pytestmark = pytest.mark.sshd

NAME = "dir with space/fïlé ünïcode.bin"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_everyday_tasks(ansible: Ansible, sshd: Sshd, tmp_path: Path, pipelining: bool) -> None:
    payload = os.urandom(300_000) + bytes(range(256)) * 64  # every byte value, not valid UTF-8
    source = tmp_path / "src" / NAME
    source.parent.mkdir(parents=True)
    source.write_bytes(payload)
    (tmp_path / "greeting.j2").write_text("hello {{ who }} from {{ inventory_hostname }}\n")
    remote = f"/tmp/bakery-conn-{pipelining}"
    fetched = tmp_path / "fetched"
    tasks = [
        {"raw": "echo raw-ok; echo raw-err >&2", "register": "raw"},
        {"command": "echo command-ok", "register": "cmd"},
        {"shell": "echo $((6 * 7)) | tr -d '\\n'; exit 3", "register": "sh", "failed_when": "sh.rc != 3"},
        {"file": {"path": f"{remote}/dir with space", "state": "directory"}},
        {"copy": {"src": str(source), "dest": f"{remote}/{NAME}", "mode": "0600"}},
        {"fetch": {"src": f"{remote}/{NAME}", "dest": f"{fetched}/", "flat": True}},
        {"template": {"src": str(tmp_path / "greeting.j2"), "dest": f"{remote}/greeting.txt"}, "vars": {"who": "bakery"}},
        {"slurp": {"src": f"{remote}/greeting.txt"}, "register": "greeting"},
        {"command": "id -un", "become": True, "register": "root"},
        {"command": "id -un", "become": True, "become_user": OTHER_USER, "register": "sudo_pw",
         "vars": {"ansible_become_password": PASSWORD}},
        {"command": "id -un", "become": True, "become_method": "su", "become_user": OTHER_USER, "register": "su_pw",
         "vars": {"ansible_become_password": PASSWORD}},
        {"raw": "tty", "become": True, "register": "with_pty", "failed_when": False},
        {"raw": "tty", "register": "without_pty", "failed_when": False},
        {"file": {"path": remote, "state": "absent"}},
        {"assert": {"that": [
            "raw.stdout_lines[0] == 'raw-ok'",
            "'raw-err' in raw.stderr",
            "cmd.stdout == 'command-ok'",
            "sh.stdout == '42'",
            "(greeting.content | b64decode) == 'hello bakery from target\n'",
            "root.stdout == 'root'",
            f"sudo_pw.stdout == '{OTHER_USER}'",
            f"su_pw.stdout == '{OTHER_USER}'",
            "with_pty.stdout is search('/dev/pts/')",
            "without_pty.stdout is search('not a tty')",
        ]}},
    ]
    # becoming an unprivileged user without setfacl on the host needs world-readable module files
    hostvars = ansible.host_vars(sshd, ansible_pipelining=pipelining, ansible_shell_allow_world_readable_temp=True)
    ansible.play(tasks, hostvars, check=True)
    copy = fetched / Path(NAME).name
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(payload).digest()


def test_large_copy_and_two_full_streams(ansible: Ansible, sshd: Sshd, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(50 * 1024 * 1024))
    digest = hashlib.sha1(big.read_bytes()).hexdigest()
    # Both streams full at once: a reader that drains one before the other would hang.
    noisy = ("python3 -c \"import sys\nfor _ in range(20):\n sys.stdout.write('o' * 1000000); sys.stdout.flush()\n"
             " sys.stderr.write('e' * 1000000); sys.stderr.flush()\"")
    tasks = [
        {"copy": {"src": str(big), "dest": "/tmp/bakery-big.bin"}, "register": "copied"},
        {"stat": {"path": "/tmp/bakery-big.bin", "checksum_algorithm": "sha1"}, "register": "st"},
        {"raw": noisy, "register": "noisy"},
        {"file": {"path": "/tmp/bakery-big.bin", "state": "absent"}},
        {"assert": {"that": [
            f"st.stat.checksum == '{digest}'",
            "st.stat.size == 52428800",
            "noisy.stdout | length == 20000000",
            "noisy.stderr | length == 20000000",
        ]}},
    ]
    ansible.play(tasks, ansible.host_vars(sshd), check=True)


def test_session_reused_for_a_whole_play(ansible: Ansible, sshd: Sshd) -> None:
    tasks = [{"command": f"echo {i}"} for i in range(30)]
    ansible.play(tasks, ansible.host_vars(sshd), check=True)
    assert sshd.accepted() == 1, sshd.log.read_text()


def test_reset_connection_and_wait_for_connection(ansible: Ansible, sshd: Sshd) -> None:
    tasks = [
        {"wait_for_connection": {"timeout": 30}},
        {"command": "true"},
        {"meta": "reset_connection"},
        {"command": "true"},
    ]
    ansible.play(tasks, ansible.host_vars(sshd), check=True)
    # one session before the reset, one after (wait_for_connection resets between its own tries only)
    assert sshd.accepted() == 2, sshd.log.read_text()


def test_become_password_wrong(ansible: Ansible, sshd: Sshd) -> None:
    tasks = [{"command": "id -un", "become": True, "become_user": OTHER_USER}]
    run = ansible.play(tasks, ansible.host_vars(sshd, ansible_become_password="not-the-password"))
    assert run.rc != 0
    assert "incorrect sudo password" in run.out


def test_become_prompt_timeout(ansible: Ansible, sshd: Sshd) -> None:
    slow = "/tmp/bakery-slow-sudo"
    setup = [{"copy": {"dest": slow, "mode": "0755", "content": "#!/bin/sh\nsleep 8\nexec sudo \"$@\"\n"}}]
    ansible.play(setup, ansible.host_vars(sshd), name="setup", check=True)
    tasks = [{"command": "id -un", "become": True, "become_user": OTHER_USER}]
    run = ansible.play(tasks, ansible.host_vars(sshd, ansible_become_password=PASSWORD, ansible_become_exe=slow,
                                                ansible_paramiko_timeout=2))
    assert run.rc != 0
    assert "timed out after 2s waiting for the sudo privilege escalation prompt" in run.out
