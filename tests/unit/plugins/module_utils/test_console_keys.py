# SPDX-License-Identifier: GPL-3.0-or-later
"""The SSH host keys an instance prints on its console."""
from __future__ import annotations

from ansible_collections.bakery.ami.plugins.module_utils._console_keys import BEGIN, END, host_keys_from_console


def test_the_keys_of_the_block_type_and_base64_only() -> None:
    console = f"boot\n{BEGIN}\nssh-ed25519 AAAAC3 root@builder\necdsa-sha2-nistp256 AAAAE2 root@builder\nnot a key\n{END}\nlogin:"
    assert host_keys_from_console(console) == ["ssh-ed25519 AAAAC3", "ecdsa-sha2-nistp256 AAAAE2"]


def test_the_last_complete_block_counts() -> None:
    first = f"{BEGIN}\nssh-ed25519 OLD root@b\n{END}\n"
    second = f"{BEGIN}\nssh-ed25519 NEW root@b\n{END}\n"
    assert host_keys_from_console(first + "reboot\n" + second + f"{BEGIN}\nssh-rsa HALF") == ["ssh-ed25519 NEW"]


def test_no_block_no_keys() -> None:
    assert host_keys_from_console("") == []
    assert host_keys_from_console(f"{BEGIN}\nssh-ed25519 AAAA root@b\n") == []
