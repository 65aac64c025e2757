# SPDX-License-Identifier: GPL-3.0-or-later
"""User data, read the way cloud-init reads it at first boot.

Supported: `#cloud-config` with `ssh_authorized_keys` and `ssh_keys` (injected host keys),
a shell script (`#!`), and either of them gzip-compressed. Anything else is ignored, as
cloud-init ignores parts it has no handler for.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field

import yaml

from localcloud.runtime.errors import RuntimeFailure

_HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")


@dataclass
class UserData:
    """What first boot does with the user data."""

    authorized_keys: list[str] = field(default_factory=list)
    host_keys: dict[str, str] = field(default_factory=dict)  # file name in /etc/ssh -> content
    script: bytes | None = None


def parse(raw: bytes | None) -> UserData:
    if not raw:
        return UserData()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw.startswith(b"#!"):
        return UserData(script=raw)
    if raw.startswith(b"#cloud-config"):
        return _cloud_config(raw)
    return UserData()


def _cloud_config(raw: bytes) -> UserData:
    try:
        config = yaml.safe_load(raw.decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RuntimeFailure(f"The cloud-config user data is not valid YAML: {exc}.") from None
    if not isinstance(config, dict):
        raise RuntimeFailure("The cloud-config user data is not a mapping.")
    keys = config.get("ssh_authorized_keys") or []
    if not isinstance(keys, list):
        raise RuntimeFailure("cloud-config ssh_authorized_keys must be a list of public keys.")
    data = UserData(authorized_keys=[str(key).strip() for key in keys if str(key).strip()])
    host_keys = config.get("ssh_keys") or {}
    if not isinstance(host_keys, dict):
        raise RuntimeFailure("cloud-config ssh_keys must be a mapping such as {rsa_private: ..., rsa_public: ...}.")
    for key_type in _HOST_KEY_TYPES:
        private, public = host_keys.get(f"{key_type}_private"), host_keys.get(f"{key_type}_public")
        if private:
            data.host_keys[f"ssh_host_{key_type}_key"] = str(private).strip() + "\n"
        if public:
            data.host_keys[f"ssh_host_{key_type}_key.pub"] = str(public).strip() + "\n"
    return data
