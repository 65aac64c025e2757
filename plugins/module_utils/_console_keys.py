# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The SSH host keys an instance prints on its console (cloud-init's key block)."""
from __future__ import annotations

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-", "sk-")


def host_keys_from_console(text: str) -> list[str]:
    """'type base64' for each key of the last complete block (a reboot prints a new one)."""
    end = text.rfind(END)
    begin = text.rfind(BEGIN, 0, end) if end >= 0 else -1
    if begin < 0:
        return []
    keys: list[str] = []
    for line in text[begin + len(BEGIN):end].splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith(KEY_TYPE_PREFIXES):
            keys.append(f"{fields[0]} {fields[1]}")
    return keys
